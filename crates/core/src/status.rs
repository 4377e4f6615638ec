//! A batch job's status, as Bedrock reports it.

use std::fmt;

/// The status of a batch inference job, with a catch-all for statuses AWS may add (an unknown
/// status counts as still running).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum JobStatus {
    /// Queued for validation (also what a job is until its first poll).
    #[default]
    Submitted,
    /// Bedrock is checking its input.
    Validating,
    /// Validated, waiting for capacity.
    Scheduled,
    /// Its records are being processed.
    InProgress,
    /// A stop was asked for; it has not stopped yet.
    Stopping,
    /// Ended with every record processed.
    Completed,
    /// Ended with only part of its records processed; the outputs written are usable.
    PartiallyCompleted,
    /// Ended without results (its message says why).
    Failed,
    /// Ended by a stop.
    Stopped,
    /// Ended because it ran past its timeout.
    Expired,
    /// A status this version does not know.
    Other(String),
}

impl JobStatus {
    /// Every status this version knows, in the order a job goes through them.
    pub const KNOWN: &'static [JobStatus] = &[
        JobStatus::Submitted,
        JobStatus::Validating,
        JobStatus::Scheduled,
        JobStatus::InProgress,
        JobStatus::Stopping,
        JobStatus::Completed,
        JobStatus::PartiallyCompleted,
        JobStatus::Failed,
        JobStatus::Stopped,
        JobStatus::Expired,
    ];

    /// The status as AWS spells it.
    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::Submitted => "Submitted",
            JobStatus::Validating => "Validating",
            JobStatus::Scheduled => "Scheduled",
            JobStatus::InProgress => "InProgress",
            JobStatus::Stopping => "Stopping",
            JobStatus::Completed => "Completed",
            JobStatus::PartiallyCompleted => "PartiallyCompleted",
            JobStatus::Failed => "Failed",
            JobStatus::Stopped => "Stopped",
            JobStatus::Expired => "Expired",
            JobStatus::Other(s) => s,
        }
    }

    /// Reads a status as AWS spells it.
    pub fn parse(s: &str) -> JobStatus {
        match s {
            "Submitted" => JobStatus::Submitted,
            "Validating" => JobStatus::Validating,
            "Scheduled" => JobStatus::Scheduled,
            "InProgress" => JobStatus::InProgress,
            "Stopping" => JobStatus::Stopping,
            "Completed" => JobStatus::Completed,
            "PartiallyCompleted" => JobStatus::PartiallyCompleted,
            "Failed" => JobStatus::Failed,
            "Stopped" => JobStatus::Stopped,
            "Expired" => JobStatus::Expired,
            other => JobStatus::Other(other.to_string()),
        }
    }

    /// Whether the job has ended.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed
                | JobStatus::PartiallyCompleted
                | JobStatus::Failed
                | JobStatus::Stopped
                | JobStatus::Expired
        )
    }

    /// Whether the job ended as a whole (failed or stopped): its unfinished records are never
    /// resubmitted (that would pay again for work that failed as a whole or that someone stopped).
    pub fn ended_as_a_whole(&self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Stopped)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for JobStatus {
    fn from(s: &str) -> JobStatus {
        JobStatus::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_still_running() {
        for s in [
            "Submitted",
            "Validating",
            "Scheduled",
            "InProgress",
            "Stopping",
            "Completed",
            "PartiallyCompleted",
            "Failed",
            "Stopped",
            "Expired",
        ] {
            assert_eq!(JobStatus::parse(s).as_str(), s);
        }
        let new = JobStatus::parse("Paused");
        assert_eq!(new, JobStatus::Other("Paused".into()));
        assert!(!new.is_terminal());
        assert!(JobStatus::Expired.is_terminal() && !JobStatus::Expired.ended_as_a_whole());
    }
}
