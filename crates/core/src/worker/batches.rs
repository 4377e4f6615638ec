//! The batching part: the queues (one per model and kind of record), the batches cut from them
//! that wait for a job slot of their model, the slots, and the running batches with their
//! requests. It decides the cuts (by records, bytes, time and the minimum), forms the batches,
//! says which to start, what a job's verdicts mean for each request (an answer, another try, a
//! failure), and what a finished batch leaves. It spawns nothing and settles nobody: it returns
//! what should happen next.

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU64;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::config::BatchConfig;
use crate::error::{EngineError, ErrorName};
use crate::job::{BatchId, Body, Plan, Resume, Verdict};
use crate::queue::{Caller, Cut, InFlight, Pending, Queue, Reason, Reply};
use crate::request::{InvocationType, Operation};
use crate::stats::Loads;
use crate::store::{Key, Member, Recovered, RecoveredState};
use crate::tokens::TokenBounds;

use super::deadlines::Due;
use super::ended::Ended;
use super::keys::Waiter;

/// A queue: one per model and kind of record.
pub(crate) type QueueKey = (Arc<str>, InvocationType);

/// Record numbers of requests taken up from the store and sent again start here (far above the
/// ids of this process's callers, which are their record numbers).
const RECOVERED_RECORDS: u64 = 1 << 50;

/// How the batching part is set up.
pub(crate) struct BatchSetup {
    pub config: Arc<BatchConfig>,
    /// Job names and tokens are `<prefix>-<run>-<batch>`.
    pub run_id: String,
    /// Keep the members' bodies in memory for another try (the back-end cannot read an input
    /// file back, and the bodies are not rows of a group's store).
    pub keep_bodies: bool,
    /// A job reads back the bodies of records that may be sent again before `cleanup` deletes
    /// its input file.
    pub keep_retry_bodies: bool,
    /// Batches are recorded in a store (their members go in the plan).
    pub recorded: bool,
}

/// A batch that was cut: waiting for a job slot, or running.
struct Running {
    model: Arc<str>,
    job_name: Arc<str>,
    token: Arc<str>,
    job_arn: Option<Arc<str>>,
    input_uri: Option<Arc<str>>,
    members: Vec<Option<InFlight>>,
    /// The members' bodies, by position, when they are kept (else empty).
    kept: Vec<Bytes>,
}

/// What cutting produced.
#[derive(Debug, Default)]
pub(crate) struct Cuts {
    /// Requests to send on-demand (below the minimum with `belowMinimum: "direct"`).
    pub direct: Vec<Pending>,
    /// Requests that went into batches.
    pub batched: u64,
    /// Batches to start now: their model has a free job slot.
    pub start: Vec<Plan>,
}

impl Cuts {
    fn add(&mut self, other: Cuts) {
        self.direct.extend(other.direct);
        self.batched += other.batched;
        self.start.extend(other.start);
    }
}

/// A batch holding some requests (see [`Batches::holding`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// Its job, once created.
    pub job_arn: Option<Arc<str>>,
    /// Whether every request it holds is one of those asked about.
    pub only_these: bool,
    /// How many of those it holds.
    pub requests: u64,
}

/// What a job's verdicts mean.
#[derive(Debug)]
pub(crate) struct Judged {
    pub ended: Vec<Ended>,
    /// Requests for another try.
    pub retries: Vec<Pending>,
    pub token: Arc<str>,
    pub model: Arc<str>,
    /// Its job, and the error names of the records its output answered with an error (each
    /// record counted once, whether it goes for another try or not), for the job table.
    pub record_errors: Option<(Arc<str>, crate::stats::ErrorCounts)>,
}

/// What a finished batch leaves.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its requests that had no verdict, failed.
    pub ended: Vec<Ended>,
    pub token: Arc<str>,
    /// Batches of its model that can start now.
    pub start: Vec<Plan>,
}

/// Requests whose deadline came, taken for on-demand calls.
#[derive(Debug, Default)]
pub(crate) struct Fallen {
    /// From their queues (not sent yet).
    pub queued: Vec<Pending>,
    /// From batches whose answer has not come (that answer is dropped when it does).
    pub sent: Vec<Pending>,
    /// In a batch whose body is nowhere to read now (its file is being written): later.
    pub later: Vec<Due>,
}

/// A job the worker learned of.
#[derive(Debug)]
pub(crate) struct Created {
    pub model: Arc<str>,
    pub job_name: Arc<str>,
}

/// What Service Quotas said, for the settings the application did not give.
#[derive(Debug, Default)]
enum Quotas {
    /// Not asked (the application gave them all, or a group's member).
    #[default]
    Off,
    /// Asked: queues are not cut by their timers until the answer (or its failure) comes.
    Pending,
    /// Known (`None`: could not be read; the defaults apply).
    Known(Option<crate::quotas::QuotaTable>),
}

