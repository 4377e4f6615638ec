//! The store writer: one task that owns the queue of store operations and runs them, in order,
//! on a blocking thread (never on the async runtime's workers). Writes that arrive while the
//! store is busy are grouped into one transaction; a read waits for the writes before it.
//!
//! A store on a server is opened by the writer itself ([`StoreHandle::opening`]), so the engine
//! starts at once: operations queue meanwhile, and the worker learns what to take up again (or
//! why the store cannot be used) through the [`Opening`] it is handed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Finished, Key, KnownKeys, Recovered, Store, StoredJob, StoredResult, Write};
use crate::error::{EngineError, ErrorName};

/// Most writes grouped into one transaction.
const MAX_GROUP: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// An operation run on the store in turn (or told why the store cannot be used).
type StoreCall = Box<dyn FnOnce(Result<&dyn Store, EngineError>) + Send>;

enum Op {
    Write(Write, Option<Reply<()>>),
    Jobs(Reply<Vec<StoredJob>>),
    Results(String, Option<u64>, usize, Reply<Vec<StoredResult>>),
    /// Runs everything queued before it, then replies (the store stays open).
    Drain(oneshot::Sender<()>),
    /// Any other operation, in turn (it replies itself; given why when the store cannot be used).
    Call(StoreCall),
}

/// What an open store hands the worker before it takes requests.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    /// The keys with answers (`None`: any key may have one).
    pub known_keys: Option<HashSet<u64>>,
    /// The batches to take up again.
    pub recovered: Vec<Recovered>,
    /// What earlier runs committed to spend under their cost cap (a journal).
    pub committed_usd: f64,
}

impl Opened {
    /// Reads them from a store (blocks).
    pub(crate) fn read(store: &dyn Store) -> Result<Opened, EngineError> {
        let known_keys = match store.known_keys()? {
            KnownKeys::These(set) => Some(set),
            KnownKeys::Any => None,
        };
        Ok(Opened { known_keys, recovered: store.recover()?, committed_usd: store.committed_spend()? })
    }
}

/// Where the worker learns that a store opened in the background is ready, or why not.
pub(crate) type Opening = oneshot::Receiver<Result<Opened, EngineError>>;

/// The store, once open, and what is known of it before.
struct Slot {
    store: OnceLock<Arc<dyn Store>>,
    /// Where it is, for `stats()` before it is open.
    location: String,
    closed: AtomicBool,
    /// Operations that failed: the store could not be opened or read, a write or a read failed.
    errors: AtomicU64,
}

impl Slot {
    fn new(store: OnceLock<Arc<dyn Store>>, location: String) -> Slot {
        Slot { store, location, closed: AtomicBool::new(false), errors: AtomicU64::new(0) }
    }

    /// Counts a failed operation.
    fn failed<T>(&self, result: &Result<T, EngineError>) {
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The way to the store writer; cheap to clone.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    tx: mpsc::UnboundedSender<Op>,
    slot: Arc<Slot>,
}

impl StoreHandle {
    /// Starts the writer task on a store that is open.
    pub(crate) fn start(store: Arc<dyn Store>) -> StoreHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let location = store.location().0;
        let slot = Arc::new(Slot::new(OnceLock::from(store.clone()), location));
        tokio::spawn(run(store, rx, slot.clone()));
        StoreHandle { tx, slot }
    }

