//! Batch inference jobs as Bedrock describes them (`ListModelInvocationJobs`,
//! `GetModelInvocationJob`): for the `jobs` commands and for adopting a job into the store.

use aws_smithy_types::DateTime;

use crate::backend::sdk_error::map_sdk_error;
use crate::error::EngineError;
use crate::request::InvocationType;
use crate::status::JobStatus;

/// A job as the CLI shows it.
#[derive(Debug, Clone, Default)]
pub struct JobView {
    /// Its ARN, which names it in every later call.
    pub job_arn: String,
    /// The name it was created with.
    pub job_name: String,
    /// The model its records go to.
    pub model_id: String,
    /// Its status when it was read.
    pub status: JobStatus,
    /// Bedrock's message about the status, if any (why a job failed, for one).
    pub message: Option<String>,
    /// RFC 3339.
    pub submit_time: Option<String>,
    /// When it ended, RFC 3339; `None` until it has.
    pub end_time: Option<String>,
    /// `s3://` URI of its input: one JSONL file or a folder of them.
    pub input_uri: Option<String>,
    /// `s3://` URI of the prefix its output goes under.
    pub output_uri: Option<String>,
    /// Records in its input, once Bedrock reports the count.
    pub total_record_count: Option<u64>,
    /// Records processed so far, once reported.
    pub processed_record_count: Option<u64>,
    /// Records answered with an output so far, once reported.
    pub success_record_count: Option<u64>,
    /// Records answered with an error so far, once reported.
    pub error_record_count: Option<u64>,
    /// The idempotency token it was created with.
    pub client_request_token: Option<String>,
    /// The service role Bedrock assumes for it.
    pub role_arn: Option<String>,
    /// What its records are (`InvokeModel` when Bedrock does not say).
    pub invocation_type: InvocationType,
    /// When it was submitted (epoch ms).
    pub submit_time_ms: Option<u64>,
}

/// Filters of `jobs list`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only jobs with this status, as AWS spells it (`InProgress`, ...).
    pub status_equals: Option<String>,
    /// Only jobs whose name contains this text.
    pub name_contains: Option<String>,
    /// At most this many jobs in the page.
    pub max_results: Option<i32>,
    /// The token the previous page returned, to read the next one.
    pub next_token: Option<String>,
    /// Only jobs submitted after this time (epoch ms).
    pub submit_time_after_ms: Option<u64>,
}

/// A [`JobView`] of a job summary or of a GetModelInvocationJob output: the SDK's two types have
/// the same accessors but no common trait. Their job names differ in type, so `$name` gives it.
macro_rules! job_view {
    ($j:ident, $name:expr) => {
        JobView {
            job_arn: $j.job_arn().to_string(),
            job_name: $name.to_string(),
            model_id: $j.model_id().to_string(),
            status: $j.status().map(|s| JobStatus::parse(s.as_str())).unwrap_or_default(),
            message: $j.message().map(str::to_string),
            submit_time: time(Some($j.submit_time())),
            end_time: time($j.end_time()),
            input_uri: $j
                .input_data_config()
                .and_then(|i| i.as_s3_input_data_config().ok())
                .map(|s| s.s3_uri().to_string()),
            output_uri: $j
                .output_data_config()
                .and_then(|o| o.as_s3_output_data_config().ok())
                .map(|s| s.s3_uri().to_string()),
            total_record_count: count($j.total_record_count()),
            processed_record_count: count($j.processed_record_count()),
            success_record_count: count($j.success_record_count()),
            error_record_count: count($j.error_record_count()),
            client_request_token: $j.client_request_token().map(str::to_string),
            role_arn: Some($j.role_arn().to_string()).filter(|r| !r.is_empty()),
            invocation_type: match $j.model_invocation_type() {
                Some(aws_sdk_bedrock::types::ModelInvocationType::Converse) => InvocationType::Converse,
                _ => InvocationType::InvokeModel,
            },
            submit_time_ms: u64::try_from($j.submit_time().to_millis().unwrap_or(0)).ok(),
        }
    };
}

fn time(t: Option<&DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
}

fn count(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

/// One page of jobs, newest first; returns the next page's token.
pub async fn list_jobs(
    c: &aws_sdk_bedrock::Client,
    f: &ListFilter,
) -> Result<(Vec<JobView>, Option<String>), EngineError> {
    use aws_sdk_bedrock::types::{ModelInvocationJobStatus, SortOrder};
    let out = c
        .list_model_invocation_jobs()
        .set_status_equals(f.status_equals.as_deref().map(ModelInvocationJobStatus::from))
        .set_name_contains(f.name_contains.clone())
        .set_max_results(f.max_results)
        .set_next_token(f.next_token.clone())
        .set_submit_time_after(f.submit_time_after_ms.map(|ms| DateTime::from_millis(ms as i64)))
        .sort_order(SortOrder::Descending)
        .send()
        .await
        .map_err(|e| map_sdk_error(&e))?;
    let jobs = out.invocation_job_summaries().iter().map(|j| job_view!(j, j.job_name())).collect();
    Ok((jobs, out.next_token().map(str::to_string)))
}

/// One job by ARN or id.
pub async fn get_job(c: &aws_sdk_bedrock::Client, id: &str) -> Result<JobView, EngineError> {
    let j = c.get_model_invocation_job().job_identifier(id).send().await.map_err(|e| map_sdk_error(&e))?;
    Ok(job_view!(j, j.job_name().unwrap_or_default()))
}
