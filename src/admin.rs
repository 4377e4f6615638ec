//! `NativeAdmin`: the `jobs` commands of the CLI (list, show, stop, results) as a JS class.
//! Results of its async methods carry either their value or the error as data.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use bedrock_batch_core::admin::{self, JobView, ListFilter};
use bedrock_batch_core::backend::bedrock::{AwsClients, AwsSettings};
use bedrock_batch_core::EngineConfig;

use crate::error::{data, throw, JsEngineError};

/// A job as `jobs list` / `jobs show` print it.
#[napi(object)]
pub struct NativeJobView {
    pub job_arn: String,
    pub job_name: String,
    pub model_id: String,
    pub status: String,
    pub message: Option<String>,
    pub submit_time: Option<String>,
    pub end_time: Option<String>,
    pub input_uri: Option<String>,
    pub output_uri: Option<String>,
    pub total_record_count: Option<f64>,
    pub processed_record_count: Option<f64>,
    pub success_record_count: Option<f64>,
    pub error_record_count: Option<f64>,
    pub role_arn: Option<String>,
}

fn view(j: JobView) -> NativeJobView {
    let n = |v: Option<u64>| v.map(|x| x as f64);
    NativeJobView {
        job_arn: j.job_arn,
        job_name: j.job_name,
        model_id: j.model_id,
        status: j.status.to_string(),
        message: j.message,
        submit_time: j.submit_time,
        end_time: j.end_time,
        input_uri: j.input_uri,
        output_uri: j.output_uri,
        total_record_count: n(j.total_record_count),
        processed_record_count: n(j.processed_record_count),
        success_record_count: n(j.success_record_count),
        error_record_count: n(j.error_record_count),
        role_arn: j.role_arn,
    }
}

/// Filters of `jobs list`.
#[napi(object)]
pub struct NativeListFilter {
    pub status_equals: Option<String>,
    pub name_contains: Option<String>,
    pub max_results: Option<u32>,
    pub next_token: Option<String>,
}

/// One page of `jobs list`, or why not.
#[napi(object)]
pub struct NativeJobPage {
    pub jobs: Vec<NativeJobView>,
    pub next_token: Option<String>,
    pub error: Option<JsEngineError>,
}

/// One job, or why not.
#[napi(object)]
pub struct NativeJobResult {
    pub job: Option<NativeJobView>,
    pub error: Option<JsEngineError>,
}

/// A job's joined results (JSONL, one line per input record, in input order), or why not.
#[napi(object)]
pub struct NativeJobResults {
    pub data: Option<Buffer>,
    pub records: f64,
    pub succeeded: f64,
    pub failed: f64,
    pub missing: f64,
    pub error: Option<JsEngineError>,
}

/// Bedrock's control plane and S3, for looking at jobs.
#[napi]
pub struct NativeAdmin {
    clients: AwsClients,
}

#[napi]
impl NativeAdmin {
    /// Built from options as the client takes them (`region`, `endpoints`, `credentials`).
    #[napi(constructor)]
    pub fn new(env: Env, options: serde_json::Value) -> Result<Self> {
        let clients = napi::bindgen_prelude::block_on(async move {
            let config = EngineConfig::from_options(&options).await?;
            Ok(AwsClients::new(&AwsSettings::from_config(&config, None)).await)
        })
        .map_err(|e| throw(&env, &e))?;
        Ok(NativeAdmin { clients })
    }

    /// One page of jobs, newest first.
    #[napi]
    pub async fn list_jobs(&self, filter: NativeListFilter) -> NativeJobPage {
        let f = ListFilter {
            status_equals: filter.status_equals,
            name_contains: filter.name_contains,
            max_results: filter.max_results.map(|n| n.min(1000) as i32),
            next_token: filter.next_token,
            submit_time_after_ms: None,
        };
        match admin::list_jobs(&self.clients, &f).await {
            Ok((jobs, next)) => {
                NativeJobPage { jobs: jobs.into_iter().map(view).collect(), next_token: next, error: None }
            }
            Err(e) => NativeJobPage { jobs: Vec::new(), next_token: None, error: Some(data(&e)) },
        }
    }

    /// One job, by ARN or id.
    #[napi]
    pub async fn get_job(&self, id: String) -> NativeJobResult {
        match admin::get_job(&self.clients, &id).await {
            Ok(j) => NativeJobResult { job: Some(view(j)), error: None },
            Err(e) => NativeJobResult { job: None, error: Some(data(&e)) },
        }
    }

    /// Stops a job (`null`, or the error).
    #[napi]
    pub async fn stop_job(&self, id: String) -> Option<JsEngineError> {
        admin::stop_job(&self.clients, &id).await.err().map(|e| data(&e))
    }

    /// A job's results joined with its input, as JSONL.
    #[napi]
    pub async fn job_results(&self, id: String) -> NativeJobResults {
        let mut out = Vec::new();
        let counts = admin::job_results(&self.clients, &id, &mut |line: &[u8]| {
            out.extend_from_slice(line);
            out.push(b'\n');
        })
        .await;
        match counts {
            Ok(c) => NativeJobResults {
                data: Some(out.into()),
                records: c.records as f64,
                succeeded: c.succeeded as f64,
                failed: c.failed as f64,
                missing: c.missing as f64,
                error: None,
            },
            Err(e) => NativeJobResults {
                data: None,
                records: 0.0,
                succeeded: 0.0,
                failed: 0.0,
                missing: 0.0,
                error: Some(data(&e)),
            },
        }
    }
}
