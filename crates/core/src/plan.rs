//! A dry run's plan: what the run would do and cost, per model and in total — jobs, records,
//! filler records, the tier each request would take, input tokens, the output tokens' upper bound,
//! and the cost at the chosen tiers beside the cost of sending everything at the standard price.

use crate::config::Price;
use crate::pricing::{self, Tier};

/// How a model's input tokens were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCount {
    /// Every request counted with Bedrock's CountTokens.
    Counted,
    /// `counted` requests counted with CountTokens; the rest scaled from the local estimate by
    /// what those counts say of it.
    Sampled {
        /// The requests counted.
        counted: u64,
    },
    /// The local estimate (see `tokens.rs`): the model has no token-counting API, or it failed.
    Estimated,
}

impl InputCount {
    /// How the count was made, as the package names it.
    pub fn as_str(self) -> &'static str {
        match self {
            InputCount::Counted => "count-tokens",
            InputCount::Sampled { .. } => "count-tokens-sample",
            InputCount::Estimated => "estimate",
        }
    }
}

/// What the run would do for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPlan {
    /// The model (or inference profile) id.
    pub model_id: String,
    /// Batch jobs it would create.
    pub jobs: u64,
    /// Requests in those jobs.
    pub records: u64,
    /// Filler records added to reach the minimum per job.
    pub padded_records: u64,
    /// Requests by the tier they would take: batch, flex, standard.
    pub requests_by_tier: [u64; 3],
    /// Input tokens of its requests and filler records.
    pub input_tokens: u64,
    /// How they were counted.
    pub input_count: InputCount,
    /// The sum of the maximum output tokens its requests and filler records ask for.
    pub output_tokens_upper_bound: u64,
    /// Requests that set no maximum (their output is not bounded).
    pub requests_without_max_tokens: u64,
    /// The upper-bound cost at the tiers the requests would take, fillers included (`None`: no
    /// price for the model).
    pub cost_usd: Option<f64>,
    /// The same requests all sent on-demand at the standard price.
    pub standard_cost_usd: Option<f64>,
}

/// What a dry run would do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunPlan {
    /// Per model, in model id order.
    pub models: Vec<ModelPlan>,
}

impl RunPlan {
    /// Jobs in all.
    pub fn jobs(&self) -> u64 {
        self.models.iter().map(|m| m.jobs).sum()
    }

    /// Requests in jobs in all.
    pub fn records(&self) -> u64 {
        self.models.iter().map(|m| m.records).sum()
    }

    /// The upper-bound cost of every model (`None` when a model has no price).
    pub fn cost_usd(&self) -> Option<f64> {
        self.models.iter().map(|m| m.cost_usd).sum()
    }

    /// Everything at the standard price (`None` when a model has no price).
    pub fn standard_cost_usd(&self) -> Option<f64> {
        self.models.iter().map(|m| m.standard_cost_usd).sum()
    }
}

/// The tally of one model while a dry run takes requests.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    pub jobs: u64,
    pub records: u64,
    pub fillers: u64,
    /// Estimated input tokens and output bound of one filler record.
    pub filler_input: u64,
    pub filler_output: u64,
    pub by_tier: [u64; 3],
    /// Input tokens by tier (the local estimate), and output bounds by tier.
    pub input_by_tier: [u64; 3],
    pub output_by_tier: [u64; 3],
    pub without_max: u64,
}

impl Tally {
    /// One request taking `tier`, with its estimated input tokens and output bound.
    pub(crate) fn request(&mut self, tier: Tier, input: u64, max_output: Option<u64>) {
        let t = tier.index();
        self.by_tier[t] += 1;
        self.input_by_tier[t] += input;
        match max_output {
            Some(n) => self.output_by_tier[t] += n,
            None => self.without_max += 1,
        }
    }

    /// The model's plan; `scale` turns the local estimate into counted tokens (1 when estimated).
    pub(crate) fn plan(&self, model_id: &str, count: InputCount, scale: f64, pricing: &[(String, Price)]) -> ModelPlan {
        let scaled = |n: u64| (n as f64 * scale).round() as u64;
        let input: [u64; 3] =
            [scaled(self.input_by_tier[0]), scaled(self.input_by_tier[1]), scaled(self.input_by_tier[2])];
        let price = pricing::price_of(model_id, pricing);
        let fillers = (scaled(self.fillers * self.filler_input), self.fillers * self.filler_output);
        let cost = price.as_ref().map(|p| {
            Tier::ALL
                .iter()
                .enumerate()
                .map(|(i, t)| pricing::cost(p, *t, input[i], self.output_by_tier[i]))
                .sum::<f64>()
                + pricing::cost(p, Tier::Batch, fillers.0, fillers.1)
        });
        let total_in: u64 = input.iter().sum::<u64>() + fillers.0;
        let total_out: u64 = self.output_by_tier.iter().sum::<u64>() + fillers.1;
        // Fillers exist only in batch: the all-standard run has none.
        let standard =
            price.as_ref().map(|p| pricing::cost(p, Tier::Standard, total_in - fillers.0, total_out - fillers.1));
        ModelPlan {
            model_id: model_id.to_string(),
            jobs: self.jobs,
            records: self.records,
            padded_records: self.fillers,
            requests_by_tier: self.by_tier,
            input_tokens: total_in,
            input_count: count,
            output_tokens_upper_bound: total_out,
            requests_without_max_tokens: self.without_max,
            cost_usd: cost.map(round_usd),
            standard_cost_usd: standard.map(round_usd),
        }
    }
}

fn round_usd(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_s_plan_prices_each_tier_and_the_fillers() {
        let mut t = Tally { jobs: 1, records: 2, fillers: 1, filler_input: 10, filler_output: 1, ..Tally::default() };
        t.request(Tier::Batch, 1000, Some(1000));
        t.request(Tier::Batch, 1000, Some(1000));
        t.request(Tier::Standard, 500, None);
        let p = t.plan("anthropic.claude-3-haiku-20240307-v1:0", InputCount::Estimated, 1.0, &[]);
        assert_eq!(
            (p.requests_by_tier, p.input_tokens, p.output_tokens_upper_bound, p.requests_without_max_tokens),
            ([2, 0, 1], 2510, 2001, 1)
        );
        // Batch: (2 × 0.00025 + 2 × 0.00125) / 2 = 0.0015; standard: 0.5 × 0.00025 = 0.000125; filler ≈ 0.
        let cost = p.cost_usd.unwrap();
        assert!((cost - 0.001626).abs() < 2e-6, "{cost}");
        assert!(p.standard_cost_usd.unwrap() > cost);
        let counted = t.plan("anthropic.claude-3-haiku-20240307-v1:0", InputCount::Counted, 2.0, &[]);
        assert_eq!(counted.input_tokens, 5020, "counts scale the estimate, fillers' too");
        assert_eq!(t.plan("no.price-v1:0", InputCount::Estimated, 1.0, &[]).cost_usd, None);
    }
}
