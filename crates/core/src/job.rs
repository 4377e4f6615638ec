//! The life of one batch job, as a task: write its JSONL input (reading back the bodies of
//! records sent again), upload it, create the job idempotently, wait for the shared poller,
//! read the output and report a verdict per record. It mutates nothing shared: it works from a
//! [`Plan`] and a [`JobContext`] (what it needs to upload, create, poll and read) and reports
//! to the worker with [`Report`]s. What to do with a verdict (settle, try again) is the
//! worker's decision.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::backend::{BatchBackend, JobInfo, JobSpec, Tokens};
use crate::backoff::backoff;
use crate::error::{record_error, EngineError, ErrorName};
use crate::jsonl::{self, OutputLine};
use crate::poller::PollerHandle;
use crate::request::InvocationType;
use crate::settle::Success;
use crate::status::JobStatus;
use crate::store::writer::StoreHandle;
use crate::store::{BatchRecord, Member, Write};

/// A batch's number in this engine.
pub(crate) type BatchId = u64;

/// Tries of an upload, an input read-back or an output read before its requests fail: with waits
/// doubling from 0.4 s up to [`MAX_IO_BACKOFF`], about ten minutes of an S3 outage (each try is
/// the SDK's three attempts). Batch work can wait; a storm outlasted costs nothing, a batch failed
/// for it fails every request in it.
const IO_TRIES: u32 = 25;
/// Longest wait between tries of an upload or a read.
const MAX_IO_BACKOFF: Duration = Duration::from_secs(30);
/// Longest wait between retries of a create.
const MAX_CREATE_BACKOFF: Duration = Duration::from_secs(30);
/// The name of each batch's input file.
pub(crate) const INPUT_FILE: &str = "records.jsonl";
/// Verdicts reported at once (and answers written to the store in one transaction).
const REPORT_CHUNK: usize = 8192;

/// Where a record's body is.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// In memory.
    Inline(Bytes),
    /// Line `record` of an input file already uploaded (read back to send it again).
    Stored { input_uri: Arc<str>, record: u64 },
    /// Request `id` of a shared group: its body is in the store until it settles.
    Row(u64),
}

/// How a batch taken up from the store continues.
#[derive(Debug, Clone)]
pub(crate) enum Resume {
    /// Uploaded; create its job (again) with its token.
    Create { input_uri: String },
    /// Its job exists.
    Poll { input_uri: String, job_arn: String },
}

/// What a job task is given.
#[derive(Debug)]
pub(crate) struct Plan {
    pub id: BatchId,
    pub token: String,
    pub job_name: String,
    pub model_id: Arc<str>,
    /// What its records are (the job's `modelInvocationType`).
    pub record_type: InvocationType,
    /// Record numbers and bodies, in file order.
    pub records: Vec<(u64, Body)>,
    /// Filler records to add (never reported).
    pub fillers: usize,
    /// The filler body (`None`: a copy of the first record's).
    pub filler: Option<&'static [u8]>,
    /// With a store: the batch's requests, recorded before anything is uploaded.
    pub members: Option<Vec<Member>>,
    /// A batch taken up from the store.
    pub resume: Option<Resume>,
    /// Where its job writes its output, when not the engine's `s3OutputUri` (a batch taken up
    /// or adopted: the prefix its job was created with).
    pub output_uri: Option<Arc<str>>,
    /// Read back the bodies of records that may be sent again before they are deleted
    /// (`cleanup`), instead of leaving them in the input file.
    pub keep_retry_bodies: bool,
    /// A group's cost cap: the batch's upper-bound cost is committed in the store once its bodies
    /// are read, before anything is uploaded (it fails with `CostLimitExceededException` when the
    /// group's spend would cross the cap).
    pub commit: Option<BatchCommit>,
}

/// How a group's batch commits its cost: the cap, the model's price, a filler's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchCommit {
    pub cap: f64,
    pub price: crate::config::Price,
    pub filler: crate::tokens::TokenBounds,
}

