//! One task per batch: upload the JSONL, create the job (idempotently), wait for the shared
//! poller, read the output and settle every request, resubmitting what may succeed next time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::bedrock::backoff;
use crate::backend::JobSpec;
use crate::engine::{Outcome, Pending, Shared};
use crate::error::{record_error, EngineError, ErrorName};
use crate::journal::{BatchRow, Recovered, RequestRow};
use crate::jsonl::{self, OutputLine};
use crate::request::Request;
use crate::Success;

/// Tries of an upload or an output read before its requests fail.
const IO_TRIES: u32 = 8;
/// Longest wait between retries of a create.
const MAX_CREATE_BACKOFF: Duration = Duration::from_secs(30);
/// The name of each batch's input file.
const INPUT_FILE: &str = "records.jsonl";
/// Settlements handed to the sink at once (and answers written to the journal in one
/// transaction: output comes in no particular order, so each transaction touches pages all over
/// the journal, and fewer, larger ones write it far fewer times).
const SETTLE_CHUNK: usize = 8192;

/// Starts the task of one batch.
pub(crate) fn start(shared: &Arc<Shared>, items: Vec<Pending>, fillers: usize) {
    let seq = shared.next_batch.fetch_add(1, Ordering::SeqCst);
    let me = shared.clone();
    shared.spawn(async move { run(me, seq, items, fillers).await });
}

/// Takes up a batch a previous process left being created or running (from the journal). Its
/// requests have no caller yet: their answers go to the journal and to whoever sends them again.
pub(crate) fn resume(shared: &Arc<Shared>, r: Recovered) {
    let model = shared.model(&r.batch.model_id);
    let items: Vec<Pending> = r
        .requests
        .into_iter()
        .map(|q| Pending {
            id: 0,
            record: q.record,
            key: Some(q.key),
            req: Request { model_id: model.clone(), body: Box::default(), options: None },
            tries: q.tries,
            arrived_ms: 0,
        })
        .collect();
    shared.adopt(&items);
    let me = shared.clone();
    shared.spawn(async move {
        let slots = me.slots(&r.batch.model_id);
        let Ok(_permit) = slots.acquire_owned().await else { return };
        let Some(input_uri) = r.batch.input_uri.clone() else {
            let e = EngineError::new(ErrorName::InternalServerException, "The journal holds a batch without its input file.");
            return fail_all(&me, items, &e);
        };
        let spec = JobSpec {
            job_name: r.batch.job_name.clone(),
            client_request_token: r.batch.token.clone(),
            model_id: r.batch.model_id.clone(),
            input_uri,
            output_uri: r.batch.output_uri.clone(),
        };
        let known_arn = if r.batch.state == "submitted" { r.batch.job_arn.clone() } else { None };
        // Its fillers are in the input file already; its bodies were never kept in memory.
        submit_and_collect(&me, spec, items, 0, true, known_arn).await;
    });
}

fn fail_all(shared: &Shared, items: Vec<Pending>, err: &EngineError) {
    let out = items.into_iter().map(|p| Outcome::of(&p, Err(err.clone()), false)).collect();
    shared.deliver(out);
}

/// Runs a journal write off the async threads.
async fn journaled(shared: &Arc<Shared>, f: impl FnOnce(&crate::journal::Journal) -> Result<(), EngineError> + Send + 'static) -> Result<(), EngineError> {
    let Some(j) = shared.journal.clone() else { return Ok(()) };
    tokio::task::spawn_blocking(move || f(&j))
        .await
        .unwrap_or_else(|e| Err(EngineError::new(ErrorName::InternalServerException, format!("journal write: {e}"))))
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
    let filler: Vec<u8> = match crate::filler::filler_body(&model_id) {
        _ if fillers == 0 => Vec::new(),
        Some(b) => b.to_vec(),
        None => items[0].req.body.to_vec(),
    };
    // The bodies live on in the input file (in S3 once uploaded); keep them in memory only when
    // they cannot be read back from there. Each leaves memory as soon as it is in the file, so a
    // batch is never held twice.
    let bodies_dropped = shared.batch.rereads_input();
    let mut items = items;
    for p in &mut items {
        jsonl::push_input_line(&mut data, &jsonl::record_id(p.record), &p.req.body);
        if bodies_dropped {
            p.req.body = Box::default();
        }
    }
    for n in 0..fillers {
        jsonl::push_input_line(&mut data, &jsonl::filler_record_id(seq, n), &filler);
    }

    // Recorded before anything is uploaded: after a crash these requests are known to be in this batch.
    if shared.journal.is_some() {
        let row = BatchRow {
            token: token.clone(),
            job_name: name.clone(),
            model_id: model_id.clone(),
            input_uri: None,
            output_uri: shared.config.s3_output_uri.clone(),
            state: "uploading".into(),
            job_arn: None,
        };
        let rows: Vec<RequestRow> = items.iter().filter_map(|p| Some(RequestRow { key: p.key.clone()?, record: p.record, tries: p.tries })).collect();
        if let Err(e) = journaled(&shared, move |j| j.batch_started(&row, &rows)).await {
            return fail_all(&shared, items, &e);
        }
    }

    let data = bytes::Bytes::from(data);
    let mut tries = 0;
    let input_uri = loop {
        match shared.batch.upload(&token, INPUT_FILE, data.clone()).await {
            Ok(uri) => break uri,
            Err(e) if retried_later(&e, &mut tries).await => {}
            Err(e) => return fail_all(&shared, items, &e),
        }
    };
    drop(data);

    {
        let (token, uri) = (token.clone(), input_uri.clone());
        if let Err(e) = journaled(&shared, move |j| j.batch_uploaded(&token, &uri)).await {
            return fail_all(&shared, items, &e);
        }
    }
    let spec = JobSpec { job_name: name, client_request_token: token, model_id, input_uri, output_uri: shared.config.s3_output_uri.clone() };
    submit_and_collect(&shared, spec, items, fillers, bodies_dropped, None).await;
}

