//! The control plane's record of batch jobs: each job as Get and List report it, and the store that
//! keeps them in creation order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::ids::iso8601;

/// A job status, as Bedrock names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Submitted,
    Validating,
    Scheduled,
    InProgress,
    Stopping,
    Completed,
    PartiallyCompleted,
    Failed,
    Stopped,
    Expired,
}

impl Status {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "Submitted",
            Status::Validating => "Validating",
            Status::Scheduled => "Scheduled",
            Status::InProgress => "InProgress",
            Status::Stopping => "Stopping",
            Status::Completed => "Completed",
            Status::PartiallyCompleted => "PartiallyCompleted",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
            Status::Expired => "Expired",
        }
    }

    /// Parses a wire name.
    pub(crate) fn parse(s: &str) -> Option<Status> {
        [
            Status::Submitted,
            Status::Validating,
            Status::Scheduled,
            Status::InProgress,
            Status::Stopping,
            Status::Completed,
            Status::PartiallyCompleted,
            Status::Failed,
            Status::Stopped,
            Status::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Whether the job has ended.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::PartiallyCompleted | Status::Failed | Status::Stopped | Status::Expired
        )
    }
}

/// One job, as the control plane reports it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub model_id: String,
    pub role_arn: String,
    pub client_request_token: Option<String>,
    pub status: Status,
    pub message: Option<String>,
    pub submit_time: OffsetDateTime,
    pub last_modified_time: OffsetDateTime,
    pub end_time: Option<OffsetDateTime>,
    /// `inputDataConfig` as given.
    pub input_config: Value,
    /// `outputDataConfig` as given.
    pub output_config: Value,
    pub vpc_config: Option<Value>,
    pub timeout_hours: u64,
    pub invocation_type: String,
    pub total: Option<u64>,
    pub processed: Option<u64>,
    pub success: Option<u64>,
    pub errors: Option<u64>,
}

impl Job {
    /// The input S3 URI.
    pub(crate) fn input_uri(&self) -> String {
        self.input_config.pointer("/s3InputDataConfig/s3Uri").and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// The output S3 URI prefix.
    pub(crate) fn output_uri(&self) -> String {
        self.output_config.pointer("/s3OutputDataConfig/s3Uri").and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// The GetModelInvocationJob / summary JSON.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("jobArn".into(), json!(self.arn));
        m.insert("jobName".into(), json!(self.name));
        m.insert("modelId".into(), json!(self.model_id));
        if let Some(t) = &self.client_request_token {
            m.insert("clientRequestToken".into(), json!(t));
        }
        m.insert("roleArn".into(), json!(self.role_arn));
        m.insert("status".into(), json!(self.status.as_str()));
        if let Some(msg) = &self.message {
            m.insert("message".into(), json!(msg));
        }
        m.insert("submitTime".into(), json!(iso8601(self.submit_time)));
        m.insert("lastModifiedTime".into(), json!(iso8601(self.last_modified_time)));
        if let Some(t) = self.end_time {
            m.insert("endTime".into(), json!(iso8601(t)));
        }
        m.insert("inputDataConfig".into(), self.input_config.clone());
        m.insert("outputDataConfig".into(), self.output_config.clone());
        if let Some(v) = &self.vpc_config {
            m.insert("vpcConfig".into(), v.clone());
        }
        m.insert("timeoutDurationInHours".into(), json!(self.timeout_hours));
        let expiry = self.submit_time + time::Duration::hours(self.timeout_hours as i64);
        m.insert("jobExpirationTime".into(), json!(iso8601(expiry)));
        m.insert("modelInvocationType".into(), json!(self.invocation_type));
        for (k, v) in [
            ("totalRecordCount", self.total),
            ("processedRecordCount", self.processed),
            ("successRecordCount", self.success),
            ("errorRecordCount", self.errors),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        Value::Object(m)
    }
}

/// All jobs, in creation order, with the stop signal of each.
#[derive(Default)]
pub(crate) struct Store {
    inner: Mutex<StoreInner>,
}

#[derive(Default)]
struct StoreInner {
    jobs: Vec<Job>,
    by_id: HashMap<String, usize>,
    by_token: HashMap<String, String>,
    stops: HashMap<String, Arc<Notify>>,
}

/// Why a job was not inserted.
#[derive(Debug)]
pub(crate) enum NotInserted {
    /// A job with the same client token exists: its ARN.
    SameToken(String),
    /// The model's submitted and in-progress jobs are at the limit.
    Full,
}

impl Store {
    /// The job created earlier with this token, if any.
    pub(crate) fn by_token(&self, token: &str) -> Option<Job> {
        let g = self.inner.lock().expect("store lock");
        let id = g.by_token.get(token)?;
        g.by_id.get(id).map(|&i| g.jobs[i].clone())
    }

    /// Adds a job unless its token is already taken (then returns the ARN of the job that has it
    /// as `Err`).
    pub(crate) fn insert(&self, job: Job, max_active: u64) -> Result<Arc<Notify>, NotInserted> {
        let mut g = self.inner.lock().expect("store lock");
        if let Some(t) = &job.client_request_token {
            if let Some(id) = g.by_token.get(t) {
                let i = g.by_id[id];
                return Err(NotInserted::SameToken(g.jobs[i].arn.clone()));
            }
        }
        // Checked with the insert, under one lock: two creates at once cannot both pass.
        let active = g.jobs.iter().filter(|j| j.model_id == job.model_id && !j.status.is_terminal()).count() as u64;
        if active >= max_active {
            return Err(NotInserted::Full);
        }
        if let Some(t) = &job.client_request_token {
            g.by_token.insert(t.clone(), job.id.clone());
        }
        let stop = Arc::new(Notify::new());
        g.stops.insert(job.id.clone(), stop.clone());
        let i = g.jobs.len();
        g.by_id.insert(job.id.clone(), i);
        g.jobs.push(job);
        Ok(stop)
    }

    /// A copy of one job.
    pub(crate) fn get(&self, id: &str) -> Option<Job> {
        let g = self.inner.lock().expect("store lock");
        g.by_id.get(id).map(|&i| g.jobs[i].clone())
    }

    /// Copies of every job.
    pub(crate) fn all(&self) -> Vec<Job> {
        self.inner.lock().expect("store lock").jobs.clone()
    }

    /// Changes a job in place.
    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        let mut g = self.inner.lock().expect("store lock");
        if let Some(&i) = g.by_id.get(id) {
            f(&mut g.jobs[i]);
            g.jobs[i].last_modified_time = OffsetDateTime::now_utc();
        }
    }

    /// Asks a running job to stop. Returns the job's status before the request.
    pub(crate) fn request_stop(&self, id: &str) -> Option<Status> {
        let mut g = self.inner.lock().expect("store lock");
        let i = *g.by_id.get(id)?;
        let before = g.jobs[i].status;
        if !before.is_terminal() && before != Status::Stopping {
            g.jobs[i].status = Status::Stopping;
            g.jobs[i].last_modified_time = OffsetDateTime::now_utc();
            if let Some(n) = g.stops.get(id) {
                n.notify_one();
            }
        }
        Some(before)
    }

    /// The status of one job.
    pub(crate) fn status(&self, id: &str) -> Option<Status> {
        let g = self.inner.lock().expect("store lock");
        g.by_id.get(id).map(|&i| g.jobs[i].status)
    }
}
