//! `NativeAdmin`: the `jobs` commands of the CLI (list, show, stop, results) as a JS class.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use bedrock_batch_core::admin::{self, JobView, ListFilter};
use bedrock_batch_core::backend::bedrock::AwsClients;

use crate::engine::{aws_settings, NativeAwsOptions};
use crate::error::engine_error;

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
}

fn view(j: JobView) -> NativeJobView {
    let n = |v: Option<u64>| v.map(|x| x as f64);
    NativeJobView {
        job_arn: j.job_arn,
        job_name: j.job_name,
        model_id: j.model_id,
        status: j.status,
        message: j.message,
        submit_time: j.submit_time,
        end_time: j.end_time,
        input_uri: j.input_uri,
        output_uri: j.output_uri,
        total_record_count: n(j.total_record_count),
        processed_record_count: n(j.processed_record_count),
        success_record_count: n(j.success_record_count),
        error_record_count: n(j.error_record_count),
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

/// One page of `jobs list`.
#[napi(object)]
pub struct NativeJobPage {
    pub jobs: Vec<NativeJobView>,
    pub next_token: Option<String>,
}

/// A job's joined results.
#[napi(object)]
pub struct NativeJobResults {
    /// JSONL, one line per input record, in input order.
    pub data: Buffer,
    pub records: f64,
    pub succeeded: f64,
    pub failed: f64,
    pub missing: f64,
}

/// Bedrock's control plane and S3, for looking at jobs.
#[napi]
pub struct NativeAdmin {
    clients: AwsClients,
}

#[napi]
impl NativeAdmin {
    #[napi(constructor)]
    pub fn new(aws: NativeAwsOptions) -> Self {
        let settings = aws_settings(aws);
        let clients = napi::bindgen_prelude::block_on(async move { AwsClients::new(&settings).await });
        NativeAdmin { clients }
    }

    /// One page of jobs, newest first.
    #[napi]
    pub async fn list_jobs(&self, filter: NativeListFilter) -> Result<NativeJobPage> {
        let f = ListFilter {
            status_equals: filter.status_equals,
            name_contains: filter.name_contains,
            max_results: filter.max_results.map(|n| n.min(1000) as i32),
            next_token: filter.next_token,
        };
        let (jobs, next) = admin::list_jobs(&self.clients, &f).await.map_err(|e| engine_error(&e))?;
        Ok(NativeJobPage { jobs: jobs.into_iter().map(view).collect(), next_token: next })
    }

    /// One job, by ARN or id.
    #[napi]
    pub async fn get_job(&self, id: String) -> Result<NativeJobView> {
        admin::get_job(&self.clients, &id).await.map(view).map_err(|e| engine_error(&e))
    }

    /// Stops a job.
    #[napi]
    pub async fn stop_job(&self, id: String) -> Result<()> {
        admin::stop_job(&self.clients, &id).await.map_err(|e| engine_error(&e))
    }

    /// A job's results joined with its input, as JSONL.
    #[napi]
    pub async fn job_results(&self, id: String) -> Result<NativeJobResults> {
        let mut data = Vec::new();
        let counts = admin::job_results(&self.clients, &id, &mut |line: &[u8]| {
            data.extend_from_slice(line);
            data.push(b'\n');
        })
        .await
        .map_err(|e| engine_error(&e))?;
        Ok(NativeJobResults {
            data: data.into(),
            records: counts.records as f64,
            succeeded: counts.succeeded as f64,
            failed: counts.failed as f64,
            missing: counts.missing as f64,
        })
    }
}
