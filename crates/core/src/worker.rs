//! The worker: one task that owns the engine's state (the shape of tower-batch-control's worker).
//! It owns the queues (one per model), the counters, the per-model job slots, the running
//! batches and their callers, the on-demand calls, and, with a store, the keys being worked on.
//! Handles talk to it with [`Command`]s; job tasks report with [`Report`]s; on-demand calls and
//! store lookups are tasks whose results come back when they end. Nothing else changes its state.
//!
//! If the worker stops for any reason (panic, the engine dropped, `destroy()`), every request it
//! still holds is settled with an error: none is left pending.
//!
//! With a store shared by a group ([`Role`]), a client's worker is a *member*: the requests it
//! would batch go to the group's queue in the store, and it settles its callers from what the
//! group settled there. The client that leads the group runs a second worker, the *leader*: its
//! queues are fed from the group's queue (without the bodies), it runs the group's batches, and it
//! settles requests in the store instead of callers.

mod group;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::backend::{DirectBackend, JobInfo};
use crate::config::BatchConfig;
use crate::converse::{self, ConverseRoute};
use crate::error::{EngineError, ErrorName};
use crate::job::{self, BatchId, Body, JobContext, Plan, Report, Resume, Verdict};
use crate::queue::Reply;
use crate::queue::{Caller, Cut, Pending, Queue, Reason};
use crate::request::{
    batchable_model, check_body, check_model_id, InvocationType, InvokeOptions, Operation, Request, Submission,
};
use crate::settle::{Settlement, Sink, Success};
use crate::stats::{Counters, JobStats, Published};
use crate::store::writer::{Opened, Opening, StoreHandle};
use crate::store::{
    self, Answer, AnswerRow, Finished, Key, Member, NewRequest, Outcome, QueuedRequest, Recovered, RecoveredState,
    SettledRequest, Write,
};

/// Messages handled before the worker looks at its timers and publishes again.
const DRAIN: usize = 256;
/// Record numbers of requests taken up from the store and sent again start here (far above the
/// ids of this process's callers, which are their record numbers).
const RECOVERED_RECORDS: u64 = 1 << 50;

/// What a handle asks of the worker.
pub(crate) enum Command {
    /// Requests to validate and queue.
    Submit(Vec<Submission>),
    /// Send what is queued now.
    Flush,
    /// A caller gave up: take its request out of its queue if it is still there.
    Cancel(u64),
    /// Reject new requests, send everything, and answer once every request has settled.
    Close(oneshot::Sender<()>),
    /// Stop now: settle everything with `ClientClosedException`.
    Destroy { stop_jobs: bool },
}

/// What the worker does with the requests batch mode batches.
#[derive(Clone, Default)]
pub(crate) enum Role {
    /// Batches them itself (alone, or with the journal).
    #[default]
    Alone,
    /// A client of a group sharing a store: queues them in the store, and settles its callers
    /// from what the group's leader settled there.
    Member(Arc<GroupSignals>),
    /// Leads a group: its queues are fed from the store's, and it settles requests in the store
    /// (nobody waits in this worker); it stops when the store says the lead is lost.
    Leader { signals: Arc<GroupSignals>, check_every: std::time::Duration },
}

/// What wakes the workers of a group's client (set by the store's listener).
#[derive(Debug, Default)]
pub(crate) struct GroupSignals {
    /// Requests were settled in the store (members collect theirs).
    pub settled: tokio::sync::Notify,
    /// Requests were queued (the leader reads them).
    pub queued: tokio::sync::Notify,
    /// A member asked for the group's queue to be sent now.
    pub flush: std::sync::atomic::AtomicBool,
    /// This client leads its group now.
    pub leading: std::sync::atomic::AtomicBool,
}

/// Answered keys a leader remembers in each of its two generations.
const RECENT_KEYS: usize = 1 << 20;
/// Settled requests a member reads at a time (more are read at once when a page is full).
const SETTLED_PAGE: usize = 20_000;
/// How often a member reads its settled requests without being woken (a lost notification).
const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// How the worker is set up.
pub(crate) struct Setup {
    /// Alone, a member of a group, or its leader.
    pub role: Role,
    /// Batch mode's settings (`None`: every request goes on-demand).
    pub batch: Option<BatchConfig>,
    /// The job tasks' context (batch mode).
    pub jobs: Option<JobContext>,
    /// On-demand calls, at most `direct_concurrency` at once.
    pub direct: Option<Arc<dyn DirectBackend>>,
    pub direct_concurrency: usize,
    pub store: Option<StoreHandle>,
    pub known_keys: Option<HashSet<u64>>,
    pub recovered: Vec<Recovered>,
    /// A store still being opened: requests wait until it is (then `known_keys` and
    /// `recovered` come from it), or are rejected with why it could not be.
    pub opening: Option<Opening>,
    pub sink: Arc<dyn Sink>,
    pub published: Arc<Published>,
    /// Job names and tokens are `<prefix>-<run>-<batch>`.
    pub run_id: String,
    /// Whether the back-end can read an uploaded input file back (bodies then leave memory).
    pub rereads_input: bool,
    /// Most requests waiting in queues before `ThrottlingException`.
    pub max_queued: usize,
    /// How a request's model is chosen.
    pub models: ModelRule,
}

/// How a request's model is chosen and checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelRule {
    /// For requests without one (the client's `modelId`).
    pub default: Option<Arc<str>>,
    /// For every request, whatever it names (openai mode's `bedrock/<modelId>`).
    pub forced: Option<Arc<str>>,
    /// Whether model ids must satisfy InvokeModel's pattern (not in openai mode, where the
    /// model string chooses the server's model and the request's id is not sent anywhere).
    pub check: bool,
}

/// A request in a batch, without its body.
#[derive(Debug)]
struct InFlight {
    caller: Caller,
    record: u64,
    key: Option<Key>,
    tries: u32,
    body_len: u32,
    options: Option<Box<InvokeOptions>>,
    operation: Operation,
    reply: Reply,
}

/// A batch that was cut: waiting for a job slot, or running.
struct Running {
    model: Arc<str>,
    job_name: Arc<str>,
    token: Arc<str>,
    job_arn: Option<Arc<str>>,
    input_uri: Option<Arc<str>>,
    members: Vec<Option<InFlight>>,
    /// The members' bodies, by position, when the back-end cannot read them back (else empty).
    kept: Vec<Bytes>,
}

/// What a task the worker spawned ends with.
enum Done {
    Job(BatchId),
    Direct(u64, Result<Success, EngineError>),
    Lookup(Result<Vec<Option<Finished>>, EngineError>),
    /// A member's requests were queued in the store (or could not be).
    Enqueued(Result<(), EngineError>),
    /// A member's settled requests.
    Collected(Result<Vec<SettledRequest>, EngineError>),
    /// A leader's read of the group's queue.
    Fed(Result<Vec<QueuedRequest>, EngineError>, usize),
    /// A leader's check of its lead.
    Checked(Result<(), EngineError>),
    /// A leader's lookup of keys queued again after it answered them.
    Relooked(Result<Vec<Option<Finished>>, EngineError>, Vec<Pending>),
}

