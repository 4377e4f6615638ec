//! `jobStatuses()`: Bedrock's batch job statuses as the engine knows them, so that JavaScript
//! takes them (and which ones end a job) from one place.

use napi_derive::napi;

use bedrock_batch_core::status::JobStatus;

/// A batch job status and whether a job in it has ended.
#[napi(object)]
pub struct JobStatusInfo {
    pub name: String,
    pub terminal: bool,
}

/// Every status the engine knows, in the order a job goes through them.
#[napi]
pub fn job_statuses() -> Vec<JobStatusInfo> {
    JobStatus::KNOWN.iter().map(|s| JobStatusInfo { name: s.as_str().to_string(), terminal: s.is_terminal() }).collect()
}
