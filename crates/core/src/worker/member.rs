//! A member of a group sharing a store: where its batchable requests go (the group's queue in the
//! store, bodies included, for the group's leader to batch) and how their answers come back (it
//! reads what the leader settled for it there). It owns the requests in the group's hands.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{EngineError, ErrorName};
use crate::job::Body;
use crate::queue::{Caller, InFlight, Pending, Reply};
use crate::settle::answer::outcome_result;
use crate::settle::Success;
use crate::store::{Key, NewRequest, SettledRequest};

use super::ended::Ended;
use super::keys::Waiter;
use super::signals::GroupSignals;

/// Settled requests a member reads at a time (more are read at once when a page is full).
pub(crate) const SETTLED_PAGE: usize = 20_000;

/// A request in the group's hands.
struct Remote {
    m: InFlight,
    model: Arc<str>,
}

/// A request the group answered, for its caller.
pub(crate) struct Collected {
    pub m: InFlight,
    pub model: Arc<str>,
    pub result: Result<Success, EngineError>,
}

pub(crate) struct Member {
    signals: Arc<GroupSignals>,
    /// Requests to queue in the store (with their bodies).
    outbox: Vec<Pending>,
    /// The callers whose requests are being queued.
    enqueuing: Vec<u64>,
    /// Requests in the group's hands, by caller.
    remote: HashMap<u64, Remote>,
    /// Settled requests are being read (and whether to read again after).
    collecting: bool,
    collect_again: bool,
    /// The group's leader is to be asked to send its queue once this member's requests are in.
    flush_asked: bool,
}

impl Member {
    pub(super) fn new(signals: Arc<GroupSignals>) -> Member {
        Member {
            signals,
            outbox: Vec::new(),
            enqueuing: Vec::new(),
            remote: HashMap::new(),
            collecting: false,
            collect_again: false,
            flush_asked: false,
        }
    }

    pub(super) fn signals(&self) -> &Arc<GroupSignals> {
        &self.signals
    }

    /// Adds each model's requests in the group's hands to `load`.
    pub(super) fn load(&self, load: &mut crate::stats::Loads) {
        for r in self.remote.values() {
            load.of(&r.model).in_group += 1;
        }
    }

    /// A caller's request goes to the group's queue.
    pub(super) fn hand(&mut self, p: Pending) {
        let Caller::Id(id) = p.caller else { return };
        let mut m = p.to_flight();
        // The leader turns a native answer into a Converse one before it stores it.
        m.reply = Reply::AsIs;
        m.options = None;
        self.remote.insert(id, Remote { m, model: p.model.clone() });
        self.outbox.push(p);
    }

    /// The requests to queue in the store now (one transaction), unless that is being done.
    pub(super) fn start_enqueue(&mut self) -> Option<Vec<NewRequest>> {
        if !self.enqueuing.is_empty() || self.outbox.is_empty() {
            return None;
        }
        let mut rows = Vec::with_capacity(self.outbox.len());
        for p in std::mem::take(&mut self.outbox) {
            let Caller::Id(caller) = p.caller else { continue };
            let (Some(key), Body::Inline(body)) = (p.key, p.body) else { continue };
            self.enqueuing.push(caller);
            rows.push(NewRequest {
                caller,
                key,
                model_id: p.model,
                record_type: p.record_type,
                operation: p.operation,
                native: match p.reply {
                    Reply::FromNative(f) => Some(f),
                    Reply::AsIs => None,
                },
                body,
                deadline_ms: p.deadline.map(std::num::NonZeroU64::get),
            });
        }
        Some(rows)
    }

    /// The requests were queued in the store, or could not be (the store stayed out of reach
    /// longer than `store.outageTimeout`): those fail.
    pub(super) fn enqueued(&mut self, result: Result<(), EngineError>) -> Vec<Ended> {
        let callers = std::mem::take(&mut self.enqueuing);
        let Err(e) = result else { return Vec::new() };
        callers
            .into_iter()
            .filter_map(|c| self.remote.remove(&c))
            .map(|r| Ended { m: r.m, result: Err(e.clone()), keep: false })
            .collect()
    }

    /// Whether to read the settled requests now (a notification, or the timer while requests are
    /// in the group's hands); a read that runs is done again after.
    pub(super) fn collect(&mut self, woken: bool) -> bool {
        if !woken && self.remote.is_empty() {
            return false;
        }
        if self.collecting {
            self.collect_again = true;
            return false;
        }
        self.collecting = true;
        true
    }