/// What the job says about one record.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The model's answer.
    Answer(Success),
    /// A per-record error; `retry`: it may succeed if sent again (when tries remain).
    Error { error: EngineError, retry: bool, body: Option<Bytes> },
    /// No output line in a job that did not end as a whole: send again while tries remain.
    Missing { status: JobStatus, body: Option<Bytes> },
    /// Final: the job failed, was stopped, never ended, or its output could not be read.
    Failed(EngineError),
}

/// What a job task tells the worker.
#[derive(Debug)]
pub(crate) enum Report {
    /// The job exists (`fillers` filler records were added to its file at `input_uri`).
    Created { batch: BatchId, job_arn: Arc<str>, input_uri: Arc<str>, total: u64, fillers: u64 },
    /// A status read by the poller.
    Status { job_arn: Arc<str>, info: JobInfo },
    /// The job's token totals (from its manifest), before its last verdicts.
    Tokens { job_arn: Arc<str>, tokens: Tokens },
    /// Verdicts by index in the plan's records.
    Verdicts { batch: BatchId, items: Vec<(u32, Verdict)> },
    /// Every record has its verdict.
    Finished { batch: BatchId },
}

/// What a job task needs: the back-end, the store, the poller and the way back to the worker.
#[derive(Clone)]
pub(crate) struct JobContext {
    pub backend: Arc<dyn BatchBackend>,
    pub store: Option<StoreHandle>,
    pub poller: PollerHandle,
    pub reports: mpsc::UnboundedSender<Report>,
    pub output_uri: Arc<str>,
    pub job_timeout_hours: u32,
    pub cleanup: bool,
}

impl JobContext {
    fn report(&self, r: Report) {
        let _ = self.reports.send(r);
    }

    /// Reports `verdict` for every index not yet settled.
    fn fail_rest(&self, batch: BatchId, n: usize, done: &[bool], error: &EngineError) {
        let items: Vec<(u32, Verdict)> = (0..n)
            .filter(|&i| !done.get(i).copied().unwrap_or(false))
            .map(|i| (i as u32, Verdict::Failed(error.clone())))
            .collect();
        for chunk in chunks(items) {
            self.report(Report::Verdicts { batch, items: chunk });
        }
    }
}

fn chunks(mut items: Vec<(u32, Verdict)>) -> Vec<Vec<(u32, Verdict)>> {
    let mut out = Vec::new();
    while items.len() > REPORT_CHUNK {
        let rest = items.split_off(REPORT_CHUNK);
        out.push(items);
        items = rest;
    }
    if !items.is_empty() {
        out.push(items);
    }
    out
}

/// After a failed S3 step: when the error is transient and tries remain, waits (with backoff)
/// and says to try again.
async fn retried_later(e: &EngineError, tries: &mut u32) -> bool {
    if !e.transient || *tries + 1 >= IO_TRIES {
        return false;
    }
    *tries += 1;
    tokio::time::sleep(backoff(*tries, MAX_IO_BACKOFF)).await;
    true
}

/// Reads the bodies of `wanted` records (by record number) from an uploaded input file.
pub(crate) async fn read_back(
    backend: &dyn BatchBackend,
    input_uri: &str,
    wanted: &[u64],
) -> Result<HashMap<u64, Bytes>, EngineError> {
    let want: std::collections::HashSet<u64> = wanted.iter().copied().collect();
    let mut tries = 0;
    loop {
        let mut found: HashMap<u64, Bytes> = HashMap::with_capacity(want.len());
        let mut on_line = |line: &Bytes| {
            if let Some((record_id, body)) = jsonl::parse_input_line(line) {
                if let Some(r) = jsonl::parse_record_id(&record_id).filter(|r| want.contains(r)) {
                    found.insert(r, line.slice_ref(body));
                }
            }
        };
        match backend.read_input(input_uri, INPUT_FILE, &mut on_line).await {
            Ok(()) => {
                if found.len() < want.len() {
                    return Err(EngineError::internal(
                        "The input file no longer holds this request's body, so it cannot be sent again.",
                    ));
                }
                return Ok(found);
            }
            Err(e) if retried_later(&e, &mut tries).await => {}
            Err(e) => return Err(e),
        }
    }
}

