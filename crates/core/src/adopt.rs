//! Adopting a job that no store knows (created by a run without a journal, a crashed script):
//! it is described by Bedrock, its input file read back, and it is recorded in the store as a
//! batch whose job exists, so the worker polls it and keeps its answers as it does a batch taken
//! up after a restart.
//!
//! Keys: the input file holds each record's id and body, not its request's idempotency key. A
//! request sent without a key is keyed by its content ([`content_digest`]) and occurrence, which
//! the body in the file gives back: the k-th record of the same content in the file gets the
//! k-th key, so a later send of that content (without a key) resolves from the adopted answer.
//! A request sent with its own `idempotencyKey`, or converted from Converse to the model's
//! native shape, cannot be matched from the file: its answer is kept under its record
//! (`results(jobArn)` lists it by record id), not under a key a later send would use.
//!
//! Only this package's jobs are adopted: an input folder with its `records.jsonl` whose record
//! ids are this package's (`R` and digits; fillers `P…` are skipped). Any other job is refused
//! with why (its results can still be read with `jobs results`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::job_views::{JobView, ListFilter};
use crate::backend::BatchBackend;
use crate::error::EngineError;
use crate::jsonl;
use crate::request::{InvocationType, InvokeOptions, Operation};
use crate::status::JobStatus;
use crate::store::{self, BatchRecord, Member, Recovered, RecoveredState};

/// Which jobs to adopt.
#[derive(Debug, Clone)]
pub enum AdoptTarget {
    /// One job, by ARN or id.
    Job(String),
    /// Every job whose name starts with a prefix, submitted at or after a time.
    Prefix {
        /// What the job's name starts with.
        name_prefix: String,
        /// Submitted at or after this time (epoch ms); `None`: any time.
        since_ms: Option<u64>,
    },
}

/// A job adopted (recorded in the store and polled), or left alone with why.
#[derive(Debug, Clone, PartialEq)]
pub struct AdoptedJob {
    /// Its ARN.
    pub job_arn: String,
    /// Its name.
    pub job_name: String,
    /// Its model, as Bedrock names it.
    pub model_id: String,
    /// Its status when it was found.
    pub status: JobStatus,
    /// Its records (fillers not counted).
    pub records: u64,
    /// Records whose content key was recomputed from the input (a later send of the same content
    /// resolves from their answers).
    pub keyed: u64,
    /// Why it was not adopted (`None`: adopted).
    pub skipped: Option<String>,
}

/// Most pages of `ListModelInvocationJobs` read for one adoption by name.
const MAX_PAGES: usize = 100;

/// The jobs a target names, newest first.
pub(crate) async fn find(backend: &dyn BatchBackend, target: &AdoptTarget) -> Result<Vec<JobView>, EngineError> {
    match target {
        AdoptTarget::Job(id) => Ok(vec![backend.describe_job(id).await?]),
        AdoptTarget::Prefix { name_prefix, since_ms } => {
            let mut out = Vec::new();
            let mut filter = ListFilter {
                name_contains: Some(name_prefix.clone()),
                max_results: Some(1000),
                submit_time_after_ms: since_ms.map(|ms| ms.saturating_sub(1)),
                ..ListFilter::default()
            };
            for _ in 0..MAX_PAGES {
                let (jobs, next) = backend.list_jobs(&filter).await?;
                out.extend(jobs.into_iter().filter(|j| {
                    j.job_name.starts_with(name_prefix.as_str())
                        && since_ms.is_none_or(|s| j.submit_time_ms.is_none_or(|t| t >= s))
                }));
                match next {
                    Some(t) => filter.next_token = Some(t),
                    None => break,
                }
            }
            Ok(out)
        }
    }
}

/// The input folder and file of a job this package created, or why it is not one.
fn input_of(job: &JobView) -> Result<String, String> {
    let uri = job.input_uri.as_deref().ok_or("the job has no S3 input")?;
    if jsonl::split_s3_uri(uri).is_none() {
        return Err(format!("its input {uri:?} is not an s3:// URI"));
    }
    if uri.ends_with(".jsonl") {
        return Err("its input is one JSONL file, not a folder this package wrote".to_string());
    }
    Ok(uri.to_string())
}

/// Reads a job's input file back: `(record number, record id, body)` of each of its records, or
/// why it is not this package's.
pub(crate) async fn read_records(
    backend: &dyn BatchBackend,
    input_uri: &str,
) -> Result<Result<Vec<(u64, bytes::Bytes)>, String>, EngineError> {
    let mut records = Vec::new();
    let mut foreign: Option<String> = None;
    let mut on_line = |line: &bytes::Bytes| {
        let Some((id, body)) = jsonl::parse_input_line(line) else {
            foreign.get_or_insert_with(|| "a line of its input file is not a record".to_string());
            return;
        };
        match jsonl::parse_record_id(&id) {
            Some(n) => records.push((n, line.slice_ref(body))),
            None if jsonl::is_filler_record_id(&id) => {}
            None => {
                foreign.get_or_insert_with(|| format!("record id {id:?} is not one this package writes"));
            }
        }
    };
    match backend.read_input(input_uri, crate::job::INPUT_FILE, &mut on_line).await {
        Ok(()) => {}
        Err(e) if e.name == crate::error::ErrorName::ResourceNotFoundException || e.status() == Some(404) => {
            return Ok(Err(format!("its input folder has no {} (not a job of this package)", crate::job::INPUT_FILE)))
        }
        Err(e) => return Err(e),
    }
    Ok(match foreign {
        Some(why) => Err(why),
        None if records.is_empty() => Err("its input file has no records".to_string()),
        None => Ok(records),
    })
}

