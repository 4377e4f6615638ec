//! The lead of a group sharing a store. Every client of the group runs a candidate: it tries to
//! take the group's lock every `store.electionInterval`; the one that holds it runs a worker in
//! the leader role (fed from the group's queue, settling requests in the store) until it loses
//! the lock (its session gone: the worker's check fails) or its engine stops. Whatever it left
//! running is in the store, where the next leader takes it up.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::backend::{BatchBackend, DirectBackend};
use crate::config::{BatchConfig, StoreConfig};
use crate::job::{JobContext, Report};
use crate::poller::PollerHandle;
use crate::settle::{Settlement, Sink};
use crate::stats::{JobStats, Published};
use crate::store::postgres::PgStore;
use crate::store::writer::{Opened, StoreHandle};
use crate::store::Store;
use crate::worker::{Command, GroupSignals, ModelRule, Role, Setup, SpendSetup, Worker};

/// What a leader needs (each term builds its worker from it).
pub(crate) struct Candidate {
    pub store: StoreConfig,
    pub batch: BatchConfig,
    pub backend: Arc<dyn BatchBackend>,
    pub direct: Option<Arc<dyn DirectBackend>>,
    pub direct_concurrency: usize,
    pub models: ModelRule,
    /// The client's sink: the leader tells it of its jobs (it settles no caller of its own).
    pub sink: Arc<dyn Sink>,
    pub signals: Arc<GroupSignals>,
    /// The client's stats: the leader publishes its jobs there.
    pub published: Arc<Published>,
    /// The cost cap and prices (a leader commits the group's spend in the store).
    pub spend: SpendSetup,
}

/// Runs the candidate until `stop` says so (or its sender goes).
pub(crate) async fn run(c: Candidate, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    // The session that tries for the lead, kept between tries (a new one after a failure).
    let mut candidate: Option<Arc<PgStore>> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let cfg = c.store.clone();
        let kept = candidate.take();
        let tried = tokio::task::spawn_blocking(move || {
            let store = match kept {
                Some(s) => s,
                None => Arc::new(PgStore::candidate(&cfg)?),
            };
            let got = store.try_take();
            if got.is_err() {
                store.close();
            }
            got.map(|got| (got, store))
        })
        .await;
        match tried {
            Ok(Ok((true, store))) => {
                failures = 0;
                tracing::info!(group = %c.store.group, "this client leads its group");
                lead(&c, store, &mut stop).await;
            }
            Ok(Ok((false, store))) => candidate = Some(store),
            Ok(Err(e)) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %e, "the group's lead could not be tried");
                }
            }
            Err(e) => tracing::error!(error = %e, "the group's lead could not be tried"),
        }
        tokio::select! {
            _ = tokio::time::sleep(c.store.election_interval) => {}
            r = stop.changed() => if r.is_err() { break },
        }
    }
    if let Some(s) = candidate {
        let _ = tokio::task::spawn_blocking(move || s.close()).await;
    }
}

/// One term: runs the leader worker on the session that holds the lock.
async fn lead(c: &Candidate, store: Arc<PgStore>, stop: &mut watch::Receiver<bool>) {
    let store: Arc<dyn Store> = store;
    let s = store.clone();
    let opened = match tokio::task::spawn_blocking(move || Opened::read(&*s)).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the group's batches could not be read; leaving the lead");
            let _ = tokio::task::spawn_blocking(move || store.close()).await;
            return;
        }
        Err(_) => return,
    };
    let handle = StoreHandle::start(store);
    let (reports, reports_rx) = mpsc::unbounded_channel();
    let status_reports = reports.clone();
    let poller = PollerHandle::start(c.backend.clone(), c.batch.poll_interval, move |arn, info| {
        let _ = status_reports.send(Report::Status { job_arn: Arc::from(arn), info: info.clone() });
    });
    let jobs = JobContext {
        backend: c.backend.clone(),
        store: Some(handle.clone()),
        poller,
        reports,
        output_uri: Arc::from(c.batch.s3_output_uri.as_str()),
        job_timeout_hours: c.batch.job_timeout_hours,
        cleanup: c.batch.cleanup,
    };
    let worker = Worker::new(Setup {
        role: Role::Leader { signals: c.signals.clone(), check_every: c.store.election_interval },
        max_queued: usize::MAX,
        rereads_input: c.backend.rereads_input(),
        batch: Some(c.batch.clone()),
        jobs: Some(jobs),
        direct: c.direct.clone(),
        direct_concurrency: c.direct_concurrency,
        store: Some(handle.clone()),
        // The keys this term answers (a request of the same key queued meanwhile is looked up).
        known_keys: Some(Default::default()),
        recovered: opened.recovered,
        opening: None,
        sink: Arc::new(JobEvents(c.sink.clone())),
        published: c.published.clone(),
        run_id: crate::job::random_run_id(),
        models: c.models.clone(),
        spend: c.spend.clone(),
    });
    let (commands, commands_rx) = mpsc::unbounded_channel();
    // Read the group's queue at once.
    c.signals.queued.notify_one();
    let mut task = tokio::spawn(worker.run(commands_rx, reports_rx));
    c.signals.leading.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::select! {
        _ = &mut task => tracing::warn!(group = %c.store.group, "this client no longer leads its group"),
        _ = stopped(stop) => {
            let _ = commands.send(Command::Destroy { stop_jobs: false });
            let _ = task.await;
        }
    }
    c.signals.leading.store(false, std::sync::atomic::Ordering::SeqCst);
    handle.close_and_wait().await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The leader's sink: it has no callers; its jobs' events go to its client's sink.
struct JobEvents(Arc<dyn Sink>);

impl Sink for JobEvents {
    fn settle(&self, _settlements: Vec<Settlement>) {}

    fn job_event(&self, job: &JobStats) {
        self.0.job_event(job);
    }

    fn warning(&self, message: &str) {
        self.0.warning(message);
    }
}
