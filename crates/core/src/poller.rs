//! One shared poll loop per engine: a task that owns the set of running jobs, asks for the status
//! of each every `poll_interval`, reports every status it reads, and hands each job's terminal
//! state to the job task waiting for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::backend::{BatchBackend, JobInfo};
use crate::error::EngineError;

/// Longest wait between polls while errors repeat.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Consecutive non-transient errors after which a job's waiter gets the error.
const MAX_HARD_FAILURES: u32 = 5;

type Waiter = oneshot::Sender<Result<JobInfo, EngineError>>;

enum Msg {
    Watch(String, Waiter),
    Forget(String),
}

struct Watch {
    waiter: Waiter,
    hard_failures: u32,
}

/// The way to the poll loop; cheap to clone.
#[derive(Clone)]
pub(crate) struct PollerHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl PollerHandle {
    /// Starts the poll loop. `on_info` sees every status read (it runs on the loop's task).
    pub(crate) fn start(
        backend: Arc<dyn BatchBackend>,
        interval: Duration,
        on_info: impl Fn(&str, &JobInfo) + Send + 'static,
    ) -> PollerHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(backend, interval, rx, on_info));
        PollerHandle { tx }
    }

    /// Starts polling a job; the receiver gets its terminal state (or a lasting error).
    pub(crate) fn watch(&self, job_arn: &str) -> oneshot::Receiver<Result<JobInfo, EngineError>> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Watch(job_arn.to_string(), tx));
        rx
    }

    /// Stops polling a job.
    pub(crate) fn forget(&self, job_arn: &str) {
        let _ = self.tx.send(Msg::Forget(job_arn.to_string()));
    }
}

async fn run(
    backend: Arc<dyn BatchBackend>,
    interval: Duration,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    on_info: impl Fn(&str, &JobInfo),
) {
    let mut jobs: HashMap<String, Watch> = HashMap::new();
    let handle = |jobs: &mut HashMap<String, Watch>, m: Msg| match m {
        Msg::Watch(arn, waiter) => {
            jobs.insert(arn, Watch { waiter, hard_failures: 0 });
        }
        Msg::Forget(arn) => {
            jobs.remove(&arn);
        }
    };
    let mut delay = interval;
    loop {
        // Take in what arrived; with nothing to poll, wait for a job.
        while let Ok(m) = rx.try_recv() {
            handle(&mut jobs, m);
        }
        jobs.retain(|_, w| !w.waiter.is_closed());
        if jobs.is_empty() {
            match rx.recv().await {
                Some(m) => handle(&mut jobs, m),
                None => return,
            }
            continue;
        }
        // Sleep one interval, taking in jobs meanwhile.
        let wake = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                m = rx.recv() => match m {
                    Some(m) => handle(&mut jobs, m),
                    None => return,
                },
            }
        }
        let mut transient_error = false;
        let arns: Vec<String> = jobs.keys().cloned().collect();
        for arn in arns {
            if jobs.get(&arn).is_none_or(|w| w.waiter.is_closed()) {
                continue;
            }
            match backend.get_job(&arn).await {
                Ok(info) => {
                    on_info(&arn, &info);
                    if info.status.is_terminal() {
                        if let Some(w) = jobs.remove(&arn) {
                            let _ = w.waiter.send(Ok(info));
                        }
                    } else if let Some(w) = jobs.get_mut(&arn) {
                        w.hard_failures = 0;
                    }
                }
                Err(e) if e.transient => transient_error = true,
                Err(e) => {
                    let give_up = jobs.get_mut(&arn).map(|w| {
                        w.hard_failures += 1;
                        w.hard_failures >= MAX_HARD_FAILURES
                    });
                    if give_up == Some(true) {
                        if let Some(w) = jobs.remove(&arn) {
                            let _ = w.waiter.send(Err(e.with_job(Some(&arn), None)));
                        }
                    }
                }
            }
        }
        // Back off while the service throttles or fails; return to the interval after.
        delay = if transient_error { (delay * 2).min(MAX_BACKOFF.max(interval)) } else { interval };
    }
}
