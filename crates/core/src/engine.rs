//! The engine handle and its worker: one task owns the queues (one per model and region) and
//! cuts them into batches on size, bytes or time; job tasks run the batches.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;

use crate::backend::{BatchBackend, DirectBackend, JobInfo};
use crate::config::{BatchConfig, BelowMinimum};
use crate::error::{EngineError, ErrorName};
use crate::journal::{self, AnswerRef, Journal, JournalConfig};
use crate::request::{InvokeOptions, Request};
use crate::stats::{JobStats, Stats};
use crate::{Settlement, Sink, Success};

/// Most on-demand calls at once, by default (direct mode, requests batch cannot honour,
/// `belowMinimum: "direct"`).
pub const DIRECT_CONCURRENCY: usize = 32;
/// Messages the worker handles before it looks at its timers again.
const DRAIN: usize = 4096;

/// A request waiting for its batch.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The caller's id; 0 for a request taken up from the journal that nobody has asked for yet.
    pub id: u64,
    /// Its number in its batch's input file (`R<record>`): the id, except for requests taken
    /// up from the journal, which keep the number of the file they are in.
    pub record: u64,
    /// Its journal key, when there is a journal.
    pub key: Option<Box<str>>,
    pub req: Request,
    /// Tries already made.
    pub tries: u32,
    /// When it entered its current queue, in milliseconds since the worker started.
    pub arrived_ms: u32,
}

/// How one request ended, before it is settled.
pub(crate) struct Outcome {
    pub id: u64,
    pub record: u64,
    pub key: Option<Box<str>>,
    pub result: Result<Success, EngineError>,
    /// Whether the journal keeps it as the request's final answer (a model's answer, or a
    /// per-record error that would be the same again); otherwise a later send is a new request.
    pub keep: bool,
}

impl Outcome {
    /// The outcome of `p`, which made `p.tries + 1` tries.
    pub(crate) fn of(p: &Pending, mut result: Result<Success, EngineError>, keep: bool) -> Outcome {
        let attempts = p.tries + 1;
        match &mut result {
            Ok(ok) => ok.attempts = attempts,
            Err(e) => e.attempts = attempts,
        }
        Outcome { id: p.id, record: p.record, key: p.key.clone(), result, keep }
    }
}

enum Msg {
    Submit(Pending),
    Requeue(Vec<Pending>),
    Flush,
    Cancel(u64),
    Destroy,
}

