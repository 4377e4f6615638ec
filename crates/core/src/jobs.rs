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
/// The name of each batch's input file.
const INPUT_FILE: &str = "records.jsonl";
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
    let model_id = items[0].req.model_id.to_string();
    let slots = shared.slots(&model_id);
    let Ok(_permit) = slots.acquire_owned().await else { return };

    // The job name follows AWS's rules for names; the idempotency token and the input folder
    // allow fewer characters (no '.' or '+'), so they use a sanitised copy.
    let name = format!("{}-{}-{seq}", shared.config.job_name_prefix, shared.run_id);
    let token: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let mut data: Vec<u8> = Vec::with_capacity(items.iter().map(|p| p.req.line_bytes()).sum::<usize>() + fillers * 128);
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
    }

    let data = bytes::Bytes::from(data);
    let mut tries = 0;
    let input_uri = loop {
        match shared.batch.upload(&token, INPUT_FILE, data.clone()).await {
            Ok(uri) => break uri,
            Err(e) if e.transient && tries + 1 < IO_TRIES => {
                tries += 1;
                tokio::time::sleep(backoff(tries, Duration::from_secs(10))).await;
            }
            Err(e) => return fail_all(&shared, items, &e),
        }
    };
    drop(data);
    // The bodies live on in S3; keep them in memory only when they cannot be read back.
    let mut items = items;
    let bodies_dropped = shared.batch.rereads_input();
    if bodies_dropped {
        for p in &mut items {
            p.req.body = Box::default();
        }
    }

    // The job, created with a token derived from the batch id: a retried create never starts a second job.
    let spec = JobSpec {
        job_name: name.clone(),
        client_request_token: token.clone(),
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
    shared.padded.fetch_add(fillers as u64, Ordering::SeqCst);
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
    collect(&shared, &job_arn, &info, items, bodies_dropped.then_some(input_uri.as_str())).await;
    if shared.config.cleanup {
        let _ = shared.batch.cleanup(&input_uri, &shared.config.s3_output_uri, &job_arn).await;
    }
}

/// Reads a finished job's output and settles (or requeues) each request.
/// Successful records resolve whatever the job's status. The rest: a `Failed` or `Stopped` job's
/// reject with `BatchJobFailedException` (never resubmitted: that would pay again for work that
/// failed as a whole or that someone chose to stop); others are resubmitted while tries remain.
async fn collect(shared: &Arc<Shared>, job_arn: &str, info: &crate::backend::JobInfo, items: Vec<Pending>, reread_from: Option<&str>) {
    let status = info.status.as_str();
    let max_attempts = shared.config.max_attempts;
    let index: HashMap<u64, usize> = items.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let arn: Arc<str> = Arc::from(job_arn);
    let mut done = vec![false; items.len()];
    let mut deferred: HashMap<usize, EngineError> = HashMap::new();
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
                    job_arn: Some(arn.clone()),
                    ..Default::default()
                }),
                Err((code, message)) => {
                    let e = record_error(&code, &message, job_arn, &record_id);
                    if e.name.is_retryable() && items[i].tries + 1 < max_attempts {
                        deferred.insert(i, e);
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
            // A failed job usually wrote nothing; its own failure says more than the read's.
            Err(_) if status == "Failed" => break None,
            Err(e) => {
                let e = e.with_job(Some(job_arn), None);
                let mut out = Vec::new();
                for (i, p) in items.into_iter().enumerate() {
                    if !done[i] || deferred.contains_key(&i) {
                        out.push(Settlement { id: p.id, result: Err(e.clone()) });
                    }
                }
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
        shared.job_update(job_arn, |j| {
            j.input_tokens = t.input;
            j.output_tokens = t.output;
        });
    }

    // What has no answer yet: retry, or fail for good.
    let mut retry: Vec<Pending> = Vec::new();
    let mut failed: Vec<Settlement> = Vec::new();
    for (i, mut p) in items.into_iter().enumerate() {
        if done[i] && !deferred.contains_key(&i) {
            continue;
        }
        let record_id = jsonl::record_id(p.id);
        if status == "Stopped" || status == "Failed" {
            if let Some(e) = deferred.remove(&i) {
                failed.push(Settlement { id: p.id, result: Err(e) });
                continue;
            }
            let message = match (status, &info.message) {
                ("Failed", Some(m)) => m.clone(),
                ("Failed", None) => "The batch job failed.".to_string(),
                _ => "The batch job was stopped before this record was processed.".to_string(),
            };
            let mut e = EngineError::new(ErrorName::BatchJobFailedException, message).with_job(Some(job_arn), Some(&record_id));
            e.job_status = Some(status.to_string());
            failed.push(Settlement { id: p.id, result: Err(e) });
        } else if p.tries + 1 < max_attempts {
            // Retryable errors were only deferred while tries remained, so they always land here.
            p.tries += 1;
            retry.push(p);
        } else {
            let e = EngineError::new(ErrorName::RecordMissingException, format!("The batch job ended {status} without an output line for this record."))
                .with_job(Some(job_arn), Some(&record_id));
            failed.push(Settlement { id: p.id, result: Err(e) });
        }
    }
    shared.settle(failed);
    if let (Some(input_uri), false) = (reread_from, retry.is_empty()) {
        retry = match restore_bodies(shared, input_uri, retry).await {
            Ok(r) => r,
            Err((items, e)) => return fail_all(shared, items, &e.with_job(Some(job_arn), None)),
        };
    }
    shared.requeue(retry);
}

/// Reads the bodies of requests to resubmit back from their input file.
async fn restore_bodies(shared: &Shared, input_uri: &str, mut items: Vec<Pending>) -> Result<Vec<Pending>, (Vec<Pending>, EngineError)> {
    let index: HashMap<u64, usize> = items.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    let mut tries = 0;
    loop {
        let mut on_line = |line: &[u8]| {
            if let Some((record_id, body)) = jsonl::parse_input_line(line) {
                if let Some(&i) = jsonl::parse_record_id(&record_id).and_then(|id| index.get(&id)) {
                    items[i].req.body = body.into();
                }
            }
        };
        match shared.batch.read_input(input_uri, INPUT_FILE, &mut on_line).await {
            Ok(()) => break,
            Err(e) if e.transient && tries + 1 < IO_TRIES => {
                tries += 1;
                tokio::time::sleep(backoff(tries, Duration::from_secs(10))).await;
            }
            Err(e) => return Err((items, e)),
        }
    }
    if items.iter().any(|p| p.req.body.is_empty()) {
        let e = EngineError::new(ErrorName::InternalServerException, "The input file no longer holds this request's body, so it cannot be resubmitted.");
        return Err((items, e));
    }
    Ok(items)
}
