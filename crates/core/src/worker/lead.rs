//! The lead of a group sharing a store: where a leader's outcomes go (the store, for the members to
//! collect) and where its requests come from (the group's queue, read without the bodies as its
//! queues have room). It also looks up again the keys it answered when they are queued again, and
//! checks that it still holds the lead.

use std::num::NonZeroU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::BatchConfig;
use crate::error::EngineError;
use crate::job::Body;
use crate::queue::{Caller, Pending, Reply};
use crate::settle::answer::{outcome_of, stored_result};
use crate::store::{Finished, Outcome, QueuedRequest};

use super::keys::{Admitted, Keys};
use super::signals::GroupSignals;

/// What to do about the group's queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Feed {
    /// Nothing now.
    Wait,
    /// Read up to `room` requests queued after number `after`.
    Read { after: u64, room: usize },
    /// Send everything queued (a member asked for it, and the queue is read up to now).
    Flush,
}

/// Requests read from the group's queue, taken up.
#[derive(Debug, Default)]
pub(crate) struct TakenUp {
    /// To route (batch).
    pub route: Vec<Pending>,
    /// How many wait for the answer of a request with the same key.
    pub joined: u64,
}

/// What a lookup of answered keys found.
#[derive(Debug, Default)]
pub(crate) struct Relooked {
    /// To route (batch).
    pub route: Vec<Pending>,
    /// How many wait for the answer of a request with the same key.
    pub joined: u64,
    /// Settled from their stored answers: (request number, how it ended).
    pub settled: Vec<(u64, Outcome)>,
}

/// What to do after a read of the group's queue.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Read again (the page was full, or more was queued meanwhile).
    ReadAgain,
    /// Send everything queued.
    Flush,
    Wait,
}

pub(crate) struct Lead {
    signals: Arc<GroupSignals>,
    /// How often it checks that it still leads (and reads the queue without being woken).
    pub check_every: Duration,
    /// The queue is read up to this request number.
    fed_after: u64,
    /// The queue is being read (and whether to read again after).
    feeding: bool,
    feed_again: bool,
    /// The lead is being checked.
    checking: bool,
    /// Requests whose keys this term answered, to look up before they are batched again.
    relooking: Vec<Pending>,
}

impl Lead {
    pub(super) fn new(signals: Arc<GroupSignals>, check_every: Duration) -> Lead {
        Lead {
            signals,
            check_every,
            fed_after: 0,
            feeding: false,
            feed_again: false,
            checking: false,
            relooking: Vec::new(),
        }
    }

    pub(super) fn signals(&self) -> &Arc<GroupSignals> {
        &self.signals
    }

    /// Whether to read more of the group's queue: as long as its own queues (holding `queued`
    /// requests) have room; a read that runs is done again after.
    pub(super) fn feed(&mut self, queued: u64, c: &BatchConfig) -> Feed {
        if self.feeding {
            self.feed_again = true;
            return Feed::Wait;
        }
        let cap = (c.max_batch_size * 2).max(10_000) as u64;
        let room = cap.saturating_sub(queued) as usize;
        if room == 0 {
            return if self.flush_requested() { Feed::Flush } else { Feed::Wait };
        }
        self.feeding = true;
        Feed::Read { after: self.fed_after, room }
    }

