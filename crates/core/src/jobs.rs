//! One task per batch: upload the JSONL, create the job (idempotently), wait for the shared
//! poller, read the output and settle every request, resubmitting what may succeed next time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::bedrock::backoff;
use crate::backend::JobSpec;
use crate::engine::{Pending, Shared};
use crate::error::{record_error, EngineError, ErrorName};
use crate::jsonl::{self, OutputLine};
use crate::{Settlement, Success};

/// Tries of an upload or an output read before its requests fail.
const IO_TRIES: u32 = 8;
/// Longest wait between retries of a create.
const MAX_CREATE_BACKOFF: Duration = Duration::from_secs(30);
/// Settlements handed to the sink at once.
const SETTLE_CHUNK: usize = 1024;

/// Starts the task of one batch.
pub(crate) fn start(shared: &Arc<Shared>, items: Vec<Pending>, fillers: usize) {
    let seq = shared.next_batch.fetch_add(1, Ordering::SeqCst);
    let me = shared.clone();
    shared.spawn(async move { run(me, seq, items, fillers).await });
}

fn fail_all(shared: &Shared, items: Vec<Pending>, err: &EngineError) {
    let out = items.into_iter().map(|p| Settlement { id: p.id, result: Err(err.clone()) }).collect();
    shared.settle(out);
}

async fn run(shared: Arc<Shared>, seq: u64, items: Vec<Pending>, fillers: usize) {
    let model_id = items[0].req.model_id.clone();
    let slots = shared.slots(&model_id);
    let Ok(_permit) = slots.acquire_owned().await else { return };

    // The input file.
    let name = format!("{}-{}-{seq}", shared.config.job_name_prefix, shared.run_id);
    let mut data = Vec::with_capacity(items.iter().map(|p| p.req.line_bytes()).sum::<usize>() + fillers * 128);
    for p in &items {
        jsonl::push_input_line(&mut data, &jsonl::record_id(p.id), &p.req.body);
    }
    if fillers > 0 {
        let body: Vec<u8> = match crate::filler::filler_body(&model_id) {
            Some(b) => b.to_vec(),
            None => items[0].req.body.to_vec(),
        };
        for n in 0..fillers {
            jsonl::push_input_line(&mut data, &jsonl::filler_record_id(seq, n), &body);
        }
        shared.padded.fetch_add(fillers as u64, Ordering::SeqCst);
    }

    let mut tries = 0;
    let input_uri = loop {
        match shared.batch.upload(&name, "records.jsonl", data.clone()).await {
            Ok(uri) => break uri,
            Err(e) if e.transient && tries + 1 < IO_TRIES => {
                tries += 1;
                tokio::time::sleep(backoff(tries, Duration::from_secs(10))).await;
            }
            Err(e) => return fail_all(&shared, items, &e),
        }
    };
    drop(data);

    // The job, created with a token derived from the batch id: a retried create never starts a second job.
    let spec = JobSpec {
        job_name: name.clone(),
        client_request_token: name.clone(),
        model_id: model_id.clone(),
        input_uri: input_uri.clone(),
        output_uri: shared.config.s3_output_uri.clone(),
    };
    let mut tries = 0;
    let job_arn = loop {
        match shared.batch.create_job(&spec).await {
            Ok(arn) => break arn,
            Err(e) if e.transient => {
                tries += 1;
                tokio::time::sleep(backoff(tries, MAX_CREATE_BACKOFF)).await;
            }
            Err(e) => return fail_all(&shared, items, &e),
        }
    };
    shared.job_update(&job_arn, |j| {
        j.job_name = name.clone();
        j.model_id = model_id.clone();
        j.status = "Submitted".into();
        j.total_record_count = (items.len() + fillers) as u64;
    });

    // Wait for the end, at most the job's own timeout and a margin.
    let waiter = shared.poller.watch(&job_arn);
    let limit = Duration::from_secs(u64::from(shared.config.job_timeout_hours) * 3600 + 3600);
    let info = match tokio::time::timeout(limit, waiter).await {
        Ok(Ok(Ok(info))) => info,
        Ok(Ok(Err(e))) => return fail_all(&shared, items, &e.with_job(Some(&job_arn), None)),
        Ok(Err(_)) => return,
        Err(_) => {
            shared.poller.forget(&job_arn);
            let mut e = EngineError::new(ErrorName::BatchJobFailedException, format!("The batch job did not end within {} hours.", shared.config.job_timeout_hours));
            e.job_arn = Some(job_arn.clone());
            return fail_all(&shared, items, &e);
        }
    };
    if info.status == "Failed" {
        let mut e = EngineError::new(ErrorName::BatchJobFailedException, info.message.clone().unwrap_or_else(|| "The batch job failed.".into()));
        e.job_arn = Some(job_arn.clone());
        e.job_status = Some(info.status.clone());
        return fail_all(&shared, items, &e);
    }

    collect(&shared, &job_arn, &info.status, items).await;
    if shared.config.cleanup {
        let _ = shared.batch.cleanup(&input_uri, &shared.config.s3_output_uri, &job_arn).await;
    }
}

