//! The worker: one task that owns the engine's state (the shape of tower-batch-control's worker).
//! Handles talk to it with [`Command`]s; job tasks report with [`Report`]s; on-demand calls and
//! store calls are tasks whose results come back when they end. Its state is a few parts, each
//! owning its data and returning what should happen next; this loop does it:
//! - [`batches`]: the queues, the batches waiting for a job slot, the running batches;
//! - [`on_demand`]: the calls sent one request each;
//! - [`keys`]: with a store, the keys worked on, their occurrences, the lookups;
//! - [`jobs`]: the job table;
//! - [`ledger`]: how many requests are in each state, the only place a count changes.
//!
//! A group sharing a store adds two seams instead of roles in the batching code: where batchable
//! requests go ([`Queueing`]: the local queues, or the group's queue in the store, [`member`]) and
//! where outcomes go ([`Delivery`]: the callers, or the store, [`lead`]).
//!
//! If the worker stops for any reason (panic, the engine dropped, `destroy()`), every request it
//! still holds is settled with an error: none is left pending.

mod admit;
mod batches;
mod deadlines;
mod delivery;
mod dry_run;
mod ended;
mod jobs;
mod keys;
mod lead;
mod ledger;
mod member;
mod on_demand;
mod setup;
mod signals;
mod spend;
mod tasks;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::backend::DirectBackend;
use crate::config::FlexMode;
use crate::error::{EngineError, ErrorName};
use crate::job::{self, JobContext, Plan, Report};
use crate::plan::RunPlan;
use crate::pricing::Tier;
use crate::queue::{Caller, InFlight, Pending, Reason};
use crate::request::{InvokeOptions, Submission};
use crate::settle::{Settlement, Sink, Success};
use crate::stats::Published;
use crate::store::writer::{Opened, Opening, StoreHandle};
use crate::store::{Finished, Key, Recovered, Write};

pub(crate) use admit::ModelRule;
use admit::{Admission, Checked, Costs};
pub use batches::Holding;
use batches::{BatchSetup, Batches, Cuts};
use deadlines::{Deadlines, Due, FallBack};
use delivery::{Delivered, Delivery};
use dry_run::DryRun;
use ended::Ended;
use jobs::JobTable;
use keys::{Admitted, Keys};
use lead::{Feed, Lead, Then};
use ledger::{Ledger, Move};
use member::Member;
use on_demand::{OnDemand, Outcome, Tiers};
pub(crate) use setup::{Command, Role, Setup, SpendSetup};
pub(crate) use signals::GroupSignals;
pub(crate) use spend::refusal;
use spend::Spend;
use tasks::{Done, Kind, Tasks};

/// How long Service Quotas may take to answer before the defaults apply.
const QUOTAS_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages handled before the worker looks at its timers and publishes again.
const DRAIN: usize = 256;
/// How often a member reads its settled requests without being woken (a lost notification).
const COLLECT_EVERY: Duration = Duration::from_secs(2);

/// Where batchable requests go.
enum Queueing {
    /// The local queues (alone, or a group's leader).
    Local,
    /// The group's queue in the store.
    Group(Member),
}

pub(crate) struct Worker {
    queueing: Queueing,
    delivery: Delivery,
    ledger: Ledger,
    admission: Admission,
    keys: Keys,
    batches: Option<Batches>,
    on_demand: OnDemand,
    /// When requests with a deadline leave batch (batch mode).
    deadlines: Option<Deadlines>,
    /// Whether Service Quotas was asked (or need not be).
    quotas_asked: bool,
    /// `flush()` came while requests waited for the lookup of their keys: they are flushed too,
    /// once routed.
    flush_after_lookups: bool,
    /// A leader: the deadline fallbacks already added to its client's stats.
    led_fallbacks_published: u64,
    /// A leader reads the batches a client of its group adopted (its queue waits meanwhile).
    taking_up: bool,
    /// A read of the group's queue that ended while batches were taken up: handled after them.
    fed_later: Option<(Result<Vec<crate::store::QueuedRequest>, EngineError>, usize)>,
    jobs: JobTable,
    tasks: Tasks,
    jobs_ctx: Option<JobContext>,
    direct: Option<Arc<dyn DirectBackend>>,
    store: Option<StoreHandle>,
    sink: Arc<dyn Sink>,
    published: Arc<Published>,
    epoch: Instant,
    /// The store being opened, until it is; the commands that wait for it, in order.
    opening: Option<Opening>,
    held: Option<Vec<Command>>,
    /// Why the store could not be opened: every request is rejected with it.
    store_failed: Option<EngineError>,
    closing: bool,
    /// The worker stops at the end of this round (a leader that lost its lead).
    stopped: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The run's committed spend under a cost cap.
    spend: Spend,
    /// A dry run's tally, and the requests it holds.
    dry: Option<DryRun>,
}