pub(crate) struct Batches {
    setup: BatchSetup,
    quotas: Quotas,
    /// Each model's settings, once its quotas were applied.
    per_model: HashMap<Arc<str>, Arc<BatchConfig>>,
    /// What to tell the application (the first model the quotas did not name).
    warnings: Vec<String>,
    warned: bool,
    epoch: Instant,
    queues: HashMap<QueueKey, Queue>,
    waiting: HashMap<Arc<str>, VecDeque<Plan>>,
    slots: HashMap<Arc<str>, usize>,
    running: HashMap<BatchId, Running>,
    next_batch: BatchId,
    next_recovered_record: u64,
    /// Filler records added to each model's jobs so far.
    padded: HashMap<Arc<str>, u64>,
}

impl Batches {
    /// `epoch`: what requests' arrival times count from.
    pub(super) fn new(setup: BatchSetup, epoch: Instant) -> Batches {
        Batches {
            setup,
            quotas: Quotas::Off,
            per_model: HashMap::new(),
            warnings: Vec::new(),
            warned: false,
            epoch,
            queues: HashMap::new(),
            waiting: HashMap::new(),
            slots: HashMap::new(),
            running: HashMap::new(),
            next_batch: 1,
            next_recovered_record: RECOVERED_RECORDS,
            padded: HashMap::new(),
        }
    }

    pub(super) fn config(&self) -> &Arc<BatchConfig> {
        &self.setup.config
    }

    /// Service Quotas is being asked: timers wait for its answer.
    pub(super) fn expect_quotas(&mut self) {
        self.quotas = Quotas::Pending;
    }

    /// Service Quotas answered (`None`: it could not be read; the defaults apply): the batches
    /// that waited for it and can start now under their model's concurrent-jobs quota.
    pub(super) fn set_quotas(&mut self, table: Option<crate::quotas::QuotaTable>) -> Vec<Plan> {
        self.quotas = Quotas::Known(table);
        self.per_model.clear();
        let models: Vec<Arc<str>> = self.waiting.keys().cloned().collect();
        models.iter().flat_map(|m| self.startable(m)).collect()
    }

    /// What to tell the application since the last call.
    pub(super) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// A model's settings: the application's, with its quotas where the application gave none.
    fn config_for(&mut self, model: &Arc<str>) -> Arc<BatchConfig> {
        let Quotas::Known(Some(table)) = &self.quotas else { return self.setup.config.clone() };
        if let Some(c) = self.per_model.get(model) {
            return c.clone();
        }
        let base = &self.setup.config;
        let q = table.for_model(model);
        let mut c = BatchConfig::clone(base);
        if !base.given.min_batch_size {
            if let Some(n) = q.min_records {
                c.min_batch_size = n as usize;
            }
        }
        if !base.given.max_concurrent_jobs {
            if let Some(n) = q.concurrent_jobs.filter(|n| *n > 0) {
                c.max_concurrent_jobs = n as usize;
            }
        }
        if let Some(n) = q.max_records.filter(|n| *n > 0) {
            c.max_batch_size = c.max_batch_size.min(n as usize);
        }
        if q.any() {
            tracing::info!(target: "bedrock_batch::quotas", model = &**model, min = c.min_batch_size, jobs = c.max_concurrent_jobs, "quotas");
        } else if !std::mem::replace(&mut self.warned, true) {
            self.warnings.push(format!(
                "bedrock-batch-bridge: Service Quotas names no batch inference quota for {model}; using minBatchSize {} and maxConcurrentJobs {}.",
                c.min_batch_size, c.max_concurrent_jobs
            ));
        }
        let c = Arc::new(c);
        self.per_model.insert(model.clone(), c.clone());
        c
    }

    /// A model's settings without computing them (those of a model not seen yet: the application's).
    fn config_of(&self, model: &Arc<str>) -> &Arc<BatchConfig> {
        self.per_model.get(model).unwrap_or(&self.setup.config)
    }

