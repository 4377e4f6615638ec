//! The on-demand part: requests to send one call each (direct and openai modes, and what batch
//! mode cannot batch), at most `concurrency` at once, in arrival order; and the tier each call of
//! batch mode takes (Flex where the model offers it, see [`Tiers`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::FlexMode;
use crate::error::ErrorName;
use crate::pricing::{self, Tier};

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
    /// The Flex tier first, and what follows when it stays throttled; `None`: standard (or the
    /// tier the caller chose).
    pub flex: Option<FlexTry>,
}

/// A call on the Flex tier: retried with backoff while Flex throttles, for at most `patience`,
/// then `then`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlexTry {
    pub patience: Duration,
    pub then: AfterFlex,
    /// The patience is a deadline's: a Flex call still unanswered when it ends is given up.
    pub hard: bool,
}

/// Where a call goes when Flex stayed throttled for its patience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFlex {
    /// The standard tier (`batch.flex: "fallback"`).
    Standard,
    /// A batch job (`batch.flex: "prefer"`, for a request batch can take).
    Batch,
}

/// How a call ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Answered (or failed) on `tier`.
    Answered(Result<Success, EngineError>, Tier),
    /// Flex stayed throttled: the request goes into a batch job, with its body.
    Spill(bytes::Bytes),
}

/// How batch mode's on-demand calls choose their tier: Flex for the models that offer it (the
/// shipped list or `tiers.flex`), unless `batch.flex` is `"never"` or the caller chose a tier.
#[derive(Debug, Clone)]
pub(crate) struct Tiers {
    pub mode: FlexMode,
    pub patience: Duration,
    pub flex_models: Option<Vec<String>>,
    /// Models whose Flex stayed throttled under `"prefer"`: their requests go to batch until then.
    spilled: HashMap<Arc<str>, Instant>,
}

impl Tiers {
    pub(crate) fn new(mode: FlexMode, patience: Duration, flex_models: Option<Vec<String>>) -> Tiers {
        Tiers { mode, patience, flex_models, spilled: HashMap::new() }
    }

    /// Whether calls of `model` go on Flex first.
    pub(crate) fn flex(&self, model: &str) -> bool {
        self.mode != FlexMode::Never && pricing::offers_flex(model, self.flex_models.as_deref())
    }

    /// Whether a request batch could take goes on Flex instead (`"prefer"`, a model with Flex whose
    /// Flex has not just stayed throttled).
    pub(crate) fn prefers_flex(&mut self, model: &Arc<str>, now: Instant) -> bool {
        if self.mode != FlexMode::Prefer || !self.flex(model) {
            return false;
        }
        match self.spilled.get(model) {
            Some(until) if *until > now => false,
            Some(_) => {
                self.spilled.remove(model);
                true
            }
            None => true,
        }
    }

    /// Flex stayed throttled for a request of `model`: its requests go to batch for a patience.
    pub(crate) fn spilled(&mut self, model: &Arc<str>, now: Instant) {
        self.spilled.insert(model.clone(), now + self.patience);
    }

    /// The Flex try of a call: `direct` says batch could not take the request (then standard
    /// follows Flex), `options` whether its caller chose a tier.
    fn try_of(&self, model: &str, direct: bool, options: Option<&InvokeOptions>) -> Option<FlexTry> {
        if options.is_some_and(|o| o.service_tier.is_some()) || !self.flex(model) {
            return None;
        }
        let then = if direct { AfterFlex::Standard } else { AfterFlex::Batch };
        Some(FlexTry { patience: self.patience, then, hard: false })
    }
}

/// Whether an error says the tier has no room now (Flex is best-effort: it throttles).
fn no_room(e: &EngineError) -> bool {
    matches!(e.name, ErrorName::ThrottlingException | ErrorName::ServiceUnavailableException)
}