impl Worker {
    pub(crate) fn new(s: Setup) -> Worker {
        let epoch = Instant::now();
        let leads = matches!(s.role, Role::Leader { .. });
        let grouped = !matches!(s.role, Role::Alone);
        let (queueing, delivery, keys) = match s.role {
            Role::Alone => (Queueing::Local, Delivery::Callers, Keys::new(s.known_keys)),
            Role::Member(signals) => {
                (Queueing::Group(Member::new(signals)), Delivery::Callers, Keys::new(s.known_keys))
            }
            // The keys this term answers (a request of the same key queued meanwhile is looked up).
            Role::Leader { signals, check_every } => {
                (Queueing::Local, Delivery::Group(Lead::new(signals, check_every)), Keys::for_leader())
            }
        };
        let batch = s.batch.map(Arc::new);
        let batches = batch.clone().map(|config| {
            let setup = BatchSetup {
                // A group's bodies stay in the store until their requests settle.
                keep_bodies: !s.rereads_input && !leads,
                keep_retry_bodies: config.cleanup && s.rereads_input && !leads,
                recorded: s.store.is_some(),
                run_id: s.run_id,
                config,
            };
            Batches::new(setup, epoch)
        });
        let flex = batch.as_ref().map(|b| (b.flex, b.flex_patience));
        let deadlines = batch.as_ref().map(|b| Deadlines::new(b.fallback_margin, b.deadline));
        let mut w = Worker {
            queueing,
            delivery,
            ledger: Ledger::default(),
            admission: Admission::new(
                s.models,
                batch,
                s.store.is_some(),
                s.max_queued,
                (s.spend.dry_run || s.spend.max_cost_usd.is_some())
                    .then(|| Costs { capped: s.spend.max_cost_usd.is_some(), pricing: s.spend.pricing.clone() }),
            ),
            spend: Spend::new(s.spend.max_cost_usd, s.spend.pricing, s.spend.committed_usd, grouped),
            dry: s.spend.dry_run.then(DryRun::default),
            keys,
            batches,
            deadlines,
            quotas_asked: false,
            flush_after_lookups: false,
            led_fallbacks_published: 0,
            taking_up: false,
            fed_later: None,
            on_demand: OnDemand::new(
                s.direct_concurrency,
                flex.map(|(mode, patience)| Tiers::new(mode, patience, s.spend.flex_models.clone())),
            ),
            jobs: JobTable::default(),
            tasks: Tasks::default(),
            jobs_ctx: s.jobs,
            direct: s.direct,
            store: s.store,
            sink: s.sink,
            published: s.published,
            epoch,
            held: s.opening.is_some().then(Vec::new),
            opening: s.opening,
            store_failed: None,
            closing: false,
            stopped: false,
            close_waiters: Vec::new(),
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
        // A member is woken when requests were settled, a leader when requests were queued.
        let (signals, every) = match (&self.queueing, &self.delivery) {
            (Queueing::Group(m), _) => (Some((m.signals().clone(), false)), COLLECT_EVERY),
            (_, Delivery::Group(l)) => (Some((l.signals().clone(), true)), l.check_every),
            _ => (None, COLLECT_EVERY),
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.stopped {
                return;
            }
            let deadline = match (self.batches.as_ref().and_then(Batches::next_deadline), self.next_fall_back()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
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
                    Some(Command::Destroy { stop_jobs }) => return self.destroy(stop_jobs),
                    Some(c) => self.on_command(c),
                    None => return,
                },
                ended = self.tasks.next(), if !self.tasks.is_empty() => {
                    // A task's last reports are sent before it ends: take them in first.
                    while let Ok(r) = reports.try_recv() {
                        self.on_report(r);
                    }
                    self.on_task_end(ended);
                }
                _ = sleep_until(deadline), if deadline.is_some() => self.on_timer(),
                _ = async {
                    match &signals {
                        Some((g, true)) => g.queued.notified().await,
                        Some((g, false)) => g.settled.notified().await,
                        None => std::future::pending().await,
                    }
                }, if signals.is_some() => self.on_signal(true),
                _ = tick.tick(), if signals.is_some() => self.on_signal(false),
            }
            for _ in 0..DRAIN {
                if let Ok(r) = reports.try_recv() {
                    self.on_report(r);
                    continue;
                }
                match commands.try_recv() {
                    Ok(Command::Destroy { stop_jobs }) => return self.destroy(stop_jobs),
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
                // A dry run sends nothing: what it holds ends now.
                self.release_dry_run("The client was closed: a dry run (dryRun: true) sends nothing.");
            }
            Command::Plan(reply) => self.plan(reply),
            Command::Adopt(r) => self.resume(r),
            Command::Holding(prefix, callers, reply) => {
                let callers: std::collections::HashSet<u64> = callers.into_iter().collect();
                let held = match (&self.queueing, &self.batches) {
                    (Queueing::Local, Some(b)) => Some(b.holding(&crate::store::explicit_key(&prefix), &callers)),
                    (Queueing::Local, None) => Some(Vec::new()),
                    _ => None,
                };
                let _ = reply.send(held);
            }
            Command::Load(reply) => {
                let _ = reply.send(self.load());
            }
            Command::Destroy { .. } => unreachable!("handled by the loop"),
        }
    }

    /// What each model's requests are doing now: in the queues, batches, on-demand calls, key
    /// lookups and the group's hands (a leader's batches are its group's, not counted here).
    fn load(&self) -> Vec<crate::stats::ModelLoad> {
        let mut load = crate::stats::Loads::default();
        if let Some(b) = &self.batches {
            b.load(&mut load);
        }
        self.on_demand.load(&mut load);
        self.keys.load(&mut load);
        if let Queueing::Group(m) = &self.queueing {
            m.load(&mut load);
        }
        load.into_vec()
    }

    /// Checks a request and sends it on its way; a bad one is rejected alone.
    fn admit(&mut self, s: Submission) {
        let (id, deadline_ms) = (s.id, s.deadline_ms);
        self.step(Move::Receive, 1);
        let checked = if self.closing {
            Err(EngineError::closed(crate::error::CLIENT_CLOSED))
        } else if let Some(e) = &self.store_failed {
            Err(e.clone())
        } else {
            self.admission.check(s, self.ledger.queued())
        };
        let Checked { mut p, content } = match checked {
            Ok(c) => c,
            Err(e) => {
                self.step(Move::Drop, 1);
                return self.settle(vec![Settlement { id, result: Err(e) }]);
            }
        };
        if let Some(digest) = content {
            p.key = Some(self.keys.content_key(&digest));
        }
        if !p.direct {
            self.watch_deadline(&mut p, Due::Caller(id), deadline_ms);
        }
        match self.keys.admit(p) {
            Admitted::Joined => self.step(Move::Send, 1),
            Admitted::LookUp => {}
            Admitted::Route(p) | Admitted::Relook(p) => self.route(p),
        }
    }

    /// Puts a request where batchable requests go, or sends it on-demand when batch cannot serve it.
    fn route(&mut self, mut p: Pending) {
        // `direct`: batch cannot take it; else it may go on Flex instead (`batch.flex: "prefer"`).
        p.direct |= p.options.as_deref().is_some_and(InvokeOptions::needs_on_demand);
        let on_demand = p.direct
            || (p.caller != Caller::Recovered
                && self.on_demand.tiers.as_mut().is_some_and(|t| {
                    t.mode == FlexMode::Prefer && t.prefers_flex(&p.model, Instant::now().into_std())
                }));
        if !on_demand && !self.quotas_asked {
            self.read_quotas();
        }
        let batches = match &mut self.batches {
            Some(b) if !on_demand => b,
            _ => {
                self.step(Move::Send, 1);
                self.ledger.sent_direct(1);
                self.on_demand.push(p);
                return self.start_calls();
            }
        };
        match &mut self.queueing {
            Queueing::Group(member) if p.caller != Caller::Recovered => {
                member.hand(p);
                self.step(Move::Send, 1);
            }
            _ => {
                let cuts = batches.push(p, Instant::now(), self.closing);
                self.apply(cuts);
            }
        }
    }

    /// Flex stayed throttled for a request batch can take (`batch.flex: "prefer"`): it goes into
    /// its model's batch, and so do the model's next requests for a patience.
    fn spill(&mut self, m: InFlight, model: &Arc<str>, body: bytes::Bytes) {
        let now = Instant::now();
        if let Some(t) = &mut self.on_demand.tiers {
            t.spilled(model, now.into_std());
        }
        tracing::info!(target: "bedrock_batch::tier", model = &**model, "flex stayed throttled: into batch");
        // Its Flex call was never answered: its commitment goes back (its batch commits anew).
        let released = self.spend.release_call(model, m.bounds, Tier::Flex);
        self.persist_spend(released);
        let p = m.into_pending(model, body);
        self.step(Move::Rejoin, 1);
        match &mut self.queueing {
            Queueing::Group(member) => {
                member.hand(p);
                self.step(Move::Send, 1);
            }
            Queueing::Local => match &mut self.batches {
                Some(b) => {
                    let cuts = b.push(p, now, self.closing);
                    self.apply(cuts);
                }
                // Only batch mode prefers Flex; no request is left unsettled either way.
                None => {
                    self.step(Move::Send, 1);
                    self.on_demand.push(Pending { direct: true, ..p });
                }
            },
        }
    }

    fn cancel(&mut self, id: u64) {
        let caller = Caller::Id(id);
        let keys = &mut self.keys;
        if let Queueing::Group(member) = &mut self.queueing {
            if member.cancel(id, |key| keys.hand_over(key)).is_some() {
                // It was in the group's hands; a request waiting for its key may have taken its place.
                return self.step(Move::Settle, 1);
            }
        }
        let handed = match self.batches.as_mut().and_then(|b| b.cancel(caller, |key| keys.hand_over(key))) {
            Some(handed) => Some(handed),
            None => self.keys.cancel_lookup(caller),
        };
        if let Some(handed) = handed {
            self.step(Move::Drop, 1);
            if handed {
                self.step(Move::Rejoin, 1);
            }
        }
    }

    fn flush_all(&mut self, reason: Reason) {
        // Requests still waiting for their keys' lookup (every keyed request of a group's member)
        // are sent as soon as they are routed.
        if !self.keys.is_idle() {
            self.flush_after_lookups = true;
        }
        if let Queueing::Group(member) = &mut self.queueing {
            if member.flush() {
                self.start_enqueue();
            }
        }
        if let Some(b) = &mut self.batches {
            let cuts = b.cut_all(reason, Instant::now());
            self.apply(cuts);
        }
    }

    fn on_timer(&mut self) {
        if let Some(b) = &mut self.batches {
            let cuts = b.due(Instant::now());
            self.apply(cuts);
        }
        self.fall_back_due();
    }

    /// Reads Bedrock's batch quotas from Service Quotas when the application left `minBatchSize` or
    /// `maxConcurrentJobs` to them (alone, or as a group's leader; not in a dry run), once, when
    /// the first request goes to a queue (a client that sends nothing calls nobody).
    fn read_quotas(&mut self) {
        self.quotas_asked = true;
        let (Some(b), Some(ctx), Queueing::Local, None) =
            (&mut self.batches, &self.jobs_ctx, &self.queueing, &self.dry)
        else {
            return;
        };
        let given = b.config().given;
        if given.min_batch_size && given.max_concurrent_jobs {
            return;
        }
        b.expect_quotas();
        let backend = ctx.backend.clone();
        self.tasks.spawn(Kind::Quotas, async move {
            let read = tokio::time::timeout(QUOTAS_TIMEOUT, backend.batch_quotas()).await.unwrap_or_else(|_| {
                Err(EngineError::new(ErrorName::ServiceUnavailableException, "Service Quotas did not answer in time."))
            });
            Done::Quotas(read)
        });
    }

    /// Service Quotas answered: each model's settings follow it from now on (the defaults when it
    /// could not be read, with one warning); queues that waited for it are cut when due.
    fn on_quotas(&mut self, result: Result<Option<Vec<(String, f64)>>, EngineError>) {
        let Some(b) = &mut self.batches else { return };
        let start = match result {
            Ok(table) => b.set_quotas(table.map(crate::quotas::QuotaTable::new)),
            Err(e) => {
                let c = b.config();
                let message = format!(
                    "bedrock-batch-bridge: could not read Bedrock's batch quotas from Service Quotas ({}: {}); using minBatchSize {} and maxConcurrentJobs {}.",
                    e.name.as_str(),
                    e.message,
                    c.min_batch_size,
                    c.max_concurrent_jobs
                );
                let start = b.set_quotas(None);
                tracing::warn!(target: "bedrock_batch::quotas", "{message}");
                self.sink.warning(&message);
                start
            }
        };
        self.start_jobs(start);
        self.on_timer();
    }

    /// Tells the application what the batching part found worth a warning.
    fn tell_warnings(&mut self) {
        let Some(b) = &mut self.batches else { return };
        for w in b.take_warnings() {
            tracing::warn!(target: "bedrock_batch::quotas", "{w}");
            self.sink.warning(&w);
        }
    }

    /// When the next request with a deadline leaves batch.
    fn next_fall_back(&self) -> Option<Instant> {
        self.deadlines.as_ref().and_then(Deadlines::next)
    }

    /// Gives a request going to batch its deadline (`given` by its caller, else the client's
    /// default) and watches it: when the deadline comes near, it leaves batch; when it is already
    /// too close for a job, it goes on-demand now. In a group, the leader watches it: a member
    /// only passes the deadline on with the request, and the leader watches the requests it reads
    /// from the group's queue (`given` is then the stored deadline).
    fn watch_deadline(&mut self, p: &mut Pending, due: Due, given: Option<u64>) {
        let Some(d) = &mut self.deadlines else { return };
        let now_ms = deadlines::now_ms();
        let Some(ms) = d.deadline(given, now_ms) else { return };
        p.deadline = std::num::NonZeroU64::new(ms);
        match d.fall_back(ms, Instant::now(), now_ms) {
            FallBack::At(_) if matches!(due, Due::Caller(_)) && matches!(self.queueing, Queueing::Group(_)) => {}
            FallBack::At(at) => d.add(due, at),
            FallBack::Now => {
                // Too close for a job: on-demand at once.
                p.direct = true;
                self.ledger.deadline_fallbacks(1);
            }
        }
    }

    /// Watches the deadline of a request taken up from the store (a leader reads it from its
    /// group's queue; a process takes up a batch an earlier one left).
    fn watch_stored_deadline(&mut self, p: &mut Pending) {
        if let (Some(ms), Some(key)) = (p.deadline, &p.key) {
            let due = Due::Key(key.clone());
            self.watch_deadline(p, due, Some(ms.get()));
        }
    }

    /// Sends on-demand the requests whose deadline came and whose answer has not: out of their
    /// queues, or out of their batches (whose answer for them is then dropped).
    fn fall_back_due(&mut self) {
        let now = Instant::now();
        let Some(d) = &mut self.deadlines else { return };
        let due = d.take_due(now);
        if due.is_empty() {
            return;
        }
        let margin = d.margin();
        let Some(b) = &mut self.batches else { return };
        let fallen = b.take_for_deadline(&due.into_iter().collect());
        for due in fallen.later {
            d.add(due, now + Duration::from_secs(1));
        }
        let (queued, sent) = (fallen.queued.len() as u64, fallen.sent.len() as u64);
        if queued + sent == 0 {
            return;
        }
        tracing::info!(target: "bedrock_batch::deadline", queued, sent, "deadline fallbacks");
        self.step(Move::Send, queued);
        self.ledger.sent_direct(queued + sent);
        self.ledger.deadline_fallbacks(queued + sent);
        // Flex may throttle for half the margin; the rest is left for standard.
        for p in fallen.queued.into_iter().chain(fallen.sent) {
            self.on_demand.push_within(p, margin / 2);
        }
        self.start_calls();
    }

    /// Sends what cutting queues produced: on-demand calls, and batches with a free job slot.
    fn apply(&mut self, cuts: Cuts) {
        let direct = cuts.direct.len() as u64;
        self.step(Move::Send, cuts.batched + direct);
        if direct > 0 {
            self.ledger.sent_direct(direct);
            for p in cuts.direct {
                // Below the minimum: on-demand for good (after Flex, standard; never back to batch).
                self.on_demand.push(Pending { direct: true, ..p });
            }
            self.start_calls();
        }
        self.start_jobs(cuts.start);
    }

    /// Takes up a batch an earlier process left being created or running.
    fn resume(&mut self, r: Recovered) {
        let Some(b) = &mut self.batches else { return };
        let deadlines: Vec<(Key, u64)> =
            r.members.iter().filter_map(|m| Some((m.key.clone(), m.deadline_ms?))).collect();
        let (keys, start) = b.resume(r);
        self.step(Move::Resume, keys.len() as u64);
        for key in &keys {
            self.keys.working_on(key);
        }
        // Its callers' deadlines still hold: each leaves the batch in time (now, if it has passed).
        if let Some(d) = &mut self.deadlines {
            let (now, now_ms) = (Instant::now(), deadlines::now_ms());
            for (key, ms) in deadlines {
                let at = match d.fall_back(ms, now, now_ms) {
                    FallBack::At(at) => at,
                    FallBack::Now => now,
                };
                d.add(Due::Key(key), at);
            }
        }
        self.start_jobs(start);
    }

    /// Puts requests back in their queues for another try.
    fn requeue(&mut self, mut items: Vec<Pending>) {
        if items.is_empty() {
            return;
        }
        self.step(Move::Retry, items.len() as u64);
        match (&self.delivery, &mut self.batches) {
            (Delivery::Group(_), _) => {
                if let Some(s) = &self.store {
                    s.write(Write::Release(items.iter().map(|p| p.record).collect()));
                }
                items.iter_mut().for_each(Lead::retry);
            }
            (Delivery::Callers, Some(b)) => {
                for p in items.iter_mut().filter(|p| p.caller == Caller::Recovered) {
                    b.renumber(p);
                }
            }
            (Delivery::Callers, None) => {}
        }
        for p in items {
            self.route(p);
        }
        if self.closing {
            self.flush_all(Reason::Forced);
        }
    }

    // ===== tasks =====

    /// Starts the batches that have a job slot: a job task each (after the cost cap let its
    /// upper-bound cost through), or, in a dry run, a tally.
    fn start_jobs(&mut self, plans: Vec<Plan>) {
        let mut plans: VecDeque<Plan> = plans.into();
        while let Some(mut plan) = plans.pop_front() {
            let Some(b) = &mut self.batches else { return };
            if let Some(dry) = &mut self.dry {
                let (members, next) = b.take_planned(plan.id);
                dry.batch(&plan, members);
                plans.extend(next);
                continue;
            }
            match self.spend.admit_batch(&plan, b.bounds_of(plan.id)) {
                Ok(admitted) => {
                    plan.commit = admitted.commit;
                    self.persist_spend(admitted.persist);
                }
                Err(e) => {
                    let (members, next) = b.take_planned(plan.id);
                    let refused = members.into_iter().map(|m| Ended { m, result: Err(e.clone()), keep: false });
                    self.deliver(refused.collect(), None, None);
                    plans.extend(next);
                    continue;
                }
            }
            let Some(ctx) = &self.jobs_ctx else { return };
            let (ctx, id) = (ctx.clone(), plan.id);
            self.tasks.spawn(Kind::Job(id), async move {
                job::run(ctx, plan).await;
                Done::Job(id)
            });
        }
    }

    /// Makes the on-demand calls that fit (after the cost cap let each through), or, in a dry
    /// run, tallies them.
    fn start_calls(&mut self) {
        loop {
            let calls = self.on_demand.startable();
            if calls.is_empty() {
                return;
            }
            for mut call in calls {
                let n = call.n;
                if let Some(dry) = &mut self.dry {
                    if let Some(m) = self.on_demand.done(n) {
                        let tier = if call.flex.is_some() { Tier::Flex } else { Tier::Standard };
                        dry.on_demand(&call.model, m, &call.body, tier);
                    }
                    continue;
                }
                // Under "fallback" a Flex call may end on standard: its upper bound is standard's.
                let tier = match call.flex.map(|f| f.then) {
                    Some(on_demand::AfterFlex::Batch) => Tier::Flex,
                    _ => Tier::Standard,
                };
                match self.spend.admit_call(&call.model, call.bounds, tier) {
                    Ok(admitted) => {
                        call.commit = admitted.commit;
                        self.persist_spend(admitted.persist);
                    }
                    Err(e) => {
                        if let Some(m) = self.on_demand.done(n) {
                            self.deliver(vec![Ended { m, result: Err(e), keep: false }], None, None);
                        }
                        continue;
                    }
                }
                let (direct, rows) = (self.direct.clone(), self.store.clone());
                let reread = self.jobs_ctx.as_ref().map(|c| c.backend.clone());
                let model = call.model.clone();
                self.tasks.spawn(Kind::Direct(n), async move {
                    Done::Direct(n, model, call.run(direct, reread, rows).await)
                });
            }
            // Calls a refusal or a dry run made room for start now; a full set waits for an end.
            if self.dry.is_none() && !self.spend.capped() {
                return;
            }
        }
    }

    fn start_lookup(&mut self) {
        let (Some(store), Some(keys)) = (self.store.clone(), self.keys.start_lookup()) else { return };
        self.tasks.spawn(Kind::Lookup, async move { Done::Lookup(store.lookup(keys).await) });
    }

    fn start_enqueue(&mut self) {
        let Queueing::Group(member) = &mut self.queueing else { return };
        let (Some(store), Some(rows)) = (self.store.clone(), member.start_enqueue()) else { return };
        self.tasks
            .spawn(Kind::Enqueue, async move { Done::Enqueued(store.write_and_wait(Write::Enqueue(rows)).await) });
    }

    /// A group's signal (`woken`) or its timer: a member reads its settled requests; a leader reads
    /// the group's queue (and, on the timer, checks its lead).
    fn on_signal(&mut self, woken: bool) {
        let Some(store) = self.store.clone() else { return };
        if let Queueing::Group(member) = &mut self.queueing {
            if member.collect(woken) {
                self.tasks.spawn(Kind::Shared, async move { Done::Collected(store.call(|s| s.take_settled()).await) });
            }
            return;
        }
        if let Delivery::Group(lead) = &mut self.delivery {
            if !woken && lead.check() {
                let store = store.clone();
                self.tasks.spawn(Kind::Shared, async move { Done::Checked(store.call(|s| s.check_lead()).await) });
            }
            self.start_take_up();
            self.feed();
        }
    }

    /// A leader asked to take up batches a client of its group adopted: reads them from the store
    /// (once at a time); the group's queue waits until they are taken up.
    fn start_take_up(&mut self) {
        let (Delivery::Group(lead), Some(store)) = (&self.delivery, &self.store) else { return };
        if self.taking_up || !lead.signals().take_up.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.taking_up = true;
        let store = store.clone();
        self.tasks.spawn(Kind::Shared, async move { Done::TakenUp(store.call(|s| s.recover()).await) });
    }

    /// A leader: reads more of the group's queue as its queues have room.
    fn feed(&mut self) {
        // Requests queued after a job was adopted may be of its records: they wait until it is taken up.
        if self.taking_up {
            return;
        }
        let (Delivery::Group(lead), Some(b), Some(store)) = (&mut self.delivery, &self.batches, &self.store) else {
            return;
        };
        match lead.feed(self.ledger.queued(), b.config()) {
            Feed::Wait => {}
            Feed::Flush => self.flush_group(),
            Feed::Read { after, room } => {
                let store = store.clone();
                self.tasks.spawn(Kind::Shared, async move {
                    Done::Fed(store.call(move |s| s.feed(after, room)).await, room)
                });
            }
        }
    }

    fn flush_group(&mut self) {
        if let Delivery::Group(lead) = &self.delivery {
            lead.flushing();
        }
        self.flush_all(Reason::Forced);
    }

    fn on_task_end(&mut self, ended: tasks::TaskEnd) {
        match ended {
            tasks::TaskEnd::Done(done) => self.on_done(done),
            tasks::TaskEnd::Failed(kind, e) => {
                let why = EngineError::internal(format!("An engine task failed: {e}"));
                match kind {
                    Some(Kind::Job(batch)) => self.finish_batch(batch, Some(why)),
                    Some(Kind::Direct(n)) => {
                        self.on_done(Done::Direct(n, Arc::from(""), Outcome::Answered(Err(why), Tier::Standard)))
                    }
                    Some(Kind::Lookup) => self.on_done(Done::Lookup(Err(why))),
                    Some(Kind::Enqueue) => self.on_done(Done::Enqueued(Err(why))),
                    Some(Kind::Shared) => {
                        // Whichever it was, start over from a clean state.
                        tracing::error!(error = %why, "a task of the shared store failed");
                        if let Queueing::Group(m) = &mut self.queueing {
                            let _ = m.collected(Ok(Vec::new()));
                        }
                        if let Delivery::Group(lead) = &mut self.delivery {
                            lead.reset();
                        }
                    }
                    Some(Kind::Quotas) => self.on_done(Done::Quotas(Err(why))),
                    Some(Kind::Counting) => {
                        tracing::error!(error = %why, "a dry run's counting failed");
                        self.release_dry_run(
                            "This client is a dry run (dryRun: true): nothing was sent; its plan could not be made.",
                        );
                    }
                    None => {}
                }
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Job(batch) => {
                // The task ended without finishing (the poller went away).
                self.finish_batch(batch, Some(EngineError::closed("The engine stopped before this batch ended.")));
            }
            Done::Direct(n, model, outcome) => {
                if let Some(m) = self.on_demand.done(n) {
                    match outcome {
                        Outcome::Answered(result, tier) => {
                            let tier = self.spend.answered_on_demand(&model, tier, &result, m.bounds);
                            self.ledger.answered(tier, 1);
                            let keep = result.is_ok();
                            self.deliver(vec![Ended { m, result, keep }], None, None);
                        }
                        Outcome::Spill(body) => self.spill(m, &model, body),
                    }
                }
                self.start_calls();
            }
            Done::Lookup(result) => self.on_lookup(result),
            Done::Enqueued(result) => {
                if let Queueing::Group(member) = &mut self.queueing {
                    let failed = member.enqueued(result);
                    self.deliver(failed, None, None);
                }
                self.start_enqueue();
            }
            Done::Collected(result) => {
                let Queueing::Group(member) = &mut self.queueing else { return };
                let (answers, failed, again) = member.collected(result);
                self.deliver(failed, None, None);
                for a in answers {
                    self.deliver_from_store(a.m, &a.model, a.result);
                }
                if again {
                    self.on_signal(true);
                }
            }
            Done::Fed(result, asked) => self.on_fed(result, asked),
            Done::Checked(result) => {
                if let Delivery::Group(lead) = &mut self.delivery {
                    self.stopped |= !lead.checked(result);
                }
            }
            Done::Relooked(result, batch) => self.on_relooked(result, batch),
            Done::Quotas(result) => self.on_quotas(result),
            Done::TakenUp(result) => {
                self.taking_up = false;
                let fed = self.fed_later.take();
                match result {
                    // The batches it runs already are in the list too: only the others are taken up.
                    Ok(list) => {
                        for r in list {
                            if !self.batches.as_ref().is_some_and(|b| b.has_token(&r.batch.token)) {
                                self.resume(r);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "the batches to take up could not be read"),
                }
                // What was read of the queue meanwhile, and what was queued since, go now (a
                // request of an adopted record joins it).
                if let Some((result, asked)) = fed {
                    self.on_fed(result, asked);
                }
                self.on_signal(true);
            }
            Done::Counted(c) => {
                let plan = dry_run::plan(&c.tallies, &c.counted, self.spend.pricing());
                let _ = c.reply.send(Ok(plan));
                self.release_dry_run(
                    "This client is a dry run (dryRun: true): nothing was sent; plan() says what would have been.",
                );
            }
        }
    }

    // ===== a dry run =====

    /// `plan()`: what is queued goes as `close()` would send it, the tallied bodies' tokens are
    /// counted, and the plan answers (then the requests held reject).
    fn plan(&mut self, reply: oneshot::Sender<Result<RunPlan, EngineError>>) {
        if self.dry.is_none() {
            let _ = reply.send(Err(EngineError::validation("plan() needs a dry run: set dryRun: true on the client.")));
            return;
        }
        self.flush_all(Reason::Forced);
        let Some(dry) = &mut self.dry else { return };
        let (tallies, samples) = dry.take();
        let (direct, concurrency) = (self.direct.clone(), self.on_demand.concurrency());
        self.tasks.spawn(Kind::Counting, async move {
            let counted = dry_run::count(direct, samples, concurrency).await;
            Done::Counted(Box::new(tasks::Counting { tallies, counted, reply }))
        });
    }

    /// A journal keeps what the run committed (a restart goes on from it).
    fn persist_spend(&self, committed: Option<f64>) {
        if let (Some(usd), Some(s)) = (committed, &self.store) {
            s.write(Write::Spend(usd));
        }
    }

    /// Rejects the requests a dry run held, with `DryRunException`.
    fn release_dry_run(&mut self, message: &str) {
        let Some(dry) = &mut self.dry else { return };
        let e = EngineError::new(ErrorName::DryRunException, message);
        let held: Vec<Ended> =
            dry.take_held().into_iter().map(|m| Ended { m, result: Err(e.clone()), keep: false }).collect();
        self.deliver(held, None, None);
    }

    // ===== reports =====

    fn on_report(&mut self, r: Report) {
        match r {
            Report::Created { batch, job_arn, input_uri, total, fillers } => {
                self.ledger.padded(fillers);
                let Some(c) = self.batches.as_mut().and_then(|b| b.created(batch, &job_arn, input_uri, fillers)) else {
                    return;
                };
                tell(self.store.as_ref(), &*self.sink, self.jobs.created(&job_arn, &c.job_name, &c.model, total));
            }
            Report::Status { job_arn, info } => {
                tell(self.store.as_ref(), &*self.sink, self.jobs.status(&job_arn, &info));
            }
            Report::Tokens { job_arn, tokens } => {
                self.ledger.tokens(tokens.input, tokens.output);
                self.jobs.tokens(&job_arn, &tokens);
            }
            Report::Verdicts { batch, items } => {
                let Some(judged) = self.batches.as_mut().and_then(|b| b.judge(batch, items)) else { return };
                self.ledger.answered(Tier::Batch, judged.ended.iter().filter(|e| e.result.is_ok()).count() as u64);
                if let Some((job_arn, errors)) = &judged.record_errors {
                    self.jobs.record_errors(job_arn, errors);
                }
                self.deliver(judged.ended, Some(&judged.token), Some(&judged.model));
                self.requeue(judged.retries);
            }
            Report::Finished { batch } => self.finish_batch(batch, None),
        }
    }

    /// A batch is over: settles what it left unanswered, records it done, starts what waited for
    /// its slot.
    fn finish_batch(&mut self, batch: job::BatchId, why: Option<EngineError>) {
        let Some(f) = self.batches.as_mut().and_then(|b| b.finish(batch, why)) else { return };
        self.deliver(f.ended, Some(&f.token), None);
        if let Some(s) = &self.store {
            s.write(Write::BatchDone { token: f.token.to_string() });
        }
        self.start_jobs(f.start);
    }

    // ===== the store =====

    /// The store opened (take up its batches, then the requests that waited), or could not be
    /// (every request that waited, and every later one, is rejected with why).
    fn on_opened(&mut self, result: Result<Opened, EngineError>) {
        match result {
            Ok(o) => {
                self.keys.opened(o.known_keys);
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

    fn on_lookup(&mut self, result: Result<Vec<Option<Finished>>, EngineError>) {
        let found = self.keys.looked_up(result);
        self.step(Move::Send, (found.failed.len() + found.answered.len()) as u64);
        self.deliver(found.failed, None, None);
        // Already in the store: settled without writing them again.
        for (m, model, result) in found.answered {
            self.deliver_from_store(m, &model, result);
        }
        for p in found.route {
            self.route(p);
        }
        if self.flush_after_lookups && self.keys.is_idle() {
            self.flush_after_lookups = false;
            self.flush_all(Reason::Forced);
        }
    }

    /// A leader read the group's queue.
    fn on_fed(&mut self, result: Result<Vec<crate::store::QueuedRequest>, EngineError>, asked: usize) {
        // Requests of a job a client adopted wait until the leader has taken it up.
        self.start_take_up();
        if self.taking_up {
            self.fed_later = Some((result, asked));
            return;
        }
        let Delivery::Group(lead) = &mut self.delivery else { return };
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let admission = &mut self.admission;
        let (fed, then) = lead.fed(result, asked, now_ms, |id| admission.intern(id));
        let n = fed.len() as u64;
        let taken = lead.take_up(fed, &mut self.keys);
        self.step(Move::Receive, n);
        self.step(Move::Send, taken.joined);
        for mut p in taken.route {
            self.watch_stored_deadline(&mut p);
            self.route(p);
        }
        self.start_relook();
        match then {
            Then::ReadAgain => self.feed(),
            Then::Flush => self.flush_group(),
            Then::Wait => {}
        }
    }

    /// A leader: looks up the keys of requests queued after this term answered them.
    fn start_relook(&mut self) {
        let (Delivery::Group(lead), Some(store)) = (&mut self.delivery, &self.store) else { return };
        let Some(batch) = lead.take_relooking() else { return };
        let keys: Vec<_> = batch.iter().filter_map(|p| p.key.clone()).collect();
        let store = store.clone();
        self.tasks
            .spawn(Kind::Shared, async move { Done::Relooked(store.call(move |s| s.lookup(&keys)).await, batch) });
    }

    fn on_relooked(&mut self, result: Result<Vec<Option<Finished>>, EngineError>, batch: Vec<Pending>) {
        let r = Lead::relooked(result, batch, &mut self.keys);
        self.step(Move::Drop, r.settled.len() as u64);
        self.step(Move::Send, r.joined);
        if let (Some(s), false) = (&self.store, r.settled.is_empty()) {
            let settled = r.settled.into_iter().map(|(id, o)| crate::store::Settled::whole(id, o)).collect();
            s.write(Write::Settle { answers: Vec::new(), settled });
        }
        for mut p in r.route {
            self.watch_stored_deadline(&mut p);
            self.route(p);
        }
    }

    // ===== settling =====

    /// Delivers sent requests that are done (see [`Delivery::deliver`]).
    fn deliver(&mut self, ended: Vec<Ended>, batch: Option<&Arc<str>>, whole: Option<&str>) {
        if ended.is_empty() {
            return;
        }
        self.step(Move::Settle, ended.len() as u64);
        let d = self.delivery.deliver(ended, batch, whole, &mut self.keys, self.store.as_ref());
        self.delivered(d);
    }

    /// Delivers a request whose final answer is in the store.
    fn deliver_from_store(&mut self, m: InFlight, model: &str, result: Result<Success, EngineError>) {
        self.step(Move::Settle, 1);
        let d = Delivery::from_store(m, model, result, &mut self.keys);
        self.delivered(d);
    }

    fn delivered(&mut self, d: Delivered) {
        self.step(Move::Settle, d.waiters);
        if d.settlements.is_empty() {
            self.publish();
        }
        self.settle(d.settlements);
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

    /// Applies a move to the ledger; a refused move is a bug, logged (the counts stay true).
    fn step(&mut self, step: Move, n: u64) {
        if let Err(e) = self.ledger.apply(step, n) {
            tracing::error!(error = %e, "a request count would have gone wrong");
            debug_assert!(false, "{e}");
        }
    }

    // ===== rounds, closing, stopping =====

    fn after_round(&mut self) {
        self.tell_warnings();
        self.start_lookup();
        self.start_enqueue();
        if let (Queueing::Group(member), Some(store)) = (&mut self.queueing, &self.store) {
            if member.take_flush_request() {
                let store = store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.call(|s| s.request_flush()).await {
                        tracing::warn!(error = %e, "the group's leader could not be asked to send its queue");
                    }
                });
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
        if let Delivery::Callers = self.delivery {
            self.published.publish(self.ledger.counters());
            self.published.publish_spend(self.spend.committed(), self.spend.spent());
        } else {
            // The deadline fallbacks a leader sends for its group count in its client's stats.
            let n = self.ledger.counters().deadline_fallbacks;
            let new = n.saturating_sub(std::mem::replace(&mut self.led_fallbacks_published, n));
            if new > 0 {
                self.published.led_deadline_fallbacks.fetch_add(new, std::sync::atomic::Ordering::AcqRel);
            }
        }
        if let Some(jobs) = self.jobs.take_changed() {
            self.published.publish_jobs(jobs);
        }
    }

    fn is_idle(&self) -> bool {
        self.batches.as_ref().is_none_or(Batches::is_idle)
            && self.on_demand.is_idle()
            && self.keys.is_idle()
            && match &self.queueing {
                Queueing::Group(m) => m.is_idle(),
                Queueing::Local => true,
            }
            && self.dry.as_ref().is_none_or(DryRun::is_idle)
    }

    /// Settles every request the worker still holds with `ClientClosedException`.
    fn settle_everything(&mut self, queued_message: &str, sent_message: &str) {
        let mut queued: Vec<Caller> = Vec::new();
        let mut sent: Vec<Caller> = Vec::new();
        for c in self.held.take().unwrap_or_default() {
            match c {
                Command::Submit(list) => queued.extend(list.into_iter().map(|s| Caller::Id(s.id))),
                Command::Close(reply) => self.close_waiters.push(reply),
                Command::Plan(reply) => {
                    let _ = reply.send(Err(EngineError::closed("The client was destroyed before the plan was made.")));
                }
                Command::Holding(_, _, reply) => {
                    let _ = reply.send(Some(Vec::new()));
                }
                Command::Load(reply) => {
                    let _ = reply.send(Vec::new());
                }
                Command::Flush | Command::Cancel(_) | Command::Destroy { .. } | Command::Adopt(_) => {}
            }
        }
        if let Some(b) = &mut self.batches {
            let (q, s) = b.take_everything();
            queued.extend(q.into_iter().map(|p| p.caller));
            sent.extend(s.into_iter().map(|m| m.caller));
        }
        let (lookups, waiters) = self.keys.take_everything();
        queued.extend(lookups.into_iter().map(|p| p.caller));
        // A leader's waiters are requests of the group (no caller here).
        if let Delivery::Callers = self.delivery {
            sent.extend(waiters.into_iter().map(Caller::Id));
        }
        if let Delivery::Group(lead) = &mut self.delivery {
            let _ = lead.take_everything();
        }
        sent.extend(self.on_demand.take_everything().into_iter().map(|m| m.caller));
        if let Queueing::Group(member) = &mut self.queueing {
            sent.extend(member.take_everything().into_iter().map(|m| m.caller));
        }
        self.ledger.clear();
        let closed = |message: &str, callers: Vec<Caller>| -> Vec<Settlement> {
            callers
                .into_iter()
                .filter_map(|c| c.id().map(|id| Settlement { id, result: Err(EngineError::closed(message)) }))
                .collect()
        };
        let mut settlements = closed(queued_message, queued);
        settlements.extend(closed(sent_message, sent));
        if !settlements.is_empty() {
            self.sink.settle(settlements);
        }
    }

    /// `destroy()`: settles everything, abandons the tasks, and stops the running jobs if asked.
    fn destroy(&mut self, stop_jobs: bool) {
        self.closing = true;
        let arns = self.batches.as_ref().map(Batches::job_arns).unwrap_or_default();
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
        if let Delivery::Callers = self.delivery {
            self.published.publish(self.ledger.counters());
        }
        self.tasks.abort_all();
    }
}

/// Tells what a change did to a job: a new job or a status to the store and the application; a
/// move of its answered counts to the store only.
fn tell(store: Option<&StoreHandle>, sink: &dyn Sink, change: jobs::Change<'_>) {
    let (j, event) = match change {
        jobs::Change::Status(j) => (j, true),
        jobs::Change::Counts(j) => (j, false),
        jobs::Change::None => return,
    };
    if let Some(s) = store {
        s.write(Write::JobStatus {
            job_arn: j.job_arn.clone(),
            status: j.status.clone(),
            success: j.success_record_count,
            errors: j.error_record_count,
        });
    }
    if event {
        sink.job_event(j);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
