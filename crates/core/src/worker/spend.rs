//! The run's spend under a cost cap (`maxCostUsd`): before a batch is submitted or a request is
//! sent on-demand, its upper-bound cost (estimated input tokens and the maximum output tokens it
//! asks for, at its tier's price) is committed; work that would take the committed spend past the
//! cap is refused, and its requests reject with `CostLimitExceededException`, nothing paid.

use crate::config::Price;
use crate::error::{EngineError, ErrorName, SpendContext};
use crate::pricing::{self, Tier};
use crate::tokens::TokenBounds;

/// Work the cap lets through.
#[derive(Debug)]
pub(crate) struct Admitted<C> {
    /// For a group: what the task that sends the work commits in the store first.
    pub commit: Option<C>,
    /// The committed spend to keep in a journal, when this commitment changed it.
    pub persist: Option<f64>,
}

#[derive(Debug)]
pub(crate) struct Spend {
    cap: Option<f64>,
    committed: f64,
    pricing: Vec<(String, Price)>,
    /// The cap belongs to a group sharing a store: each commitment is made there, atomically,
    /// by the task that would send the work (see `shared_commit`).
    shared: bool,
    /// The estimated cost of the on-demand answers, per tier (batch, flex, standard).
    spent: [f64; 3],
}

impl Spend {
    /// `committed`: what earlier runs of the same store committed.
    pub(crate) fn new(cap: Option<f64>, pricing: Vec<(String, Price)>, committed: f64, shared: bool) -> Spend {
        Spend { cap, committed, pricing, shared, spent: [0.0; 3] }
    }

    /// For a group: what the task that sends work of this `estimate` commits in the store first
    /// (`(estimate, cap)`); `None` when the worker decides here ([`Spend::commit`]).
    pub(crate) fn shared_commit(&self, estimate: f64) -> Option<(f64, f64)> {
        self.cap.filter(|_| self.shared).map(|cap| (estimate, cap))
    }

    /// A batch about to start (its requests' `bounds`, in file order): let through (committed
    /// here, or by its job task for a group) or refused.
    pub(crate) fn admit_batch(
        &mut self,
        plan: &crate::job::Plan,
        bounds: Vec<Option<TokenBounds>>,
    ) -> Result<Admitted<crate::job::BatchCommit>, EngineError> {
        if !self.capped() {
            return Ok(Admitted { commit: None, persist: None });
        }
        let filler = plan.filler.map(|f| crate::tokens::bounds(&plan.model_id, f)).unwrap_or_default();
        // A group's leader commits in the store from the bodies it reads there (its requests'
        // bounds were made by their members).
        if let Some(commit) = self.batch_commit(&plan.model_id, filler) {
            return Ok(Admitted { commit: Some(commit), persist: None });
        }
        let estimate = self.estimate(&plan.model_id, Tier::Batch, bounds, (plan.fillers, filler));
        self.commit(estimate)?;
        Ok(Admitted { commit: None, persist: Some(self.committed) })
    }

    /// An on-demand call about to be made: let through (committed here, or by the call for a
    /// group) or refused.
    pub(crate) fn admit_call(
        &mut self,
        model: &str,
        bounds: Option<TokenBounds>,
        tier: Tier,
    ) -> Result<Admitted<(f64, f64)>, EngineError> {
        if !self.capped() {
            return Ok(Admitted { commit: None, persist: None });
        }
        let estimate = self.estimate(model, tier, [bounds], (0, TokenBounds::default()));
        if let Some(commit) = self.shared_commit(estimate) {
            self.committed += estimate;
            return Ok(Admitted { commit: Some(commit), persist: None });
        }
        self.commit(estimate)?;
        Ok(Admitted { commit: None, persist: Some(self.committed) })
    }

    /// A Flex call that was never answered (Flex stayed throttled and the request went into its
    /// batch, which commits again): its commitment is taken back, for a run's own cap; the new
    /// committed spend to keep. A group's stays committed in its store (the cap errs safe).
    pub(crate) fn release_call(&mut self, model: &str, bounds: Option<TokenBounds>, tier: Tier) -> Option<f64> {
        if !self.capped() || self.shared {
            return None;
        }
        let estimate = self.estimate(model, tier, [bounds], (0, TokenBounds::default()));
        self.committed = (self.committed - estimate).max(0.0);
        tracing::debug!(target: "bedrock_batch::spend", estimate, committed = self.committed, "released");
        Some(self.committed)
    }

    /// An on-demand answer on `tier` (the tier it names when its caller chose Flex): the tier it
    /// counts in, its estimated cost added there (from its `usage`, else the request's bounds).
    pub(crate) fn answered_on_demand(
        &mut self,
        model: &str,
        tier: Tier,
        result: &Result<crate::settle::Success, EngineError>,
        bounds: Option<TokenBounds>,
    ) -> Tier {
        let Ok(ok) = result else { return tier };
        let tier = match ok.service_tier.as_deref() {
            Some("flex") => Tier::Flex,
            _ => tier,
        };
        let used = if ok.stream.is_none() { crate::tokens::usage(&ok.body) } else { None };
        let (input, output) = used.unwrap_or_else(|| {
            let b = bounds.unwrap_or_else(|| crate::tokens::bounds(model, b""));
            (u64::from(b.input), u64::from(b.max_output.unwrap_or(0)))
        });
        if let Some(price) = pricing::price_of(model, &self.pricing) {
            self.spent[tier.index()] += pricing::cost(&price, tier, input, output);
        }
        tier
    }