/// Creates the job (unless its ARN is known), waits for its end, collects its output.
async fn submit_and_collect(shared: &Arc<Shared>, spec: JobSpec, items: Vec<Pending>, fillers: usize, bodies_dropped: bool, known_arn: Option<String>) {
    // Created with a token derived from the batch id: a retried create (in this process or after
    // a restart) never starts a second job.
    let job_arn = match known_arn {
        Some(arn) => arn,
        None => {
            let mut tries = 0;
            let arn = loop {
                match shared.batch.create_job(&spec).await {
                    Ok(arn) => break arn,
                    Err(e) if e.transient => {
                        tries += 1;
                        tokio::time::sleep(backoff(tries, MAX_CREATE_BACKOFF)).await;
                    }
                    Err(e) => return fail_all(shared, items, &e),
                }
            };
            let (token, a, total) = (spec.client_request_token.clone(), arn.clone(), (items.len() + fillers) as u64);
            if let Err(e) = journaled(shared, move |j| j.batch_submitted(&token, &a, total)).await {
                tracing::error!(error = %e, "the journal could not record a new job");
            }
            arn
        }
    };
    shared.padded.fetch_add(fillers as u64, Ordering::SeqCst);
    shared.job_update(&job_arn, |j| {
        j.job_name = spec.job_name.clone();
        j.model_id = spec.model_id.clone();
        j.status = "Submitted".into();
        j.total_record_count = j.total_record_count.max((items.len() + fillers) as u64);
    });
    let input_uri = spec.input_uri.clone();

    // Wait for the end, at most the job's own timeout and a margin.
    let waiter = shared.poller.watch(&job_arn);
    let limit = Duration::from_secs(u64::from(shared.config.job_timeout_hours) * 3600 + 3600);
    let info = match tokio::time::timeout(limit, waiter).await {
        Ok(Ok(Ok(info))) => info,
        Ok(Ok(Err(e))) => return fail_all(shared, items, &e.with_job(Some(&job_arn), None)),
        Ok(Err(_)) => return,
        Err(_) => {
            shared.poller.forget(&job_arn);
            let e =
                EngineError::new(ErrorName::BatchJobFailedException, format!("The batch job did not end within {} hours.", shared.config.job_timeout_hours))
                    .with_job(Some(&job_arn), None);
            return fail_all(shared, items, &e);
        }
    };
    collect(shared, &job_arn, &info, items, bodies_dropped.then_some(input_uri.as_str())).await;
    let token = spec.client_request_token.clone();
    let _ = journaled(shared, move |j| {
        j.batch_done(&token);
        Ok(())
    })
    .await;
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
    let index: HashMap<u64, usize> = items.iter().enumerate().map(|(i, p)| (p.record, i)).collect();
    let arn: Arc<str> = Arc::from(job_arn);
    let mut done = vec![false; items.len()];
    let mut deferred: HashMap<usize, EngineError> = HashMap::new();
    let mut malformed = 0u64;
    let mut tries = 0;
    loop {
        let mut buffer: Vec<Outcome> = Vec::new();
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
                Ok(bytes) => Ok(Success { body: bytes.to_vec(), content_type: "application/json".into(), job_arn: Some(arn.clone()), ..Default::default() }),
                Err((code, message)) => {
                    let e = record_error(&code, &message, job_arn, &record_id);
                    if e.name.is_retryable() && items[i].tries + 1 < max_attempts {
                        deferred.insert(i, e);
                        return;
                    }
                    Err(e)
                }
            };
            // A model's answer, or an error sending it again would not change, is final.
            let keep = result.as_ref().map_or_else(|e| !e.name.is_retryable(), |_| true);
            buffer.push(Outcome::of(&items[i], result, keep));
            if buffer.len() >= SETTLE_CHUNK {
                shared.deliver(std::mem::take(&mut buffer));
            }
        };
        let read = shared.batch.read_output(&shared.config.s3_output_uri, job_arn, &mut on_line).await;
        // The job's tokens count before its last answers settle (stats() read then shows them).
        if let Ok(Some(t)) = &read {
            record_tokens(shared, job_arn, *t);
        }
        shared.deliver(std::mem::take(&mut buffer));
        match read {
            Ok(_) => break,
            Err(e) if retried_later(&e, &mut tries).await => {}
            // A failed job usually wrote nothing; its own failure says more than the read's.
            Err(_) if status == "Failed" => break,
            Err(e) => {
                let e = e.with_job(Some(job_arn), None);
                let mut out = Vec::new();
                for (i, p) in items.into_iter().enumerate() {
                    if !done[i] || deferred.contains_key(&i) {
                        out.push(Outcome::of(&p, Err(e.clone()), false));
                    }
                }
                return shared.deliver(out);
            }
        }
    }
    if malformed > 0 {
        tracing::warn!(job_arn, malformed, "skipped output lines that are not valid records");
    }

    // What has no answer yet: retry, or fail for good.
    let mut retry: Vec<Pending> = Vec::new();
    let mut failed: Vec<Outcome> = Vec::new();
    for (i, mut p) in items.into_iter().enumerate() {
        if done[i] && !deferred.contains_key(&i) {
            continue;
        }
        let record_id = jsonl::record_id(p.record);
        if status == "Stopped" || status == "Failed" {
            if let Some(e) = deferred.remove(&i) {
                failed.push(Outcome::of(&p, Err(e), false));
                continue;
            }
            let message = match (status, &info.message) {
                ("Failed", Some(m)) => m.clone(),
                ("Failed", None) => "The batch job failed.".to_string(),
                _ => "The batch job was stopped before this record was processed.".to_string(),
            };
            let mut e = EngineError::new(ErrorName::BatchJobFailedException, message).with_job(Some(job_arn), Some(&record_id));
            e.job_status = Some(status.to_string());
            failed.push(Outcome::of(&p, Err(e), false));
        } else if p.tries + 1 < max_attempts {
            // Retryable errors were only deferred while tries remained, so they always land here.
            p.tries += 1;
            retry.push(p);
        } else {
            let e = EngineError::new(ErrorName::RecordMissingException, format!("The batch job ended {status} without an output line for this record."))
                .with_job(Some(job_arn), Some(&record_id));
            failed.push(Outcome::of(&p, Err(e), false));
        }
    }
    shared.deliver(failed);
    if let (Some(input_uri), false) = (reread_from, retry.is_empty()) {
        retry = match restore_bodies(shared, input_uri, retry).await {
            Ok(r) => r,
            Err((items, e)) => return fail_all(shared, items, &e.with_job(Some(job_arn), None)),
        };
    }
    shared.requeue(retry);
}

