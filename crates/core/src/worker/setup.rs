//! How the worker is set up, and what its handles ask of it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::backend::DirectBackend;
use crate::config::BatchConfig;
use crate::error::EngineError;
use crate::job::JobContext;
use crate::request::Submission;
use crate::settle::Sink;
use crate::stats::Published;
use crate::store::writer::{Opening, StoreHandle};
use crate::store::Recovered;

use super::admit::ModelRule;
use super::signals::GroupSignals;

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
    Destroy {
        /// Stop the running jobs too.
        stop_jobs: bool,
    },
    /// A dry run: send what is queued (as `close()` would) and answer with the plan; then reject
    /// the requests held with `DryRunException`.
    Plan(oneshot::Sender<Result<crate::plan::RunPlan, EngineError>>),
    /// A job adopted into the store: poll it and keep its answers, as a batch taken up.
    Adopt(Recovered),
    /// The batches holding requests of these callers or whose idempotency key starts with this
    /// prefix (`None`: this client's batches are its group leader's, not here).
    Holding(String, Vec<u64>, oneshot::Sender<Option<Vec<super::batches::Holding>>>),
    /// What each model's requests are doing now.
    Load(oneshot::Sender<Vec<crate::stats::ModelLoad>>),
}

/// The worker's place: alone (with or without a journal), or in a group sharing a store.
#[derive(Clone, Default)]
pub(crate) enum Role {
    #[default]
    Alone,
    /// A client of a group: queues its batchable requests in the store, settles its callers from
    /// what the group's leader settled there.
    Member(Arc<GroupSignals>),
    /// Leads a group: its queues are fed from the store's, and it settles requests in the store
    /// (nobody waits in this worker); it stops when the store says the lead is lost.
    Leader { signals: Arc<GroupSignals>, check_every: Duration },
}

/// How the worker is set up.
pub(crate) struct Setup {
    pub role: Role,
    /// Batch mode's settings (`None`: every request goes on-demand).
    pub batch: Option<BatchConfig>,
    /// The job tasks' context (batch mode).
    pub jobs: Option<JobContext>,
    /// On-demand calls, at most `direct_concurrency` at once.
    pub direct: Option<Arc<dyn DirectBackend>>,
    pub direct_concurrency: usize,
    pub store: Option<StoreHandle>,
    pub known_keys: Option<std::collections::HashSet<u64>>,
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
    /// What the run costs: a dry run, the cap, the prices.
    pub spend: SpendSetup,
}

/// What the worker needs to know of costs.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpendSetup {
    /// A dry run: nothing is sent; `plan()` says what would be.
    pub dry_run: bool,
    /// `maxCostUsd`.
    pub max_cost_usd: Option<f64>,
    /// What earlier runs of the journal committed.
    pub committed_usd: f64,
    /// The `pricing` option.
    pub pricing: Vec<(String, crate::config::Price)>,
    /// The models that offer Flex (`tiers.flex`), in place of the shipped list.
    pub flex_models: Option<Vec<String>>,
}
