//! The deadlines part: when each request with a deadline must leave batch for an on-demand call
//! (its deadline less `batch.fallbackMargin`), soonest first. It keeps times only; the worker finds
//! the requests (in a queue, or in a batch whose answer has not come) and sends them on-demand.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::store::Key;

/// When a request leaves batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FallBack {
    /// At this moment (its deadline is `margin` later).
    At(Instant),
    /// Now: its deadline is already too close for a job.
    Now,
}

/// A request with a deadline: a caller of this process, or one taken up from the store (taken up
/// after a restart, or read from a group's queue by its leader), by its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Due {
    Caller(u64),
    Key(Key),
}

#[derive(Debug)]
pub(crate) struct Deadlines {
    margin: Duration,
    /// `batch.deadline`: a request's deadline when its caller gives none, from its send.
    default: Option<Duration>,
    due: BinaryHeap<Reverse<(Instant, Due)>>,
}

impl Deadlines {
    pub(crate) fn new(margin: Duration, default: Option<Duration>) -> Deadlines {
        Deadlines { margin, default, due: BinaryHeap::new() }
    }

    /// A request's deadline (epoch milliseconds): its caller's, else the client's default from
    /// `now_ms`, else none.
    pub(crate) fn deadline(&self, given: Option<u64>, now_ms: u64) -> Option<u64> {
        given.or_else(|| self.default.map(|d| now_ms + d.as_millis() as u64))
    }

    /// When a request with this deadline (epoch milliseconds) leaves batch, seen at `now`
    /// (`now_ms` on the wall clock).
    pub(crate) fn fall_back(&self, deadline_ms: u64, now: Instant, now_ms: u64) -> FallBack {
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        match left.checked_sub(self.margin) {
            Some(wait) if !wait.is_zero() => FallBack::At(now + wait),
            _ => FallBack::Now,
        }
    }

    /// The margin: how long before its deadline a request leaves batch.
    pub(crate) fn margin(&self) -> Duration {
        self.margin
    }

    /// A request leaves batch `at`.
    pub(crate) fn add(&mut self, due: Due, at: Instant) {
        self.due.push(Reverse((at, due)));
    }

    /// The next moment a request leaves batch.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// The requests due by `now` (those already settled are among them: the worker skips them).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        while self.due.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((_, due))) = self.due.pop() {
                out.push(due);
            }
        }
        out
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_leaves_batch_a_margin_before_its_deadline_or_at_once_when_that_has_passed() {
        let d = Deadlines::new(Duration::from_secs(60), None);
        let now = Instant::now();
        let t = 1_000_000;
        assert_eq!(d.deadline(None, t), None);
        assert_eq!(d.fall_back(t + 90_000, now, t), FallBack::At(now + Duration::from_secs(30)));
        assert_eq!(d.fall_back(t + 60_000, now, t), FallBack::Now);
        assert_eq!(d.fall_back(t - 5, now, t), FallBack::Now, "a deadline in the past");
        let with_default = Deadlines::new(Duration::from_secs(60), Some(Duration::from_secs(3600)));
        assert_eq!(with_default.deadline(None, t), Some(t + 3_600_000));
        assert_eq!(with_default.deadline(Some(t + 61_000), t), Some(t + 61_000), "the caller's own comes first");
        assert_eq!(with_default.fall_back(t + 3_600_000, now, t), FallBack::At(now + Duration::from_secs(3540)));
    }

    #[test]
    fn due_requests_come_soonest_first() {
        let mut d = Deadlines::new(Duration::ZERO, None);
        let now = Instant::now();
        d.add(Due::Caller(1), now + Duration::from_secs(3));
        d.add(Due::Key("k:2".into()), now + Duration::from_secs(1));
        d.add(Due::Caller(3), now + Duration::from_secs(2));
        assert_eq!(d.next(), Some(now + Duration::from_secs(1)));
        assert_eq!(d.take_due(now + Duration::from_secs(2)), [Due::Key("k:2".into()), Due::Caller(3)]);
        assert_eq!(d.take_due(now + Duration::from_secs(2)), Vec::<Due>::new());
        assert_eq!(d.next(), Some(now + Duration::from_secs(3)));
    }
}