/// The bodies of requests of a shared group, from the store.
pub(crate) async fn row_bodies(store: Option<&StoreHandle>, ids: Vec<u64>) -> Result<HashMap<u64, Bytes>, EngineError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let store = store.ok_or_else(|| {
        EngineError::internal("a request of the group has its body in a store this engine does not have")
    })?;
    let n = ids.len();
    let found: HashMap<u64, Bytes> = store.call(move |s| s.bodies(&ids)).await?.into_iter().collect();
    if found.len() < n {
        return Err(EngineError::internal("The store no longer holds the body of a request of this batch."));
    }
    Ok(found)
}

/// Resolves every body of a plan: stored ones are read back from their input files, those of a
/// shared group's requests from the store.
async fn bodies(
    backend: &dyn BatchBackend,
    store: Option<&StoreHandle>,
    records: Vec<(u64, Body)>,
) -> Result<Vec<(u64, Bytes)>, EngineError> {
    let mut by_file: HashMap<Arc<str>, Vec<u64>> = HashMap::new();
    let mut rows: Vec<u64> = Vec::new();
    for (_, b) in &records {
        match b {
            Body::Stored { input_uri, record } => by_file.entry(input_uri.clone()).or_default().push(*record),
            Body::Row(id) => rows.push(*id),
            Body::Inline(_) => {}
        }
    }
    let mut from_rows = row_bodies(store, rows).await?;
    let mut stored: HashMap<(Arc<str>, u64), Bytes> = HashMap::new();
    for (uri, wanted) in by_file {
        for (r, body) in read_back(backend, &uri, &wanted).await? {
            stored.insert((uri.clone(), r), body);
        }
    }
    records
        .into_iter()
        .map(|(record, b)| match b {
            Body::Inline(bytes) => Ok((record, bytes)),
            Body::Stored { input_uri, record: old } => stored
                .remove(&(input_uri, old))
                .map(|bytes| (record, bytes))
                .ok_or_else(|| EngineError::internal("a stored body was not found")),
            Body::Row(id) => from_rows
                .remove(&id)
                .map(|bytes| (record, bytes))
                .ok_or_else(|| EngineError::internal("a stored body was not found")),
        })
        .collect()
}

/// Commits `estimate` USD of a group's spend in its store, or fails with why not (the cap, or the
/// store out of reach).
pub(crate) async fn commit_spend(store: Option<&StoreHandle>, estimate: f64, cap: f64) -> Result<(), EngineError> {
    let store = store.ok_or_else(|| EngineError::internal("a group's cost cap needs its store"))?;
    match store.call(move |s| s.commit_spend(estimate, cap)).await? {
        Ok(_) => Ok(()),
        Err(committed) => Err(crate::worker::refusal(cap, committed, estimate)),
    }
}

