//! The engine handle: builds the back-ends a mode needs, opens the store, starts the worker and
//! its helpers (the store writer, the poll loop), and passes requests and commands to the
//! worker. It holds no request state of its own.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::adopt::{self, AdoptTarget, AdoptedJob};
use crate::backend::bedrock::{AwsClients, AwsSettings, BedrockBatch};
use crate::backend::credentials::CredentialSource;
use crate::backend::direct::BedrockDirect;
use crate::backend::openai::{route, OpenAiBackend, OpenAiSettings, Route};
use crate::backend::{BatchBackend, DirectBackend};
use crate::config::{BatchConfig, EngineConfig, Mode};
use crate::error::EngineError;
use crate::job::JobContext;
use crate::leader::{self, Candidate};
use crate::poller::PollerHandle;
use crate::request::{InvokeOptions, Submission};
use crate::settle::Sink;
use crate::stats::{Published, Stats};
use crate::store::postgres::{Listener, PgStore, StoreEvent};
use crate::store::sqlite::SqliteStore;
use crate::store::writer::{Opened, StoreHandle};
use crate::store::{RecoveredState, Store, StoredJob, StoredResult, Write};
use crate::worker::{Command, GroupSignals, ModelRule, Role, Setup, SpendSetup, Worker};

/// The back-ends an engine runs on.
#[derive(Default)]
pub struct Backends {
    /// Batch jobs (batch mode).
    pub batch: Option<Arc<dyn BatchBackend>>,
    /// On-demand calls (direct and openai modes, and what batch mode sends on-demand).
    pub direct: Option<Arc<dyn DirectBackend>>,
    /// A store to use instead of the one `journal` or `store` names.
    pub store: Option<Arc<dyn Store>>,
}

/// The engine handle. Cheap to clone; every clone drives the same worker. When the last clone
/// is dropped the worker stops, and every request it still holds is rejected.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    published: Arc<Published>,
    /// Requests handed to the worker (written by the handle only).
    submitted: AtomicU64,
    /// Ids for [`Engine::submit`].
    next_id: AtomicU64,
    closed: AtomicBool,
    store: Option<StoreHandle>,
    config: EngineConfig,
    /// A client of a group sharing a store: its listener and its candidacy for the lead.
    group: Option<Group>,
    /// Batch mode's back-end (for adopting jobs).
    batch: Option<Arc<dyn BatchBackend>>,
}