    /// The estimated cost of the on-demand answers per tier (batch, flex, standard).
    pub(crate) fn spent(&self) -> [f64; 3] {
        self.spent
    }

    /// For a group's batch: how its job task commits (its bodies are read there).
    pub(crate) fn batch_commit(&self, model: &str, filler: TokenBounds) -> Option<crate::job::BatchCommit> {
        let cap = self.cap.filter(|_| self.shared)?;
        let price = pricing::price_of(model, &self.pricing)?;
        Some(crate::job::BatchCommit { cap, price, filler })
    }

    /// The `pricing` option.
    pub(crate) fn pricing(&self) -> &[(String, Price)] {
        &self.pricing
    }

    /// Whether there is a cap.
    pub(crate) fn capped(&self) -> bool {
        self.cap.is_some()
    }

    /// What the run has committed to spend, in USD.
    pub(crate) fn committed(&self) -> f64 {
        self.committed
    }

    /// The upper-bound cost of requests of `model` in `tier` (requests without bounds cost
    /// nothing here: admission refuses them under a cap), and of `fillers` filler records.
    pub(crate) fn estimate(
        &self,
        model: &str,
        tier: Tier,
        requests: impl IntoIterator<Item = Option<TokenBounds>>,
        fillers: (usize, TokenBounds),
    ) -> f64 {
        let Some(price) = pricing::price_of(model, &self.pricing) else { return 0.0 };
        let (mut input, mut output) = (0u64, 0u64);
        for b in requests.into_iter().flatten() {
            input += u64::from(b.input);
            output += u64::from(b.max_output.unwrap_or(0));
        }
        let (n, f) = fillers;
        input += n as u64 * u64::from(f.input);
        output += n as u64 * u64::from(f.max_output.unwrap_or(0));
        pricing::cost(&price, tier, input, output)
    }

    /// Commits `estimate` USD, or refuses when the committed spend would cross the cap.
    pub(crate) fn commit(&mut self, estimate: f64) -> Result<(), EngineError> {
        let Some(cap) = self.cap else { return Ok(()) };
        if self.committed + estimate > cap + 1e-9 {
            let e = refusal(cap, self.committed, estimate);
            tracing::warn!(target: "bedrock_batch::spend", estimate, committed = self.committed, cap, "refused");
            return Err(e);
        }
        self.committed += estimate;
        tracing::debug!(target: "bedrock_batch::spend", estimate, committed = self.committed, "committed");
        Ok(())
    }
}

/// The refusal of work whose `estimate` would take `committed` past `cap`.
pub(crate) fn refusal(cap: f64, committed: f64, estimate: f64) -> EngineError {
    EngineError::new(
        ErrorName::CostLimitExceededException,
        format!(
            "Not sent: its upper-bound cost of ${estimate:.6} would take the committed spend of ${committed:.6} past maxCostUsd (${cap})."
        ),
    )
    .with_status(402)
    .with_spend(SpendContext { cap_usd: cap, committed_usd: committed, estimate_usd: estimate })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    fn b(input: u32, out: u32) -> Option<TokenBounds> {
        Some(TokenBounds { input, max_output: Some(out) })
    }

    #[test]
    fn work_that_would_cross_the_cap_is_refused_and_nothing_is_committed() {
        let mut s = Spend::new(Some(0.01), Vec::new(), 0.0, false);
        // 4,000 input tokens and 4,000 output tokens of Claude 3 Haiku in batch: (0.001 + 0.005) / 2.
        let one = s.estimate(HAIKU, Tier::Batch, [b(2000, 2000), b(2000, 2000)], (0, TokenBounds::default()));
        assert!((one - 0.003).abs() < 1e-12, "{one}");
        s.commit(one).unwrap();
        s.commit(one).unwrap();
        s.commit(one).unwrap();
        let e = s.commit(one).unwrap_err();
        assert_eq!(e.name, ErrorName::CostLimitExceededException);
        let spend = e.spend().unwrap();
        assert!((spend.committed_usd - 0.009).abs() < 1e-12 && (spend.estimate_usd - 0.003).abs() < 1e-12);
        assert!((s.committed() - 0.009).abs() < 1e-12, "a refusal commits nothing");
        assert!(s.estimate(HAIKU, Tier::Standard, [b(2000, 2000)], (0, TokenBounds::default())) > one / 2.0);
    }

    #[test]
    fn a_flex_call_never_answered_gives_its_commitment_back_in_a_run_but_not_in_a_group() {
        let mut s = Spend::new(Some(1.0), Vec::new(), 0.0, false);
        let a = s.admit_call(HAIKU, b(2000, 2000), Tier::Flex).unwrap();
        let committed = a.persist.unwrap();
        assert!(committed > 0.0);
        assert_eq!(s.release_call(HAIKU, b(2000, 2000), Tier::Flex), Some(0.0), "back to nothing");
        assert_eq!(s.committed(), 0.0);

        let mut g = Spend::new(Some(1.0), Vec::new(), 0.0, true);
        g.admit_call(HAIKU, b(2000, 2000), Tier::Flex).unwrap();
        assert_eq!(g.release_call(HAIKU, b(2000, 2000), Tier::Flex), None, "a group's stays in its store");
        assert!(Spend::new(None, Vec::new(), 0.0, false).release_call(HAIKU, b(1, 1), Tier::Flex).is_none());
    }

    #[test]
    fn without_a_cap_everything_goes() {
        let mut s = Spend::new(None, Vec::new(), 0.0, false);
        assert!(s.commit(1e9).is_ok());
        assert!(!s.capped());
    }
}
