//! Admission: a submission checked into a request the worker holds. Its model is chosen and
//! checked (once per model id), its options, key and body are checked, a Converse request is
//! routed (as a Converse record, as its model's native record, or on-demand), and the requests
//! waiting in memory are bounded. A bad request is rejected alone, with an error naming what is
//! wrong.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use crate::config::BatchConfig;
use crate::converse::{self, ConverseRoute};
use crate::error::{EngineError, ErrorName};
use crate::job::Body;
use crate::queue::{Caller, Pending, Reply};
use crate::request::{
    batchable_model, check_body, check_model_id, InvocationType, InvokeOptions, Operation, Submission,
};
use crate::store;
use crate::tokens::{self, TokenBounds};

use super::keys::Digest;

/// How a request's model is chosen and checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelRule {
    /// For requests without one (the client's `modelId`).
    pub default: Option<Arc<str>>,
    /// For every request, whatever it names (openai mode's `bedrock/<modelId>`).
    pub forced: Option<Arc<str>>,
    /// Whether model ids must satisfy InvokeModel's pattern (not in openai mode, where the
    /// model string chooses the server's model and the request's id is not sent anywhere).
    pub check: bool,
}

/// A model id as checked.
#[derive(Clone)]
struct ModelId {
    id: Arc<str>,
    batchable: bool,
}

/// A checked request, and the digest of its content when its key is made of it (the keys part
/// adds the occurrence).
pub(crate) struct Checked {
    pub p: Pending,
    pub content: Option<Digest>,
}

/// What admission reads of a request's cost (a dry run, or a cost cap).
#[derive(Debug, Clone, Default)]
pub(crate) struct Costs {
    /// A cost cap is set: a request must have a price and set its maximum output tokens.
    pub capped: bool,
    /// The `pricing` option.
    pub pricing: Vec<(String, crate::config::Price)>,
}

pub(crate) struct Admission {
    rule: ModelRule,
    models: HashMap<Box<str>, Result<ModelId, EngineError>>,
    /// Batch mode's settings (`None`: every request goes on-demand).
    batch: Option<Arc<BatchConfig>>,
    /// Requests get keys (there is a store).
    keyed: bool,
    /// Most requests waiting in memory before `ThrottlingException`.
    max_queued: u64,
    /// Whether requests' token bounds are read, and what a cap requires of them.
    costs: Option<Costs>,
}

impl Admission {
    pub(super) fn new(
        rule: ModelRule,
        batch: Option<Arc<BatchConfig>>,
        keyed: bool,
        max_queued: usize,
        costs: Option<Costs>,
    ) -> Admission {
        Admission { rule, models: HashMap::new(), batch, keyed, max_queued: max_queued as u64, costs }
    }

    /// Checks a submission; `queued`: the requests already waiting in memory.
    pub(super) fn check(&mut self, s: Submission, queued: u64) -> Result<Checked, EngineError> {
        if let Some(e) = s.rejected {
            return Err(*e);
        }
        let name = match (&self.rule.forced, s.model_id.is_empty(), &self.rule.default) {
            (Some(forced), _, _) => forced.clone(),
            (None, false, _) => s.model_id,
            (None, true, Some(default)) => default.clone(),
            (None, true, None) => {
                return Err(EngineError::validation("modelId is required (on the command or the client)."))
            }
        };
        let model = match self.models.get(&*name) {
            Some(m) => m.clone()?,
            None => {
                let checked = if self.rule.check { check_model_id(&name) } else { Ok(()) };
                let m = checked.map(|()| ModelId { batchable: batchable_model(&name), id: name.clone() });
                self.models.insert(Box::from(&*name), m.clone());
                m?
            }
        };
        let options = s.options.map(|o| *o).unwrap_or_default();
        options.check()?;
        if let Some(k) = &s.key {
            if k.is_empty() || k.chars().count() > 1024 {
                return Err(EngineError::validation("idempotencyKey must be a string of 1 to 1024 characters."));
            }
        }
        let body = check_body(s.body)?;
        let operation = s.operation;
        // A Converse request: as a Converse record, as the model's native record, or on-demand.
        let (record, record_type, reply, on_demand) = match (operation.invocation_type(), &self.batch, model.batchable)
        {
            (InvocationType::Converse, Some(_), true) => match converse::route(&model.id, &body)? {
                ConverseRoute::Record(record) => (record, InvocationType::Converse, Reply::AsIs, false),
                ConverseRoute::Native { native, body } => {
                    (body, InvocationType::InvokeModel, Reply::FromNative(native), false)
                }
                ConverseRoute::OnDemand(_) => (body.clone(), InvocationType::Converse, Reply::AsIs, true),
            },
            (kind, _, _) => (body.clone(), kind, Reply::AsIs, false),
        };
        if queued > self.max_queued {
            return Err(EngineError::new(
                ErrorName::ThrottlingException,
                format!(
                    "{} requests are already waiting in memory (maxQueuedRequests); wait for some to settle and try again.",
                    self.max_queued
                ),
            )
            .with_status(429));
        }
        // A stream that goes on-demand streams from the service: its answer is never whole here,
        // so it has no key (nothing to keep, nothing to share with a later send).
        let streams_on_demand = operation.streams()
            && (on_demand
                || !model.batchable
                || self.batch.as_ref().is_none_or(|b| b.stream_on_demand)
                || options.needs_on_demand());
        let (key, content) = match (self.keyed, &s.key) {
            (false, _) => (None, None),
            _ if streams_on_demand => (None, None),
            (true, Some(k)) => (Some(store::explicit_key(k)), None),
            (true, None) => {
                // Each operation's answer differs from another's with the same bytes.
                let digest = match operation {
                    Operation::InvokeModel => store::content_digest(&model.id, &body, &options),
                    op => store::content_digest(&format!("{}\u{0}{}", model.id, op.as_str()), &body, &options),
                };
                (None, Some(digest))
            }
        };
        let options = (options != InvokeOptions::default()).then(|| Box::new(options));
        // On-demand calls take the request as it came; batch records the body routed above.
        let body = if on_demand || !model.batchable || self.batch.is_none() { body } else { record };
        let bounds = match &self.costs {
            None => None,
            Some(c) => Some(cost_bounds(c, &model.id, &body)?),
        };
        let p = Pending {
            caller: Caller::Id(s.id),
            operation,
            record_type,
            reply,
            record: s.id,
            key,
            body_len: body.len() as u32,
            body: Body::Inline(body),
            model: model.id,
            direct: !model.batchable || on_demand || streams_on_demand,
            options,
            tries: 0,
            arrived_ms: 0,
            bounds,
            deadline: s.deadline_ms.and_then(NonZeroU64::new),
        };
        Ok(Checked { p, content })
    }