    /// A read of up to `asked` requests of the group's queue ended: the requests read (as the
    /// leader holds them: no caller, bodies in the store), and what to do next.
    pub(super) fn fed(
        &mut self,
        result: Result<Vec<QueuedRequest>, EngineError>,
        asked: usize,
        now_ms: u64,
        mut model: impl FnMut(&str) -> Arc<str>,
    ) -> (Vec<Pending>, Then) {
        self.feeding = false;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "the group's queue could not be read");
                return (Vec::new(), Then::Wait);
            }
        };
        let more = rows.len() >= asked;
        let fed = rows
            .into_iter()
            .map(|r| {
                self.fed_after = self.fed_after.max(r.id);
                Pending {
                    caller: Caller::Recovered,
                    operation: r.operation,
                    record_type: r.record_type,
                    reply: r.native.map_or(Reply::AsIs, Reply::FromNative),
                    record: r.id,
                    key: Some(r.key),
                    model: model(&r.model_id),
                    body: Body::Row(r.id),
                    body_len: r.body_len,
                    options: None,
                    direct: false,
                    tries: r.tries,
                    // At least 1: 0 reads as "arrived now".
                    arrived_ms: u32::try_from(now_ms.saturating_sub(r.age_ms).max(1)).unwrap_or(u32::MAX),
                    bounds: None,
                    deadline: r.deadline_ms.and_then(NonZeroU64::new),
                }
            })
            .collect();
        let next = if more || std::mem::take(&mut self.feed_again) {
            Then::ReadAgain
        } else if self.flush_requested() {
            Then::Flush
        } else {
            Then::Wait
        };
        (fed, next)
    }

    /// A member asked for the group's queue to be sent now.
    fn flush_requested(&self) -> bool {
        self.signals.flush.load(Ordering::SeqCst)
    }

    /// The group's queue is being sent as asked.
    pub(super) fn flushing(&self) {
        self.signals.flush.store(false, Ordering::SeqCst);
    }

    /// Takes up requests read from the group's queue: a request whose key is being worked on
    /// waits for it (`joined`), one whose key this term answered is looked up again first, the
    /// others are to be routed.
    pub(super) fn take_up(&mut self, fed: Vec<Pending>, keys: &mut Keys) -> TakenUp {
        let mut out = TakenUp::default();
        for p in fed {
            match keys.feed(p) {
                Admitted::Joined => out.joined += 1,
                Admitted::LookUp => {}
                Admitted::Relook(p) => self.relooking.push(p),
                Admitted::Route(p) => out.route.push(p),
            }
        }
        out
    }

    /// What the lookup of requests queued again after this term answered their keys found: those
    /// with an answer are settled from it (for their members), the others join the request working
    /// on their key or are to be routed (batched after all: paid twice, never lost; also when the
    /// lookup failed).
    pub(super) fn relooked(
        result: Result<Vec<Option<Finished>>, EngineError>,
        batch: Vec<Pending>,
        keys: &mut Keys,
    ) -> Relooked {
        let found = result.unwrap_or_else(|_| vec![None; batch.len()]);
        let mut out = Relooked::default();
        for (p, f) in batch.into_iter().zip(found) {
            match f {
                Some(f) => {
                    let record = f.record;
                    out.settled.push((p.record, outcome_of(&stored_result(f), record, 1)));
                }
                None => match keys.claim(p) {
                    Admitted::Route(p) => out.route.push(p),
                    _ => out.joined += 1,
                },
            }
        }
        out
    }

    /// The requests to look up now.
    pub(super) fn take_relooking(&mut self) -> Option<Vec<Pending>> {
        (!self.relooking.is_empty()).then(|| std::mem::take(&mut self.relooking))
    }

    /// Whether to check the lead now (none runs).
    pub(super) fn check(&mut self) -> bool {
        !std::mem::replace(&mut self.checking, true)
    }

    /// The check ended; `false`: the lead is lost.
    pub(super) fn checked(&mut self, result: Result<(), EngineError>) -> bool {
        self.checking = false;
        match result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "this client lost the lead of its group");
                false
            }
        }
    }

    /// A task of the shared store failed: start over from a clean state.
    pub(super) fn reset(&mut self) {
        self.feeding = false;
        self.checking = false;
    }

    /// A request for another try: back in the group's queue, in this leader's hands (a next
    /// leader reads it there), its body read from the store again.
    pub(super) fn retry(p: &mut Pending) {
        p.body = Body::Row(p.record);
        p.arrived_ms = 0;
    }

    /// Requests relooked, not yet routed.
    pub(super) fn take_everything(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.relooking)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{InvocationType, Operation};

    fn row(id: u64) -> QueuedRequest {
        QueuedRequest {
            id,
            key: Box::from(format!("k:{id}")),
            model_id: "m".into(),
            record_type: InvocationType::InvokeModel,
            operation: Operation::InvokeModel,
            native: None,
            tries: 0,
            body_len: 10,
            age_ms: 500,
            deadline_ms: None,
        }
    }

    #[test]
    fn the_queue_is_read_while_there_is_room_and_again_when_a_page_was_full() {
        let c = BatchConfig { max_batch_size: 100, ..BatchConfig::default() };
        let mut l = Lead::new(Arc::default(), Duration::from_secs(1));
        assert_eq!(l.feed(0, &c), Feed::Read { after: 0, room: 10_000 });
        assert_eq!(l.feed(0, &c), Feed::Wait, "a read runs");
        let (fed, next) = l.fed(Ok(vec![row(3), row(4)]), 2, 2_000, |m| Arc::from(m));
        assert_eq!(fed.iter().map(|p| p.record).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(fed[0].arrived_ms, 1_500);
        assert!(matches!(fed[0].body, Body::Row(3)));
        assert_eq!(next, Then::ReadAgain, "a full page: read on");
        assert_eq!(l.feed(0, &c), Feed::Read { after: 4, room: 10_000 });
        let _ = l.fed(Ok(vec![]), 10, 2_000, |m| Arc::from(m));
        assert_eq!(l.feed(10_000, &c), Feed::Wait, "no room");
        l.signals().flush.store(true, Ordering::SeqCst);
        assert_eq!(l.feed(10_000, &c), Feed::Flush);
    }

    #[test]
    fn one_check_of_the_lead_at_a_time() {
        let mut l = Lead::new(Arc::default(), Duration::from_secs(1));
        assert!(l.check());
        assert!(!l.check());
        assert!(!l.checked(Err(EngineError::internal("lost"))));
        assert!(l.check());
    }
}
