//! The tasks the worker spawns (job tasks, on-demand calls, store calls) and what each ends with;
//! a task that panics is known by its kind, so its requests can be settled.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};

use crate::error::EngineError;
use crate::job::BatchId;
use crate::queue::Pending;
use crate::store::{Finished, QueuedRequest, SettledRequest};

/// What a task ends with.
pub(crate) enum Done {
    /// A job task ended (it reported its verdicts on the way).
    Job(BatchId),
    /// On-demand call `n` (of a model) ended.
    Direct(u64, std::sync::Arc<str>, super::on_demand::Outcome),
    /// A lookup of keys.
    Lookup(Result<Vec<Option<Finished>>, EngineError>),
    /// A member's requests were queued in the store (or could not be).
    Enqueued(Result<(), EngineError>),
    /// A member's settled requests.
    Collected(Result<Vec<SettledRequest>, EngineError>),
    /// A leader's read of the group's queue (of up to this many requests).
    Fed(Result<Vec<QueuedRequest>, EngineError>, usize),
    /// A leader's check of its lead.
    Checked(Result<(), EngineError>),
    /// A leader's lookup of keys queued again after it answered them.
    Relooked(Result<Vec<Option<Finished>>, EngineError>, Vec<Pending>),
    /// A dry run's tokens were counted: the plan can be made and given.
    Counted(Box<Counting>),
    /// A leader read the batches to take up (after a client of its group adopted jobs).
    TakenUp(Result<Vec<crate::store::Recovered>, EngineError>),
    /// Service Quotas answered (or could not).
    Quotas(Result<Option<Vec<(String, f64)>>, EngineError>),
}

/// A dry run's counting, done: the tallies, what the counts found, and who waits for the plan.
pub(crate) struct Counting {
    pub tallies: std::collections::BTreeMap<std::sync::Arc<str>, crate::plan::Tally>,
    pub counted: std::collections::BTreeMap<std::sync::Arc<str>, super::dry_run::Counted>,
    pub reply: tokio::sync::oneshot::Sender<Result<crate::plan::RunPlan, EngineError>>,
}

/// Which task is which.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Job(BatchId),
    Direct(u64),
    Lookup,
    Enqueue,
    /// A leader's or member's call on the shared store.
    Shared,
    /// A dry run's counting of tokens.
    Counting,
    /// The read of Bedrock's quotas.
    Quotas,
}

/// How a task ended: with its value, or failed (panicked), known by its kind.
pub(crate) enum TaskEnd {
    Done(Done),
    Failed(Option<Kind>, JoinError),
}

#[derive(Default)]
pub(crate) struct Tasks {
    set: JoinSet<Done>,
    kinds: HashMap<Id, Kind>,
}

impl Tasks {
    pub(super) fn spawn(&mut self, kind: Kind, task: impl Future<Output = Done> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.kinds.insert(handle.id(), kind);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next task to end (pending while there is none).
    pub(super) async fn next(&mut self) -> TaskEnd {
        match self.set.join_next_with_id().await {
            Some(Ok((id, done))) => {
                self.kinds.remove(&id);
                TaskEnd::Done(done)
            }
            Some(Err(e)) => TaskEnd::Failed(self.kinds.remove(&e.id()), e),
            None => std::future::pending().await,
        }
    }

    pub(super) fn abort_all(&mut self) {
        self.set.abort_all();
    }
}