/// The store's record of an adopted job: its batch (named by the job's token), and a member per
/// record keyed by its content and occurrence (the k-th record of the same content in the file,
/// the k-th key), as a send without a key would have been.
pub(crate) fn recovered(job: &JobView, input_uri: String, records: &[(u64, bytes::Bytes)]) -> (Recovered, u64) {
    let operation = match job.invocation_type {
        InvocationType::InvokeModel => Operation::InvokeModel,
        InvocationType::Converse => Operation::Converse,
    };
    let model = model_id_of(&job.model_id);
    let salt = match operation {
        Operation::InvokeModel => model.to_string(),
        op => format!("{model}\u{0}{}", op.as_str()),
    };
    let mut occurrences: HashMap<[u8; 16], u32> = HashMap::new();
    let members: Vec<Member> = records
        .iter()
        .map(|(record, body)| {
            let digest = store::content_digest(&salt, body, &InvokeOptions::default());
            // Occurrences count from 1, as the worker's do.
            let n = occurrences.entry(digest).or_insert(0);
            *n += 1;
            let key = store::content_key(&digest, *n);
            Member { key, record: *record, tries: 0, native: None, deadline_ms: None }
        })
        .collect();
    let keyed = members.len() as u64;
    let token = job.client_request_token.clone().unwrap_or_else(|| format!("adopted-{}", job_id(&job.job_arn)));
    let batch = BatchRecord {
        token,
        job_name: job.job_name.clone(),
        model_id: model.to_string(),
        output_uri: job.output_uri.clone().unwrap_or_default(),
        invocation_type: job.invocation_type,
    };
    let state = RecoveredState::Submitted { input_uri, job_arn: job.job_arn.clone() };
    (Recovered { batch, state, members }, keyed)
}

/// The model id a job names (a foundation model's or an inference profile's ARN as its id).
fn model_id_of(model: &str) -> &str {
    [":foundation-model/", ":inference-profile/"]
        .iter()
        .find_map(|kind| model.split_once(kind).map(|(_, id)| id))
        .unwrap_or(model)
}

fn job_id(job_arn: &str) -> &str {
    job_arn.rsplit('/').next().unwrap_or(job_arn)
}

/// What adopting `job` takes: the batch to record and take up, or why not.
pub(crate) async fn prepare(
    backend: &Arc<dyn BatchBackend>,
    job: &JobView,
) -> Result<Result<(Recovered, u64, u64), String>, EngineError> {
    if job.output_uri.is_none() {
        return Ok(Err("the job has no S3 output".to_string()));
    }
    let input_uri = match input_of(job) {
        Ok(u) => u,
        Err(why) => return Ok(Err(why)),
    };
    let records = match read_records(backend.as_ref(), &input_uri).await? {
        Ok(r) => r,
        Err(why) => return Ok(Err(why)),
    };
    let (r, keyed) = recovered(job, input_uri, &records);
    Ok(Ok((r, records.len() as u64, keyed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(invocation_type: InvocationType) -> JobView {
        JobView {
            job_arn: "arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/abc123".into(),
            job_name: "bbb-run-1".into(),
            model_id: "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0".into(),
            output_uri: Some("s3://bucket-a/out/".into()),
            input_uri: Some("s3://bucket-a/in/t1/".into()),
            invocation_type,
            ..JobView::default()
        }
    }

    #[test]
    fn adopted_records_get_the_content_keys_a_send_without_a_key_would_have_had() {
        let body = bytes::Bytes::from_static(br#"{"messages":[]}"#);
        let other = bytes::Bytes::from_static(br#"{"messages":[1]}"#);
        let records = vec![(7, body.clone()), (8, other.clone()), (9, body.clone())];
        let (r, keyed) = recovered(&job(InvocationType::InvokeModel), "s3://bucket-a/in/t1/".into(), &records);
        assert_eq!(keyed, 3);
        let d = store::content_digest("anthropic.claude-3-haiku-20240307-v1:0", &body, &InvokeOptions::default());
        assert_eq!(r.members[0].key, store::content_key(&d, 1), "the model id of the job's ARN, as the caller sent it");
        assert_eq!(r.members[2].key, store::content_key(&d, 2), "the second record of the same content: occurrence 2");
        assert_ne!(r.members[1].key, r.members[0].key);
        assert_eq!(r.members.iter().map(|m| m.record).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(r.batch.token, "adopted-abc123", "no token from Bedrock: one made of the job id");
        assert_eq!(r.batch.output_uri, "s3://bucket-a/out/");
        assert!(matches!(r.state, RecoveredState::Submitted { ref job_arn, .. } if job_arn.ends_with("/abc123")));

        let (c, _) = recovered(&job(InvocationType::Converse), "s3://bucket-a/in/t1/".into(), &records[..1]);
        let dc = store::content_digest(
            "anthropic.claude-3-haiku-20240307-v1:0\u{0}Converse",
            &body,
            &InvokeOptions::default(),
        );
        assert_eq!(c.members[0].key, store::content_key(&dc, 1), "a Converse job's records: Converse's keys");
    }

    #[test]
    fn only_a_folder_this_package_wrote_is_adopted() {
        let mut j = job(InvocationType::InvokeModel);
        assert_eq!(input_of(&j).unwrap(), "s3://bucket-a/in/t1/");
        j.input_uri = Some("s3://bucket-a/in/file.jsonl".into());
        assert!(input_of(&j).unwrap_err().contains("one JSONL file"));
        j.input_uri = None;
        assert!(input_of(&j).is_err());
    }
}