/// Which task is which, to settle its callers if it panics.
enum TaskKind {
    Job(BatchId),
    Direct(u64),
    Lookup,
    Enqueue,
    Shared,
}

/// A queue: one per model and kind of record.
type QueueKey = (Arc<str>, InvocationType);

/// A model id as checked.
#[derive(Clone)]
struct ModelId {
    id: Arc<str>,
    batchable: bool,
}

/// A member's request in its group's hands.
struct Remote {
    m: InFlight,
    model: Arc<str>,
}

pub(crate) struct Worker {
    role: Role,
    /// A member: requests to queue in the store (with their bodies), by caller.
    outbox: Vec<Pending>,
    /// A member: the callers whose requests are being queued.
    enqueuing: Vec<u64>,
    /// A member: requests in the group's hands, by caller.
    remote: HashMap<u64, Remote>,
    /// A member: settled requests are being read (and whether to read again after).
    collecting: bool,
    collect_again: bool,
    /// A leader: the queue is read up to this request number.
    fed_after: u64,
    /// A leader: the queue is being read (and whether to read again after).
    feeding: bool,
    feed_again: bool,
    /// A leader: the lead is being checked.
    checking: bool,
    /// A leader: requests whose keys it answered, to look up before they are batched again.
    relooking: Vec<Pending>,
    /// A leader: the keys it answered before those in `known` (the older generation).
    known_before: HashSet<u64>,
    /// A member: the group's leader is to be asked to flush once this member's requests are in.
    flush_asked: bool,
    batch: Option<Arc<BatchConfig>>,
    jobs_ctx: Option<JobContext>,
    direct: Option<Arc<dyn DirectBackend>>,
    direct_concurrency: usize,
    store: Option<StoreHandle>,
    sink: Arc<dyn Sink>,
    published: Arc<Published>,
    run_id: String,
    rereads_input: bool,
    max_queued: usize,
    model_rule: ModelRule,
    epoch: Instant,

    models: HashMap<Box<str>, Result<ModelId, EngineError>>,
    queues: HashMap<QueueKey, Queue>,
    queued: usize,
    waiting: HashMap<Arc<str>, VecDeque<Plan>>,
    slots: HashMap<Arc<str>, usize>,
    batches: HashMap<BatchId, Running>,
    next_batch: BatchId,
    next_recovered_record: u64,
    direct_queue: VecDeque<Pending>,
    direct_calls: HashMap<u64, InFlight>,
    next_direct: u64,
    tasks: JoinSet<Done>,
    task_of: HashMap<tokio::task::Id, TaskKind>,
    /// With a store: keys being worked on, each with the callers of later sends that wait for it.
    live: HashMap<[u8; 16], Vec<u64>>,
    occurrences: HashMap<[u8; 16], u32>,
    /// Keys the store has answers for (`None`: any key may have one).
    known: Option<HashSet<u64>>,
    /// The store being opened, until it is.
    opening: Option<Opening>,
    /// Commands that wait for the store to open, in order (`Some` while it opens).
    held: Option<Vec<Command>>,
    /// Why the store could not be opened: every request is rejected with it.
    store_failed: Option<EngineError>,
    /// Requests whose keys are being (or about to be) looked up.
    lookups: Vec<Pending>,
    looking: Option<Vec<Pending>>,
    closing: bool,
    /// The worker stops at the end of this round (a leader that lost its lead).
    stopped: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    counters: Counters,
    jobs: Vec<JobStats>,
    job_index: HashMap<Arc<str>, usize>,
    jobs_changed: bool,
}

impl Worker {
    pub(crate) fn new(s: Setup) -> Worker {
        let mut w = Worker {
            role: s.role,
            outbox: Vec::new(),
            enqueuing: Vec::new(),
            remote: HashMap::new(),
            collecting: false,
            collect_again: false,
            fed_after: 0,
            feeding: false,
            feed_again: false,
            checking: false,
            relooking: Vec::new(),
            known_before: HashSet::new(),
            flush_asked: false,
            batch: s.batch.map(Arc::new),
            jobs_ctx: s.jobs,
            direct: s.direct,
            direct_concurrency: s.direct_concurrency.max(1),
            store: s.store,
            sink: s.sink,
            published: s.published,
            run_id: s.run_id,
            rereads_input: s.rereads_input,
            max_queued: s.max_queued,
            model_rule: s.models,
            epoch: Instant::now(),
            models: HashMap::new(),
            queues: HashMap::new(),
            queued: 0,
            waiting: HashMap::new(),
            slots: HashMap::new(),
            batches: HashMap::new(),
            next_batch: 1,
            next_recovered_record: RECOVERED_RECORDS,
            direct_queue: VecDeque::new(),
            direct_calls: HashMap::new(),
            next_direct: 1,
            tasks: JoinSet::new(),
            task_of: HashMap::new(),
            live: HashMap::new(),
            occurrences: HashMap::new(),
            known: s.known_keys,
            held: s.opening.is_some().then(Vec::new),
            opening: s.opening,
            store_failed: None,
            lookups: Vec::new(),
            looking: None,
            closing: false,
            stopped: false,
            close_waiters: Vec::new(),
            counters: Counters::default(),
            jobs: Vec::new(),
            job_index: HashMap::new(),
            jobs_changed: false,
        };
        for r in s.recovered {
            w.resume(r);
        }
        w.publish();
        w
    }

