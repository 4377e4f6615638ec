//! The keys part (with a store): which keys are being worked on, each with the requests of later
//! sends that wait for its answer; how often each content was sent in this run (its occurrence,
//! part of a key without an idempotency key); which keys the store may have answers for; and the
//! requests waiting for a lookup of their key.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use crate::error::EngineError;
use crate::queue::{Caller, InFlight, Pending};
use crate::request::Operation;
use crate::settle::answer::stored_result;
use crate::settle::Success;
use crate::store::{self, Finished, Key};

use super::ended::Ended;

/// A key as the worker tracks it.
pub(crate) type Digest = [u8; 16];

/// Answered keys a leader remembers in each of its two generations.
const RECENT_KEYS: usize = 1 << 20;

/// What a lookup found.
#[derive(Debug, Default)]
pub(crate) struct LookedUp {
    /// Requests with a final answer in the store, and that answer (sent: settled from it).
    pub answered: Vec<(InFlight, Arc<str>, Result<Success, EngineError>)>,
    /// Requests to route.
    pub route: Vec<Pending>,
    /// Requests whose lookup failed, with its error (sent: settled with it).
    pub failed: Vec<Ended>,
}

/// What became of a request with a key.
#[derive(Debug)]
pub(crate) enum Admitted {
    /// Its key is being worked on: it waits for that answer (counted as sent).
    Joined,
    /// Its key may have an answer in the store: it waits for a lookup.
    LookUp,
    /// Its key is now being worked on by this request: route it.
    Route(Pending),
    /// A leader's request whose key this term answered: look it up again before batching it.
    Relook(Pending),
}

/// A request waiting for the answer of another request with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Waiter {
    /// Its caller's id (a leader's waiting requests: numbers of the group's requests).
    pub id: u64,
    /// How its caller reads the answer (a stream's events, or whole), whatever the request that
    /// works on the key was sent as.
    pub operation: Operation,
}