/// A Converse body asking for the Flex tier (`None`: its caller chose a tier, or it is not JSON).
fn converse_on_flex(body: &bytes::Bytes) -> Option<bytes::Bytes> {
    if memchr::memmem::find(body, b"\"serviceTier\"").is_some() {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.as_object_mut()?.insert("serviceTier".into(), serde_json::json!({ "type": "flex" }));
    serde_json::to_vec(&v).ok().map(bytes::Bytes::from)
}

impl Call {
    /// Makes the call: its body read back first when it is in an uploaded input file
    /// (`reread`) or a group's store (`rows`); on Flex first when the call says so.
    pub(super) async fn run(
        self,
        direct: Option<Arc<dyn DirectBackend>>,
        reread: Option<Arc<dyn BatchBackend>>,
        rows: Option<StoreHandle>,
    ) -> Outcome {
        let standard = |r: Result<Success, EngineError>| Outcome::Answered(r, Tier::Standard);
        if let Some((estimate, cap)) = self.commit {
            if let Err(e) = job::commit_spend(rows.as_ref(), estimate, cap).await {
                return standard(Err(e));
            }
        }
        let body = match self.body {
            Body::Inline(b) => b,
            Body::Stored { input_uri, record } => {
                let Some(backend) = reread else {
                    return standard(Err(EngineError::internal("no batch back-end to read the body back from")));
                };
                match job::read_back(backend.as_ref(), &input_uri, &[record]).await {
                    Ok(mut b) => b.remove(&record).unwrap_or_default(),
                    Err(e) => return standard(Err(e)),
                }
            }
            Body::Row(id) => match job::row_bodies(rows.as_ref(), vec![id]).await {
                Ok(mut b) => b.remove(&id).unwrap_or_default(),
                Err(e) => return standard(Err(e)),
            },
        };
        let Some(d) = direct else {
            return standard(Err(EngineError::validation(
                "this request needs on-demand InvokeModel, which is not configured",
            )));
        };
        let mut request = Request { operation: self.operation, model_id: self.model, body, options: self.options };
        if let Some(flex) = self.flex {
            match on_flex(d.as_ref(), &request, flex).await {
                Some(answered) => return Outcome::Answered(answered, Tier::Flex),
                None if flex.then == AfterFlex::Batch => return Outcome::Spill(request.body),
                None => {}
            }
            // The standard tier, as the request came (no tier of its own: the caller chose none).
            if let Some(o) = request.options.as_deref_mut() {
                o.service_tier = None;
            }
        }
        standard(d.invoke(&request).await)
    }
}

/// Sends `request` on the Flex tier, again with backoff while Flex throttles, for at most the
/// patience; `None` when it stayed throttled (or the request cannot ask for a tier).
async fn on_flex(d: &dyn DirectBackend, request: &Request, flex: FlexTry) -> Option<Result<Success, EngineError>> {
    let on_flex = match request.operation {
        Operation::Converse | Operation::ConverseStream => {
            Request { body: converse_on_flex(&request.body)?, options: request.options.clone(), ..request.clone() }
        }
        Operation::InvokeModel | Operation::InvokeModelWithResponseStream => {
            let mut options = request.options.as_deref().cloned().unwrap_or_default();
            options.service_tier = Some("flex".into());
            Request { options: Some(Box::new(options)), ..request.clone() }
        }
    };
    let until = Instant::now() + flex.patience;
    let mut attempt = 0;
    loop {
        let call = d.invoke(&on_flex);
        let answered = if flex.hard {
            match tokio::time::timeout(until.saturating_duration_since(Instant::now()), call).await {
                Ok(answered) => answered,
                Err(_) => return None,
            }
        } else {
            call.await
        };
        match answered {
            Err(e) if no_room(&e) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    tracing::debug!(target: "bedrock_batch::tier", model = &*request.model_id, "flex stayed throttled");
                    return None;
                }
                tokio::time::sleep(crate::backoff::backoff(attempt, Duration::from_secs(5)).min(left)).await;
                attempt += 1;
            }
            answered => return Some(answered),
        }
    }
}

#[derive(Debug)]
pub(crate) struct OnDemand {
    concurrency: usize,
    /// Requests to call, each with the longest it may retry a throttled Flex tier when that is
    /// shorter than the patience (a request whose deadline came).
    queue: VecDeque<(Pending, Option<Duration>)>,
    calls: HashMap<u64, (Arc<str>, InFlight)>,
    next: u64,
    /// Batch mode's tiers (none in direct and openai modes: calls go as the caller asked).
    pub(super) tiers: Option<Tiers>,
}

impl OnDemand {
    pub(super) fn new(concurrency: usize, tiers: Option<Tiers>) -> OnDemand {
        OnDemand { concurrency: concurrency.max(1), queue: VecDeque::new(), calls: HashMap::new(), next: 1, tiers }
    }

    pub(super) fn push(&mut self, p: Pending) {
        self.queue.push_back((p, None));
    }

    /// Queues a request whose Flex tries must end within `flex_for` (its deadline is near).
    pub(super) fn push_within(&mut self, p: Pending, flex_for: Duration) {
        self.queue.push_back((p, Some(flex_for)));
    }