    /// A model id of a group's request, shared with the requests already held.
    pub(super) fn intern(&mut self, id: &str) -> Arc<str> {
        if let Some(Ok(m)) = self.models.get(id) {
            return m.id.clone();
        }
        let m = ModelId { id: Arc::from(id), batchable: true };
        self.models.insert(Box::from(id), Ok(m.clone()));
        m.id
    }
}

/// What a request may cost in tokens; under a cap, a request must be priced and bounded.
fn cost_bounds(c: &Costs, model: &str, body: &[u8]) -> Result<TokenBounds, EngineError> {
    let b = tokens::bounds(model, body);
    if !c.capped {
        return Ok(b);
    }
    if crate::pricing::price_of(model, &c.pricing).is_none() {
        return Err(EngineError::validation(format!(
            "maxCostUsd is set, but there is no price for model {model}: give it in the pricing option ({{ \"{model}\": {{ inputPer1kTokens, outputPer1kTokens }} }})."
        )));
    }
    if b.max_output.is_none() {
        return Err(EngineError::validation(
            "maxCostUsd is set, so a request must set its maximum output tokens (max_tokens, inferenceConfig.maxTokens, max_gen_len, ...) for its cost to have an upper bound.",
        ));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    fn submission(id: u64, model: &str, body: &str) -> Submission {
        Submission::new(id, Arc::from(model), Bytes::from(body.to_string()))
    }

    fn admission(keyed: bool, max_queued: usize) -> Admission {
        Admission::new(
            ModelRule { check: true, ..ModelRule::default() },
            Some(Arc::new(BatchConfig::default())),
            keyed,
            max_queued,
            None,
        )
    }

    #[test]
    fn a_bad_request_is_rejected_naming_what_is_wrong() {
        let mut a = admission(false, 10);
        let e = a.check(submission(1, "", "{}"), 0).err().expect("no model");
        assert!(e.message.contains("modelId"), "{}", e.message);
        let e = a.check(submission(2, CLAUDE, "not json"), 0).err().expect("bad body");
        assert_eq!(e.name, ErrorName::ValidationException);
        let e = a.check(submission(3, "bad model id!", "{}"), 0).err().expect("bad id");
        assert_eq!(e.name, ErrorName::ValidationException);
        assert!(a.check(submission(4, CLAUDE, "{}"), 0).is_ok());
    }

    #[test]
    fn requests_beyond_max_queued_are_throttled() {
        let mut a = admission(false, 2);
        assert!(a.check(submission(1, CLAUDE, "{}"), 2).is_ok());
        let e = a.check(submission(2, CLAUDE, "{}"), 3).err().expect("throttled");
        assert_eq!((e.name, e.status()), (ErrorName::ThrottlingException, Some(429)));
    }

    #[test]
    fn with_a_store_a_request_without_a_key_is_keyed_by_its_content() {
        let mut a = admission(true, 10);
        let one = a.check(submission(1, CLAUDE, "{\"a\":1}"), 0).expect("ok");
        let two = a.check(submission(2, CLAUDE, "{\"a\":1}"), 0).expect("ok");
        assert!(one.p.key.is_none());
        assert_eq!(one.content, two.content, "the same content, the same digest");
        let mut s = submission(3, CLAUDE, "{}");
        s.key = Some("mine".into());
        let keyed = a.check(s, 0).expect("ok");
        assert!(keyed.content.is_none());
        assert_eq!(keyed.p.key.as_deref(), Some(&*store::explicit_key("mine")));
    }
}
