//! The deadlines part: when each request with a deadline must leave batch for an on-demand call
//! (its deadline less `batch.fallbackMargin`), soonest first. It keeps times only; the worker finds
//! the requests (in a queue, or in a batch whose answer has not come) and sends them on-demand.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// When a request leaves batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FallBack {
    /// No deadline.
    Never,
    /// At this moment (its deadline is `margin` later).
    At(Instant),
    /// Now: its deadline is already too close for a job.
    Now,
}

#[derive(Debug)]
pub(crate) struct Deadlines {
    margin: Duration,
    /// `batch.deadline`: a request's deadline when its caller gives none, from its send.
    default: Option<Duration>,
    due: BinaryHeap<Reverse<(Instant, u64)>>,
}

impl Deadlines {
    pub(crate) fn new(margin: Duration, default: Option<Duration>) -> Deadlines {
        Deadlines { margin, default, due: BinaryHeap::new() }
    }

    /// When a request with this deadline (epoch milliseconds; `None`: the client's default)
    /// leaves batch, seen at `now` (`now_ms` on the wall clock).
    pub(crate) fn fall_back(&self, deadline_ms: Option<u64>, now: Instant, now_ms: u64) -> FallBack {
        let left = match (deadline_ms, self.default) {
            (Some(ms), _) => Duration::from_millis(ms.saturating_sub(now_ms)),
            (None, Some(d)) => d,
            (None, None) => return FallBack::Never,
        };
        match left.checked_sub(self.margin) {
            Some(wait) if !wait.is_zero() => FallBack::At(now + wait),
            _ => FallBack::Now,
        }
    }

    /// Whether requests without a deadline of their own get the client's default.
    pub(crate) fn has_default(&self) -> bool {
        self.default.is_some()
    }

    /// The margin: how long before its deadline a request leaves batch.
    pub(crate) fn margin(&self) -> Duration {
        self.margin
    }

    /// Request `id` leaves batch `at`.
    pub(crate) fn add(&mut self, id: u64, at: Instant) {
        self.due.push(Reverse((at, id)));
    }

    /// The next moment a request leaves batch.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// The requests due by `now` (those already settled are among them: the worker skips them).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(Reverse((at, id))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            out.push(id);
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
        assert_eq!(d.fall_back(None, now, t), FallBack::Never);
        assert_eq!(d.fall_back(Some(t + 90_000), now, t), FallBack::At(now + Duration::from_secs(30)));
        assert_eq!(d.fall_back(Some(t + 60_000), now, t), FallBack::Now);
        assert_eq!(d.fall_back(Some(t - 5), now, t), FallBack::Now, "a deadline in the past");
        let with_default = Deadlines::new(Duration::from_secs(60), Some(Duration::from_secs(3600)));
        assert_eq!(with_default.fall_back(None, now, t), FallBack::At(now + Duration::from_secs(3540)));
        assert_eq!(with_default.fall_back(Some(t + 61_000), now, t), FallBack::At(now + Duration::from_secs(1)));
    }

    #[test]
    fn due_requests_come_soonest_first() {
        let mut d = Deadlines::new(Duration::ZERO, None);
        let now = Instant::now();
        d.add(1, now + Duration::from_secs(3));
        d.add(2, now + Duration::from_secs(1));
        d.add(3, now + Duration::from_secs(2));
        assert_eq!(d.next(), Some(now + Duration::from_secs(1)));
        assert_eq!(d.take_due(now + Duration::from_secs(2)), [2, 3]);
        assert_eq!(d.take_due(now + Duration::from_secs(2)), Vec::<u64>::new());
        assert_eq!(d.next(), Some(now + Duration::from_secs(3)));
    }
}
