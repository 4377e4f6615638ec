//! One shared poll loop per engine: every `poll_interval` it asks for the status of each running
//! job, reports changes, and hands each job's terminal state to the task waiting for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use crate::backend::{BatchBackend, JobInfo};
use crate::error::EngineError;

/// Longest wait between polls while errors repeat.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Consecutive non-transient errors after which a job's waiter gets the error.
const MAX_HARD_FAILURES: u32 = 5;

type Waiter = oneshot::Sender<Result<JobInfo, EngineError>>;

struct Watch {
    waiter: Waiter,
    hard_failures: u32,
}

/// The jobs being polled.
#[derive(Default)]
pub(crate) struct Poller {
    jobs: Mutex<HashMap<String, Watch>>,
    wake: Notify,
}

impl Poller {
    /// Starts polling a job; the receiver gets its terminal state.
    pub(crate) fn watch(&self, job_arn: &str) -> oneshot::Receiver<Result<JobInfo, EngineError>> {
        let (tx, rx) = oneshot::channel();
        self.jobs.lock().expect("poller lock").insert(job_arn.to_string(), Watch { waiter: tx, hard_failures: 0 });
        self.wake.notify_one();
        rx
    }

    /// Stops polling a job (its waiter is dropped).
    pub(crate) fn forget(&self, job_arn: &str) {
        self.jobs.lock().expect("poller lock").remove(job_arn);
    }

    /// The ARNs being polled.
    pub(crate) fn arns(&self) -> Vec<String> {
        self.jobs.lock().expect("poller lock").keys().cloned().collect()
    }

    /// Polls until the engine goes away. `on_info` sees every successful poll.
    pub(crate) async fn run(self: Arc<Self>, backend: Arc<dyn BatchBackend>, interval: Duration, on_info: impl Fn(&str, &JobInfo) + Send + Sync) {
        let mut delay = interval;
        loop {
            if self.jobs.lock().expect("poller lock").is_empty() {
                self.wake.notified().await;
                continue;
            }
            tokio::time::sleep(delay).await;
            let mut transient_error = false;
            for arn in self.arns() {
                let result = backend.get_job(&arn).await;
                let mut jobs = self.jobs.lock().expect("poller lock");
                match result {
                    Ok(info) => {
                        on_info(&arn, &info);
                        if info.is_terminal() {
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
}
