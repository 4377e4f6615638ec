//! What the `jobs` commands of the CLI do against Bedrock (or the emulator): list, show, stop a
//! batch inference job, and gather its results joined with its input.

use std::collections::HashMap;

use aws_smithy_types::DateTime;

use crate::backend::bedrock::{list_keys, read_job_output, AwsClients};
use crate::backend::lines::{read_lines, RangeReads};
use crate::backend::sdk_error::map_sdk_error;
use crate::error::EngineError;
use crate::jsonl::split_s3_uri;
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
pub async fn list_jobs(c: &AwsClients, f: &ListFilter) -> Result<(Vec<JobView>, Option<String>), EngineError> {
    use aws_sdk_bedrock::types::{ModelInvocationJobStatus, SortOrder};
    let out = c
        .bedrock
        .list_model_invocation_jobs()
        .set_status_equals(f.status_equals.as_deref().map(ModelInvocationJobStatus::from))
        .set_name_contains(f.name_contains.clone())
        .set_max_results(f.max_results)
        .set_next_token(f.next_token.clone())
        .sort_order(SortOrder::Descending)
        .send()
        .await
        .map_err(|e| map_sdk_error(&e))?;
    let jobs = out.invocation_job_summaries().iter().map(|j| job_view!(j, j.job_name())).collect();
    Ok((jobs, out.next_token().map(str::to_string)))
}

/// One job by ARN or id.
pub async fn get_job(c: &AwsClients, id: &str) -> Result<JobView, EngineError> {
    let j = c.bedrock.get_model_invocation_job().job_identifier(id).send().await.map_err(|e| map_sdk_error(&e))?;
    Ok(job_view!(j, j.job_name().unwrap_or_default()))
}

/// Stops a job.
pub async fn stop_job(c: &AwsClients, id: &str) -> Result<(), EngineError> {
    c.bedrock.stop_model_invocation_job().job_identifier(id).send().await.map_err(|e| map_sdk_error(&e))?;
    Ok(())
}

/// Counts of what [`job_results`] wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResultCounts {
    /// Records read from the job's input.
    pub records: u64,
    /// Records whose output line has a `modelOutput`.
    pub succeeded: u64,
    /// Records whose output line has an error (or cannot be read).
    pub failed: u64,
    /// Records with no output line; a line with an `error` was written for each.
    pub missing: u64,
}

/// A job's results as JSONL, in input order: each record's output line as the service wrote it
/// (`recordId`, `modelInput`, `modelOutput` or `error`), and for a record with no output line one
/// with an `error` saying so. Lines go to `emit` one at a time.
pub async fn job_results(
    c: &AwsClients,
    id: &str,
    emit: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<ResultCounts, EngineError> {
    let job = get_job(c, id).await?;
    let (Some(input_uri), Some(output_uri)) = (job.input_uri.as_deref(), job.output_uri.as_deref()) else {
        return Err(EngineError::validation("the job has no S3 input or output location"));
    };
    // Output lines by record id.
    let mut outputs: HashMap<String, Vec<u8>> = HashMap::new();
    read_job_output(&c.s3, output_uri, &job.job_arn, RangeReads::default(), &mut |line: &bytes::Bytes| {
        if let Some(id) = record_id_of(line) {
            outputs.insert(id, line.to_vec());
        }
    })
    .await?;
    // The input: one file, or every .jsonl file under a folder.
    let (in_bucket, in_key) = split_s3_uri(input_uri).ok_or_else(|| EngineError::validation("bad input URI"))?;
    let keys = if in_key.ends_with(".jsonl") {
        vec![in_key]
    } else {
        list_keys(&c.s3, &in_bucket, &in_key).await?.into_iter().filter(|k| k.ends_with(".jsonl")).collect()
    };
    let mut counts = ResultCounts::default();
    for key in keys {
        read_lines(&c.s3, &in_bucket, &key, None, RangeReads::default(), &mut |line: &bytes::Bytes| {
            let Some((record_id, input)) = crate::jsonl::parse_input_line(line) else { return };
            counts.records += 1;
            match outputs.remove(&*record_id) {
                Some(out) => {
                    if crate::jsonl::parse_output_line(&out).is_some_and(|o| matches!(o, crate::jsonl::OutputLine::Success { .. })) {
                        counts.succeeded += 1;
                    } else {
                        counts.failed += 1;
                    }
                    emit(&out);
                }
                None => {
                    counts.missing += 1;
                    let mut l = Vec::with_capacity(input.len() + 120);
                    l.extend_from_slice(b"{\"recordId\":");
                    l.extend_from_slice(serde_json::to_string(&record_id).unwrap_or_default().as_bytes());
                    l.extend_from_slice(b",\"modelInput\":");
                    l.extend_from_slice(input);
                    l.extend_from_slice(b",\"error\":{\"errorCode\":null,\"errorMessage\":\"The job wrote no output line for this record.\"}}");
                    emit(&l);
                }
            }
        })
        .await?;
    }
    Ok(counts)
}

fn record_id_of(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "recordId")]
        record_id: Option<String>,
    }
    serde_json::from_slice::<Id>(line).ok()?.record_id
}
