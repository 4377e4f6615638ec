//! What the `jobs` commands of the CLI do against Bedrock (or the emulator): list, show, stop a
//! batch inference job, and gather its results joined with its input.

use std::collections::HashMap;

use crate::backend::bedrock::{list_keys, read_job_output, AwsClients};
pub use crate::backend::job_views::{JobView, ListFilter};
use crate::backend::lines::{read_lines, RangeReads};
use crate::backend::sdk_error::map_sdk_error;
use crate::error::EngineError;
use crate::jsonl::split_s3_uri;

/// One page of jobs, newest first; returns the next page's token.
pub async fn list_jobs(c: &AwsClients, f: &ListFilter) -> Result<(Vec<JobView>, Option<String>), EngineError> {
    crate::backend::job_views::list_jobs(&c.bedrock, f).await
}

/// One job by ARN or id.
pub async fn get_job(c: &AwsClients, id: &str) -> Result<JobView, EngineError> {
    crate::backend::job_views::get_job(&c.bedrock, id).await
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