/// What the worker and the job tasks share.
pub(crate) struct Shared {
    pub config: BatchConfig,
    pub region: String,
    pub batch: Arc<dyn BatchBackend>,
    pub direct: Option<Arc<dyn DirectBackend>>,
    pub sink: Arc<dyn Sink>,
    pub poller: Arc<crate::poller::Poller>,
    pub journal: Option<Arc<Journal>>,
    /// With a journal: the keys being worked on in this process, each with the ids of later
    /// sends of the same key that wait for its answer.
    live: Mutex<HashMap<[u8; 16], Vec<u64>>>,
    /// Random per engine: job names and idempotency tokens are `<run>-<batch seq>`.
    pub run_id: String,
    next_id: AtomicU64,
    pub next_batch: AtomicU64,
    pub queued: AtomicU64,
    pub in_flight: AtomicU64,
    pub padded: AtomicU64,
    pub resubmitted: AtomicU64,
    pub sent_direct: AtomicU64,
    pub tokens_in: AtomicU64,
    pub tokens_out: AtomicU64,
    jobs: Mutex<(Vec<JobStats>, HashMap<String, usize>)>,
    pub closing: AtomicBool,
    pub destroyed: AtomicBool,
    /// Direct mode: every request goes on-demand, nothing is batched.
    all_direct: bool,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    models: Mutex<HashMap<String, Arc<str>>>,
    direct_slots: Arc<Semaphore>,
    /// Job tasks and direct calls still running, and a wake-up when one ends.
    active: AtomicU64,
    idle: Notify,
    tasks: Mutex<tokio::task::JoinSet<()>>,
    /// The runtime the engine was started on: `submit` runs on the JS thread, outside it.
    runtime: tokio::runtime::Handle,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Shared {
    /// The concurrency slots of one model.
    pub(crate) fn slots(&self, model_id: &str) -> Arc<Semaphore> {
        let mut g = self.slots.lock().expect("slots lock");
        g.entry(model_id.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.config.max_concurrent_jobs))).clone()
    }

    /// Records a new job or a status change; tells the sink when the status changed.
    pub(crate) fn job_update(&self, arn: &str, f: impl FnOnce(&mut JobStats)) {
        let changed = {
            let mut g = self.jobs.lock().expect("jobs lock");
            let (list, index) = &mut *g;
            let i = *index.entry(arn.to_string()).or_insert_with(|| {
                list.push(JobStats { job_arn: arn.to_string(), ..Default::default() });
                list.len() - 1
            });
            let before = list[i].status.clone();
            f(&mut list[i]);
            (list[i].status != before).then(|| list[i].clone())
        };
        if let Some(job) = changed {
            if let Some(j) = &self.journal {
                j.job_status(&job.job_arn, &job.status, job.success_record_count, job.error_record_count);
            }
            self.sink.job_event(&job);
        }
    }

    pub(crate) fn apply_info(&self, arn: &str, info: &JobInfo) {
        self.job_update(arn, |j| {
            j.status = info.status.clone();
            j.total_record_count = info.total_record_count.unwrap_or(j.total_record_count);
            j.processed_record_count = info.processed_record_count.unwrap_or(j.processed_record_count);
            j.success_record_count = info.success_record_count.unwrap_or(j.success_record_count);
            j.error_record_count = info.error_record_count.unwrap_or(j.error_record_count);
        });
    }

    /// Settles requests that leave the engine.
    pub(crate) fn settle(&self, settlements: Vec<Settlement>) {
        if settlements.is_empty() {
            return;
        }
        self.in_flight.fetch_sub(settlements.len() as u64, Ordering::SeqCst);
        self.sink.settle(settlements);
    }

    /// Settles requests that leave the engine: with a journal, records the final answers first
    /// and answers every later send of the same key too.
    pub(crate) fn deliver(&self, outcomes: Vec<Outcome>) {
        let Some(journal) = &self.journal else {
            return self.settle(outcomes.into_iter().map(|o| Settlement { id: o.id, result: o.result }).collect());
        };
        if outcomes.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(outcomes.len());
        let mut phantoms = 0u64;
        {
            let mut live = self.live.lock().expect("live lock");
            let entries: Vec<(&str, Option<(AnswerRef<'_>, Option<&str>)>)> = outcomes
                .iter()
                .filter_map(|o| {
                    let key = o.key.as_deref()?;
                    let answer = match (&o.result, o.keep) {
                        (_, false) => None,
                        (Ok(ok), true) => Some((AnswerRef::Output(&ok.body), ok.job_arn.as_deref())),
                        (Err(e), true) => Some((AnswerRef::Error { name: e.name.as_str(), message: &e.message }, e.job_arn.as_deref())),
                    };
                    Some((key, answer))
                })
                .collect();
            journal.finish(&entries);
            for o in outcomes {
                if let Some(key) = &o.key {
                    for w in live.remove(&journal::key_digest(key)).unwrap_or_default() {
                        out.push(Settlement { id: w, result: with_request_id(o.result.clone(), o.record) });
                    }
                }
                if o.id == 0 {
                    phantoms += 1;
                } else {
                    out.push(Settlement { id: o.id, result: o.result });
                }
            }
        }
        self.in_flight.fetch_sub(phantoms, Ordering::SeqCst);
        self.settle(out);
    }

    /// With a journal: whether a request is answered already (from the journal, or by joining a
    /// request with the same key in this process). Returns the request when it must be sent.
    fn admit(&self, mut p: Pending, occurrences: &mut HashMap<[u8; 16], u32>) -> Option<Pending> {
        let Some(journal) = &self.journal else { return Some(p) };
        let key: Box<str> = match p.key.take() {
            Some(k) => k,
            None => {
                let digest = journal::content_digest(&p.req.model_id, &p.req.body, p.req.options());
                let n = occurrences.entry(digest).or_insert(0);
                *n += 1;
                journal::content_key(&p.req.model_id, &p.req.body, p.req.options(), *n).into()
            }
        };
        let digest = journal::key_digest(&key);
        let mut live = self.live.lock().expect("live lock");
        if let Some(waiters) = live.get_mut(&digest) {
            waiters.push(p.id);
            self.dequeued(1);
            return None;
        }
        let found = journal.finished(&key);
        if let Ok(None) = found {
            live.insert(digest, Vec::new());
            p.key = Some(key);
            return Some(p);
        }
        drop(live);
        let result = match found {
            Ok(Some(f)) => {
                let record = f.record.map(crate::jsonl::record_id);
                match f.answer {
                    journal::Answer::Output(body) => Ok(Success {
                        request_id: f.job_arn.as_ref().zip(record.as_ref()).map(|(a, r)| format!("{a}#{r}")),
                        job_arn: f.job_arn.map(Arc::from),
                        body,
                        content_type: "application/json".into(),
                        ..Default::default()
                    }),
                    journal::Answer::Error { name, message } => {
                        Err(EngineError::new(ErrorName::from_code(&name), message).with_job(f.job_arn.as_deref(), record.as_deref()))
                    }
                }
            }
            Ok(None) => unreachable!("handled above"),
            Err(e) => Err(e),
        };
        self.dequeued(1);
        self.settle(vec![Settlement { id: p.id, result }]);
        None
    }

    /// Counts `n` queued requests as in flight (sent, joined, answered or about to settle).
    pub(crate) fn dequeued(&self, n: u64) {
        self.queued.fetch_sub(n, Ordering::SeqCst);
        self.in_flight.fetch_add(n, Ordering::SeqCst);
    }

    /// Takes in requests of a batch a previous process left running: they are in flight, and a
    /// later send of one of their keys waits for its answer.
    pub(crate) fn adopt(&self, items: &[Pending]) {
        self.in_flight.fetch_add(items.len() as u64, Ordering::SeqCst);
        let mut live = self.live.lock().expect("live lock");
        for key in items.iter().filter_map(|p| p.key.as_deref()) {
            live.entry(journal::key_digest(key)).or_default();
        }
    }

    /// Puts requests back in their queues for another try. Counted as queued at once, so that
    /// `close()` never sees an idle engine while they travel to the worker.
    pub(crate) fn requeue(&self, items: Vec<Pending>) {
        if items.is_empty() {
            return;
        }
        let n = items.len() as u64;
        let mut items = items;
        for p in items.iter_mut().filter(|p| p.id == 0) {
            // Taken up from the journal: its old record number may be taken in this process.
            p.record = self.next_id.fetch_add(1, Ordering::SeqCst);
        }
        self.resubmitted.fetch_add(n, Ordering::SeqCst);
        self.in_flight.fetch_sub(n, Ordering::SeqCst);
        self.queued.fetch_add(n, Ordering::SeqCst);
        if self.tx.send(Msg::Requeue(items)).is_err() {
            self.queued.fetch_sub(n, Ordering::SeqCst);
        }
    }

    /// Runs a task that `close()` waits for.
    pub(crate) fn spawn(self: &Arc<Self>, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.active.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        let mut tasks = self.tasks.lock().expect("tasks lock");
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(
            async move {
                fut.await;
                me.active.fetch_sub(1, Ordering::SeqCst);
                me.idle.notify_waiters();
            },
            &self.runtime,
        );
    }

    /// Sends one request on-demand and settles it.
    pub(crate) fn send_direct(self: &Arc<Self>, p: Pending) {
        self.sent_direct.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        self.spawn(async move {
            let result = match &me.direct {
                Some(d) => {
                    let _permit = me.direct_slots.clone().acquire_owned().await;
                    d.invoke(&p.req).await
                }
                None => Err(EngineError::new(ErrorName::ValidationException, "this request needs on-demand InvokeModel, which is not configured")),
            };
            let keep = result.is_ok();
            me.deliver(vec![Outcome::of(&p, result, keep)]);
        });
    }

    /// The shared id of a model (one allocation per model, not per request).
    pub(crate) fn model(&self, model_id: &str) -> Arc<str> {
        let mut g = self.models.lock().expect("models lock");
        if let Some(m) = g.get(model_id) {
            return m.clone();
        }
        let m: Arc<str> = Arc::from(model_id);
        g.insert(model_id.to_string(), m.clone());
        m
    }

    fn is_idle(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0 && self.queued.load(Ordering::SeqCst) == 0
    }
}

/// The engine handle. Cheap to clone; every clone drives the same worker.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("run_id", &self.shared.run_id).finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts an engine on the current tokio runtime.
    pub fn new(
        config: BatchConfig,
        region: String,
        batch: Arc<dyn BatchBackend>,
        direct: Option<Arc<dyn DirectBackend>>,
        sink: Arc<dyn Sink>,
    ) -> Result<Engine, EngineError> {
        Engine::with_journal(config, region, batch, direct, sink, None)
    }

    /// [`Engine::new`] with a journal: opens it (or fails with `JournalLockedException` /
    /// `JournalCorruptedException`), and takes up the jobs a previous process left running.
    pub fn with_journal(
        config: BatchConfig,
        region: String,
        batch: Arc<dyn BatchBackend>,
        direct: Option<Arc<dyn DirectBackend>>,
        sink: Arc<dyn Sink>,
        journal: Option<JournalConfig>,
    ) -> Result<Engine, EngineError> {
        config.validate().map_err(EngineError::validation)?;
        let journal = journal.map(|j| Journal::open(&j)).transpose()?.map(Arc::new);
        let recovered = match &journal {
            Some(j) => j.recoverable()?,
            None => Vec::new(),
        };
        let engine = Engine::start(config, region, batch, direct, sink, false, DIRECT_CONCURRENCY, journal);
        for r in recovered {
            crate::jobs::resume(&engine.shared, r);
        }
        Ok(engine)
    }

    /// An engine that sends every request on-demand through `direct`, at most `max_concurrency`
    /// at a time (direct and OpenAI-compatible modes).
    pub fn direct(region: String, direct: Arc<dyn DirectBackend>, sink: Arc<dyn Sink>, max_concurrency: usize) -> Engine {
        let unused: Arc<dyn BatchBackend> = Arc::new(NoBatch);
        Engine::start(BatchConfig::default(), region, unused, Some(direct), sink, true, max_concurrency.max(1), None)
    }

    fn start(
        config: BatchConfig,
        region: String,
        batch: Arc<dyn BatchBackend>,
        direct: Option<Arc<dyn DirectBackend>>,
        sink: Arc<dyn Sink>,
        all_direct: bool,
        direct_concurrency: usize,
        journal: Option<Arc<Journal>>,
    ) -> Engine {
        let (tx, rx) = mpsc::unbounded_channel();
        let poller = Arc::new(crate::poller::Poller::default());
        let shared = Arc::new(Shared {
            region,
            batch: batch.clone(),
            direct,
            sink,
            poller: poller.clone(),
            journal,
            live: Mutex::new(HashMap::new()),
            run_id: random_run_id(),
            next_id: AtomicU64::new(1),
            next_batch: AtomicU64::new(1),
            queued: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            padded: AtomicU64::new(0),
            resubmitted: AtomicU64::new(0),
            sent_direct: AtomicU64::new(0),
            tokens_in: AtomicU64::new(0),
            tokens_out: AtomicU64::new(0),
            jobs: Mutex::new((Vec::new(), HashMap::new())),
            closing: AtomicBool::new(false),
            destroyed: AtomicBool::new(false),
            all_direct,
            slots: Mutex::new(HashMap::new()),
            models: Mutex::new(HashMap::new()),
            direct_slots: Arc::new(Semaphore::new(direct_concurrency)),
            active: AtomicU64::new(0),
            idle: Notify::new(),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            runtime: tokio::runtime::Handle::current(),
            tx,
            config,
        });
        let weak = Arc::downgrade(&shared);
        let interval = shared.config.poll_interval;
        let poll = poller.run(batch, interval, move |arn, info| {
            if let Some(s) = weak.upgrade() {
                s.apply_info(arn, info);
            }
        });
        shared.tasks.lock().expect("tasks lock").spawn(poll);
        let worker = Worker {
            epoch: Instant::now(),
            shared: Arc::downgrade(&shared),
            queues: HashMap::new(),
            config: shared.config.clone(),
            occurrences: HashMap::new(),
        };
        tokio::spawn(worker.run(rx));
        Engine { shared }
    }

    /// Validates and queues one request; returns its id. A bad request fails here, alone.
    pub fn submit(&self, model_id: &str, body: Vec<u8>, options: InvokeOptions) -> Result<u64, EngineError> {
        self.submit_keyed(model_id, body, options, None)
    }

    /// [`Engine::submit`] with an explicit idempotency key (used by the journal; without a
    /// journal it changes nothing).
    pub fn submit_keyed(&self, model_id: &str, body: Vec<u8>, options: InvokeOptions, idempotency_key: Option<&str>) -> Result<u64, EngineError> {
        let s = &self.shared;
        if let Some(k) = idempotency_key {
            if k.is_empty() || k.len() > 1024 {
                return Err(EngineError::validation("idempotencyKey must be a string of 1 to 1024 characters."));
            }
        }
        if s.closing.load(Ordering::SeqCst) {
            return Err(EngineError::closed("The client is closed: send() after close() or destroy() is rejected."));
        }
        let req = Request::with_model(s.model(model_id), body, options)?;
        let limit = s.config.max_queued_requests as u64;
        if s.queued.load(Ordering::SeqCst) >= limit {
            return Err(EngineError::new(
                ErrorName::ThrottlingException,
                format!("{limit} requests are already waiting in memory (maxQueuedRequests); wait for some to settle and try again."),
            )
            .with_status(429));
        }
        let id = s.next_id.fetch_add(1, Ordering::SeqCst);
        let key = match (&s.journal, idempotency_key) {
            (Some(_), Some(k)) => Some(journal::explicit_key(k).into_boxed_str()),
            _ => None,
        };
        let p = Pending { id, record: id, key, req, tries: 0, arrived_ms: 0 };
        // With a journal, the worker first looks the request up.
        if s.journal.is_none() && (s.all_direct || p.req.options().needs_on_demand()) {
            s.in_flight.fetch_add(1, Ordering::SeqCst);
            s.send_direct(p);
            return Ok(id);
        }
        s.queued.fetch_add(1, Ordering::SeqCst);
        if s.tx.send(Msg::Submit(p)).is_err() {
            s.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(EngineError::closed("The client is closed."));
        }
        Ok(id)
    }

    /// Submits what is queued now (below the minimum: pads, or goes direct under `Direct`).
    pub fn flush(&self) {
        let _ = self.shared.tx.send(Msg::Flush);
    }

    /// Removes a request from its queue if it is still there (its caller gave up).
    pub fn cancel(&self, id: u64) {
        let _ = self.shared.tx.send(Msg::Cancel(id));
    }

    /// Rejects new requests, flushes, and waits until every request has settled.
    pub async fn close(&self) {
        let s = &self.shared;
        s.closing.store(true, Ordering::SeqCst);
        let _ = s.tx.send(Msg::Flush);
        loop {
            let idle = s.idle.notified();
            if s.is_idle() || s.destroyed.load(Ordering::SeqCst) {
                // Nothing is left to record: release the journal for the next process.
                if let Some(j) = &s.journal {
                    j.close();
                }
                return;
            }
            // Requeued work reaches the worker as a message; flush again to be sure it goes.
            let _ = s.tx.send(Msg::Flush);
            tokio::select! {
                _ = idle => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Stops now: queued requests settle with `ClientClosedException`; job tasks and on-demand
    /// calls are abandoned (their callers are the JS layer's to reject); running jobs keep running
    /// on AWS unless `stop_jobs`.
    pub fn destroy(&self, stop_jobs: bool) {
        let s = &self.shared;
        s.closing.store(true, Ordering::SeqCst);
        s.destroyed.store(true, Ordering::SeqCst);
        let _ = s.tx.send(Msg::Destroy);
        let arns = s.poller.arns();
        s.tasks.lock().expect("tasks lock").abort_all();
        s.in_flight.store(0, Ordering::SeqCst);
        if let Some(j) = &s.journal {
            j.close();
        }
        if stop_jobs {
            let backend = s.batch.clone();
            s.runtime.spawn(async move {
                for arn in arns {
                    let _ = backend.stop_job(&arn).await;
                }
            });
        }
        s.idle.notify_waiters();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            queued: s.queued.load(Ordering::SeqCst),
            in_flight: s.in_flight.load(Ordering::SeqCst),
            padded: s.padded.load(Ordering::SeqCst),
            resubmitted: s.resubmitted.load(Ordering::SeqCst),
            sent_direct: s.sent_direct.load(Ordering::SeqCst),
            jobs: s.jobs.lock().expect("jobs lock").0.clone(),
            journal: s.journal.as_ref().map(|j| (j.path().display().to_string(), j.bytes())),
            input_tokens: s.tokens_in.load(Ordering::SeqCst),
            output_tokens: s.tokens_out.load(Ordering::SeqCst),
        }
    }

    /// The journal, when there is one.
    pub fn journal(&self) -> Option<Arc<Journal>> {
        self.shared.journal.clone()
    }

    /// The region requests are sent to.
    pub fn region(&self) -> &str {
        &self.shared.region
    }
}

/// The batch back-end of a direct-mode engine, which never batches.
struct NoBatch;

#[async_trait::async_trait]
impl BatchBackend for NoBatch {
    async fn upload(&self, _: &str, _: &str, _: bytes::Bytes) -> Result<String, EngineError> {
        Err(unbatched())
    }
    async fn create_job(&self, _: &crate::backend::JobSpec) -> Result<String, EngineError> {
        Err(unbatched())
    }
    async fn get_job(&self, _: &str) -> Result<JobInfo, EngineError> {
        Err(unbatched())
    }
    async fn stop_job(&self, _: &str) -> Result<(), EngineError> {
        Err(unbatched())
    }
    async fn read_output(&self, _: &str, _: &str, _: &mut crate::backend::LineSink<'_>) -> Result<Option<crate::backend::Tokens>, EngineError> {
        Err(unbatched())
    }
    async fn cleanup(&self, _: &str, _: &str, _: &str) -> Result<(), EngineError> {
        Err(unbatched())
    }
}

fn unbatched() -> EngineError {
    EngineError::new(ErrorName::InternalServerException, "this engine sends every request on-demand")
}

fn random_run_id() -> String {
    use sha2::Digest;
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(t.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    h.update(COUNTER.fetch_add(1, Ordering::SeqCst).to_le_bytes());
    hex::encode(&h.finalize()[..5])
}

// ===== the worker =====

struct Queue {
    items: VecDeque<Pending>,
    bytes: usize,
}

impl Queue {
    /// Takes the first `take` requests (`bytes` of JSONL) out of the queue: they are in flight now.
    fn take_front(&mut self, shared: &Shared, take: usize, bytes: usize) -> Vec<Pending> {
        self.bytes -= bytes;
        shared.dequeued(take as u64);
        self.items.drain(..take).collect()
    }
}

/// A copy of an answer for a later send of the same key, with the request id of the record.
fn with_request_id(result: Result<Success, EngineError>, record: u64) -> Result<Success, EngineError> {
    result.map(|mut ok| {
        if ok.request_id.is_none() {
            if let Some(arn) = &ok.job_arn {
                ok.request_id = Some(format!("{arn}#{}", crate::jsonl::record_id(record)));
            }
        }
        ok
    })
}

/// When a request entered its queue.
fn arrival(epoch: Instant, p: &Pending) -> Instant {
    epoch + Duration::from_millis(u64::from(p.arrived_ms))
}

struct Worker {
    /// The worker's time zero; requests carry their arrival as milliseconds since it.
    epoch: Instant,
    shared: std::sync::Weak<Shared>,
    /// One queue per model (the region is the engine's own, so this is one per model and region).
    queues: HashMap<Arc<str>, Queue>,
    config: BatchConfig,
    /// With a journal: how many times each content was sent in this run.
    occurrences: HashMap<[u8; 16], u32>,
}

/// Why a queue is being flushed.
#[derive(Clone, Copy, PartialEq)]
enum Reason {
    /// Full (records or bytes): cut whole batches only.
    Full,
    /// The timer of its oldest request.
    Timer,
    /// `flush()` / `close()`: everything goes, whatever the count.
    Forced,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let deadline = self.next_deadline();
            let msg = match deadline {
                Some(d) => tokio::select! {
                    biased;
                    m = rx.recv() => m,
                    _ = tokio::time::sleep_until(d) => { self.on_timer(); continue; }
                },
                None => rx.recv().await,
            };
            let Some(msg) = msg else { return };
            let Some(shared) = self.shared.upgrade() else { return };
            self.handle(&shared, msg);
            for _ in 0..DRAIN {
                match rx.try_recv() {
                    Ok(m) => self.handle(&shared, m),
                    Err(_) => break,
                }
            }
            if shared.destroyed.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    fn handle(&mut self, shared: &Arc<Shared>, msg: Msg) {
        match msg {
            Msg::Submit(p) => {
                let Some(p) = shared.admit(p, &mut self.occurrences) else { return };
                if shared.all_direct || p.req.options().needs_on_demand() {
                    shared.dequeued(1);
                    shared.send_direct(p);
                } else {
                    self.push(shared, p);
                }
            }
            Msg::Requeue(items) => {
                for p in items {
                    self.push(shared, p);
                }
                if shared.closing.load(Ordering::SeqCst) {
                    self.flush_all(shared, Reason::Forced);
                }
            }
            Msg::Flush => self.flush_all(shared, Reason::Forced),
            Msg::Cancel(id) => {
                for q in self.queues.values_mut() {
                    if let Some(pos) = q.items.iter().position(|p| p.id == id) {
                        // A later send of the same key waits for this one: it takes its place.
                        if let Some(key) = &q.items[pos].key {
                            let mut live = shared.live.lock().expect("live lock");
                            let digest = journal::key_digest(key);
                            match live.get_mut(&digest) {
                                Some(waiters) if !waiters.is_empty() => {
                                    q.items[pos].id = waiters.remove(0);
                                    q.items[pos].record = q.items[pos].id;
                                    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                                    break;
                                }
                                _ => {
                                    live.remove(&digest);
                                }
                            }
                        }
                        let p = q.items.remove(pos).expect("position is valid");
                        q.bytes -= p.req.line_bytes();
                        shared.queued.fetch_sub(1, Ordering::SeqCst);
                        break;
                    }
                }
            }
            Msg::Destroy => {
                let mut out = Vec::new();
                for q in self.queues.values_mut() {
                    for p in q.items.drain(..) {
                        out.push(Settlement { id: p.id, result: Err(EngineError::closed("The client was destroyed before this request was sent.")) });
                    }
                    q.bytes = 0;
                }
                shared.dequeued(out.len() as u64);
                shared.settle(out);
            }
        }
    }

    fn push(&mut self, shared: &Arc<Shared>, mut p: Pending) {
        let key = p.req.model_id.clone();
        p.arrived_ms = u32::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u32::MAX);
        let q = self.queues.entry(key.clone()).or_insert_with(|| Queue { items: VecDeque::new(), bytes: 0 });
        q.bytes += p.req.line_bytes();
        q.items.push_back(p);
        if q.items.len() >= self.config.max_batch_size || q.bytes >= self.config.max_file_bytes {
            self.flush(shared, &key, Reason::Full);
        }
    }

    /// When the oldest request of a queue arrived (queues are in arrival order).
    fn oldest(&self, q: &Queue) -> Option<Instant> {
        q.items.front().map(|p| arrival(self.epoch, p))
    }

    /// When the next queue is due.
    fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(|q| {
                let oldest = self.oldest(q)?;
                let waiting = self.config.below_minimum == BelowMinimum::Wait && q.items.len() < self.config.min_batch_size;
                Some(oldest + if waiting { self.config.max_wait.max(self.config.batch_timeout) } else { self.config.batch_timeout })
            })
            .min()
    }

    fn on_timer(&mut self) {
        let Some(shared) = self.shared.upgrade() else { return };
        let now = Instant::now();
        let due: Vec<Arc<str>> =
            self.queues.iter().filter(|(_, q)| self.oldest(q).is_some_and(|o| o + self.config.batch_timeout <= now)).map(|(k, _)| k.clone()).collect();
        for key in due {
            self.flush(&shared, &key, Reason::Timer);
        }
    }

    fn flush_all(&mut self, shared: &Arc<Shared>, reason: Reason) {
        let keys: Vec<Arc<str>> = self.queues.keys().cloned().collect();
        for key in keys {
            self.flush(shared, &key, reason);
        }
    }

    /// Cuts a queue into batches according to the flush rules.
    fn flush(&mut self, shared: &Arc<Shared>, key: &Arc<str>, reason: Reason) {
        let c = &self.config;
        let epoch = self.epoch;
        let Some(q) = self.queues.get_mut(key) else { return };
        loop {
            let n = q.items.len();
            if n == 0 {
                break;
            }
            let full = n >= c.max_batch_size || q.bytes >= c.max_file_bytes;
            if reason == Reason::Full && !full {
                break;
            }
            // Take up to max_batch_size records and max_file_bytes bytes.
            let mut take = 0;
            let mut bytes = 0;
            for p in q.items.iter() {
                let b = p.req.line_bytes();
                if take == c.max_batch_size || (take > 0 && bytes + b > c.max_file_bytes) {
                    break;
                }
                take += 1;
                bytes += b;
            }
            if take < c.min_batch_size {
                let expired = arrival(epoch, &q.items[0]) + c.max_wait <= Instant::now();
                match c.below_minimum {
                    BelowMinimum::Wait if reason != Reason::Forced && !expired => break,
                    BelowMinimum::Direct => {
                        for p in q.take_front(shared, take, bytes) {
                            shared.send_direct(p);
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            // Fillers up to the minimum, within the record cap and the file's byte cap: when they
            // do not fit beside the records, fewer records go (the rest wait for the next batch).
            let filler_bytes = crate::filler::filler_body(key).map_or(q.items[0].req.body.len(), <[u8]>::len) + crate::request::LINE_OVERHEAD;
            let wanted = |take: usize| c.min_batch_size.saturating_sub(take).min(c.max_batch_size - take);
            while take > 1 && bytes + wanted(take) * filler_bytes > c.max_file_bytes {
                take -= 1;
                bytes -= q.items[take].req.line_bytes();
            }
            let fillers = wanted(take).min(c.max_file_bytes.saturating_sub(bytes) / filler_bytes);
            let items = q.take_front(shared, take, bytes);
            crate::jobs::start(shared, items, fillers);
        }
        if q.items.is_empty() {
            self.queues.remove(key);
        }
    }
}