    /// The calls to make now, within the concurrency.
    pub(super) fn startable(&mut self) -> Vec<Call> {
        let mut out = Vec::new();
        while self.calls.len() < self.concurrency {
            let Some((p, within)) = self.queue.pop_front() else { break };
            let n = self.next;
            self.next += 1;
            // A Converse request that went as a native record goes on-demand as that record too.
            let operation = match p.reply {
                Reply::FromNative(_) => Operation::InvokeModel,
                Reply::AsIs => p.operation,
            };
            let flex = self.tiers.as_ref().and_then(|t| t.try_of(&p.model, p.direct, p.options.as_deref())).map(|f| {
                FlexTry { patience: within.map_or(f.patience, |w| w.min(f.patience)), hard: within.is_some(), ..f }
            });
            let (model, options, bounds) = (p.model.clone(), p.options.clone(), p.bounds);
            let (m, body) = p.into_flight();
            self.calls.insert(n, (model.clone(), m));
            out.push(Call { n, operation, model, body, options, bounds, commit: None, flex });
        }
        out
    }

    /// Most calls at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Call `n` ended: its request.
    pub(super) fn done(&mut self, n: u64) -> Option<InFlight> {
        self.calls.remove(&n).map(|(_, m)| m)
    }

    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.calls.is_empty()
    }

    /// Adds each model's requests in calls or waiting for one to `load`.
    pub(super) fn load(&self, load: &mut crate::stats::Loads) {
        for (p, _) in &self.queue {
            load.of(&p.model).on_demand += 1;
        }
        for (model, _) in self.calls.values() {
            load.of(model).on_demand += 1;
        }
    }

    /// Everything held (all of it sent).
    pub(super) fn take_everything(&mut self) -> Vec<InFlight> {
        let mut out: Vec<InFlight> = self.queue.drain(..).map(|(p, _)| p.into_flight().0).collect();
        out.extend(self.calls.drain().map(|(_, (_, m))| m));
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
            deadline: None,
        }
    }

    #[test]
    fn calls_start_in_order_within_the_concurrency() {
        let mut d = OnDemand::new(2, None);
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

    fn tiers(mode: FlexMode) -> Option<Tiers> {
        Some(Tiers::new(mode, Duration::from_secs(60), None))
    }

    fn of_model(id: u64, model: &str, direct: bool) -> Pending {
        Pending { model: Arc::from(model), direct, ..pending(id) }
    }

    #[test]
    fn batch_mode_calls_of_a_model_with_flex_go_on_flex_first_unless_the_caller_chose_a_tier() {
        let mut d = OnDemand::new(8, tiers(FlexMode::Fallback));
        d.push(of_model(1, "amazon.nova-pro-v1:0", true));
        d.push(of_model(2, "anthropic.claude-3-haiku-20240307-v1:0", true));
        let mut chose = of_model(3, "amazon.nova-pro-v1:0", true);
        chose.options = Some(Box::new(InvokeOptions { service_tier: Some("default".into()), ..Default::default() }));
        d.push(chose);
        d.push(of_model(4, "us.amazon.nova-pro-v1:0", false));
        let flex: Vec<_> = d.startable().into_iter().map(|c| c.flex.map(|f| f.then)).collect();
        assert_eq!(flex, [Some(AfterFlex::Standard), None, None, Some(AfterFlex::Batch)]);
    }

    #[test]
    fn never_and_direct_mode_use_no_flex() {
        for t in [tiers(FlexMode::Never), None] {
            let mut d = OnDemand::new(8, t);
            d.push(of_model(1, "amazon.nova-pro-v1:0", true));
            assert!(d.startable()[0].flex.is_none());
        }
    }

    #[test]
    fn prefer_sends_flex_models_on_flex_until_flex_stays_throttled_then_batch_for_a_patience() {
        let mut t = Tiers::new(FlexMode::Prefer, Duration::from_secs(60), None);
        let (nova, claude) = (Arc::from("amazon.nova-pro-v1:0"), Arc::from("anthropic.claude-3-haiku-20240307-v1:0"));
        let now = Instant::now();
        assert!(t.prefers_flex(&nova, now));
        assert!(!t.prefers_flex(&claude, now));
        t.spilled(&nova, now);
        assert!(!t.prefers_flex(&nova, now + Duration::from_secs(59)));
        assert!(t.prefers_flex(&nova, now + Duration::from_secs(61)));
        assert!(!Tiers::new(FlexMode::Fallback, Duration::ZERO, None).prefers_flex(&nova, now));
    }

    #[test]
    fn a_converse_body_asks_for_flex_unless_it_names_a_tier() {
        let asked = converse_on_flex(&bytes::Bytes::from_static(br#"{"messages":[]}"#)).unwrap();
        assert_eq!(&asked[..], br#"{"messages":[],"serviceTier":{"type":"flex"}}"#);
        assert!(converse_on_flex(&bytes::Bytes::from_static(br#"{"serviceTier":{"type":"default"}}"#)).is_none());
    }
}
