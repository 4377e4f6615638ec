//! The job table: every job the worker created or took up, with its status, record counts and
//! tokens, as `stats()` shows them. A status change is an event for the application and a write
//! for the store.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{JobInfo, Tokens};
use crate::stats::JobStats;
use crate::status::JobStatus;

#[derive(Debug, Default)]
pub(crate) struct JobTable {
    jobs: Vec<JobStats>,
    index: HashMap<Arc<str>, usize>,
    changed: bool,
}

/// What a change did to a job.
#[derive(Debug)]
pub(super) enum Change<'a> {
    /// New, or its status changed (an event).
    Status(&'a JobStats),
    /// Only its answered counts moved (kept in the store, so that readers beside the client see
    /// its progress).
    Counts(&'a JobStats),
    /// Nothing worth telling.
    None,
}

impl JobTable {
    /// A job was created for a batch of `total` records (fillers included).
    pub(super) fn created(&mut self, job_arn: &Arc<str>, name: &str, model: &str, total: u64) -> Change<'_> {
        self.update(job_arn, |j| {
            j.job_name = name.to_string();
            j.model_id = model.to_string();
            j.status = JobStatus::Submitted;
            j.total_record_count = j.total_record_count.max(total);
        })
    }

    /// The poller read a job's status and counts.
    pub(super) fn status(&mut self, job_arn: &Arc<str>, info: &JobInfo) -> Change<'_> {
        self.update(job_arn, |j| {
            j.status = info.status.clone();
            j.total_record_count = info.total_record_count.unwrap_or(j.total_record_count);
            j.processed_record_count = info.processed_record_count.unwrap_or(j.processed_record_count);
            j.success_record_count = info.success_record_count.unwrap_or(j.success_record_count);
            j.error_record_count = info.error_record_count.unwrap_or(j.error_record_count);
        })
    }

    /// A job's manifest reported its tokens.
    pub(super) fn tokens(&mut self, job_arn: &Arc<str>, tokens: &Tokens) {
        let _ = self.update(job_arn, |j| {
            j.input_tokens = tokens.input;
            j.output_tokens = tokens.output;
        });
    }

    /// A job's output answered some records with errors: their names, counted.
    pub(super) fn record_errors(&mut self, job_arn: &Arc<str>, errors: &[(crate::error::ErrorName, u64)]) {
        let _ = self.update(job_arn, |j| {
            for &(name, n) in errors {
                match j.record_errors.iter_mut().find(|(x, _)| *x == name) {
                    Some((_, c)) => *c += n,
                    None => j.record_errors.push((name, n)),
                }
            }
            j.record_errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_str().cmp(b.0.as_str())));
        });
    }

    /// Records a job or a change, and says what changed.
    fn update(&mut self, job_arn: &Arc<str>, f: impl FnOnce(&mut JobStats)) -> Change<'_> {
        let (i, new) = match self.index.get(job_arn) {
            Some(&i) => (i, false),
            None => {
                self.jobs.push(JobStats { job_arn: job_arn.to_string(), ..Default::default() });
                self.index.insert(job_arn.clone(), self.jobs.len() - 1);
                (self.jobs.len() - 1, true)
            }
        };
        let before = self.jobs[i].clone();
        f(&mut self.jobs[i]);
        let j = &self.jobs[i];
        if new || *j != before {
            self.changed = true;
        }
        if !new && j.status == before.status {
            let answered = |j: &JobStats| (j.success_record_count, j.error_record_count);
            return if answered(j) == answered(&before) { Change::None } else { Change::Counts(j) };
        }
        tracing::debug!(target: "bedrock_batch::job", job_arn = %j.job_arn, from = %before.status, to = %j.status, "status");
        Change::Status(j)
    }

    /// The jobs, when they changed since the last call.
    pub(super) fn take_changed(&mut self) -> Option<&[JobStats]> {
        std::mem::take(&mut self.changed).then_some(&self.jobs[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_change_is_reported_once_and_counts_are_kept() {
        let mut t = JobTable::default();
        let arn: Arc<str> = Arc::from("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc");
        assert!(matches!(t.created(&arn, "n", "m", 100), Change::Status(j) if j.status == JobStatus::Submitted));
        assert!(t.take_changed().is_some());
        assert!(t.take_changed().is_none());
        let info = |status: JobStatus, processed| JobInfo {
            status,
            processed_record_count: Some(processed),
            ..JobInfo::default()
        };
        assert!(matches!(t.status(&arn, &info(JobStatus::InProgress, 10)), Change::Status(_)));
        assert!(
            matches!(t.status(&arn, &info(JobStatus::InProgress, 50)), Change::None),
            "same status, processed moved, answered counts did not: nothing to tell"
        );
        let answered = JobInfo { success_record_count: Some(40), ..info(JobStatus::InProgress, 50) };
        assert!(
            matches!(t.status(&arn, &answered), Change::Counts(j) if j.success_record_count == 40),
            "answered counts moved: kept"
        );
        assert!(matches!(t.status(&arn, &answered), Change::None), "once");
        let jobs = t.take_changed().expect("counts changed");
        assert_eq!((jobs[0].processed_record_count, jobs[0].total_record_count), (50, 100));
        t.tokens(&arn, &Tokens { input: 5, output: 7 });
        assert_eq!(t.take_changed().map(|j| (j[0].input_tokens, j[0].output_tokens)), Some((5, 7)));
    }

    #[test]
    fn record_errors_add_up_by_name_most_frequent_first() {
        use crate::error::ErrorName::{ModelTimeoutException as Timeout, ThrottlingException as Throttled};
        let mut t = JobTable::default();
        let arn: Arc<str> = Arc::from("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc");
        let _ = t.created(&arn, "n", "m", 10);
        let _ = t.take_changed();
        t.record_errors(&arn, &[(Timeout, 1), (Throttled, 1)]);
        t.record_errors(&arn, &[(Throttled, 2)]);
        let jobs = t.take_changed().expect("the error counts are a change");
        assert_eq!(jobs[0].record_errors, vec![(Throttled, 3), (Timeout, 1)]);
    }
}