/// Reads a finished job's output and settles (or requeues) each request.
async fn collect(shared: &Arc<Shared>, job_arn: &str, status: &str, items: Vec<Pending>) {
    let max_attempts = shared.config.max_attempts;
    let index: HashMap<u64, usize> = items.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let mut done = vec![false; items.len()];
    let mut retry_ids: Vec<usize> = Vec::new();
    let mut malformed = 0u64;
    let mut tries = 0;
    let tokens = loop {
        let mut buffer: Vec<Settlement> = Vec::new();
        let mut on_line = |line: &[u8]| {
            let Some(parsed) = jsonl::parse_output_line(line) else {
                malformed += 1;
                return;
            };
            let (record_id, outcome) = match parsed {
                OutputLine::Success { record_id, output } => (record_id, Ok(output)),
                OutputLine::Error { record_id, code, message } => (record_id, Err((code, message))),
            };
            let Some(&i) = jsonl::parse_record_id(&record_id).and_then(|id| index.get(&id)) else { return };
            if done[i] {
                return;
            }
            done[i] = true;
            let result = match outcome {
                Ok(bytes) => Ok(Success {
                    body: bytes.to_vec(),
                    content_type: "application/json".into(),
                    request_id: Some(format!("{job_arn}#{record_id}")),
                    ..Default::default()
                }),
                Err((code, message)) => {
                    let e = record_error(&code, &message, job_arn, &record_id);
                    if e.name.is_retryable() && items[i].tries + 1 < max_attempts {
                        retry_ids.push(i);
                        return;
                    }
                    Err(e)
                }
            };
            buffer.push(Settlement { id: items[i].id, result });
            if buffer.len() >= SETTLE_CHUNK {
                shared.settle(std::mem::take(&mut buffer));
            }
        };
        let read = shared.batch.read_output(&shared.config.s3_output_uri, job_arn, &mut on_line).await;
        shared.settle(std::mem::take(&mut buffer));
        match read {
            Ok(t) => break t,
            Err(e) if e.transient && tries + 1 < IO_TRIES => {
                tries += 1;
                tokio::time::sleep(backoff(tries, Duration::from_secs(10))).await;
            }
            Err(e) => {
                let e = e.with_job(Some(job_arn), None);
                let rest: Vec<Pending> = Vec::new();
                let mut out = Vec::new();
                for (i, p) in items.into_iter().enumerate() {
                    if !done[i] || retry_ids.contains(&i) {
                        out.push(Settlement { id: p.id, result: Err(e.clone()) });
                    }
                }
                drop(rest);
                return shared.settle(out);
            }
        }
    };
    if malformed > 0 {
        tracing::warn!(job_arn, malformed, "skipped output lines that are not valid records");
    }
    if let Some(t) = tokens {
        shared.tokens_in.fetch_add(t.input, Ordering::SeqCst);
        shared.tokens_out.fetch_add(t.output, Ordering::SeqCst);
    }

    // What has no answer yet: retry, or fail for good.
    let mut retry: Vec<Pending> = Vec::new();
    let mut failed: Vec<Settlement> = Vec::new();
    let retry_set: std::collections::HashSet<usize> = retry_ids.into_iter().collect();
    for (i, mut p) in items.into_iter().enumerate() {
        if done[i] && !retry_set.contains(&i) {
            continue;
        }
        let record_id = jsonl::record_id(p.id);
        if status == "Stopped" {
            let mut e = EngineError::new(ErrorName::BatchJobFailedException, "The batch job was stopped before this record was processed.").with_job(Some(job_arn), Some(&record_id));
            e.job_status = Some(status.to_string());
            failed.push(Settlement { id: p.id, result: Err(e) });
        } else if p.tries + 1 < max_attempts {
            p.tries += 1;
            retry.push(p);
        } else if retry_set.contains(&i) {
            // Cannot happen: retryable errors were only deferred while tries remained.
            failed.push(Settlement { id: p.id, result: Err(EngineError::new(ErrorName::InternalServerException, "The record failed.").with_job(Some(job_arn), Some(&record_id))) });
        } else {
            let e = EngineError::new(ErrorName::RecordMissingException, format!("The batch job ended {status} without an output line for this record."))
                .with_job(Some(job_arn), Some(&record_id));
            failed.push(Settlement { id: p.id, result: Err(e) });
        }
    }
    shared.settle(failed);
    shared.requeue(retry);
}
