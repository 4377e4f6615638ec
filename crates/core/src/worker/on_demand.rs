//! The on-demand part: requests to send one call each (direct and openai modes, and what batch
//! mode cannot batch), at most `concurrency` at once, in arrival order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::backend::{BatchBackend, DirectBackend};
use crate::error::EngineError;
use crate::job::{self, Body};
use crate::queue::{InFlight, Pending, Reply};
use crate::request::{InvokeOptions, Operation, Request};
use crate::settle::Success;
use crate::store::writer::StoreHandle;
use crate::tokens::TokenBounds;

/// A call to make.
#[derive(Debug)]
pub(crate) struct Call {
    /// Its number (its end comes back with it).
    pub n: u64,
    pub operation: Operation,
    pub model: Arc<str>,
    pub body: Body,
    pub options: Option<Box<InvokeOptions>>,
    /// What it may cost in tokens, when known.
    pub bounds: Option<TokenBounds>,
    /// A group's cost cap: commit `(estimate, cap)` in the store before the call.
    pub commit: Option<(f64, f64)>,
}

impl Call {
    /// Makes the call: its body read back first when it is in an uploaded input file
    /// (`reread`) or a group's store (`rows`).
    pub(super) async fn run(
        self,
        direct: Option<Arc<dyn DirectBackend>>,
        reread: Option<Arc<dyn BatchBackend>>,
        rows: Option<StoreHandle>,
    ) -> Result<Success, EngineError> {
        if let Some((estimate, cap)) = self.commit {
            job::commit_spend(rows.as_ref(), estimate, cap).await?;
        }
        let body = match self.body {
            Body::Inline(b) => b,
            Body::Stored { input_uri, record } => {
                let backend =
                    reread.ok_or_else(|| EngineError::internal("no batch back-end to read the body back from"))?;
                job::read_back(backend.as_ref(), &input_uri, &[record]).await?.remove(&record).unwrap_or_default()
            }
            Body::Row(id) => job::row_bodies(rows.as_ref(), vec![id]).await?.remove(&id).unwrap_or_default(),
        };
        let Some(d) = direct else {
            return Err(EngineError::validation("this request needs on-demand InvokeModel, which is not configured"));
        };
        d.invoke(&Request { operation: self.operation, model_id: self.model, body, options: self.options }).await
    }
}

#[derive(Debug)]
pub(crate) struct OnDemand {
    concurrency: usize,
    queue: VecDeque<Pending>,
    calls: HashMap<u64, InFlight>,
    next: u64,
}

impl OnDemand {
    pub(super) fn new(concurrency: usize) -> OnDemand {
        OnDemand { concurrency: concurrency.max(1), queue: VecDeque::new(), calls: HashMap::new(), next: 1 }
    }

    pub(super) fn push(&mut self, p: Pending) {
        self.queue.push_back(p);
    }

    /// The calls to make now, within the concurrency.
    pub(super) fn startable(&mut self) -> Vec<Call> {
        let mut out = Vec::new();
        while self.calls.len() < self.concurrency {
            let Some(p) = self.queue.pop_front() else { break };
            let n = self.next;
            self.next += 1;
            // A Converse request that went as a native record goes on-demand as that record too.
            let operation = match p.reply {
                Reply::FromNative(_) => Operation::InvokeModel,
                Reply::AsIs => p.operation,
            };
            let (model, options, bounds) = (p.model.clone(), p.options.clone(), p.bounds);
            let (m, body) = p.into_flight();
            self.calls.insert(n, m);
            out.push(Call { n, operation, model, body, options, bounds, commit: None });
        }
        out
    }

    /// Most calls at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Call `n` ended: its request.
    pub(super) fn done(&mut self, n: u64) -> Option<InFlight> {
        self.calls.remove(&n)
    }

    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.calls.is_empty()
    }

    /// Everything held (all of it sent).
    pub(super) fn take_everything(&mut self) -> Vec<InFlight> {
        let mut out: Vec<InFlight> = self.queue.drain(..).map(|p| p.into_flight().0).collect();
        out.extend(self.calls.drain().map(|(_, m)| m));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Caller;
    use crate::request::InvocationType;

    fn pending(id: u64) -> Pending {
        Pending {
            caller: Caller::Id(id),
            operation: Operation::InvokeModel,
            record_type: InvocationType::InvokeModel,
            reply: Reply::AsIs,
            record: id,
            key: None,
            model: Arc::from("m"),
            body: Body::Inline(bytes::Bytes::new()),
            body_len: 0,
            options: None,
            direct: true,
            tries: 0,
            arrived_ms: 0,
            bounds: None,
        }
    }

    #[test]
    fn calls_start_in_order_within_the_concurrency() {
        let mut d = OnDemand::new(2);
        for i in 1..=3 {
            d.push(pending(i));
        }
        let first = d.startable();
        assert_eq!(first.len(), 2);
        assert!(d.startable().is_empty());
        assert_eq!(d.done(first[0].n).map(|m| m.caller), Some(Caller::Id(1)));
        let next = d.startable();
        assert_eq!(next.len(), 1);
        assert_eq!(d.done(next[0].n).map(|m| m.caller), Some(Caller::Id(3)));
        assert!(!d.is_idle());
        assert_eq!(d.take_everything().len(), 1);
        assert!(d.is_idle());
    }
}