/// Runs one batch to its end.
pub(crate) async fn run(ctx: JobContext, plan: Plan) {
    let Plan {
        id,
        token,
        job_name,
        model_id,
        record_type,
        records,
        fillers,
        filler,
        members,
        resume,
        output_uri,
        keep_retry_bodies,
        commit,
    } = plan;
    let ctx = match output_uri {
        Some(output_uri) => JobContext { output_uri, ..ctx },
        None => ctx,
    };
    let n = records.len();
    let numbers: Vec<u64> = records.iter().map(|(r, _)| *r).collect();

    let (input_uri, known_arn) = match resume {
        Some(Resume::Create { input_uri }) => (input_uri, None),
        Some(Resume::Poll { input_uri, job_arn }) => (input_uri, Some(job_arn)),
        None => {
            match upload(&ctx, id, &token, &job_name, &model_id, record_type, records, fillers, filler, members, commit)
                .await
            {
                Ok(uri) => (uri, None),
                Err(e) => {
                    ctx.fail_rest(id, n, &[], &e);
                    return ctx.report(Report::Finished { batch: id });
                }
            }
        }
    };
    let input: Arc<str> = Arc::from(input_uri.as_str());
    let spec = JobSpec {
        job_name,
        client_request_token: token.clone(),
        model_id: model_id.to_string(),
        invocation_type: record_type,
        input_uri,
        output_uri: ctx.output_uri.to_string(),
    };
    let job_arn = match known_arn {
        Some(arn) => arn,
        None => match create(&ctx, &spec, (n + fillers) as u64).await {
            Ok(arn) => arn,
            Err(e) => {
                ctx.fail_rest(id, n, &[], &e);
                return ctx.report(Report::Finished { batch: id });
            }
        },
    };
    let arn: Arc<str> = Arc::from(job_arn.as_str());
    ctx.report(Report::Created {
        batch: id,
        job_arn: arn.clone(),
        input_uri: input.clone(),
        total: (n + fillers) as u64,
        fillers: fillers as u64,
    });

    // Wait for the end, at most the job's own timeout and a margin.
    let waiter = ctx.poller.watch(&job_arn);
    let limit = Duration::from_secs(u64::from(ctx.job_timeout_hours) * 3600 + 3600);
    let info = match tokio::time::timeout(limit, waiter).await {
        Ok(Ok(Ok(info))) => info,
        Ok(Ok(Err(e))) => {
            ctx.fail_rest(id, n, &[], &e.with_job(Some(&job_arn), None));
            return ctx.report(Report::Finished { batch: id });
        }
        // The poller is gone: the engine is stopping.
        Ok(Err(_)) => return,
        Err(_) => {
            ctx.poller.forget(&job_arn);
            let e = EngineError::new(
                ErrorName::BatchJobFailedException,
                format!("The batch job did not end within {} hours.", ctx.job_timeout_hours),
            )
            .with_job(Some(&job_arn), None);
            ctx.fail_rest(id, n, &[], &e);
            return ctx.report(Report::Finished { batch: id });
        }
    };
    collect(&ctx, id, &arn, &info, &numbers, &input, keep_retry_bodies).await;
    // Every verdict is in; the job's objects go before its slot is free (close() waits for it).
    if ctx.cleanup {
        let _ = ctx.backend.cleanup(&input, &ctx.output_uri, &job_arn).await;
    }
    ctx.report(Report::Finished { batch: id });
}

/// Writes the input file (records the batch in the store first) and uploads it; returns its URI.
#[allow(clippy::too_many_arguments)]
async fn upload(
    ctx: &JobContext,
    id: BatchId,
    token: &str,
    job_name: &str,
    model_id: &str,
    record_type: InvocationType,
    records: Vec<(u64, Body)>,
    fillers: usize,
    filler: Option<&'static [u8]>,
    members: Option<Vec<Member>>,
    commit: Option<BatchCommit>,
) -> Result<String, EngineError> {
    // Recorded before anything is uploaded: after a crash these requests are known to be in this batch.
    if let (Some(store), Some(members)) = (&ctx.store, members) {
        let batch = BatchRecord {
            token: token.to_string(),
            job_name: job_name.to_string(),
            model_id: model_id.to_string(),
            output_uri: ctx.output_uri.to_string(),
            invocation_type: record_type,
        };
        store.write_and_wait(Write::BatchFormed { batch, members }).await?;
    }
    let records = bodies(ctx.backend.as_ref(), ctx.store.as_ref(), records).await?;
    if let Some(c) = commit {
        let (mut input, mut output) = (0u64, 0u64);
        for (_, body) in &records {
            let b = crate::tokens::bounds(model_id, body);
            input += u64::from(b.input);
            output += u64::from(b.max_output.unwrap_or(0));
        }
        input += fillers as u64 * u64::from(c.filler.input);
        output += fillers as u64 * u64::from(c.filler.max_output.unwrap_or(0));
        let estimate = crate::pricing::cost(&c.price, crate::pricing::Tier::Batch, input, output);
        commit_spend(ctx.store.as_ref(), estimate, c.cap).await?;
    }
    let filler: Bytes = match (fillers, filler) {
        (0, _) => Bytes::new(),
        (_, Some(b)) => Bytes::from_static(b),
        (_, None) => records.first().map(|(_, b)| b.clone()).unwrap_or_default(),
    };
    let size = records.iter().map(|(_, b)| b.len() + crate::request::LINE_OVERHEAD).sum::<usize>()
        + fillers * (filler.len() + crate::request::LINE_OVERHEAD);
    let mut data: Vec<u8> = Vec::with_capacity(size);
    // Each body leaves memory as soon as it is in the file, so a batch is never held twice.
    for (record, body) in records {
        jsonl::push_input_line(&mut data, &jsonl::record_id(record), &body);
    }
    for i in 0..fillers {
        jsonl::push_input_line(&mut data, &jsonl::filler_record_id(id, i), &filler);
    }
    let data = Bytes::from(data);
    let mut tries = 0;
    let uri = loop {
        match ctx.backend.upload(token, INPUT_FILE, data.clone()).await {
            Ok(uri) => break uri,
            Err(e) if retried_later(&e, &mut tries).await => {}
            Err(e) => return Err(e),
        }
    };
    drop(data);
    if let Some(store) = &ctx.store {
        store.write_and_wait(Write::BatchUploaded { token: token.to_string(), input_uri: uri.clone() }).await?;
    }
    Ok(uri)
}