    /// Runs until the engine is dropped or destroyed.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut reports: mpsc::UnboundedReceiver<Report>,
    ) {
        // Without job tasks (direct and openai modes) nobody reports.
        let mut reports_open = true;
        let mut opening = self.opening.take();
        let signals = match &self.role {
            Role::Alone => None,
            Role::Member(g) | Role::Leader { signals: g, .. } => Some(g.clone()),
        };
        let every = match &self.role {
            Role::Leader { check_every, .. } => *check_every,
            _ => COLLECT_EVERY,
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.stopped {
                return;
            }
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                r = async {
                    match opening.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if opening.is_some() => {
                    opening = None;
                    self.on_opened(r.unwrap_or_else(|_| Err(EngineError::internal("The store writer stopped while the store was being opened."))));
                }
                r = reports.recv(), if reports_open => match r {
                    Some(r) => self.on_report(r),
                    None => reports_open = false,
                },
                c = commands.recv() => match c {
                    Some(Command::Destroy { stop_jobs }) => {
                        self.destroy(stop_jobs);
                        return;
                    }
                    Some(c) => self.on_command(c),
                    None => return,
                },
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    // A task's last reports are sent before it ends: take them in first.
                    while let Ok(r) = reports.try_recv() {
                        self.on_report(r);
                    }
                    self.on_task_end(done);
                }
                _ = sleep_until(deadline), if deadline.is_some() => self.on_timer(),
                _ = async {
                    match (&signals, &self.role) {
                        (Some(g), Role::Leader { .. }) => g.queued.notified().await,
                        (Some(g), _) => g.settled.notified().await,
                        (None, _) => std::future::pending().await,
                    }
                }, if signals.is_some() => self.on_signal(),
                _ = tick.tick(), if signals.is_some() => self.on_tick(),
            }
            for _ in 0..DRAIN {
                if let Ok(r) = reports.try_recv() {
                    self.on_report(r);
                    continue;
                }
                match commands.try_recv() {
                    Ok(Command::Destroy { stop_jobs }) => {
                        self.destroy(stop_jobs);
                        return;
                    }
                    Ok(c) => self.on_command(c),
                    Err(_) => break,
                }
            }
            self.after_round();
        }
    }

    // ===== commands =====

    fn on_command(&mut self, c: Command) {
        if let Some(held) = &mut self.held {
            // The store is being opened: everything waits for it, in order.
            held.push(c);
            return;
        }
        match c {
            Command::Submit(list) => {
                for s in list {
                    self.admit(s);
                }
            }
            Command::Flush => self.flush_all(Reason::Forced),
            Command::Cancel(id) => self.cancel(id),
            Command::Close(reply) => {
                self.closing = true;
                self.close_waiters.push(reply);
                self.flush_all(Reason::Forced);
            }
            Command::Destroy { .. } => unreachable!("handled by the loop"),
        }
    }

    /// Validates a request and sends it on its way; a bad one is rejected alone.
    fn admit(&mut self, s: Submission) {
        let caller = Caller::Id(s.id);
        match self.check(s) {
            Ok(p) => self.admit_checked(p),
            Err(e) => {
                self.counters.left_queue += 1;
                self.settle_now(caller, Err(e));
            }
        }
    }

    fn check(&mut self, s: Submission) -> Result<Pending, EngineError> {
        if self.closing {
            return Err(EngineError::closed("The client is closed: send() after close() or destroy() is rejected."));
        }
        if let Some(e) = &self.store_failed {
            return Err(e.clone());
        }
        if let Some(e) = s.rejected {
            return Err(*e);
        }
        let name = match (&self.model_rule.forced, s.model_id.is_empty(), &self.model_rule.default) {
            (Some(forced), _, _) => forced.clone(),
            (None, false, _) => s.model_id,
            (None, true, Some(default)) => default.clone(),
            (None, true, None) => {
                return Err(EngineError::validation("modelId is required (on the command or the client)."))
            }
        };
        let model = match self.models.get(&*name) {
            Some(m) => m.clone()?,
            None => {
                let checked = if self.model_rule.check { check_model_id(&name) } else { Ok(()) };
                let m = checked.map(|()| ModelId { batchable: batchable_model(&name), id: name.clone() });
                self.models.insert(Box::from(&*name), m.clone());
                m?
            }
        };
        let options = s.options.map(|o| *o).unwrap_or_default();
        options.check()?;
        if let Some(k) = &s.key {
            if k.is_empty() || k.chars().count() > 1024 {
                return Err(EngineError::validation("idempotencyKey must be a string of 1 to 1024 characters."));
            }
        }
        let body = check_body(s.body)?;
        let operation = s.operation;
        // A Converse request: as a Converse record, as the model's native record, or on-demand.
        let (record, record_type, reply, on_demand) = match (operation.invocation_type(), &self.batch, model.batchable)
        {
            (InvocationType::Converse, Some(_), true) => match converse::route(&model.id, &body)? {
                ConverseRoute::Record(record) => (record, InvocationType::Converse, Reply::AsIs, false),
                ConverseRoute::Native { family, body } => {
                    (body, InvocationType::InvokeModel, Reply::FromNative(family), false)
                }
                ConverseRoute::OnDemand(_) => (body.clone(), InvocationType::Converse, Reply::AsIs, true),
            },
            (kind, _, _) => (body.clone(), kind, Reply::AsIs, false),
        };
        if self.queued >= self.max_queued {
            return Err(EngineError::new(
                ErrorName::ThrottlingException,
                format!("{} requests are already waiting in memory (maxQueuedRequests); wait for some to settle and try again.", self.max_queued),
            )
            .with_status(429));
        }
        // A stream that goes on-demand streams from the service: its answer is never whole here,
        // so it has no key (nothing to keep, nothing to share with a later send).
        let streams_on_demand = operation.streams()
            && (on_demand
                || !model.batchable
                || self.batch.as_ref().is_none_or(|b| b.stream_on_demand)
                || options.needs_on_demand());
        let key = match (&self.store, &s.key) {
            (None, _) => None,
            _ if streams_on_demand => None,
            (Some(_), Some(k)) => Some(store::explicit_key(k)),
            (Some(_), None) => {
                // Each operation's answer differs from another's with the same bytes.
                let digest = match operation {
                    Operation::InvokeModel => store::content_digest(&model.id, &body, &options),
                    op => store::content_digest(&format!("{}\u{0}{}", model.id, op.as_str()), &body, &options),
                };
                let n = self.occurrences.entry(digest).or_insert(0);
                *n += 1;
                Some(store::content_key(&digest, *n))
            }
        };
        let options = (options != InvokeOptions::default()).then(|| Box::new(options));
        // On-demand calls take the request as it came; batch records the body routed above.
        let body = if on_demand || !model.batchable || self.batch.is_none() { body } else { record };
        Ok(Pending {
            caller: Caller::Id(s.id),
            operation,
            record_type,
            reply,
            record: s.id,
            key,
            body_len: body.len() as u32,
            body: Body::Inline(body),
            model: model.id,
            direct: !model.batchable || on_demand || streams_on_demand,
            options,
            tries: 0,
            arrived_ms: 0,
        })
    }

    /// With a store: joins a request with the same key in this process, or looks the key up;
    /// then routes it.
    fn admit_checked(&mut self, p: Pending) {
        if let Some(key) = &p.key {
            let digest = store::key_digest(key);
            if let Some(waiters) = self.live.get_mut(&digest) {
                if let Caller::Id(id) = p.caller {
                    waiters.push(id);
                }
                self.counters.left_queue += 1;
                self.counters.in_flight += 1;
                return;
            }
            self.live.insert(digest, Vec::new());
            let maybe_known = self.known.as_ref().is_none_or(|k| k.contains(&store::short_digest(&digest)));
            if maybe_known {
                self.queued += 1;
                self.lookups.push(p);
                return;
            }
        }
        self.route(p);
    }

    /// Puts a request in its queue, or sends it on-demand when batch cannot serve it.
    fn route(&mut self, mut p: Pending) {
        if self.batch.is_none() || p.direct || p.options.as_deref().is_some_and(InvokeOptions::needs_on_demand) {
            self.counters.left_queue += 1;
            self.counters.in_flight += 1;
            return self.send_direct(p);
        }
        if let (Role::Member(_), Caller::Id(id)) = (&self.role, p.caller) {
            return self.send_to_group(id, p);
        }
        if !matches!(self.role, Role::Leader { .. }) || p.arrived_ms == 0 {
            p.arrived_ms = u32::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u32::MAX);
        }
        let key: QueueKey = (p.model.clone(), p.record_type);
        self.queued += 1;
        let q = self.queues.entry(key.clone()).or_default();
        q.push(p);
        let full = self.batch.as_ref().is_some_and(|c| q.is_full(c));
        if full || self.closing {
            self.flush(&key, if self.closing { Reason::Forced } else { Reason::Full });
        }
    }

    fn cancel(&mut self, id: u64) {
        let caller = Caller::Id(id);
        if let Some(i) = self.outbox.iter().position(|p| p.caller == caller) {
            // Not yet in the store: it never will be.
            let p = self.outbox.remove(i);
            self.remote.remove(&id);
            if let Some(key) = &p.key {
                self.live.remove(&store::key_digest(key));
            }
            self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
            return;
        }
        for q in self.queues.values_mut() {
            let Some(pos) = q.items.iter().position(|p| p.caller == caller) else { continue };
            // A later send of the same key waits for this one: it takes its place.
            if let Some(key) = &q.items[pos].key {
                let digest = store::key_digest(key);
                match self.live.get_mut(&digest) {
                    Some(waiters) if !waiters.is_empty() => {
                        let next = waiters.remove(0);
                        q.items[pos].caller = Caller::Id(next);
                        q.items[pos].record = next;
                        self.counters.in_flight -= 1;
                        return;
                    }
                    _ => {
                        self.live.remove(&digest);
                    }
                }
            }
            q.remove(caller);
            self.queued -= 1;
            self.counters.left_queue += 1;
            return;
        }
        if let Some(i) = self.lookups.iter().position(|p| p.caller == caller) {
            let p = self.lookups.remove(i);
            if let Some(key) = &p.key {
                self.live.remove(&store::key_digest(key));
            }
            self.queued -= 1;
            self.counters.left_queue += 1;
        }
    }

    // ===== cutting queues into batches =====

    fn next_deadline(&self) -> Option<Instant> {
        let c = self.batch.as_ref()?;
        self.queues.values().filter_map(|q| q.deadline(self.epoch, c)).min()
    }

    fn on_timer(&mut self) {
        let Some(c) = &self.batch else { return };
        let now = Instant::now();
        let due: Vec<QueueKey> = self
            .queues
            .iter()
            .filter(|(_, q)| q.oldest(self.epoch).is_some_and(|o| o + c.batch_timeout <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.flush(&key, Reason::Timer);
        }
    }

    fn flush_all(&mut self, reason: Reason) {
        if matches!(self.role, Role::Member(_)) && self.store.is_some() && !self.remote.is_empty() {
            // The group's queue is the leader's: ask it to send what is queued (after this
            // member's requests are in the store).
            self.flush_asked = true;
            self.start_enqueue();
        }
        let keys: Vec<QueueKey> = self.queues.keys().cloned().collect();
        for k in keys {
            self.flush(&k, reason);
        }
    }

    /// Cuts a queue by the flush rules.
    fn flush(&mut self, key: &QueueKey, reason: Reason) {
        let Some(c) = self.batch.clone() else { return };
        let (model, record_type) = key;
        let filler = crate::filler::filler_body(model, *record_type);
        loop {
            let Some(q) = self.queues.get_mut(key) else { return };
            match q.next_cut(&c, reason, self.epoch, Instant::now(), filler.map(<[u8]>::len)) {
                Cut::Keep => break,
                Cut::Direct { take } => {
                    let items = q.take_front(take);
                    self.queued -= items.len();
                    self.counters.left_queue += items.len() as u64;
                    self.counters.in_flight += items.len() as u64;
                    for p in items {
                        self.send_direct(p);
                    }
                }
                Cut::Batch { take, fillers } => {
                    let items = q.take_front(take);
                    self.queued -= items.len();
                    self.counters.left_queue += items.len() as u64;
                    self.counters.in_flight += items.len() as u64;
                    self.form_batch(model.clone(), *record_type, items, fillers, filler, &c);
                }
            }
        }
        if self.queues.get(key).is_some_and(|q| q.items.is_empty()) {
            self.queues.remove(key);
        }
    }

    /// Forms a batch and starts it, or lets it wait for a job slot of its model.
    fn form_batch(
        &mut self,
        model: Arc<str>,
        record_type: InvocationType,
        items: Vec<Pending>,
        fillers: usize,
        filler: Option<&'static [u8]>,
        c: &BatchConfig,
    ) {
        let id = self.next_batch;
        self.next_batch += 1;
        let job_name = format!("{}-{}-{id}", c.job_name_prefix, self.run_id);
        // The token and the input folder allow fewer characters than names (no '.' or '+').
        let token: String = job_name.chars().map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' }).collect();
        let members = self.store.as_ref().map(|_| {
            items
                .iter()
                .filter_map(|p| {
                    let native = match p.reply {
                        Reply::FromNative(f) => Some(f),
                        Reply::AsIs => None,
                    };
                    Some(Member { key: p.key.clone()?, record: p.record, tries: p.tries, native })
                })
                .collect()
        });
        let mut records = Vec::with_capacity(items.len());
        let mut flights = Vec::with_capacity(items.len());
        let mut kept = Vec::new();
        let leads = matches!(self.role, Role::Leader { .. });
        for p in items {
            if !self.rereads_input && !leads {
                kept.push(p.inline_body().cloned().unwrap_or_default());
            }
            records.push((p.record, p.body));
            flights.push(Some(InFlight {
                caller: p.caller,
                record: p.record,
                key: p.key,
                tries: p.tries,
                body_len: p.body_len,
                options: p.options,
                operation: p.operation,
                reply: p.reply,
            }));
        }
        self.batches.insert(
            id,
            Running {
                model: model.clone(),
                job_name: Arc::from(job_name.as_str()),
                token: Arc::from(token.as_str()),
                job_arn: None,
                input_uri: None,
                members: flights,
                kept,
            },
        );
        let plan = Plan {
            id,
            token,
            job_name,
            model_id: model.clone(),
            record_type,
            records,
            fillers,
            filler,
            members,
            resume: None,
            keep_retry_bodies: self.keeps_retry_bodies(c),
        };
        self.waiting.entry(model.clone()).or_default().push_back(plan);
        self.start_waiting(&model);
    }

    /// Whether a job reads back the bodies of records that may be sent again before `cleanup`
    /// deletes its input file (a group's bodies stay in the store until their requests settle).
    fn keeps_retry_bodies(&self, c: &BatchConfig) -> bool {
        c.cleanup && self.rereads_input && !matches!(self.role, Role::Leader { .. })
    }

    /// Starts the batches of a model that wait, while it has free job slots.
    fn start_waiting(&mut self, model: &Arc<str>) {
        let Some(c) = &self.batch else { return };
        let max = c.max_concurrent_jobs;
        loop {
            let running = self.slots.get(model).copied().unwrap_or(0);
            if running >= max {
                return;
            }
            let Some(plan) = self.waiting.get_mut(model).and_then(VecDeque::pop_front) else {
                self.waiting.remove(model);
                return;
            };
            *self.slots.entry(model.clone()).or_insert(0) += 1;
            let Some(ctx) = self.jobs_ctx.clone() else { return };
            let id = plan.id;
            let handle = self.tasks.spawn(async move {
                job::run(ctx, plan).await;
                Done::Job(id)
            });
            self.task_of.insert(handle.id(), TaskKind::Job(id));
        }
    }

    /// Takes up a batch an earlier process left being created or running.
    fn resume(&mut self, r: Recovered) {
        let Some(c) = self.batch.clone() else { return };
        let model: Arc<str> = Arc::from(r.batch.model_id.as_str());
        let (input_uri, resume) = match r.state {
            RecoveredState::Creating { input_uri } => (input_uri.clone(), Resume::Create { input_uri }),
            RecoveredState::Submitted { input_uri, job_arn } => {
                (input_uri.clone(), Resume::Poll { input_uri, job_arn })
            }
        };
        let id = self.next_batch;
        self.next_batch += 1;
        for m in &r.members {
            self.live.insert(store::key_digest(&m.key), Vec::new());
        }
        self.counters.in_flight += r.members.len() as u64;
        let input: Arc<str> = Arc::from(input_uri.as_str());
        let records =
            r.members.iter().map(|m| (m.record, Body::Stored { input_uri: input.clone(), record: m.record })).collect();
        let flights = r
            .members
            .into_iter()
            .map(|m| {
                Some(InFlight {
                    caller: Caller::Recovered,
                    record: m.record,
                    key: Some(m.key),
                    tries: m.tries,
                    body_len: 0,
                    options: None,
                    operation: match r.batch.invocation_type {
                        InvocationType::InvokeModel if m.native.is_none() => Operation::InvokeModel,
                        _ => Operation::Converse,
                    },
                    reply: m.native.map_or(Reply::AsIs, Reply::FromNative),
                })
            })
            .collect();
        self.batches.insert(
            id,
            Running {
                model: model.clone(),
                job_name: Arc::from(r.batch.job_name.as_str()),
                token: Arc::from(r.batch.token.as_str()),
                job_arn: None,
                input_uri: Some(input),
                members: flights,
                kept: Vec::new(),
            },
        );
        let plan = Plan {
            id,
            token: r.batch.token,
            job_name: r.batch.job_name,
            model_id: model.clone(),
            record_type: r.batch.invocation_type,
            records,
            fillers: 0,
            filler: None,
            members: None,
            resume: Some(resume),
            keep_retry_bodies: self.keeps_retry_bodies(&c),
        };
        self.waiting.entry(model.clone()).or_default().push_back(plan);
        self.start_waiting(&model);
    }

    // ===== on-demand calls =====

    fn send_direct(&mut self, p: Pending) {
        self.counters.sent_direct += 1;
        self.direct_queue.push_back(p);
        self.start_direct();
    }

    fn start_direct(&mut self) {
        while self.direct_calls.len() < self.direct_concurrency {
            let Some(p) = self.direct_queue.pop_front() else { return };
            let n = self.next_direct;
            self.next_direct += 1;
            let direct = self.direct.clone();
            let reread = self.jobs_ctx.as_ref().map(|c| c.backend.clone());
            let rows = self.store.clone();
            let (model, body, options) = (p.model.clone(), p.body, p.options.clone());
            // A Converse request that went as a native record goes on-demand as that record too.
            let operation = match p.reply {
                Reply::FromNative(_) => Operation::InvokeModel,
                Reply::AsIs => p.operation,
            };
            self.direct_calls.insert(
                n,
                InFlight {
                    caller: p.caller,
                    record: p.record,
                    key: p.key,
                    tries: p.tries,
                    body_len: p.body_len,
                    options: p.options,
                    operation: p.operation,
                    reply: p.reply,
                },
            );
            let handle = self.tasks.spawn(async move {
                let result = async {
                    let body = match body {
                        Body::Inline(b) => b,
                        Body::Stored { input_uri, record } => {
                            let backend = reread
                                .ok_or_else(|| EngineError::internal("no batch back-end to read the body back from"))?;
                            job::read_back(backend.as_ref(), &input_uri, &[record])
                                .await?
                                .remove(&record)
                                .unwrap_or_default()
                        }
                        Body::Row(id) => {
                            job::row_bodies(rows.as_ref(), vec![id]).await?.remove(&id).unwrap_or_default()
                        }
                    };
                    let Some(d) = direct else {
                        return Err(EngineError::validation(
                            "this request needs on-demand InvokeModel, which is not configured",
                        ));
                    };
                    d.invoke(&Request { operation, model_id: model, body, options }).await
                }
                .await;
                Done::Direct(n, result)
            });
            self.task_of.insert(handle.id(), TaskKind::Direct(n));
        }
    }

    // ===== reports and task ends =====

    fn on_report(&mut self, r: Report) {
        match r {
            Report::Created { batch, job_arn, input_uri, total, fillers } => {
                self.counters.padded += fillers;
                let Some(b) = self.batches.get_mut(&batch) else { return };
                b.job_arn = Some(job_arn.clone());
                b.input_uri = Some(input_uri);
                let (model, name) = (b.model.to_string(), b.job_name.to_string());
                self.update_job(&job_arn, |j| {
                    j.job_name = name;
                    j.model_id = model;
                    j.status = "Submitted".into();
                    j.total_record_count = j.total_record_count.max(total);
                });
            }
            Report::Status { job_arn, info } => self.on_status(&job_arn, &info),
            Report::Tokens { job_arn, tokens } => {
                self.counters.input_tokens += tokens.input;
                self.counters.output_tokens += tokens.output;
                self.update_job(&job_arn, |j| {
                    j.input_tokens = tokens.input;
                    j.output_tokens = tokens.output;
                });
            }
            Report::Verdicts { batch, items } => self.on_verdicts(batch, items),
            Report::Finished { batch, input_uri } => {
                if let Some(b) = self.batches.get_mut(&batch) {
                    if input_uri.is_some() {
                        b.input_uri = input_uri;
                    }
                }
                self.finish_batch(batch, None);
            }
        }
    }

    fn on_status(&mut self, job_arn: &Arc<str>, info: &JobInfo) {
        self.update_job(job_arn, |j| {
            j.status = info.status.as_str().to_string();
            j.total_record_count = info.total_record_count.unwrap_or(j.total_record_count);
            j.processed_record_count = info.processed_record_count.unwrap_or(j.processed_record_count);
            j.success_record_count = info.success_record_count.unwrap_or(j.success_record_count);
            j.error_record_count = info.error_record_count.unwrap_or(j.error_record_count);
        });
    }

    /// Records a new job or a change; tells the sink (and the store) when its status changed.
    fn update_job(&mut self, job_arn: &Arc<str>, f: impl FnOnce(&mut JobStats)) {
        let i = match self.job_index.get(job_arn) {
            Some(&i) => i,
            None => {
                self.jobs.push(JobStats { job_arn: job_arn.to_string(), ..Default::default() });
                self.job_index.insert(job_arn.clone(), self.jobs.len() - 1);
                self.jobs.len() - 1
            }
        };
        let before = self.jobs[i].clone();
        f(&mut self.jobs[i]);
        if self.jobs[i] != before {
            self.jobs_changed = true;
        }
        if self.jobs[i].status != before.status {
            let j = &self.jobs[i];
            if let Some(s) = &self.store {
                s.write(Write::JobStatus {
                    job_arn: j.job_arn.clone(),
                    status: j.status.clone(),
                    success: j.success_record_count,
                    errors: j.error_record_count,
                });
            }
            self.sink.job_event(j);
        }
    }

    fn on_verdicts(&mut self, batch: BatchId, items: Vec<(u32, Verdict)>) {
        let max_attempts = self.batch.as_ref().map_or(1, |c| c.max_attempts);
        let Some(b) = self.batches.get_mut(&batch) else { return };
        let token = b.token.clone();
        let job_arn = b.job_arn.clone();
        let input_uri = b.input_uri.clone();
        let model = b.model.clone();
        let mut outcomes: Vec<(InFlight, Result<Success, EngineError>, bool)> = Vec::with_capacity(items.len());
        let mut retry: Vec<Pending> = Vec::new();
        for (i, verdict) in items {
            let Some(m) = b.members.get_mut(i as usize).and_then(Option::take) else { continue };
            let tries_left = m.tries + 1 < max_attempts;
            let kept = b.kept.get(i as usize).cloned();
            match verdict {
                Verdict::Answer(ok) => outcomes.push((m, Ok(ok), true)),
                Verdict::Error { retry: true, body, .. } if tries_left => {
                    retry.push(again(m, &model, kept.or(body), input_uri.as_ref()))
                }
                Verdict::Error { error, .. } => {
                    let keep = !error.name.is_retryable();
                    outcomes.push((m, Err(error), keep));
                }
                Verdict::Missing { body, .. } if tries_left => {
                    retry.push(again(m, &model, kept.or(body), input_uri.as_ref()))
                }
                Verdict::Missing { status, .. } => {
                    let record_id = crate::jsonl::record_id(m.record);
                    let e = EngineError::new(
                        ErrorName::RecordMissingException,
                        format!("The batch job ended {status} without an output line for this record."),
                    )
                    .with_job(job_arn.as_deref(), Some(&record_id));
                    outcomes.push((m, Err(e), false));
                }
                Verdict::Failed(e) => {
                    let record_id = crate::jsonl::record_id(m.record);
                    let e = if e.record_id().is_none() && e.job_arn().is_some() {
                        e.with_job(None, Some(&record_id))
                    } else {
                        e
                    };
                    outcomes.push((m, Err(e), false));
                }
            }
        }
        self.deliver(outcomes, Some(&token), Some(&model));
        self.requeue(retry);
    }

    /// Puts requests back in their queues for another try.
    fn requeue(&mut self, items: Vec<Pending>) {
        if items.is_empty() {
            return;
        }
        let n = items.len() as u64;
        self.counters.resubmitted += n;
        self.counters.requeued += n;
        self.counters.in_flight -= n;
        if let (Role::Leader { .. }, Some(s)) = (&self.role, &self.store) {
            // Back in the group's queue, in this leader's hands (a next leader reads them there).
            s.write(Write::Release(items.iter().map(|p| p.record).collect()));
            for mut p in items {
                p.body = Body::Row(p.record);
                p.arrived_ms = 0;
                self.counters.in_flight += 1;
                self.route(p);
            }
            if self.closing {
                self.flush_all(Reason::Forced);
            }
            return;
        }
        for mut p in items {
            if p.caller == Caller::Recovered {
                // Its old record number may be one of this process's callers' ids.
                p.record = self.next_recovered_record;
                self.next_recovered_record += 1;
            }
            self.route(p);
        }
        if self.closing {
            self.flush_all(Reason::Forced);
        }
    }

    /// A batch is over: frees its slot, settles what it left unanswered, records it done.
    fn finish_batch(&mut self, batch: BatchId, why: Option<EngineError>) {
        let Some(b) = self.batches.remove(&batch) else { return };
        let unanswered: Vec<InFlight> = b.members.into_iter().flatten().collect();
        if !unanswered.is_empty() {
            let e = why
                .unwrap_or_else(|| EngineError::internal("The batch ended without an answer for this request."))
                .with_job(b.job_arn.as_deref(), None);
            let outcomes = unanswered.into_iter().map(|m| (m, Err(e.clone()), false)).collect();
            self.deliver(outcomes, Some(&b.token), None);
        }
        if let Some(s) = &self.store {
            s.write(Write::BatchDone { token: b.token.to_string() });
        }
        if let Some(n) = self.slots.get_mut(&b.model) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.slots.remove(&b.model);
            }
        }
        // A batch that never started (destroyed while waiting) is not in `waiting` any more.
        self.start_waiting(&b.model);
    }

    fn on_task_end(&mut self, done: Result<(tokio::task::Id, Done), tokio::task::JoinError>) {
        match done {
            Ok((id, done)) => {
                self.task_of.remove(&id);
                match done {
                    Done::Job(batch) => {
                        if self.batches.contains_key(&batch) {
                            // The task ended without finishing (the poller went away).
                            self.finish_batch(
                                batch,
                                Some(EngineError::closed("The engine stopped before this batch ended.")),
                            );
                        }
                    }
                    Done::Direct(n, result) => {
                        if let Some(m) = self.direct_calls.remove(&n) {
                            let keep = result.is_ok();
                            self.deliver(vec![(m, result, keep)], None, None);
                        }
                        self.start_direct();
                    }
                    Done::Lookup(result) => self.on_lookup(result),
                    Done::Enqueued(result) => self.on_enqueued(result),
                    Done::Collected(result) => self.on_collected(result),
                    Done::Fed(result, asked) => self.on_fed(result, asked),
                    Done::Checked(result) => self.on_checked(result),
                    Done::Relooked(result, batch) => self.on_relooked(result, batch),
                }
            }
            Err(e) => {
                let why = EngineError::internal(format!("An engine task failed: {e}"));
                match self.task_of.remove(&e.id()) {
                    Some(TaskKind::Job(batch)) => self.finish_batch(batch, Some(why)),
                    Some(TaskKind::Direct(n)) => {
                        if let Some(m) = self.direct_calls.remove(&n) {
                            self.deliver(vec![(m, Err(why), false)], None, None);
                        }
                        self.start_direct();
                    }
                    Some(TaskKind::Lookup) => self.on_lookup(Err(why)),
                    Some(TaskKind::Enqueue) => self.on_enqueued(Err(why)),
                    Some(TaskKind::Shared) => {
                        // Whichever it was, start over from a clean state.
                        tracing::error!(error = %why, "a task of the shared store failed");
                        self.collecting = false;
                        self.feeding = false;
                        self.checking = false;
                    }
                    None => {}
                }
            }
        }
    }

    // ===== the store =====

    /// The store opened (take up its batches, then the requests that waited), or could not be
    /// (every request that waited, and every later one, is rejected with why).
    fn on_opened(&mut self, result: Result<Opened, EngineError>) {
        match result {
            Ok(o) => {
                self.known = o.known_keys;
                for r in o.recovered {
                    self.resume(r);
                }
            }
            Err(e) => self.store_failed = Some(e),
        }
        for c in self.held.take().unwrap_or_default() {
            self.on_command(c);
        }
    }

    /// Starts a lookup of the keys waiting for one, when none is running.
    fn start_lookup(&mut self) {
        if self.looking.is_some() || self.lookups.is_empty() {
            return;
        }
        let Some(store) = self.store.clone() else { return };
        let batch = std::mem::take(&mut self.lookups);
        let keys: Vec<Key> = batch.iter().filter_map(|p| p.key.clone()).collect();
        self.looking = Some(batch);
        let handle = self.tasks.spawn(async move { Done::Lookup(store.lookup(keys).await) });
        self.task_of.insert(handle.id(), TaskKind::Lookup);
    }

    fn on_lookup(&mut self, result: Result<Vec<Option<Finished>>, EngineError>) {
        let Some(batch) = self.looking.take() else { return };
        let found = match result {
            Ok(f) => f,
            Err(e) => {
                for p in batch {
                    self.queued -= 1;
                    self.counters.left_queue += 1;
                    self.counters.in_flight += 1;
                    let m = InFlight {
                        caller: p.caller,
                        record: p.record,
                        key: p.key,
                        tries: 0,
                        body_len: 0,
                        options: None,
                        operation: p.operation,
                        reply: Reply::AsIs,
                    };
                    self.deliver(vec![(m, Err(e.clone()), false)], None, None);
                }
                return;
            }
        };
        for (p, f) in batch.into_iter().zip(found) {
            self.queued -= 1;
            match f {
                None => self.route(p),
                Some(f) => {
                    self.counters.left_queue += 1;
                    self.counters.in_flight += 1;
                    let p_model = p.model.clone();
                    let result = stored_result(f);
                    let m = InFlight {
                        caller: p.caller,
                        record: p.record,
                        key: p.key,
                        tries: 0,
                        body_len: 0,
                        options: None,
                        operation: p.operation,
                        reply: Reply::AsIs,
                    };
                    // Already in the store: settle without writing it again.
                    self.deliver_from_store(m, &p_model, result);
                }
            }
        }
    }

    // ===== settling =====

    /// Settles finished requests: records the final answers in the store (and remembers their
    /// keys), answers every later send of the same key, and tells the sink.
    ///
    /// `whole` names the model when the answers came whole (from a batch record): a streaming
    /// caller's answer is then turned into its stream's events here, after the store kept the
    /// answer itself.
    fn deliver(
        &mut self,
        outcomes: Vec<(InFlight, Result<Success, EngineError>, bool)>,
        batch: Option<&Arc<str>>,
        whole: Option<&str>,
    ) {
        if outcomes.is_empty() {
            return;
        }
        if let Role::Leader { .. } = self.role {
            return self.deliver_to_group(outcomes, batch);
        }
        let mut settlements = Vec::with_capacity(outcomes.len());
        let mut rows = Vec::new();
        for (m, result, keep) in outcomes {
            let result = self.final_result(&m, result);
            let answer = match (&result, keep, &m.key) {
                (_, false, _) | (_, _, None) => None,
                (Ok(ok), true, Some(_)) => Some(Answer::Output(ok.body.clone())),
                (Err(e), true, Some(_)) => {
                    Some(Answer::Error { name: e.name.as_str().to_string(), message: e.message.clone() })
                }
            };
            let result = as_streamed(m.operation, whole, result);
            if let Some(key) = m.key {
                let digest = store::key_digest(&key);
                if keep {
                    if let Some(known) = &mut self.known {
                        known.insert(store::short_digest(&digest));
                    }
                }
                for w in self.live.remove(&digest).unwrap_or_default() {
                    self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
                    settlements.push(Settlement { id: w, result: with_request_id(result.clone(), m.record) });
                }
                rows.push(AnswerRow { key, answer, batch: batch.cloned(), record: m.record });
            }
            if let Caller::Id(id) = m.caller {
                settlements.push(Settlement { id, result });
            }
        }
        if let (Some(s), false) = (&self.store, rows.is_empty()) {
            s.write(Write::Answers(rows));
        }
        self.settle(settlements);
    }

    /// A request's answer as its caller gets it (a native answer turned into a Converse one, the
    /// tries counted); it leaves the requests in flight.
    fn final_result(&mut self, m: &InFlight, result: Result<Success, EngineError>) -> Result<Success, EngineError> {
        let mut result = match m.reply {
            Reply::AsIs => result,
            Reply::FromNative(family) => result.and_then(|ok| from_native(family, ok)),
        };
        let attempts = m.tries + 1;
        match &mut result {
            Ok(ok) => ok.attempts = attempts,
            Err(e) => e.attempts = attempts,
        }
        self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
        result
    }

    /// Tells the sink, then forwards the rest of any answer that streams.
    fn settle(&mut self, settlements: Vec<Settlement>) {
        if settlements.is_empty() {
            return;
        }
        let streams: Vec<_> = settlements
            .iter()
            .filter_map(|s| {
                s.result.as_ref().ok().and_then(|ok| ok.stream.as_ref()).and_then(|st| st.take()).map(|rx| (s.id, rx))
            })
            .collect();
        // What callers see when they look at stats() on settling is up to date.
        self.publish();
        self.sink.settle(settlements);
        for (id, rx) in streams {
            tokio::spawn(crate::settle::forward(self.sink.clone(), id, rx));
        }
    }

    fn deliver_from_store(&mut self, m: InFlight, model: &str, result: Result<Success, EngineError>) {
        let mut settlements = Vec::new();
        self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
        let result = as_streamed(m.operation, Some(model), result);
        if let Some(key) = &m.key {
            for w in self.live.remove(&store::key_digest(key)).unwrap_or_default() {
                self.counters.in_flight = self.counters.in_flight.saturating_sub(1);
                settlements.push(Settlement { id: w, result: with_request_id(result.clone(), m.record) });
            }
        }
        if let Caller::Id(id) = m.caller {
            settlements.push(Settlement { id, result });
        }
        self.settle(settlements);
    }

    /// Settles one caller at once (a request rejected before it was queued).
    fn settle_now(&mut self, caller: Caller, result: Result<Success, EngineError>) {
        if let Caller::Id(id) = caller {
            self.settle(vec![Settlement { id, result }]);
        }
    }

    // ===== rounds, closing, stopping =====

    fn after_round(&mut self) {
        self.start_lookup();
        if let Role::Member(_) = self.role {
            self.start_enqueue();
            if self.flush_asked && self.outbox.is_empty() && self.enqueuing.is_empty() {
                self.flush_asked = false;
                if let Some(store) = self.store.clone() {
                    tokio::spawn(async move {
                        if let Err(e) = store.call(|s| s.request_flush()).await {
                            tracing::warn!(error = %e, "the group's leader could not be asked to send its queue");
                        }
                    });
                }
            }
        }
        self.publish();
        if self.closing && self.is_idle() {
            for w in self.close_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    fn publish(&mut self) {
        // A leader shares its client's stats: its jobs are the client's to show, the counters
        // are the client's own.
        if !matches!(self.role, Role::Leader { .. }) {
            self.published.publish(&self.counters);
        }
        if self.jobs_changed {
            self.published.publish_jobs(&self.jobs);
            self.jobs_changed = false;
        }
    }

    fn is_idle(&self) -> bool {
        self.queues.is_empty()
            && self.waiting.is_empty()
            && self.batches.is_empty()
            && self.direct_queue.is_empty()
            && self.direct_calls.is_empty()
            && self.lookups.is_empty()
            && self.looking.is_none()
            && self.outbox.is_empty()
            && self.enqueuing.is_empty()
            && self.remote.is_empty()
    }

    /// Every request the worker still holds, taken out.
    fn take_everything(&mut self) -> Vec<(Caller, bool)> {
        let mut out: Vec<(Caller, bool)> = Vec::new();
        for c in self.held.take().unwrap_or_default() {
            match c {
                Command::Submit(list) => out.extend(list.into_iter().map(|s| (Caller::Id(s.id), true))),
                Command::Close(reply) => self.close_waiters.push(reply),
                Command::Flush | Command::Cancel(_) | Command::Destroy { .. } => {}
            }
        }
        for (_, q) in self.queues.drain() {
            out.extend(q.items.into_iter().map(|p| (p.caller, true)));
        }
        out.extend(self.lookups.drain(..).map(|p| (p.caller, true)));
        out.extend(self.looking.take().into_iter().flatten().map(|p| (p.caller, true)));
        self.waiting.clear();
        for (_, b) in self.batches.drain() {
            out.extend(b.members.into_iter().flatten().map(|m| (m.caller, false)));
        }
        out.extend(self.direct_queue.drain(..).map(|p| (p.caller, false)));
        out.extend(self.direct_calls.drain().map(|(_, m)| (m.caller, false)));
        let leads = matches!(self.role, Role::Leader { .. });
        for (_, waiters) in self.live.drain() {
            // A leader's waiters are requests of the group (no caller here).
            if !leads {
                out.extend(waiters.into_iter().map(|w| (Caller::Id(w), false)));
            }
        }
        self.outbox.clear();
        self.enqueuing.clear();
        out.extend(self.remote.drain().map(|(_, r)| (r.m.caller, false)));
        self.queued = 0;
        out
    }

    fn settle_everything(&mut self, queued_message: &str, sent_message: &str) {
        let everything = self.take_everything();
        self.counters.left_queue += everything.iter().filter(|(_, queued)| *queued).count() as u64;
        let settlements: Vec<Settlement> = everything
            .into_iter()
            .filter_map(|(c, queued)| {
                c.id().map(|id| Settlement {
                    id,
                    result: Err(EngineError::closed(if queued { queued_message } else { sent_message })),
                })
            })
            .collect();
        if !settlements.is_empty() {
            self.sink.settle(settlements);
        }
        self.counters.in_flight = 0;
    }

    /// `destroy()`: settles everything, abandons the tasks, and stops the running jobs if asked.
    fn destroy(&mut self, stop_jobs: bool) {
        self.closing = true;
        let arns: Vec<Arc<str>> = self.batches.values().filter_map(|b| b.job_arn.clone()).collect();
        self.settle_everything(
            "The client was destroyed before this request was sent.",
            "The client was destroyed before this request settled.",
        );
        self.tasks.abort_all();
        if let (true, Some(ctx)) = (stop_jobs, &self.jobs_ctx) {
            let backend = ctx.backend.clone();
            tokio::spawn(async move {
                for arn in arns {
                    let _ = backend.stop_job(&arn).await;
                }
            });
        }
        self.publish();
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

impl Drop for Worker {
    /// The worker is going away (the engine was dropped, or it panicked): nothing it holds may
    /// be left pending.
    fn drop(&mut self) {
        self.settle_everything(
            "The engine stopped before this request was sent.",
            "The engine stopped before this request settled.",
        );
        if !matches!(self.role, Role::Leader { .. }) {
            self.published.publish(&self.counters);
        }
        self.tasks.abort_all();
    }
}

/// A final answer found in the store, as its caller gets it.
fn stored_result(f: Finished) -> Result<Success, EngineError> {
    let record = f.record.map(crate::jsonl::record_id);
    match f.answer {
        Answer::Output(body) => Ok(Success {
            request_id: f.job_arn.as_ref().zip(record.as_ref()).map(|(a, r)| format!("{a}#{r}")),
            job_arn: f.job_arn.map(Arc::from),
            body,
            content_type: "application/json".into(),
            ..Default::default()
        }),
        Answer::Error { name, message } => {
            Err(EngineError::new(ErrorName::parse(&name).unwrap_or(ErrorName::UnknownError), message)
                .with_job(f.job_arn.as_deref(), record.as_deref()))
        }
    }
}

/// A whole answer as a streaming caller sees it (its stream's events), when it came whole.
fn as_streamed(
    operation: Operation,
    whole: Option<&str>,
    result: Result<Success, EngineError>,
) -> Result<Success, EngineError> {
    match whole {
        Some(model) if operation.streams() => result.and_then(|mut ok| {
            if ok.stream.is_none() {
                ok.body = crate::stream_events::events_of(operation, model, &ok.body)
                    .map_err(|e| e.with_job(ok.job_arn.as_deref(), None))?;
            }
            Ok(ok)
        }),
        _ => result,
    }
}

/// A Converse request's answer that came as the model's native response.
fn from_native(family: crate::convert::ModelFamily, mut ok: Success) -> Result<Success, EngineError> {
    let fail = |why: String| {
        EngineError::new(
            ErrorName::ModelErrorException,
            format!("The model's answer could not be read as a Converse response: {why}"),
        )
        .with_status(424)
        .with_job(ok.job_arn.as_deref(), None)
    };
    let native: serde_json::Value = serde_json::from_slice(&ok.body).map_err(|e| fail(e.to_string()))?;
    let converse = crate::convert::native_to_converse(family.as_str(), &native, &serde_json::Value::Null, 0)
        .map_err(|e| fail(e.message))?;
    ok.body = Bytes::from(serde_json::to_vec(&converse).map_err(|e| fail(e.to_string()))?);
    Ok(ok)
}

/// A request that goes back to its queue for another try.
fn again(m: InFlight, model: &Arc<str>, body: Option<Bytes>, input_uri: Option<&Arc<str>>) -> Pending {
    let body = match (body, input_uri) {
        (Some(b), _) => Body::Inline(b),
        (None, Some(uri)) => Body::Stored { input_uri: uri.clone(), record: m.record },
        (None, None) => Body::Inline(Bytes::new()),
    };
    let record_type = match m.reply {
        Reply::FromNative(_) => InvocationType::InvokeModel,
        Reply::AsIs => m.operation.invocation_type(),
    };
    Pending {
        caller: m.caller,
        operation: m.operation,
        record_type,
        reply: m.reply,
        record: m.record,
        key: m.key,
        model: model.clone(),
        body,
        body_len: m.body_len,
        options: m.options,
        direct: false,
        tries: m.tries + 1,
        arrived_ms: 0,
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