    /// The settled requests were read: the answers for this member's callers, and whether to read
    /// again. A store out of reach longer than `store.outageTimeout` fails every request in the
    /// group's hands.
    pub(super) fn collected(
        &mut self,
        result: Result<Vec<SettledRequest>, EngineError>,
    ) -> (Vec<Collected>, Vec<Ended>, bool) {
        self.collecting = false;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "settled requests could not be read from the store");
                if e.name != ErrorName::StoreUnavailableException {
                    return (Vec::new(), Vec::new(), false);
                }
                self.outbox.clear();
                let failed =
                    self.remote.drain().map(|(_, r)| Ended { m: r.m, result: Err(e.clone()), keep: false }).collect();
                return (Vec::new(), failed, false);
            }
        };
        let full = rows.len() >= SETTLED_PAGE;
        let answers = rows
            .into_iter()
            .filter_map(|r| {
                let remote = self.remote.remove(&r.caller)?;
                Some(Collected { m: remote.m, model: remote.model, result: outcome_result(r.outcome) })
            })
            .collect();
        (answers, Vec::new(), full || std::mem::take(&mut self.collect_again))
    }

    /// `flush()`: the group's queue is the leader's; ask it to send what is queued once this
    /// member's requests are in the store. Whether there is anything to ask for.
    pub(super) fn flush(&mut self) -> bool {
        if self.remote.is_empty() {
            return false;
        }
        self.flush_asked = true;
        true
    }

    /// Whether to ask the leader to send the group's queue now (asked, and this member's
    /// requests are in the store).
    pub(super) fn take_flush_request(&mut self) -> bool {
        if self.flush_asked && self.outbox.is_empty() && self.enqueuing.is_empty() {
            self.flush_asked = false;
            return true;
        }
        false
    }

    /// A caller gave up on a request not yet in the store: the first request waiting for its key
    /// takes its place (`next` says who), or it never goes. `None`: not here.
    pub(super) fn cancel(&mut self, id: u64, next: impl FnOnce(&Key) -> Option<Waiter>) -> Option<bool> {
        let i = self.outbox.iter().position(|p| p.caller == Caller::Id(id))?;
        let remote = self.remote.remove(&id);
        let to = self.outbox[i].key.as_ref().and_then(next);
        match (to, remote) {
            (Some(to), Some(mut r)) => {
                to.takes(&mut self.outbox[i]);
                r.m.caller = Caller::Id(to.id);
                r.m.record = to.id;
                if to.operation.invocation_type() == r.m.operation.invocation_type() {
                    r.m.operation = to.operation;
                }
                self.remote.insert(to.id, r);
                Some(true)
            }
            _ => {
                self.outbox.remove(i);
                Some(false)
            }
        }
    }

    pub(super) fn is_idle(&self) -> bool {
        self.outbox.is_empty() && self.enqueuing.is_empty() && self.remote.is_empty()
    }

    /// Everything in the group's hands.
    pub(super) fn take_everything(&mut self) -> Vec<InFlight> {
        self.outbox.clear();
        self.enqueuing.clear();
        self.remote.drain().map(|(_, r)| r.m).collect()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::request::{InvocationType, Operation};
    use crate::store::Outcome;

    fn keyed(id: u64) -> Pending {
        Pending {
            caller: Caller::Id(id),
            operation: Operation::InvokeModel,
            record_type: InvocationType::InvokeModel,
            reply: Reply::AsIs,
            record: id,
            key: Some(Box::from(format!("k:{id}"))),
            model: Arc::from("m"),
            body: Body::Inline(Bytes::from_static(b"{}")),
            body_len: 2,
            options: None,
            direct: false,
            tries: 0,
            arrived_ms: 0,
            bounds: None,
            deadline: None,
        }
    }

    #[test]
    fn requests_go_to_the_store_in_one_write_and_their_answers_come_back() {
        let mut m = Member::new(Arc::default());
        m.hand(keyed(1));
        m.hand(keyed(2));
        let rows = m.start_enqueue().expect("rows");
        assert_eq!(rows.iter().map(|r| r.caller).collect::<Vec<_>>(), vec![1, 2]);
        m.hand(keyed(3));
        assert!(m.start_enqueue().is_none(), "one write at a time");
        assert!(m.enqueued(Ok(())).is_empty());
        assert!(m.collect(true));
        assert!(!m.collect(true), "a read runs: it is done again after");
        let settled = SettledRequest {
            caller: 2,
            outcome: Outcome::Output {
                body: Bytes::from_static(b"{}"),
                job_arn: None,
                record: None,
                attempts: 1,
                service_tier: None,
            },
        };
        let (answers, failed, again) = m.collected(Ok(vec![settled]));
        assert_eq!((answers.len(), failed.len(), again), (1, 0, true));
        assert_eq!(answers[0].m.caller, Caller::Id(2));
        assert!(!m.is_idle());
    }

    #[test]
    fn a_store_out_of_reach_fails_what_is_in_the_groups_hands() {
        let mut m = Member::new(Arc::default());
        m.hand(keyed(1));
        let _ = m.start_enqueue();
        let e = EngineError::new(ErrorName::StoreUnavailableException, "gone");
        assert_eq!(m.enqueued(Err(e.clone())).len(), 1);
        m.hand(keyed(2));
        let (_, failed, _) = m.collected(Err(e));
        assert_eq!(failed.len(), 1);
        assert!(m.is_idle());
    }

    #[test]
    fn a_cancelled_request_not_yet_in_the_store_never_goes_or_goes_for_a_waiter() {
        let mut m = Member::new(Arc::default());
        m.hand(keyed(1));
        m.hand(keyed(2));
        assert_eq!(m.cancel(1, |_| None), Some(false));
        assert_eq!(m.cancel(2, |_| Some(Waiter { id: 5, operation: Operation::InvokeModel })), Some(true));
        assert_eq!(m.cancel(9, |_| None), None);
        let rows = m.start_enqueue().expect("rows");
        assert_eq!(rows.iter().map(|r| r.caller).collect::<Vec<_>>(), vec![5]);
    }
}