struct Group {
    /// Stops when dropped, or once the client closes.
    listener: Listener,
    /// Tells the candidate (and the term it leads) to stop.
    stop: tokio::sync::watch::Sender<bool>,
    candidate: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    signals: Arc<GroupSignals>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.inner.config.mode.name())
            .field("region", &self.inner.config.region)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the back-ends the configuration's mode needs (AWS SDK clients, the OpenAI-compatible
    /// client) and starts the engine. `credentials` is the application's credentials function.
    pub async fn connect(
        config: EngineConfig,
        sink: Arc<dyn Sink>,
        credentials: Option<Arc<dyn CredentialSource>>,
    ) -> Result<Engine, EngineError> {
        config.validate()?;
        let settings = AwsSettings::from_config(&config, credentials);
        let backends = match &config.mode {
            Mode::Batch(b) => {
                let clients = AwsClients::new(&settings).await;
                Backends {
                    batch: Some(Arc::new(BedrockBatch::new(clients.clone(), BatchConfig::clone(b)))),
                    direct: Some(Arc::new(BedrockDirect::new(clients))),
                    store: None,
                }
            }
            Mode::Direct => Backends {
                direct: Some(Arc::new(BedrockDirect::new(AwsClients::new(&settings).await))),
                ..Default::default()
            },
            Mode::OpenAi(o) => match route(&o.model) {
                // bedrock/<modelId> is plain on-demand InvokeModel.
                Route::Bedrock { .. } => Backends {
                    direct: Some(Arc::new(BedrockDirect::new(AwsClients::new(&settings).await))),
                    ..Default::default()
                },
                Route::Http { .. } => {
                    let backend = OpenAiBackend::new(&OpenAiSettings {
                        model: o.model.clone(),
                        api_base: o.api_base.clone(),
                        api_key: o.api_key.clone(),
                        timeout: o.timeout,
                    })?;
                    Backends { direct: Some(Arc::new(backend)), ..Default::default() }
                }
            },
        };
        Engine::start(config, backends, sink)
    }

    /// Starts an engine on the current tokio runtime with the given back-ends. Opens the store
    /// (`journal`, unless `backends.store` is given; `JournalLockedException` or
    /// `JournalCorruptedException` when it cannot) and takes up the batches an earlier process
    /// left being created or running.
    ///
    /// A `store` on PostgreSQL is opened in the background, so this returns at once: requests
    /// wait until it is open (at most `store.connectTimeout`), and if it cannot be, every
    /// request is rejected with `StoreUnavailableException` (or `JournalLockedException` when
    /// another client holds its group).
    pub fn start(config: EngineConfig, mut backends: Backends, sink: Arc<dyn Sink>) -> Result<Engine, EngineError> {
        config.validate()?;
        let has_own_store = backends.store.is_some();
        let opened_now = |s: Arc<dyn Store>| -> Result<(StoreHandle, Opened), EngineError> {
            let opened = Opened::read(&*s)?;
            Ok((StoreHandle::start(s), opened))
        };
        let (store, opened, opening) = match (backends.store, &config.journal, &config.store) {
            (Some(s), _, _) => {
                let (h, o) = opened_now(s)?;
                (Some(h), o, None)
            }
            (None, Some(j), _) => {
                let (h, o) = opened_now(Arc::new(SqliteStore::open(j)?))?;
                (Some(h), o, None)
            }
            (None, None, Some(pg)) => {
                let cfg = pg.clone();
                let (h, opening) = StoreHandle::opening(
                    move || PgStore::member(&cfg).map(|s| Arc::new(s) as Arc<dyn Store>),
                    pg.connect_timeout,
                    pg.location(),
                );
                (Some(h), Opened::default(), Some(opening))
            }
            (None, None, None) => (None, Opened::default(), None),
        };
        let published = Arc::new(Published::default());
        // Every call to S3 and Bedrock's control plane goes through the counting layer.
        backends.batch = backends.batch.map(|b| {
            Arc::new(crate::backend::counted::Counted::new(b, published.faults.clone())) as Arc<dyn BatchBackend>
        });
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (reports, reports_rx) = mpsc::unbounded_channel();
        let (batch_config, direct_concurrency) = match &config.mode {
            Mode::Batch(b) => (Some(BatchConfig::clone(b)), config.direct.max_concurrency),
            Mode::Direct => (None, config.direct.max_concurrency),
            Mode::OpenAi(o) => (None, o.max_concurrency),
        };
        // A client of a group sharing a store: its batches are its group leader's.
        let shared = match (&batch_config, &backends.batch, &config.store, config.journal.is_none() && !has_own_store) {
            (Some(b), Some(backend), Some(pg), true) => {
                Some((b.clone(), backend.clone(), pg.clone(), Arc::new(GroupSignals::default())))
            }
            _ => None,
        };
        let batch_backend = backends.batch.clone();
        let jobs = match (&batch_config, &backends.batch) {
            _ if shared.is_some() => None,
            (Some(b), Some(backend)) => {
                let status_reports = reports.clone();
                let poller = PollerHandle::start(backend.clone(), b.poll_interval, move |arn, info| {
                    let _ =
                        status_reports.send(crate::job::Report::Status { job_arn: Arc::from(arn), info: info.clone() });
                });
                Some(JobContext {
                    backend: backend.clone(),
                    store: store.clone(),
                    poller,
                    reports,
                    output_uri: Arc::from(b.s3_output_uri.as_str()),
                    job_timeout_hours: b.job_timeout_hours,
                    cleanup: b.cleanup,
                })
            }
            (Some(_), None) => return Err(EngineError::internal("batch mode needs a batch back-end")),
            _ => None,
        };
        let models = match &config.mode {
            Mode::OpenAi(o) => match route(&o.model) {
                Route::Bedrock { model_id } => {
                    ModelRule { forced: Some(Arc::from(model_id.as_str())), default: None, check: true }
                }
                Route::Http { .. } => ModelRule {
                    default: Some(Arc::from(config.model_id.as_deref().unwrap_or(&o.model))),
                    forced: None,
                    check: false,
                },
            },
            _ => ModelRule { default: config.model_id.as_deref().map(Arc::from), forced: None, check: true },
        };
        let group = shared.map(|(batch, backend, pg, signals)| {
            let on = signals.clone();
            let listener = PgStore::listen(&pg, move |ev| match ev {
                StoreEvent::Connected => {
                    // Notifications may have been missed: look at everything again (a leader
                    // also at the batches a client may have adopted meanwhile).
                    on.take_up.store(true, Ordering::SeqCst);
                    on.settled.notify_one();
                    on.queued.notify_one();
                }
                StoreEvent::Queued => on.queued.notify_one(),
                StoreEvent::Settled => on.settled.notify_one(),
                StoreEvent::Flush => {
                    on.flush.store(true, Ordering::SeqCst);
                    on.queued.notify_one();
                }
                StoreEvent::TakeUp => {
                    on.take_up.store(true, Ordering::SeqCst);
                    on.queued.notify_one();
                }
            });
            let (stop, stop_rx) = tokio::sync::watch::channel(false);
            let candidate = Candidate {
                store: pg,
                batch,
                backend,
                direct: backends.direct.clone(),
                direct_concurrency,
                models: models.clone(),
                sink: sink.clone(),
                signals: signals.clone(),
                published: published.clone(),
                spend: SpendSetup {
                    dry_run: false,
                    max_cost_usd: config.max_cost_usd,
                    committed_usd: 0.0,
                    pricing: config.pricing.clone(),
                    flex_models: config.flex_models.clone(),
                },
            };
            let task = tokio::spawn(leader::run(candidate, stop_rx));
            (Group { listener, stop, candidate: std::sync::Mutex::new(Some(task)), signals: signals.clone() }, signals)
        });
        let role = group.as_ref().map_or(Role::Alone, |(_, signals)| Role::Member(signals.clone()));
        let worker = Worker::new(Setup {
            role,
            models,
            max_queued: batch_config.as_ref().map_or(usize::MAX, |b| b.max_queued_requests),
            rereads_input: batch_backend.as_ref().is_some_and(|b| b.rereads_input()),
            batch: batch_config,
            jobs,
            direct: backends.direct,
            direct_concurrency,
            store: store.clone(),
            known_keys: opened.known_keys,
            recovered: opened.recovered,
            opening,
            sink,
            published: published.clone(),
            run_id: crate::job::random_run_id(),
            spend: SpendSetup {
                dry_run: config.dry_run,
                max_cost_usd: config.max_cost_usd,
                committed_usd: opened.committed_usd,
                pricing: config.pricing.clone(),
                flex_models: config.flex_models.clone(),
            },
        });
        tokio::spawn(worker.run(commands_rx, reports_rx));
        Ok(Engine {
            inner: Arc::new(Inner {
                commands,
                published,
                submitted: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                store,
                config,
                group: group.map(|(g, _)| g),
                batch: batch_backend,
            }),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The region requests are sent to.
    pub fn region(&self) -> &str {
        &self.inner.config.region
    }

    /// Hands requests to the worker, which validates each (a bad one settles alone with its
    /// error) and queues it. Callers choose the ids; they must be unique among pending requests.
    pub fn submit_batch(&self, list: Vec<Submission>) -> Result<(), EngineError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(EngineError::closed(crate::error::CLIENT_CLOSED));
        }
        let n = list.len() as u64;
        self.inner.submitted.fetch_add(n, Ordering::AcqRel);
        if self.inner.commands.send(Command::Submit(list)).is_err() {
            self.inner.submitted.fetch_sub(n, Ordering::AcqRel);
            return Err(EngineError::closed(crate::error::CLIENT_CLOSED));
        }
        Ok(())
    }

    /// Submits one request with an id the engine chooses (do not mix with caller-chosen ids).
    pub fn submit(&self, model_id: &str, body: impl Into<Bytes>, options: InvokeOptions) -> Result<u64, EngineError> {
        self.submit_keyed(model_id, body, options, None)
    }

    /// [`Engine::submit`] with an idempotency key (used with a store).
    pub fn submit_keyed(
        &self,
        model_id: &str,
        body: impl Into<Bytes>,
        options: InvokeOptions,
        key: Option<&str>,
    ) -> Result<u64, EngineError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::AcqRel);
        let options = (options != InvokeOptions::default()).then(|| Box::new(options));
        self.submit_batch(vec![Submission {
            options,
            key: key.map(str::to_string),
            ..Submission::new(id, Arc::from(model_id), body.into())
        }])?;
        Ok(id)
    }

    /// Submits what is queued now (below the minimum: pads, or goes on-demand under `direct`).
    pub fn flush(&self) {
        let _ = self.inner.commands.send(Command::Flush);
    }

    /// Takes a request out of its queue if it has not been sent yet (its caller gave up).
    pub fn cancel(&self, id: u64) {
        let _ = self.inner.commands.send(Command::Cancel(id));
    }

    /// Rejects new requests, sends what is queued, waits until every request has settled and
    /// the store has recorded everything, then releases the store for the next process.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(s) = &self.inner.store {
            s.drain().await;
            s.close_and_wait().await;
        }
        if let Some(g) = &self.inner.group {
            // The lead goes to another client of the group (with what is left running).
            let _ = g.stop.send(true);
            g.listener.stop();
            let task = g.candidate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            if let Some(t) = task {
                let _ = t.await;
            }
        }
    }

    /// Stops now: every pending request settles with `ClientClosedException`; running jobs keep
    /// running on AWS unless `stop_jobs`.
    pub fn destroy(&self, stop_jobs: bool) {
        self.inner.closed.store(true, Ordering::Release);
        let _ = self.inner.commands.send(Command::Destroy { stop_jobs });
        if let Some(s) = &self.inner.store {
            s.close();
        }
        if let Some(g) = &self.inner.group {
            let _ = g.stop.send(true);
            g.listener.stop();
        }
    }

    /// A dry run's plan (`dryRun: true`): what is queued goes as `close()` would send it, the
    /// requests' input tokens are counted (with CountTokens where the model has it), and the plan
    /// says per model what the run would do and cost. The requests held until now then reject
    /// with `DryRunException`. Without a dry run, a ValidationException.
    pub async fn plan(&self) -> Result<crate::plan::RunPlan, EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Plan(tx)).is_err() {
            return Err(EngineError::closed(crate::error::CLIENT_CLOSED));
        }
        rx.await.unwrap_or_else(|_| Err(EngineError::closed("The engine stopped before the plan was made.")))
    }

    /// The batches holding requests of `callers` (their ids) or sent with an idempotency key that
    /// starts with `key_prefix` (cut, being created or running): each one's job, whether it holds
    /// only such requests, and how many. `None` for a client of a group (its batches are its
    /// leader's). Answered in turn with the requests sent before it.
    pub async fn holding(
        &self,
        key_prefix: &str,
        callers: Vec<u64>,
    ) -> Result<Option<Vec<crate::worker::Holding>>, EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Holding(key_prefix.to_string(), callers, tx)).is_err() {
            return Err(EngineError::closed(crate::error::CLIENT_CLOSED));
        }
        rx.await.map_err(|_| EngineError::closed(crate::error::CLIENT_CLOSED))
    }

    /// What each model's requests are doing in this client now (queued, in jobs, on-demand, in
    /// the group's hands) and the filler records added to its jobs, by model id. Answered in turn
    /// with the requests sent before it.
    pub async fn load(&self) -> Result<Vec<crate::stats::ModelLoad>, EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Load(tx)).is_err() {
            return Err(EngineError::closed(crate::error::CLIENT_CLOSED));
        }
        rx.await.map_err(|_| EngineError::closed(crate::error::CLIENT_CLOSED))
    }

    /// A snapshot of the counters and jobs.
    pub fn stats(&self) -> Stats {
        let mut s =
            self.inner.published.snapshot(self.inner.submitted.load(Ordering::Acquire), &self.inner.config.pricing);
        s.journal = self.inner.store.as_ref().map(|st| st.location());
        s.store_errors = self.inner.store.as_ref().map_or(0, StoreHandle::errors);
        s.leader = self.inner.group.as_ref().map(|g| g.signals.leading.load(Ordering::SeqCst));
        s.max_cost_usd = self.inner.config.max_cost_usd;
        if s.max_cost_usd.is_none() {
            s.committed_usd = None;
        }
        s
    }

    /// Whether it has a store.
    pub fn has_store(&self) -> bool {
        self.inner.store.is_some()
    }

    /// The store's jobs (`None` without a store), after everything recorded so far.
    pub async fn stored_jobs(&self) -> Result<Option<Vec<StoredJob>>, EngineError> {
        match &self.inner.store {
            None => Ok(None),
            Some(s) => s.jobs().await.map(Some),
        }
    }

    /// Runs a document operation on the store, in turn with its writes; `ValidationException`
    /// without a store.
    pub async fn store_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        match &self.inner.store {
            None => Err(EngineError::validation(
                "this client has no store: set the journal option (journal: { path }) or store: { url }",
            )),
            Some(s) => s.call(f).await,
        }
    }

    /// Adopts jobs no store knows (see [`crate::adopt`]): each found job of this package is
    /// recorded in the store as a batch whose job exists and is polled (by this client, or by its
    /// group's leader), its answers kept as a restart's would be. Needs batch mode and a store.
    pub async fn adopt(&self, target: AdoptTarget) -> Result<Vec<AdoptedJob>, EngineError> {
        let store = self.inner.store.as_ref().ok_or_else(|| {
            EngineError::validation(
                "adopt() needs a journal or a store to record the jobs in: set journal: { path } or store: { url }",
            )
        })?;
        let backend = self
            .inner
            .batch
            .clone()
            .ok_or_else(|| EngineError::validation("adopt() needs batch mode (mode: 'batch')"))?;
        let known: HashSet<String> = store.jobs().await?.into_iter().map(|j| j.job_arn).collect();
        let mut out = Vec::new();
        for job in adopt::find(backend.as_ref(), &target).await? {
            let mut a = AdoptedJob {
                job_arn: job.job_arn.clone(),
                job_name: job.job_name.clone(),
                model_id: job.model_id.clone(),
                status: job.status.clone(),
                records: 0,
                keyed: 0,
                skipped: None,
            };
            if known.contains(&job.job_arn) {
                a.skipped = Some("it is in the store already".to_string());
                out.push(a);
                continue;
            }
            match adopt::prepare(&backend, &job).await? {
                Err(why) => a.skipped = Some(why),
                Ok((r, records, keyed)) => {
                    let (token, job_arn) = (r.batch.token.clone(), job.job_arn.clone());
                    let RecoveredState::Submitted { input_uri, .. } = &r.state else {
                        unreachable!("adopted jobs exist")
                    };
                    let total = job.total_record_count.unwrap_or(records);
                    store
                        .write_and_wait(Write::BatchFormed { batch: r.batch.clone(), members: r.members.clone() })
                        .await?;
                    store
                        .write_and_wait(Write::BatchUploaded { token: token.clone(), input_uri: input_uri.clone() })
                        .await?;
                    store.write_and_wait(Write::BatchCreated { token, job_arn, total }).await?;
                    if self.inner.group.is_some() {
                        // A group's batches are its leader's: it takes this one up from the store.
                        store.call(|s| s.request_take_up()).await?;
                    } else if self.inner.commands.send(Command::Adopt(r)).is_err() {
                        return Err(EngineError::closed(crate::error::CLIENT_CLOSED));
                    }
                    (a.records, a.keyed) = (records, keyed);
                }
            }
            out.push(a);
        }
        Ok(out)
    }

    /// A page of one job's answers from the store.
    pub async fn stored_results(
        &self,
        job_arn: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredResult>, EngineError> {
        match &self.inner.store {
            None => Err(EngineError::validation(
                "results() needs a journal or a store: set the journal option (journal: { path }) or store: { url }",
            )),
            Some(s) => s.results(job_arn.to_string(), after, limit).await,
        }
    }
}