    /// Puts a request in its queue; cuts the queue when it is full, or whatever it holds when
    /// `forced` (the client is closing).
    pub(super) fn push(&mut self, mut p: Pending, now: Instant, forced: bool) -> Cuts {
        if p.arrived_ms == 0 {
            p.arrived_ms = u32::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u32::MAX);
        }
        let key: QueueKey = (p.model.clone(), p.record_type);
        if matches!(self.quotas, Quotas::Known(Some(_))) {
            self.config_for(&p.model);
        }
        let c = self.per_model.get(&p.model).unwrap_or(&self.setup.config);
        let q = self.queues.entry(key.clone()).or_default();
        q.push(p);
        let full = q.is_full(c);
        if full || forced {
            return self.cut(&key, if forced { Reason::Forced } else { Reason::Full }, now);
        }
        Cuts::default()
    }

    /// A request of a batch taken up from the store, sent again: its old record number may be
    /// one of this process's callers' ids, so it gets a new one.
    pub(super) fn renumber(&mut self, p: &mut Pending) {
        p.record = self.next_recovered_record;
        self.next_recovered_record += 1;
    }

    /// When the next queue is due (its oldest request's timeout).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        if matches!(self.quotas, Quotas::Pending) {
            return None;
        }
        self.queues.iter().filter_map(|((model, _), q)| q.deadline(self.epoch, self.config_of(model))).min()
    }

    /// Cuts the queues whose oldest request has waited `batchTimeout`.
    pub(super) fn due(&mut self, now: Instant) -> Cuts {
        if matches!(self.quotas, Quotas::Pending) {
            return Cuts::default();
        }
        let timeout = self.setup.config.batch_timeout;
        let due: Vec<QueueKey> = self
            .queues
            .iter()
            .filter(|(_, q)| q.oldest(self.epoch).is_some_and(|o| o + timeout <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Cuts::default();
        for key in due {
            out.add(self.cut(&key, Reason::Timer, now));
        }
        out
    }

    /// Cuts every queue.
    pub(super) fn cut_all(&mut self, reason: Reason, now: Instant) -> Cuts {
        let keys: Vec<QueueKey> = self.queues.keys().cloned().collect();
        let mut out = Cuts::default();
        for key in keys {
            out.add(self.cut(&key, reason, now));
        }
        out
    }

    /// Cuts a queue by the flush rules.
    fn cut(&mut self, key: &QueueKey, reason: Reason, now: Instant) -> Cuts {
        let c = self.config_for(&key.0);
        let (model, record_type) = key;
        let filler = crate::filler::filler_body(model, *record_type);
        let mut out = Cuts::default();
        while let Some(q) = self.queues.get_mut(key) {
            match q.next_cut(&c, reason, self.epoch, now, filler.map(<[u8]>::len)) {
                Cut::Keep => break,
                Cut::Direct { take } => out.direct.extend(q.take_front(take)),
                Cut::Batch { take, fillers } => {
                    let items = q.take_front(take);
                    out.batched += items.len() as u64;
                    out.start.extend(self.form(model.clone(), *record_type, items, fillers, filler));
                }
            }
        }
        if self.queues.get(key).is_some_and(|q| q.items.is_empty()) {
            self.queues.remove(key);
        }
        out
    }

    /// Forms a batch; returns the batches of its model that can start now.
    fn form(
        &mut self,
        model: Arc<str>,
        record_type: InvocationType,
        items: Vec<Pending>,
        fillers: usize,
        filler: Option<&'static [u8]>,
    ) -> Vec<Plan> {
        let id = self.next_batch;
        self.next_batch += 1;
        let job_name = format!("{}-{}-{id}", self.setup.config.job_name_prefix, self.setup.run_id);
        // The token and the input folder allow fewer characters than names (no '.' or '+').
        let token: String = job_name.chars().map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' }).collect();
        let members = self.setup.recorded.then(|| {
            items
                .iter()
                .filter_map(|p| {
                    let native = match p.reply {
                        Reply::FromNative(f) => Some(f),
                        Reply::AsIs => None,
                    };
                    Some(Member {
                        key: p.key.clone()?,
                        record: p.record,
                        tries: p.tries,
                        native,
                        deadline_ms: p.deadline.map(NonZeroU64::get),
                    })
                })
                .collect()
        });
        let mut records = Vec::with_capacity(items.len());
        let mut flights = Vec::with_capacity(items.len());
        let mut kept = Vec::new();
        for p in items {
            if self.setup.keep_bodies {
                kept.push(p.inline_body().cloned().unwrap_or_default());
            }
            let record = p.record;
            let (m, body) = p.into_flight();
            records.push((record, body));
            flights.push(Some(m));
        }
        tracing::debug!(target: "bedrock_batch::batch", batch = id, model = &*model, records = records.len(), fillers, "formed");
        self.running.insert(
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
            output_uri: None,
            keep_retry_bodies: self.setup.keep_retry_bodies,
            commit: None,
        };
        self.waiting.entry(model.clone()).or_default().push_back(plan);
        self.startable(&model)
    }

    /// The batches of a model that wait, while it has free job slots (each takes one). None
    /// while Service Quotas is being asked: its concurrent-jobs quota may be lower than the default.
    fn startable(&mut self, model: &Arc<str>) -> Vec<Plan> {
        if matches!(self.quotas, Quotas::Pending) {
            return Vec::new();
        }
        let max = self.config_for(model).max_concurrent_jobs;
        let mut out = Vec::new();
        loop {
            let running = self.slots.get(model).copied().unwrap_or(0);
            if running >= max {
                return out;
            }
            let Some(plan) = self.waiting.get_mut(model).and_then(VecDeque::pop_front) else {
                self.waiting.remove(model);
                return out;
            };
            *self.slots.entry(model.clone()).or_insert(0) += 1;
            tracing::debug!(target: "bedrock_batch::batch", batch = plan.id, model = &**model, "started");
            out.push(plan);
        }
    }

    /// Whether a batch of this token is cut (waiting, being created or running).
    pub(super) fn has_token(&self, token: &str) -> bool {
        self.running.values().any(|r| &*r.token == token)
    }

    /// Takes up a batch an earlier process left being created or running: returns the keys its
    /// requests work on and the batches that can start now.
    pub(super) fn resume(&mut self, r: Recovered) -> (Vec<Key>, Vec<Plan>) {
        let model: Arc<str> = Arc::from(r.batch.model_id.as_str());
        let (input_uri, resume) = match r.state {
            RecoveredState::Creating { input_uri } => (input_uri.clone(), Resume::Create { input_uri }),
            RecoveredState::Submitted { input_uri, job_arn } => {
                (input_uri.clone(), Resume::Poll { input_uri, job_arn })
            }
        };
        let id = self.next_batch;
        self.next_batch += 1;
        let keys = r.members.iter().map(|m| m.key.clone()).collect();
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
                    bounds: None,
                    deadline: m.deadline_ms.and_then(NonZeroU64::new),
                })
            })
            .collect();
        tracing::debug!(target: "bedrock_batch::batch", batch = id, token = %r.batch.token, "taken up");
        self.running.insert(
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
            output_uri: Some(Arc::from(r.batch.output_uri.as_str())),
            keep_retry_bodies: self.setup.keep_retry_bodies,
            commit: None,
        };
        self.waiting.entry(model.clone()).or_default().push_back(plan);
        (keys, self.startable(&model))
    }

    /// A batch's job exists.
    pub(super) fn created(
        &mut self,
        batch: BatchId,
        job_arn: &Arc<str>,
        input_uri: Arc<str>,
        fillers: u64,
    ) -> Option<Created> {
        let b = self.running.get_mut(&batch)?;
        b.job_arn = Some(job_arn.clone());
        b.input_uri = Some(input_uri);
        if fillers > 0 {
            *self.padded.entry(b.model.clone()).or_default() += fillers;
        }
        Some(Created { model: b.model.clone(), job_name: b.job_name.clone() })
    }

    /// What a job's verdicts (by index in its batch) mean for its requests: a request whose
    /// record may succeed if sent again goes back for another try while it has tries left.
    pub(super) fn judge(&mut self, batch: BatchId, items: Vec<(u32, Verdict)>) -> Option<Judged> {
        let max_attempts = self.setup.config.max_attempts;
        let b = self.running.get_mut(&batch)?;
        let (model, job_arn, input_uri) = (b.model.clone(), b.job_arn.clone(), b.input_uri.clone());
        let mut ended = Vec::with_capacity(items.len());
        let mut retries = Vec::new();
        let mut errors: Vec<(ErrorName, u64)> = Vec::new();
        for (i, verdict) in items {
            let Some(m) = b.members.get_mut(i as usize).and_then(Option::take) else { continue };
            let tries_left = m.tries + 1 < max_attempts;
            let kept = b.kept.get(i as usize).cloned();
            if let Verdict::Error { error, .. } = &verdict {
                match errors.iter_mut().find(|(name, _)| *name == error.name) {
                    Some((_, n)) => *n += 1,
                    None => errors.push((error.name, 1)),
                }
            }
            match verdict {
                Verdict::Answer(ok) => ended.push(Ended { m, result: Ok(ok), keep: true }),
                Verdict::Error { retry: true, body, .. } | Verdict::Missing { body, .. } if tries_left => {
                    retries.push(m.into_retry(&model, kept.or(body), input_uri.as_ref()));
                }
                Verdict::Error { error, .. } => {
                    let keep = !error.name.is_retryable();
                    ended.push(Ended { m, result: Err(error), keep });
                }
                Verdict::Missing { status, .. } => {
                    let record_id = crate::jsonl::record_id(m.record);
                    let e = EngineError::new(
                        ErrorName::RecordMissingException,
                        format!("The batch job ended {status} without an output line for this record."),
                    )
                    .with_job(job_arn.as_deref(), Some(&record_id));
                    ended.push(Ended { m, result: Err(e), keep: false });
                }
                Verdict::Failed(e) => {
                    let record_id = crate::jsonl::record_id(m.record);
                    let e = if e.record_id().is_none() && e.job_arn().is_some() {
                        e.with_job(None, Some(&record_id))
                    } else {
                        e
                    };
                    ended.push(Ended { m, result: Err(e), keep: false });
                }
            }
        }
        let record_errors = job_arn.filter(|_| !errors.is_empty()).map(|arn| (arn, errors));
        Some(Judged { ended, retries, token: b.token.clone(), model, record_errors })
    }

    /// A batch is over (`why`: it ended without its job reporting every record): frees its slot,
    /// fails what it left unanswered, and says which batches of its model can start.
    pub(super) fn finish(&mut self, batch: BatchId, why: Option<EngineError>) -> Option<Finished> {
        let b = self.running.remove(&batch)?;
        let job_arn = b.job_arn.clone();
        let ended = b
            .members
            .into_iter()
            .flatten()
            .map(|m| {
                let e = why
                    .clone()
                    .unwrap_or_else(|| EngineError::internal("The batch ended without an answer for this request."))
                    .with_job(job_arn.as_deref(), None);
                Ended { m, result: Err(e), keep: false }
            })
            .collect();
        if let Some(n) = self.slots.get_mut(&b.model) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.slots.remove(&b.model);
            }
        }
        tracing::debug!(target: "bedrock_batch::batch", batch, token = &*b.token, "finished");
        Some(Finished { ended, token: b.token, start: self.startable(&b.model) })
    }

    /// A batch that starts without a job (a dry run), or is refused before its job (the cost cap):
    /// frees its slot; returns its requests and the batches of its model that can start now.
    pub(crate) fn take_planned(&mut self, batch: BatchId) -> (Vec<InFlight>, Vec<Plan>) {
        let Some(b) = self.running.remove(&batch) else { return (Vec::new(), Vec::new()) };
        if let Some(n) = self.slots.get_mut(&b.model) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.slots.remove(&b.model);
            }
        }
        (b.members.into_iter().flatten().collect(), self.startable(&b.model))
    }

    /// What the requests of a batch may cost in tokens, in its file's order.
    pub(crate) fn bounds_of(&self, batch: BatchId) -> Vec<Option<TokenBounds>> {
        self.running
            .get(&batch)
            .map(|b| b.members.iter().map(|m| m.as_ref().and_then(|m| m.bounds)).collect())
            .unwrap_or_default()
    }

    /// Adds each model's requests to `load`: those queued or in batches waiting for a job slot
    /// (`queued`), those in batches whose job is being created or runs (`in_jobs`), and the
    /// filler records added to its jobs so far.
    pub(super) fn load(&self, load: &mut Loads) {
        for ((model, _), q) in &self.queues {
            load.of(model).queued += q.items.len() as u64;
        }
        // A batch waiting for a slot is among those cut too: its requests still wait.
        let waiting: HashSet<BatchId> = self.waiting.values().flatten().map(|p| p.id).collect();
        for (id, r) in &self.running {
            let n = r.members.iter().flatten().count() as u64;
            let m = load.of(&r.model);
            if waiting.contains(id) {
                m.queued += n;
            } else {
                m.in_jobs += n;
            }
        }
        for (model, n) in &self.padded {
            load.of(model).padded += n;
        }
    }

    /// The batches cut (waiting for a slot, being created, or running) that hold requests of
    /// these callers, or whose key starts with `prefix` (requests taken up after a restart have no
    /// caller here): each one's job ARN (`None` until its job exists), whether it holds nothing
    /// else, and how many such requests it holds.
    pub(super) fn holding(&self, prefix: &str, callers: &HashSet<u64>) -> Vec<Holding> {
        let mut out: Vec<Holding> = self
            .running
            .values()
            .filter_map(|r| {
                let (mut ours, mut others) = (0u64, 0u64);
                for m in r.members.iter().flatten() {
                    let by_caller = matches!(m.caller, Caller::Id(id) if callers.contains(&id));
                    let by_key = m.key.as_ref().is_some_and(|k| k.starts_with(prefix));
                    if by_caller || by_key {
                        ours += 1;
                    } else {
                        others += 1;
                    }
                }
                (ours > 0).then(|| Holding { job_arn: r.job_arn.clone(), only_these: others == 0, requests: ours })
            })
            .collect();
        out.sort_by(|a, b| a.job_arn.cmp(&b.job_arn));
        out
    }

    /// A caller gave up on a queued request: the first request waiting for its key takes its
    /// place (`next` says who), or it is taken out. `Some(true)`: handed over; `None`: not queued.
    pub(super) fn cancel(&mut self, caller: Caller, next: impl FnOnce(&Key) -> Option<Waiter>) -> Option<bool> {
        let (key, pos) = self
            .queues
            .iter()
            .find_map(|(k, q)| Some((k.clone(), q.items.iter().position(|p| p.caller == caller)?)))?;
        let q = self.queues.get_mut(&key)?;
        if let Some(to) = q.items[pos].key.as_ref().and_then(next) {
            to.takes(&mut q.items[pos]);
            return Some(true);
        }
        q.remove(caller);
        if q.items.is_empty() {
            self.queues.remove(&key);
        }
        Some(false)
    }

    /// Takes the requests `due` for on-demand calls (their deadline came): out of their queues, or
    /// out of their batches, with their bodies (kept in memory, in a batch not started yet, in the
    /// group's store, or to read back from the uploaded input file). Each goes as `direct`.
    pub(super) fn take_for_deadline(&mut self, due: &HashSet<Due>) -> Fallen {
        let keys = due.iter().any(|d| matches!(d, Due::Key(_)));
        let is_due = |c: Caller, key: Option<&Key>| match c {
            Caller::Id(id) => due.contains(&Due::Caller(id)),
            Caller::Recovered => keys && key.is_some_and(|k| due.contains(&Due::Key(k.clone()))),
        };
        let mut out = Fallen::default();
        for q in self.queues.values_mut() {
            if !q.items.iter().any(|p| is_due(p.caller, p.key.as_ref())) {
                continue;
            }
            let (go, stay): (VecDeque<Pending>, VecDeque<Pending>) =
                std::mem::take(&mut q.items).into_iter().partition(|p| is_due(p.caller, p.key.as_ref()));
            q.items = stay;
            q.bytes -= go.iter().map(Pending::line_bytes).sum::<usize>();
            out.queued.extend(go.into_iter().map(|p| Pending { direct: true, ..p }));
        }
        self.queues.retain(|_, q| !q.items.is_empty());
        let waiting = &self.waiting;
        for (batch, b) in self.running.iter_mut() {
            let plan = waiting.get(&b.model).and_then(|w| w.iter().find(|p| p.id == *batch));
            for (i, slot) in b.members.iter_mut().enumerate() {
                let Some(m) = slot.as_ref().filter(|m| is_due(m.caller, m.key.as_ref())) else { continue };
                let kept = b.kept.get(i).filter(|k| !k.is_empty()).cloned().map(Body::Inline);
                let body = kept.or_else(|| match plan.and_then(|p| p.records.get(i)) {
                    Some((_, Body::Inline(bytes))) => Some(Body::Inline(bytes.clone())),
                    // A group's request: its body is in the store.
                    Some((_, Body::Row(id))) => Some(Body::Row(*id)),
                    _ => None,
                });
                if body.is_none() && b.input_uri.is_none() {
                    out.later.push(match (m.caller, &m.key) {
                        (Caller::Id(id), _) => Due::Caller(id),
                        (Caller::Recovered, Some(k)) => Due::Key(k.clone()),
                        (Caller::Recovered, None) => continue,
                    });
                    continue;
                }
                let Some(m) = slot.take() else { continue };
                let tries = m.tries;
                let p = m.into_retry(&b.model, None, b.input_uri.as_ref());
                out.sent.push(Pending { tries, direct: true, body: body.unwrap_or(p.body), ..p });
            }
        }
        out
    }

    /// The ARNs of the jobs that run.
    pub(super) fn job_arns(&self) -> Vec<Arc<str>> {
        self.running.values().filter_map(|b| b.job_arn.clone()).collect()
    }

    pub(super) fn is_idle(&self) -> bool {
        self.queues.is_empty() && self.waiting.is_empty() && self.running.is_empty()
    }

    /// Everything held: the queued requests, and the requests in batches.
    pub(super) fn take_everything(&mut self) -> (Vec<Pending>, Vec<InFlight>) {
        let queued = self.queues.drain().flat_map(|(_, q)| q.items).collect();
        self.waiting.clear();
        self.slots.clear();
        let sent = self.running.drain().flat_map(|(_, b)| b.members.into_iter().flatten()).collect();
        (queued, sent)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::BelowMinimum;
    use crate::settle::Success;
    use crate::status::JobStatus;

    fn pending(id: u64, model: &str, len: u32) -> Pending {
        Pending {
            caller: Caller::Id(id),
            operation: Operation::InvokeModel,
            record_type: InvocationType::InvokeModel,
            reply: Reply::AsIs,
            record: id,
            key: None,
            model: Arc::from(model),
            body: Body::Inline(Bytes::from(vec![b'x'; len as usize])),
            body_len: len,
            options: None,
            direct: false,
            tries: 0,
            arrived_ms: 0,
            bounds: None,
            deadline: None,
        }
    }

    fn batches(c: BatchConfig) -> (Batches, Instant) {
        let epoch = Instant::now();
        let setup = BatchSetup {
            config: Arc::new(c),
            run_id: "run".into(),
            keep_bodies: true,
            keep_retry_bodies: false,
            recorded: false,
        };
        (Batches::new(setup, epoch), epoch)
    }

    fn config() -> BatchConfig {
        BatchConfig { min_batch_size: 3, max_batch_size: 4, max_concurrent_jobs: 1, ..BatchConfig::default() }
    }

    #[test]
    fn a_queue_is_cut_when_it_holds_max_batch_size_records() {
        let (mut b, t) = batches(config());
        for i in 1..=3 {
            let cuts = b.push(pending(i, "m", 10), t, false);
            assert_eq!(cuts.batched, 0);
        }
        let cuts = b.push(pending(4, "m", 10), t, false);
        assert_eq!(cuts.batched, 4);
        assert_eq!(cuts.start.len(), 1);
        let plan = &cuts.start[0];
        assert_eq!(plan.records.iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(plan.fillers, 0);
        assert!(plan.job_name.ends_with("-run-1"), "{}", plan.job_name);
        assert!(b.next_deadline().is_none(), "nothing left queued");
    }

    #[test]
    fn a_queue_is_cut_by_the_bytes_of_one_input_file() {
        let c = BatchConfig { max_file_bytes: 1000, min_batch_size: 1, max_batch_size: 100, ..config() };
        let (mut b, t) = batches(c);
        let line = (300 + crate::request::LINE_OVERHEAD) as u32;
        let _ = b.push(pending(1, "m", 300), t, false);
        let _ = b.push(pending(2, "m", 300), t, false);
        let cuts = b.push(pending(3, "m", 1000 - 2 * line), t, false);
        assert_eq!(cuts.batched, 2, "the third would not fit beside the first two");
        assert_eq!(cuts.start[0].records.len(), 2);
    }

    #[test]
    fn the_timer_cuts_a_queue_whose_oldest_request_waited_batch_timeout_and_pads_it() {
        let (mut b, t) = batches(config());
        let _ = b.push(pending(1, "m", 10), t, false);
        let due = b.next_deadline().expect("a deadline");
        assert_eq!(due, t + config().batch_timeout);
        assert_eq!(b.due(t + Duration::from_millis(10)).batched, 0, "not yet");
        let cuts = b.due(due + Duration::from_millis(1));
        assert_eq!(cuts.batched, 1);
        assert_eq!(cuts.start[0].fillers, 2, "padded to the minimum of 3");
    }

    #[test]
    fn below_the_minimum_direct_sends_on_demand_and_wait_keeps_waiting() {
        let direct = BatchConfig { below_minimum: BelowMinimum::Direct, ..config() };
        let (mut b, t) = batches(direct);
        let _ = b.push(pending(1, "m", 10), t, false);
        let cuts = b.cut_all(Reason::Timer, t);
        assert_eq!((cuts.direct.len(), cuts.batched), (1, 0));
        assert!(b.is_idle());

        let wait = BatchConfig { below_minimum: BelowMinimum::Wait, max_wait: Duration::from_secs(600), ..config() };
        let (mut b, t) = batches(wait);
        let _ = b.push(pending(1, "m", 10), t, false);
        assert_eq!(b.due(t + Duration::from_secs(61)).batched, 0, "waits for more, up to maxWait");
        assert_eq!(b.due(t + Duration::from_secs(601)).batched, 1, "then pads");
    }

    #[test]
    fn a_forced_push_sends_what_is_queued() {
        let (mut b, t) = batches(config());
        let cuts = b.push(pending(1, "m", 10), t, true);
        assert_eq!(cuts.batched, 1);
    }

    #[test]
    fn batches_beyond_max_concurrent_jobs_wait_for_a_slot() {
        let (mut b, t) = batches(config());
        let first = b.cut_all(Reason::Forced, t);
        assert!(first.start.is_empty());
        for i in 1..=8 {
            let _ = b.push(pending(i, "m", 10), t, false);
        }
        // Two full batches; one job slot.
        assert_eq!(b.running.len(), 2);
        assert_eq!(b.waiting.get("m").map(VecDeque::len), Some(1));
        let done = b.finish(1, None).expect("batch 1");
        assert_eq!(done.ended.len(), 4, "its requests had no verdict: they fail");
        assert_eq!(done.start.len(), 1, "the waiting batch starts");
        assert_eq!(done.start[0].id, 2);
    }

    #[test]
    fn a_retryable_verdict_goes_back_for_another_try_until_max_attempts() {
        let (mut b, t) = batches(BatchConfig { max_attempts: 2, ..config() });
        for i in 1..=4 {
            let _ = b.push(pending(i, "m", 10), t, false);
        }
        let arn: Arc<str> = Arc::from("arn:job");
        b.created(1, &arn, Arc::from("s3://b/in/"), 0).expect("running");
        let throttled = || EngineError::new(ErrorName::ThrottlingException, "slow down");
        let judged = b
            .judge(
                1,
                vec![
                    (0, Verdict::Answer(Success::default())),
                    (1, Verdict::Error { error: throttled(), retry: true, body: None }),
                    (2, Verdict::Missing { status: JobStatus::PartiallyCompleted, body: None }),
                    (3, Verdict::Error { error: EngineError::validation("bad"), retry: false, body: None }),
                ],
            )
            .expect("judged");
        assert_eq!(judged.ended.len(), 2);
        assert_eq!(judged.retries.len(), 2);
        let (job, errors) = judged.record_errors.as_ref().expect("two records answered with errors");
        assert_eq!(&**job, "arn:job");
        assert_eq!(errors, &[(ErrorName::ThrottlingException, 1), (ErrorName::ValidationException, 1)]);
        let again = &judged.retries[0];
        assert_eq!((again.tries, again.record), (1, 2));
        assert_eq!(again.inline_body().map(Bytes::len), Some(10), "its kept body goes again");
        // A second failure of the retried request is final.
        let mut b2 = batches(BatchConfig { max_attempts: 2, ..config() }).0;
        let mut p = pending(9, "m", 10);
        p.tries = 1;
        let cuts = b2.push(p, t, true);
        let judged = b2
            .judge(cuts.start[0].id, vec![(0, Verdict::Error { error: throttled(), retry: true, body: None })])
            .unwrap();
        assert!(judged.retries.is_empty());
        assert_eq!(judged.ended.len(), 1);
        assert!(!judged.ended[0].keep, "a retryable error is not kept as the key's answer");
    }

    #[test]
    fn a_request_whose_deadline_came_leaves_its_queue_or_its_batch_and_the_batch_answer_is_dropped() {
        let (mut b, now) = batches(BatchConfig { max_batch_size: 2, ..config() });
        b.setup.keep_bodies = false;
        // Two fill a batch (cut, not started: no job slot asked yet); a third waits in the queue.
        let cuts = b.push(pending(1, "m", 10), now, false);
        assert!(cuts.start.is_empty());
        let cuts = b.push(pending(2, "m", 10), now, false);
        assert_eq!(cuts.start.len(), 1);
        let plan = &cuts.start[0];
        b.push(pending(3, "m", 10), now, false);
        // Started, without an input file yet: the bodies are in the plan the job task got, not here.
        let fallen = b.take_for_deadline(&HashSet::from([Due::Caller(1), Due::Caller(3)]));
        assert_eq!(fallen.queued.iter().map(|p| p.caller).collect::<Vec<_>>(), [Caller::Id(3)]);
        assert!(fallen.queued[0].direct);
        assert_eq!(fallen.later, [Due::Caller(1)], "no body to read yet: later");
        b.created(plan.id, &Arc::from("arn"), Arc::from("s3://b/in/"), 0);
        let fallen = b.take_for_deadline(&HashSet::from([Due::Caller(1)]));
        assert_eq!(fallen.sent.len(), 1);
        assert!(matches!(&fallen.sent[0].body, Body::Stored { record: 1, .. }));
        assert!(fallen.sent[0].direct);
        // The job's answer for it is dropped; the other member's arrives.
        let ok = crate::settle::Success::default();
        let judged = b.judge(plan.id, vec![(0, Verdict::Answer(ok.clone())), (1, Verdict::Answer(ok))]).unwrap();
        assert_eq!(judged.ended.iter().map(|e| e.m.caller).collect::<Vec<_>>(), [Caller::Id(2)]);
    }

    #[test]
    fn a_cancelled_request_leaves_its_queue_or_hands_its_place_to_a_waiter() {
        let (mut b, t) = batches(config());
        let mut keyed = pending(1, "m", 10);
        keyed.key = Some(Box::from("k:x"));
        let _ = b.push(keyed, t, false);
        let _ = b.push(pending(2, "m", 10), t, false);
        assert_eq!(
            b.cancel(Caller::Id(1), |_| Some(Waiter { id: 7, operation: Operation::InvokeModelWithResponseStream })),
            Some(true)
        );
        assert_eq!(b.cancel(Caller::Id(2), |_| None), Some(false));
        assert_eq!(b.cancel(Caller::Id(2), |_| None), None);
        let cuts = b.cut_all(Reason::Forced, t);
        assert_eq!(cuts.start[0].records.iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![7]);
    }
}