/// Creates the job with its token (a retried create, here or after a restart, never starts a
/// second job); records its ARN.
async fn create(ctx: &JobContext, spec: &JobSpec, total: u64) -> Result<String, EngineError> {
    let mut tries = 0;
    let arn = loop {
        match ctx.backend.create_job(spec).await {
            Ok(arn) => break arn,
            Err(e) if e.transient => {
                tries += 1;
                tokio::time::sleep(backoff(tries, MAX_CREATE_BACKOFF)).await;
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(store) = &ctx.store {
        let w = Write::BatchCreated { token: spec.client_request_token.clone(), job_arn: arn.clone(), total };
        if let Err(e) = store.write_and_wait(w).await {
            // The job runs; after a crash it is found again by its token.
            tracing::error!(error = %e, "the journal could not record a new job");
        }
    }
    Ok(arn)
}

/// Reads a finished job's output and reports a verdict for each record. Successful records
/// answer whatever the job's status; an error is retryable unless the job failed or was stopped.
async fn collect(
    ctx: &JobContext,
    id: BatchId,
    job_arn: &Arc<str>,
    info: &JobInfo,
    numbers: &[u64],
    input_uri: &Arc<str>,
    keep_retry_bodies: bool,
) {
    let status = &info.status;
    let whole = status.ended_as_a_whole();
    let index: HashMap<u64, u32> = numbers.iter().enumerate().map(|(i, r)| (*r, i as u32)).collect();
    let mut done = vec![false; numbers.len()];
    let mut retry_candidates: Vec<(u32, Verdict)> = Vec::new();
    let mut malformed = 0u64;
    let mut tries = 0;
    let read = loop {
        let mut buffer: Vec<(u32, Verdict)> = Vec::new();
        let mut on_line = |line: &Bytes| {
            let Some(parsed) = jsonl::parse_output_line(line) else {
                malformed += 1;
                return;
            };
            let (record_id, outcome) = match parsed {
                OutputLine::Success { record_id, output } => (record_id, Ok(output)),
                OutputLine::Error { record_id, code, message } => (record_id, Err((code, message))),
            };
            let Some(&i) = jsonl::parse_record_id(&record_id).and_then(|r| index.get(&r)) else { return };
            if std::mem::replace(&mut done[i as usize], true) {
                return;
            }
            let verdict = match outcome {
                Ok(bytes) => Verdict::Answer(Success {
                    // A slice of the line read (no copy).
                    body: Bytes::copy_from_slice(bytes),
                    content_type: "application/json".into(),
                    job_arn: Some(job_arn.clone()),
                    ..Default::default()
                }),
                Err((code, message)) => {
                    let error = record_error(&code, &message, job_arn, &record_id);
                    let retry = error.name.is_retryable() && !whole;
                    if retry && keep_retry_bodies {
                        retry_candidates.push((i, Verdict::Error { error, retry, body: None }));
                        return;
                    }
                    Verdict::Error { error, retry, body: None }
                }
            };
            buffer.push((i, verdict));
            if buffer.len() >= REPORT_CHUNK {
                ctx.report(Report::Verdicts { batch: id, items: std::mem::take(&mut buffer) });
            }
        };
        let read = ctx.backend.read_output(&ctx.output_uri, job_arn, &mut on_line).await;
        // The job's tokens count before its last answers settle (stats() read then shows them).
        if let Ok(Some(t)) = &read {
            ctx.report(Report::Tokens { job_arn: job_arn.clone(), tokens: *t });
        }
        if !buffer.is_empty() {
            ctx.report(Report::Verdicts { batch: id, items: buffer });
        }
        match read {
            Ok(_) => break Ok(()),
            Err(e) if retried_later(&e, &mut tries).await => {}
            // A failed job usually wrote nothing; its own failure says more than the read's.
            Err(_) if *status == JobStatus::Failed => break Ok(()),
            Err(e) => break Err(e.with_job(Some(job_arn), None)),
        }
    };
    if malformed > 0 {
        tracing::warn!(job_arn = &**job_arn, malformed, "skipped output lines that are not valid records");
    }
    if let Err(e) = read {
        for (i, _) in &retry_candidates {
            done[*i as usize] = false;
        }
        return ctx.fail_rest(id, numbers.len(), &done, &e);
    }

    // What has no line: missing (sent again while tries remain), or failed with the job.
    let mut rest: Vec<(u32, Verdict)> = retry_candidates;
    for (i, &d) in done.iter().enumerate() {
        if d {
            continue;
        }
        let record_id = jsonl::record_id(numbers[i]);
        let verdict = if whole {
            let message = match (status, &info.message) {
                (JobStatus::Failed, Some(m)) => m.clone(),
                (JobStatus::Failed, None) => "The batch job failed.".to_string(),
                _ => "The batch job was stopped before this record was processed.".to_string(),
            };
            let e = EngineError::new(ErrorName::BatchJobFailedException, message)
                .with_job(Some(job_arn), Some(&record_id))
                .with_job_status(status.to_string());
            Verdict::Failed(e)
        } else {
            Verdict::Missing { status: status.clone(), body: None }
        };
        rest.push((i as u32, verdict));
    }
    if keep_retry_bodies {
        // The input file is about to be deleted: keep the bodies of what may be sent again.
        let wanted: Vec<u64> = rest
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Missing { .. } | Verdict::Error { retry: true, .. }))
            .map(|(i, _)| numbers[*i as usize])
            .collect();
        if !wanted.is_empty() {
            match read_back(ctx.backend.as_ref(), input_uri, &wanted).await {
                Ok(mut found) => {
                    for (i, v) in rest.iter_mut() {
                        if let Verdict::Missing { body, .. } | Verdict::Error { body, .. } = v {
                            *body = found.remove(&numbers[*i as usize]);
                        }
                    }
                }
                Err(e) => {
                    let e = e.with_job(Some(job_arn), None);
                    for (_, v) in rest.iter_mut() {
                        if matches!(v, Verdict::Missing { .. } | Verdict::Error { retry: true, .. }) {
                            *v = Verdict::Failed(e.clone());
                        }
                    }
                }
            }
        }
    }
    for chunk in chunks(rest) {
        ctx.report(Report::Verdicts { batch: id, items: chunk });
    }
}

/// A run's id in job names and tokens (`<prefix>-<run>-<batch>`): random per engine (and per
/// term of a group's leader).
pub(crate) fn random_run_id() -> String {
    use sha2::Digest;
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(t.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    h.update(COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_le_bytes());
    hex::encode(&h.finalize()[..5])
}