impl Waiter {
    /// It takes the place of a request whose caller gave up (still queued, not yet sent): the
    /// request is now its caller's, read its way (when it is the same kind of record).
    pub(super) fn takes(self, p: &mut Pending) {
        p.caller = Caller::Id(self.id);
        p.record = self.id;
        if self.operation.invocation_type() == p.operation.invocation_type() {
            p.operation = self.operation;
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Keys being worked on, each with who waits for its answer.
    live: HashMap<Digest, Vec<Waiter>>,
    occurrences: HashMap<Digest, u32>,
    /// Keys the store has answers for (`None`: any key may have one).
    known: Option<HashSet<u64>>,
    /// A leader's older generation of answered keys: a leader remembers what it answered in two
    /// bounded generations, for the moment between a member's lookup and its enqueue.
    older: Option<HashSet<u64>>,
    lookups: Vec<Pending>,
    looking: Option<Vec<Pending>>,
}

impl Keys {
    /// For a client: `known` are the keys its store has answers for (`None`: look every key up).
    pub(super) fn new(known: Option<HashSet<u64>>) -> Keys {
        Keys { known, ..Keys::default() }
    }

    /// For a group's leader: remembers the keys it answers, in two bounded generations.
    pub(super) fn for_leader() -> Keys {
        Keys { known: Some(HashSet::new()), older: Some(HashSet::new()), ..Keys::default() }
    }

    /// The store opened: these are its answered keys.
    pub(super) fn opened(&mut self, known: Option<HashSet<u64>>) {
        self.known = known;
    }

    /// The key of a request without an idempotency key: its content and its occurrence in this run.
    pub(super) fn content_key(&mut self, digest: &Digest) -> Key {
        let n = self.occurrences.entry(*digest).or_insert(0);
        *n += 1;
        store::content_key(digest, *n)
    }

    /// A caller's request with a key: it joins the request working on its key, waits for a lookup,
    /// or works on its key.
    pub(super) fn admit(&mut self, p: Pending) -> Admitted {
        let Some(key) = &p.key else { return Admitted::Route(p) };
        let digest = store::key_digest(key);
        if let Some(waiters) = self.live.get_mut(&digest) {
            if let Caller::Id(id) = p.caller {
                waiters.push(Waiter { id, operation: p.operation });
            }
            return Admitted::Joined;
        }
        self.live.insert(digest, Vec::new());
        if self.known.as_ref().is_none_or(|k| k.contains(&store::short_digest(&digest))) {
            self.lookups.push(p);
            return Admitted::LookUp;
        }
        Admitted::Route(p)
    }

    /// A leader's request of the group (`p.record` is its number): it joins the request working on
    /// its key, is looked up again when this term answered its key, or works on its key.
    pub(super) fn feed(&mut self, p: Pending) -> Admitted {
        let digest = store::key_digest(p.key.as_deref().unwrap_or_default());
        let short = store::short_digest(&digest);
        if !self.live.contains_key(&digest)
            && (self.known.as_ref().is_some_and(|k| k.contains(&short))
                || self.older.as_ref().is_some_and(|k| k.contains(&short)))
        {
            return Admitted::Relook(p);
        }
        self.claim(p)
    }

    /// A request whose key was looked up without an answer: it joins the request working on its key
    /// (a leader's `p.record` waits), or works on it.
    pub(super) fn claim(&mut self, p: Pending) -> Admitted {
        let digest = store::key_digest(p.key.as_deref().unwrap_or_default());
        match self.live.get_mut(&digest) {
            Some(waiters) => {
                waiters.push(Waiter { id: p.caller.id().unwrap_or(p.record), operation: p.operation });
                Admitted::Joined
            }
            None => {
                self.live.insert(digest, Vec::new());
                Admitted::Route(p)
            }
        }
    }

    /// A key worked on by a batch taken up from the store.
    pub(super) fn working_on(&mut self, key: &Key) {
        self.live.insert(store::key_digest(key), Vec::new());
    }

    /// The keys to look up next (none while a lookup runs).
    pub(super) fn start_lookup(&mut self) -> Option<Vec<Key>> {
        if self.looking.is_some() || self.lookups.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.lookups);
        let keys = batch.iter().filter_map(|p| p.key.clone()).collect();
        self.looking = Some(batch);
        Some(keys)
    }

    /// What the lookup that ran found: requests whose keys have answers in the store (with them),
    /// requests to route, or, when the lookup failed, requests that fail with its error.
    pub(super) fn looked_up(&mut self, result: Result<Vec<Option<Finished>>, EngineError>) -> LookedUp {
        let batch = self.looking.take().unwrap_or_default();
        let mut out = LookedUp::default();
        let found = match result {
            Ok(found) => found,
            Err(e) => {
                out.failed = batch
                    .into_iter()
                    .map(|p| Ended { m: p.into_flight().0, result: Err(e.clone()), keep: false })
                    .collect();
                return out;
            }
        };
        for (p, f) in batch.into_iter().zip(found) {
            match f {
                None => out.route.push(p),
                Some(f) => {
                    let model = p.model.clone();
                    out.answered.push((p.into_flight().0, model, stored_result(f)));
                }
            }
        }
        out
    }

    /// A key's request is done: who waits for its answer. `kept`: its answer is final and in the
    /// store (remember it).
    pub(super) fn answered(&mut self, key: &Key, kept: bool) -> Vec<Waiter> {
        let digest = store::key_digest(key);
        if kept {
            self.remember(store::short_digest(&digest));
        }
        self.live.remove(&digest).unwrap_or_default()
    }

    fn remember(&mut self, short: u64) {
        let Some(known) = &mut self.known else { return };
        known.insert(short);
        // Two generations: a key is remembered for at least RECENT_KEYS answers after it.
        if let Some(older) = &mut self.older {
            if known.len() >= RECENT_KEYS {
                *older = std::mem::take(known);
            }
        }
    }

    /// The caller of a cancelled request with this key gave up: the first request waiting for the
    /// key takes its place (its id), or the key is no longer worked on.
    pub(super) fn hand_over(&mut self, key: &Key) -> Option<Waiter> {
        let digest = store::key_digest(key);
        match self.live.get_mut(&digest) {
            Some(waiters) if !waiters.is_empty() => Some(waiters.remove(0)),
            _ => {
                self.live.remove(&digest);
                None
            }
        }
    }

    /// A request waiting for a lookup whose caller gave up: the first request waiting for its key
    /// takes its place (`Some(true)`), or it is taken out (`Some(false)`); `None`: not here.
    pub(super) fn cancel_lookup(&mut self, caller: Caller) -> Option<bool> {
        let i = self.lookups.iter().position(|p| p.caller == caller)?;
        let key = self.lookups[i].key.clone().unwrap_or_default();
        match self.hand_over(&key) {
            Some(next) => {
                next.takes(&mut self.lookups[i]);
                Some(true)
            }
            None => {
                self.lookups.remove(i);
                Some(false)
            }
        }
    }

    /// Whether no lookup waits or runs.
    pub(super) fn is_idle(&self) -> bool {
        self.lookups.is_empty() && self.looking.is_none()
    }

    /// Adds each model's requests waiting for a lookup of their key to `load` (as queued).
    pub(super) fn load(&self, load: &mut crate::stats::Loads) {
        for p in self.lookups.iter().chain(self.looking.iter().flatten()) {
            load.of(&p.model).queued += 1;
        }
    }

    /// Everything held: the requests waiting for lookups, and who waits for keys.
    pub(super) fn take_everything(&mut self) -> (Vec<Pending>, Vec<u64>) {
        let mut pending = std::mem::take(&mut self.lookups);
        pending.extend(self.looking.take().into_iter().flatten());
        let waiters = self.live.drain().flat_map(|(_, w)| w).map(|w| w.id).collect();
        (pending, waiters)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::job::Body;
    use crate::queue::Reply;
    use crate::request::{InvocationType, Operation};

    fn keyed(id: u64, key: &str) -> Pending {
        Pending {
            caller: Caller::Id(id),
            operation: Operation::InvokeModel,
            record_type: InvocationType::InvokeModel,
            reply: Reply::AsIs,
            record: id,
            key: Some(Box::from(key)),
            model: Arc::from("m"),
            body: Body::Inline(bytes::Bytes::new()),
            body_len: 0,
            options: None,
            direct: false,
            tries: 0,
            arrived_ms: 0,
            bounds: None,
            deadline: None,
        }
    }

    #[test]
    fn a_second_send_of_a_key_waits_for_the_first_and_gets_its_answer() {
        let mut k = Keys::new(Some(HashSet::new()));
        assert!(matches!(k.admit(keyed(1, "k:a")), Admitted::Route(_)));
        assert!(matches!(k.admit(keyed(2, "k:a")), Admitted::Joined));
        assert!(matches!(k.admit(keyed(3, "k:a")), Admitted::Joined));
        assert_eq!(k.answered(&Box::from("k:a"), true).iter().map(|w| w.id).collect::<Vec<_>>(), vec![2, 3]);
        // Answered and kept: a later send looks the store up.
        assert!(matches!(k.admit(keyed(4, "k:a")), Admitted::LookUp));
        assert_eq!(k.start_lookup(), Some(vec![Box::from("k:a")]));
        assert_eq!(k.start_lookup(), None, "one lookup at a time");
        assert_eq!(k.looked_up(Ok(vec![None])).route.len(), 1);
        assert!(k.is_idle());
    }

    #[test]
    fn a_waiter_takes_the_place_of_a_cancelled_request() {
        let mut k = Keys::new(Some(HashSet::new()));
        let key: Key = Box::from("k:b");
        let _ = k.admit(keyed(1, "k:b"));
        let mut streaming = keyed(2, "k:b");
        streaming.operation = Operation::InvokeModelWithResponseStream;
        let _ = k.admit(streaming);
        let waiter = k.hand_over(&key).expect("a waiter");
        assert_eq!(waiter, Waiter { id: 2, operation: Operation::InvokeModelWithResponseStream }, "with how it reads");
        let mut place = keyed(1, "k:b");
        waiter.takes(&mut place);
        assert_eq!(
            (place.caller, place.record, place.operation),
            (Caller::Id(2), 2, Operation::InvokeModelWithResponseStream)
        );
        assert_eq!(k.hand_over(&key), None);
        // No longer worked on: the next send works on it.
        assert!(matches!(k.admit(keyed(3, "k:b")), Admitted::Route(_)));
    }

    #[test]
    fn occurrences_make_identical_contents_distinct_keys() {
        let mut k = Keys::default();
        let d = [7u8; 16];
        assert_ne!(k.content_key(&d), k.content_key(&d));
    }

    #[test]
    fn a_leader_looks_up_again_a_key_it_answered() {
        let mut k = Keys::for_leader();
        let key: Key = Box::from("k:c");
        assert!(matches!(k.feed(keyed(10, "k:c")), Admitted::Route(_)));
        assert!(matches!(k.feed(keyed(11, "k:c")), Admitted::Joined));
        assert_eq!(k.answered(&key, true).iter().map(|w| w.id).collect::<Vec<_>>(), vec![11]);
        assert!(matches!(k.feed(keyed(12, "k:c")), Admitted::Relook(_)));
        // Not found in the store after all: it works on its key.
        assert!(matches!(k.claim(keyed(12, "k:c")), Admitted::Route(_)));
    }
}
