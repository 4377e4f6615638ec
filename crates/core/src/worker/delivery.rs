//! Where outcomes go, one of the worker's two seams: to the callers (the final answers kept in the
//! store for later sends of their keys, which are answered too), or, for a group's leader, to the
//! store, for the members to collect.

use std::sync::Arc;

use crate::error::EngineError;
use crate::queue::{Caller, InFlight};
use crate::settle::answer::{as_streamed, final_result, kept_answer, outcome_of, with_request_id};
use crate::settle::{Settlement, Success};
use crate::store::writer::StoreHandle;
use crate::store::{AnswerRow, Settled, Write};

use super::ended::Ended;
use super::keys::Keys;
use super::lead::Lead;

pub(crate) enum Delivery {
    /// The callers of this process.
    Callers,
    /// The store, for the members of the group (a leader).
    Group(Lead),
}

/// What delivering produced.
#[derive(Default)]
pub(crate) struct Delivered {
    /// For callers of this process (none for a leader).
    pub settlements: Vec<Settlement>,
    /// How many requests that waited for the keys of these were answered too.
    pub waiters: u64,
}

impl Delivery {
    /// Delivers sent requests that are done; their answers kept for their keys go to the store.
    ///
    /// `batch` is the batch (its token) that answered; `whole` names the model when the answers
    /// came whole (from a batch record): a streaming caller's answer is then turned into its
    /// stream's events here, after the store kept the answer itself.
    pub(super) fn deliver(
        &self,
        ended: Vec<Ended>,
        batch: Option<&Arc<str>>,
        whole: Option<&str>,
        keys: &mut Keys,
        store: Option<&StoreHandle>,
    ) -> Delivered {
        let mut out = Delivered::default();
        let mut rows = Vec::new();
        match self {
            Delivery::Group(_) => {
                let mut settled = Vec::with_capacity(ended.len());
                for Ended { m, result, keep } in ended {
                    let result = final_result(m.reply.native(), m.tries + 1, result);
                    let outcome = outcome_of(&result, Some(m.record), m.tries + 1);
                    // An output kept as its key's answer is written once, there.
                    let answer = (keep && result.is_ok() && m.key.is_some()).then_some(m.record);
                    if let Some(key) = m.key {
                        for w in keys.answered(&key, keep) {
                            out.waiters += 1;
                            settled.push(Settled { id: w.id, outcome: outcome.clone(), answer });
                        }
                        if keep {
                            let kept = Some(kept_answer(&result));
                            rows.push(AnswerRow { key, answer: kept, batch: batch.cloned(), record: m.record });
                        }
                    }
                    settled.push(Settled { id: m.record, outcome, answer });
                }
                if let Some(s) = store {
                    s.write(Write::Settle { answers: rows, settled });
                }
            }
            Delivery::Callers => {
                out.settlements.reserve(ended.len());
                for Ended { m, result, keep } in ended {
                    let result = final_result(m.reply.native(), m.tries + 1, result);
                    let answer = (keep && m.key.is_some()).then(|| kept_answer(&result));
                    if let Some(key) = m.key {
                        // Each waiter reads the answer its own way (a stream's events, or whole).
                        for w in keys.answered(&key, keep) {
                            out.waiters += 1;
                            let theirs = as_streamed(w.operation, whole, with_request_id(result.clone(), m.record));
                            out.settlements.push(Settlement { id: w.id, result: theirs });
                        }
                        rows.push(AnswerRow { key, answer, batch: batch.cloned(), record: m.record });
                    }
                    let result = as_streamed(m.operation, whole, result);
                    if let Caller::Id(id) = m.caller {
                        out.settlements.push(Settlement { id, result });
                    }
                }
                if let (Some(s), false) = (store, rows.is_empty()) {
                    s.write(Write::Answers(rows));
                }
            }
        }
        out
    }

    /// Delivers a request whose final answer is in the store (and every later send of its key),
    /// without writing it again.
    pub(super) fn from_store(
        m: InFlight,
        model: &str,
        result: Result<Success, EngineError>,
        keys: &mut Keys,
    ) -> Delivered {
        let mut out = Delivered::default();
        if let Some(key) = &m.key {
            for w in keys.answered(key, false) {
                out.waiters += 1;
                let theirs = as_streamed(w.operation, Some(model), with_request_id(result.clone(), m.record));
                out.settlements.push(Settlement { id: w.id, result: theirs });
            }
        }
        let result = as_streamed(m.operation, Some(model), result);
        if let Caller::Id(id) = m.caller {
            out.settlements.push(Settlement { id, result });
        }
        out
    }
}
