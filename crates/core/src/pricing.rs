//! What requests cost: the price tiers a request can take, each tier's share of the on-demand
//! (standard) price, and the per-model standard prices (the `pricing` option, over a small table
//! shipped with the package).
//!
//! The shipped table holds us-east-1 on-demand list prices in USD per 1,000 tokens, from AWS's
//! pricing page (<https://aws.amazon.com/bedrock/pricing/>) as of 2025-11; prices change and
//! differ by region, so the `pricing` option overrides it model by model. Batch inference costs
//! 50% of the on-demand price for the models it supports (the same page, "Batch" section).

use crate::config::Price;

/// How a request is sent, as it is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// In a batch inference job.
    Batch,
    /// On-demand, Bedrock's Flex service tier.
    Flex,
    /// On-demand, the standard tier.
    Standard,
}

impl Tier {
    /// Every tier, cheapest first.
    pub const ALL: [Tier; 3] = [Tier::Batch, Tier::Flex, Tier::Standard];

    /// Its place in [`Tier::ALL`] (and in every per-tier array: batch, flex, standard).
    pub fn index(self) -> usize {
        match self {
            Tier::Batch => 0,
            Tier::Flex => 1,
            Tier::Standard => 2,
        }
    }

    /// The tier as the package names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Batch => "batch",
            Tier::Flex => "flex",
            Tier::Standard => "standard",
        }
    }

    /// Its share of the standard price: batch 0.5 (AWS's pricing page); Flex 0.5 (AWS says
    /// "discounted"; its re:Invent 2025 session and third-party reports say 50% off standard).
    pub fn share(self) -> f64 {
        match self {
            Tier::Batch | Tier::Flex => 0.5,
            Tier::Standard => 1.0,
        }
    }
}

/// The shipped standard prices (USD per 1,000 tokens, input and output; us-east-1, 2025-11).
const SHIPPED: &[(&str, f64, f64)] = &[
    ("anthropic.claude-3-haiku-20240307-v1:0", 0.00025, 0.00125),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", 0.0008, 0.004),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", 0.003, 0.015),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", 0.003, 0.015),
    ("anthropic.claude-3-7-sonnet-20250219-v1:0", 0.003, 0.015),
    ("anthropic.claude-sonnet-4-20250514-v1:0", 0.003, 0.015),
    ("anthropic.claude-3-opus-20240229-v1:0", 0.015, 0.075),
    ("amazon.nova-micro-v1:0", 0.000035, 0.00014),
    ("amazon.nova-lite-v1:0", 0.00006, 0.00024),
    ("amazon.nova-pro-v1:0", 0.0008, 0.0032),
    ("meta.llama3-1-8b-instruct-v1:0", 0.00022, 0.00022),
    ("meta.llama3-1-70b-instruct-v1:0", 0.00072, 0.00072),
];

/// The models that offer Bedrock's Flex service tier, as model id prefixes (a model id matches
/// when it starts with one, after any inference-profile prefix such as `us.`): AWS's launch list
/// (re:Invent 2025: gpt-oss, DeepSeek, Qwen3, Nova Pro and Premier) and what it added since
/// (Nova 2 Lite, Mistral Large 3), as of 2025-12. Claude has no Flex tier: its discounted path is
/// batch. The `tiers: { flex: [...] }` option replaces this list.
pub const SHIPPED_FLEX: &[&str] = &[
    "openai.gpt-oss-",
    "deepseek.",
    "qwen.qwen3-",
    "amazon.nova-pro-",
    "amazon.nova-premier-",
    "amazon.nova-2-lite-",
    "mistral.mistral-large-3-",
];

/// Whether `model_id` (or the model of an inference profile) offers the Flex tier: by the
/// `tiers.flex` option's list when given (exact ids or prefixes ending in `-` or `.`), else by
/// [`SHIPPED_FLEX`].
pub fn offers_flex(model_id: &str, listed: Option<&[String]>) -> bool {
    let matches = |id: &str| match listed {
        Some(list) => list.iter().any(|m| m == id || ((m.ends_with('-') || m.ends_with('.')) && id.starts_with(&**m))),
        None => SHIPPED_FLEX.iter().any(|p| id.starts_with(p)),
    };
    matches(model_id) || model_id.split_once('.').is_some_and(|(_, rest)| matches(rest))
}

