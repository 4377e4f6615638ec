//! The store writer: one task that owns the queue of store operations and runs them, in order,
//! on a blocking thread (never on the async runtime's workers). Writes that arrive while the
//! store is busy are grouped into one transaction; a read waits for the writes before it.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Finished, Key, Store, StoredJob, StoredResult, Write};
use crate::error::EngineError;

/// Most writes grouped into one transaction.
const MAX_GROUP: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

enum Op {
    Write(Write, Option<Reply<()>>),
    Lookup(Vec<Key>, Reply<Vec<Option<Finished>>>),
    Jobs(Reply<Vec<StoredJob>>),
    Results(String, Option<u64>, usize, Reply<Vec<StoredResult>>),
    /// Runs everything queued before it, then replies (the store stays open).
    Drain(oneshot::Sender<()>),
}

/// The way to the store writer; cheap to clone.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    tx: mpsc::UnboundedSender<Op>,
    store: Arc<dyn Store>,
}

impl StoreHandle {
    /// Starts the writer task.
    pub(crate) fn start(store: Arc<dyn Store>) -> StoreHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store.clone(), rx));
        StoreHandle { tx, store }
    }

    /// Queues a write; nobody waits for it (a failure is logged).
    pub(crate) fn write(&self, w: Write) {
        let _ = self.tx.send(Op::Write(w, None));
    }

    /// Queues a write and waits until it is applied (durable ones are on disk then).
    pub(crate) async fn write_and_wait(&self, w: Write) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Write(w, Some(tx))).map_err(|_| gone())?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// The final answers of keys, after every write queued before.
    pub(crate) async fn lookup(&self, keys: Vec<Key>) -> Result<Vec<Option<Finished>>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Op::Lookup(keys, tx)).map_err(|_| gone())?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// The jobs, after every write queued before.
    pub(crate) async fn jobs(&self) -> Result<Vec<StoredJob>, EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Jobs(tx)).is_err() {
            // The writer is gone (the engine stopped): read the store directly.
            let store = self.store.clone();
            return blocking(move || store.jobs()).await;
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// A page of a job's answers, after every write queued before.
    pub(crate) async fn results(&self, job_arn: String, after: Option<u64>, limit: usize) -> Result<Vec<StoredResult>, EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Results(job_arn.clone(), after, limit, tx)).is_err() {
            let store = self.store.clone();
            return blocking(move || store.results(&job_arn, after, limit)).await;
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Waits until everything queued so far is applied.
    pub(crate) async fn drain(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Drain(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The store itself (for what needs no ordering: its location, closing it).
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

fn gone() -> EngineError {
    EngineError::closed("The journal is closed (its client was closed or destroyed).")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, EngineError> + Send + 'static) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(EngineError::internal(format!("a journal operation failed: {e}"))))
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut next: Option<Op> = None;
    loop {
        let op = match next.take() {
            Some(op) => op,
            None => match rx.recv().await {
                Some(op) => op,
                None => return,
            },
        };
        match op {
            Op::Write(w, ack) => {
                // Group the writes waiting now; stop at the first read (it must see them applied).
                let mut writes = vec![w];
                let mut acks: Vec<Reply<()>> = ack.into_iter().collect();
                while writes.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(Op::Write(w, ack)) => {
                            writes.push(w);
                            acks.extend(ack);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let s = store.clone();
                let result = blocking(move || s.write(&writes)).await;
                if let Err(e) = &result {
                    tracing::error!(error = %e, "journal write failed");
                }
                for ack in acks {
                    let _ = ack.send(result.clone());
                }
            }
            Op::Lookup(keys, reply) => {
                let s = store.clone();
                let _ = reply.send(blocking(move || s.lookup(&keys)).await);
            }
            Op::Jobs(reply) => {
                let s = store.clone();
                let _ = reply.send(blocking(move || s.jobs()).await);
            }
            Op::Results(arn, after, limit, reply) => {
                let s = store.clone();
                let _ = reply.send(blocking(move || s.results(&arn, after, limit)).await);
            }
            Op::Drain(done) => {
                let _ = done.send(());
            }
        }
    }
}
