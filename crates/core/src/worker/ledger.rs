//! The ledger: how many of the worker's requests are in each state, and the only place those
//! counts change. A request is *queued* (in a queue, or waiting for a lookup of its key) or *in
//! flight* (in a batch, an on-demand call, its group's hands, or waiting for the answer of a
//! request with the same key) until it is *done*. Every change is one of the [`Move`]s, applied
//! to `n` requests at once; a move that would take more requests out of a state than it holds is
//! refused and changes nothing, so no count can go below zero.

use crate::stats::Counters;

/// A move of requests from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    /// Arrived: now queued.
    Receive,
    /// Taken up from the store (a batch an earlier process left running): in flight.
    Resume,
    /// Queued → in flight.
    Send,
    /// Queued → done without being sent (rejected, cancelled, or answered from the store).
    Drop,
    /// In flight → done (answered, failed, or given up by its caller).
    Settle,
    /// In flight → queued, for another try.
    Retry,
    /// In flight → queued without another try: a request waiting for the answer of the same key
    /// takes the place of a queued request whose caller gave up.
    Rejoin,
}

/// A move the ledger refused: it would take `n` requests out of a state that holds `have`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub step: Move,
    pub n: u64,
    pub have: u64,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the ledger refused {:?} of {} requests: the state holds {}", self.step, self.n, self.have)
    }
}

/// The worker's counts.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    c: Counters,
}

impl Ledger {
    /// Moves `n` requests; refused (nothing changes) if their state holds fewer.
    pub(super) fn apply(&mut self, step: Move, n: u64) -> Result<(), Refused> {
        if n == 0 {
            return Ok(());
        }
        let c = &mut self.c;
        let from = match step {
            Move::Receive | Move::Resume => None,
            Move::Send | Move::Drop => Some(c.queued),
            Move::Settle | Move::Retry | Move::Rejoin => Some(c.in_flight),
        };
        if let Some(have) = from.filter(|have| *have < n) {
            return Err(Refused { step, n, have });
        }
        match step {
            Move::Receive => {
                c.received += n;
                c.queued += n;
            }
            Move::Resume => c.in_flight += n,
            Move::Send => {
                c.queued -= n;
                c.in_flight += n;
            }
            Move::Drop => c.queued -= n,
            Move::Settle => c.in_flight -= n,
            Move::Retry => {
                c.in_flight -= n;
                c.queued += n;
                c.resubmitted += n;
            }
            Move::Rejoin => {
                c.in_flight -= n;
                c.queued += n;
            }
        }
        tracing::trace!(target: "bedrock_batch::ledger", step = ?step, n, queued = c.queued, in_flight = c.in_flight);
        Ok(())
    }

    /// Filler records were added to a batch.
    pub(super) fn padded(&mut self, n: u64) {
        self.c.padded += n;
    }

    /// Requests were answered on a tier.
    pub(super) fn answered(&mut self, tier: crate::pricing::Tier, n: u64) {
        self.c.by_tier[tier.index()] += n;
    }

    /// Requests left batch for on-demand calls: their deadline came.
    pub(super) fn deadline_fallbacks(&mut self, n: u64) {
        self.c.deadline_fallbacks += n;
    }

    /// Requests went on-demand (they are also sent).
    pub(super) fn sent_direct(&mut self, n: u64) {
        self.c.sent_direct += n;
    }

    /// A job's manifest reported its tokens.
    pub(super) fn tokens(&mut self, input: u64, output: u64) {
        self.c.input_tokens += input;
        self.c.output_tokens += output;
    }

    /// Everything the worker held is done (destroyed, or the worker stopped).
    pub(super) fn clear(&mut self) {
        tracing::trace!(target: "bedrock_batch::ledger", queued = self.c.queued, in_flight = self.c.in_flight, "cleared");
        self.c.queued = 0;
        self.c.in_flight = 0;
    }

    /// Requests waiting in the worker.
    pub(super) fn queued(&self) -> u64 {
        self.c.queued
    }

    /// Requests sent and not yet done.
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> u64 {
        self.c.in_flight
    }

    pub(super) fn counters(&self) -> &Counters {
        &self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_move_through_the_states_and_the_counts_return_to_zero() {
        let mut l = Ledger::default();
        l.apply(Move::Receive, 5).unwrap();
        l.apply(Move::Send, 4).unwrap();
        l.apply(Move::Drop, 1).unwrap();
        assert_eq!((l.queued(), l.in_flight()), (0, 4));
        l.apply(Move::Retry, 2).unwrap();
        assert_eq!((l.queued(), l.in_flight(), l.counters().resubmitted), (2, 2, 2));
        l.apply(Move::Send, 2).unwrap();
        l.apply(Move::Rejoin, 1).unwrap();
        l.apply(Move::Send, 1).unwrap();
        l.apply(Move::Settle, 4).unwrap();
        assert_eq!((l.queued(), l.in_flight(), l.counters().received), (0, 0, 5));
    }

    #[test]
    fn a_move_out_of_a_state_that_holds_too_few_is_refused_and_changes_nothing() {
        let mut l = Ledger::default();
        l.apply(Move::Receive, 2).unwrap();
        l.apply(Move::Send, 1).unwrap();
        let before = l.counters().clone();
        assert_eq!(l.apply(Move::Settle, 2), Err(Refused { step: Move::Settle, n: 2, have: 1 }));
        assert_eq!(l.apply(Move::Send, 2), Err(Refused { step: Move::Send, n: 2, have: 1 }));
        assert_eq!(l.apply(Move::Retry, 5), Err(Refused { step: Move::Retry, n: 5, have: 1 }));
        assert_eq!(l.counters(), &before);
        assert!(l.apply(Move::Settle, 1).is_ok());
        assert_eq!(l.apply(Move::Settle, 1), Err(Refused { step: Move::Settle, n: 1, have: 0 }));
    }

    #[test]
    fn clearing_settles_everything_and_keeps_the_totals() {
        let mut l = Ledger::default();
        l.apply(Move::Receive, 3).unwrap();
        l.apply(Move::Send, 2).unwrap();
        l.padded(7);
        l.sent_direct(1);
        l.clear();
        let c = l.counters();
        assert_eq!((c.queued, c.in_flight, c.received, c.padded, c.sent_direct), (0, 0, 3, 7, 1));
    }
}