/// Counts a job's tokens (from its manifest).
fn record_tokens(shared: &Shared, job_arn: &str, t: crate::backend::Tokens) {
    shared.tokens_in.fetch_add(t.input, Ordering::SeqCst);
    shared.tokens_out.fetch_add(t.output, Ordering::SeqCst);
    shared.job_update(job_arn, |j| {
        j.input_tokens = t.input;
        j.output_tokens = t.output;
    });
}

/// After a failed S3 step: when the error is transient and tries remain, waits (with backoff)
/// and says to try again.
async fn retried_later(e: &EngineError, tries: &mut u32) -> bool {
    if !e.transient || *tries + 1 >= IO_TRIES {
        return false;
    }
    *tries += 1;
    tokio::time::sleep(backoff(*tries, Duration::from_secs(10))).await;
    true
}

/// Reads the bodies of requests to resubmit back from their input file.
async fn restore_bodies(shared: &Shared, input_uri: &str, mut items: Vec<Pending>) -> Result<Vec<Pending>, (Vec<Pending>, EngineError)> {
    let index: HashMap<u64, usize> = items.iter().enumerate().map(|(i, p)| (p.record, i)).collect();
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
            Err(e) if retried_later(&e, &mut tries).await => {}
            Err(e) => return Err((items, e)),
        }
    }
    if items.iter().any(|p| p.req.body.is_empty()) {
        let e = EngineError::new(ErrorName::InternalServerException, "The input file no longer holds this request's body, so it cannot be resubmitted.");
        return Err((items, e));
    }
    Ok(items)
}