    /// Starts the writer task, which first opens the store with `open` (on a blocking thread,
    /// at most `timeout`: after it, `StoreUnavailableException` naming `location`), then reads
    /// what to take up again and hands it to the worker through the returned [`Opening`].
    /// Operations queued meanwhile wait; if the store cannot be opened, each fails with why.
    pub(crate) fn opening(
        open: impl FnOnce() -> Result<Arc<dyn Store>, EngineError> + Send + 'static,
        timeout: Duration,
        location: String,
    ) -> (StoreHandle, Opening) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready, opening) = oneshot::channel();
        let slot = Arc::new(Slot::new(OnceLock::new(), location));
        tokio::spawn(open_then_run(open, timeout, slot.clone(), ready, rx));
        (StoreHandle { tx, slot }, opening)
    }

    /// The store's operations that failed so far (opening it, reading it, a write, a read).
    pub(crate) fn errors(&self) -> u64 {
        self.slot.errors.load(Ordering::Relaxed)
    }

    /// Where the store is and its size (0 before it is open).
    pub(crate) fn location(&self) -> (String, u64) {
        match self.slot.store.get() {
            Some(s) => s.location(),
            None => (self.slot.location.clone(), 0),
        }
    }

    /// Releases the store now (or as soon as it is open).
    pub(crate) fn close(&self) {
        self.slot.closed.store(true, Ordering::SeqCst);
        if let Some(s) = self.slot.store.get() {
            s.close();
        }
    }

    /// [`StoreHandle::close`] on a blocking thread, waiting until it is done.
    pub(crate) async fn close_and_wait(&self) {
        let h = self.clone();
        let _ = blocking(move || {
            h.close();
            Ok(())
        })
        .await;
    }

    fn open_store(&self) -> Result<Arc<dyn Store>, EngineError> {
        self.slot.store.get().cloned().ok_or_else(gone)
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
        self.call(move |s| s.lookup(&keys)).await
    }

    /// The jobs, after every write queued before.
    pub(crate) async fn jobs(&self) -> Result<Vec<StoredJob>, EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Jobs(tx)).is_err() {
            // The writer is gone (the engine stopped): read the store directly.
            let store = self.open_store()?;
            return blocking(move || store.jobs()).await;
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// A page of a job's answers, after every write queued before.
    pub(crate) async fn results(
        &self,
        job_arn: String,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredResult>, EngineError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Results(job_arn.clone(), after, limit, tx)).is_err() {
            let store = self.open_store()?;
            return blocking(move || store.results(&job_arn, after, limit)).await;
        }
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Runs `f` on the store in turn, after every write queued before.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        let op = Op::Call(Box::new(move |store: Result<&dyn Store, EngineError>| {
            let _ = tx.send(store.and_then(f));
        }));
        self.tx.send(op).map_err(|_| gone())?;
        rx.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Waits until everything queued so far is applied.
    pub(crate) async fn drain(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Drain(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn gone() -> EngineError {
    EngineError::closed("The journal is closed (its client was closed or destroyed).")
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(EngineError::internal(format!("a journal operation failed: {e}"))))
}

/// Opens the store, tells the worker, then runs the queue (or fails every operation).
async fn open_then_run(
    open: impl FnOnce() -> Result<Arc<dyn Store>, EngineError> + Send + 'static,
    timeout: Duration,
    slot: Arc<Slot>,
    ready: oneshot::Sender<Result<Opened, EngineError>>,
    rx: mpsc::UnboundedReceiver<Op>,
) {
    let opened = match tokio::time::timeout(timeout, blocking(open)).await {
        Ok(r) => r,
        Err(_) => Err(EngineError::new(
            ErrorName::StoreUnavailableException,
            format!(
                "The store at {} did not answer within {} s (store.connectTimeout).",
                slot.location,
                timeout.as_secs_f64()
            ),
        )
        .with_status(503)),
    };
    let store = match opened {
        Ok(store) => store,
        Err(e) => {
            slot.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "the store could not be opened");
            let _ = ready.send(Err(e.clone()));
            return fail_all(rx, e).await;
        }
    };
    let _ = slot.store.set(store.clone());
    if slot.closed.load(Ordering::SeqCst) {
        // Closed (the engine destroyed) while it was being opened.
        let s = store.clone();
        let _ = blocking(move || {
            s.close();
            Ok(())
        })
        .await;
    }
    let s = store.clone();
    match blocking(move || Opened::read(&*s)).await {
        Ok(opened) => {
            let _ = ready.send(Ok(opened));
            run(store, rx, slot).await
        }
        Err(e) => {
            slot.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "the store could not be read");
            let _ = ready.send(Err(e.clone()));
            fail_all(rx, e).await
        }
    }
}

/// Answers every operation with the reason the store cannot be used.
async fn fail_all(mut rx: mpsc::UnboundedReceiver<Op>, e: EngineError) {
    while let Some(op) = rx.recv().await {
        match op {
            Op::Write(_, ack) => {
                if let Some(ack) = ack {
                    let _ = ack.send(Err(e.clone()));
                }
            }
            Op::Jobs(reply) => {
                let _ = reply.send(Err(e.clone()));
            }
            Op::Results(_, _, _, reply) => {
                let _ = reply.send(Err(e.clone()));
            }
            Op::Drain(done) => {
                let _ = done.send(());
            }
            Op::Call(f) => f(Err(e.clone())),
        }
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Op>, slot: Arc<Slot>) {
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
                slot.failed(&result);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "journal write failed");
                }
                for ack in acks {
                    let _ = ack.send(result.clone());
                }
            }
            Op::Jobs(reply) => {
                let s = store.clone();
                let result = blocking(move || s.jobs()).await;
                slot.failed(&result);
                let _ = reply.send(result);
            }
            Op::Results(arn, after, limit, reply) => {
                let s = store.clone();
                let result = blocking(move || s.results(&arn, after, limit)).await;
                slot.failed(&result);
                let _ = reply.send(result);
            }
            Op::Drain(done) => {
                let _ = done.send(());
            }
            Op::Call(f) => {
                let s = store.clone();
                let _ = blocking(move || {
                    f(Ok(&*s));
                    Ok(())
                })
                .await;
            }
        }
    }
}