/// The standard price of a model: the `pricing` option's, else the shipped table's (also for an
/// inference profile of a listed model: `us.`, `eu.`, `apac.`, `global.` ... and its id), else none.
pub fn price_of(model_id: &str, pricing: &[(String, Price)]) -> Option<Price> {
    if let Some((_, p)) = pricing.iter().find(|(m, _)| m == model_id) {
        return Some(*p);
    }
    let shipped = |id: &str| SHIPPED.iter().find(|(m, _, _)| *m == id);
    shipped(model_id)
        .or_else(|| model_id.split_once('.').and_then(|(_, rest)| shipped(rest)))
        .map(|(_, i, o)| Price { input_per_1k_tokens: *i, output_per_1k_tokens: *o })
}

/// What `input` and `output` tokens cost at `price` in `tier`, in USD.
pub fn cost(price: &Price, tier: Tier, input: u64, output: u64) -> f64 {
    ((input as f64 / 1000.0) * price.input_per_1k_tokens + (output as f64 / 1000.0) * price.output_per_1k_tokens)
        * tier.share()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_wins_over_the_shipped_table_and_profiles_find_their_model() {
        let mine = vec![(
            "anthropic.claude-3-haiku-20240307-v1:0".to_string(),
            Price { input_per_1k_tokens: 1.0, output_per_1k_tokens: 2.0 },
        )];
        assert_eq!(price_of("anthropic.claude-3-haiku-20240307-v1:0", &mine).unwrap().input_per_1k_tokens, 1.0);
        assert_eq!(price_of("anthropic.claude-3-haiku-20240307-v1:0", &[]).unwrap().input_per_1k_tokens, 0.00025);
        assert_eq!(price_of("us.anthropic.claude-3-haiku-20240307-v1:0", &[]).unwrap().output_per_1k_tokens, 0.00125);
        assert_eq!(price_of("global.anthropic.claude-sonnet-4-20250514-v1:0", &[]).unwrap().input_per_1k_tokens, 0.003);
        assert!(price_of("some.unknown-model-v1:0", &[]).is_none());
    }

    #[test]
    fn flex_is_offered_by_the_listed_families_and_profiles_of_them() {
        assert!(offers_flex("amazon.nova-pro-v1:0", None));
        assert!(offers_flex("us.amazon.nova-premier-v1:0", None));
        assert!(offers_flex("openai.gpt-oss-120b-1:0", None));
        assert!(offers_flex("qwen.qwen3-32b-v1:0", None));
        assert!(!offers_flex("anthropic.claude-3-haiku-20240307-v1:0", None));
        assert!(!offers_flex("us.anthropic.claude-sonnet-4-20250514-v1:0", None));
        assert!(!offers_flex("amazon.nova-lite-v1:0", None));
        let mine = vec!["anthropic.claude-3-haiku-20240307-v1:0".to_string(), "meta.llama3-".to_string()];
        assert!(offers_flex("anthropic.claude-3-haiku-20240307-v1:0", Some(&mine)));
        assert!(offers_flex("us.meta.llama3-1-8b-instruct-v1:0", Some(&mine)));
        assert!(!offers_flex("amazon.nova-pro-v1:0", Some(&mine)), "the option replaces the shipped list");
        assert!(!offers_flex("anthropic.claude-3-haiku", Some(&mine)), "an id without a trailing - or . is exact");
    }

    #[test]
    fn batch_costs_half_of_standard() {
        let p = Price { input_per_1k_tokens: 0.003, output_per_1k_tokens: 0.015 };
        let standard = cost(&p, Tier::Standard, 1000, 1000);
        assert!((standard - 0.018).abs() < 1e-12);
        assert!((cost(&p, Tier::Batch, 1000, 1000) - 0.009).abs() < 1e-12);
    }
}
