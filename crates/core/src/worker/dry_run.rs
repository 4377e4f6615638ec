//! A dry run (`dryRun: true`): batches are cut and formed exactly as they would be, but a batch
//! that would start is tallied instead (and its job slot freed at once), and so is a request that
//! would go on-demand. The requests are held until `plan()` has been read, then rejected with
//! `DryRunException`. A sample of each model's bodies is kept for counting their tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::DirectBackend;
use crate::job::{Body, Plan};
use crate::plan::{InputCount, RunPlan, Tally};
use crate::pricing::Tier;
use crate::queue::InFlight;
use crate::request::InvocationType;
use crate::tokens::{self, TokenBounds};

/// Bodies of a model kept for counting their tokens.
pub(crate) const SAMPLE: usize = 1_000;

/// A body to count, with its record type and local estimate.
#[derive(Debug, Clone)]
pub(crate) struct Sampled {
    pub body: Bytes,
    pub record_type: InvocationType,
    pub estimate: u32,
}

/// Each model's tally.
pub(crate) type Tallies = BTreeMap<Arc<str>, Tally>;
/// Each model's bodies to count.
pub(crate) type Samples = BTreeMap<Arc<str>, Vec<Sampled>>;

#[derive(Debug, Default)]
pub(crate) struct DryRun {
    tallies: Tallies,
    samples: Samples,
    held: Vec<InFlight>,
}

impl DryRun {
    /// A batch that would start, with its requests.
    pub(crate) fn batch(&mut self, plan: &Plan, members: Vec<InFlight>) {
        let t = self.tallies.entry(plan.model_id.clone()).or_default();
        t.jobs += 1;
        t.records += plan.records.len() as u64;
        t.fillers += plan.fillers as u64;
        if let Some(f) = plan.filler.map(|f| tokens::bounds(&plan.model_id, f)) {
            t.filler_input = u64::from(f.input);
            t.filler_output = u64::from(f.max_output.unwrap_or(0));
        }
        for ((_, body), m) in plan.records.iter().zip(&members) {
            let b = bounds_of(m.bounds, &plan.model_id, body);
            t.request(Tier::Batch, u64::from(b.input), b.max_output.map(u64::from));
            if let Body::Inline(bytes) = body {
                sample(&mut self.samples, &plan.model_id, bytes, plan.record_type, b.input);
            }
        }
        self.held.extend(members);
    }

    /// A request that would go on-demand (its body as it would be sent).
    pub(crate) fn on_demand(&mut self, model: &Arc<str>, m: InFlight, body: &Body, tier: Tier) {
        let b = bounds_of(m.bounds, model, body);
        self.tallies.entry(model.clone()).or_default().request(tier, u64::from(b.input), b.max_output.map(u64::from));
        if let Body::Inline(bytes) = body {
            sample(&mut self.samples, model, bytes, m.operation.invocation_type(), b.input);
        }
        self.held.push(m);
    }

    /// The samples to count, and the tallies to plan from (taken: the next plan starts afresh).
    pub(crate) fn take(&mut self) -> (Tallies, Samples) {
        (std::mem::take(&mut self.tallies), std::mem::take(&mut self.samples))
    }

    /// The requests held until the plan was read.
    pub(crate) fn take_held(&mut self) -> Vec<InFlight> {
        std::mem::take(&mut self.held)
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.held.is_empty()
    }
}

fn bounds_of(known: Option<TokenBounds>, model: &str, body: &Body) -> TokenBounds {
    match (known, body) {
        (Some(b), _) => b,
        (None, Body::Inline(bytes)) => tokens::bounds(model, bytes),
        (None, _) => TokenBounds::default(),
    }
}

fn sample(
    samples: &mut BTreeMap<Arc<str>, Vec<Sampled>>,
    model: &Arc<str>,
    body: &Bytes,
    record_type: InvocationType,
    estimate: u32,
) {
    let s = samples.entry(model.clone()).or_default();
    if s.len() < SAMPLE {
        s.push(Sampled { body: body.clone(), record_type, estimate });
    }
}

/// The plan of what was tallied, with the counts found: a model whose samples were counted has
/// its local estimate scaled by what the counts say of it (all of its requests counted: exact).
pub(crate) fn plan(
    tallies: &Tallies,
    counted: &BTreeMap<Arc<str>, Counted>,
    pricing: &[(String, crate::config::Price)],
) -> RunPlan {
    let models = tallies
        .iter()
        .map(|(model, t)| {
            let (count, scale) = match counted.get(model).copied().flatten() {
                Some((tokens, estimate, n)) if estimate > 0 => {
                    let all = n >= t.by_tier.iter().sum::<u64>();
                    (
                        if all { InputCount::Counted } else { InputCount::Sampled { counted: n } },
                        tokens as f64 / estimate as f64,
                    )
                }
                _ => (InputCount::Estimated, 1.0),
            };
            t.plan(model, count, scale, pricing)
        })
        .collect();
    RunPlan { models }
}

/// Whether Bedrock's CountTokens counts for this model: Claude, on its bare model id.
fn countable(model: &str) -> bool {
    model.starts_with("anthropic.")
}

/// What counting one model's samples found: their tokens, their local estimate, how many.
pub(crate) type Counted = Option<(u64, u64, u64)>;

/// Counts the samples' input tokens with the back-end's CountTokens, at most `concurrency` calls
/// at once: per model, what was counted, or `None` where the model cannot be counted (its local
/// estimate stands).
pub(crate) async fn count(
    direct: Option<Arc<dyn DirectBackend>>,
    samples: Samples,
    concurrency: usize,
) -> BTreeMap<Arc<str>, Counted> {
    let mut out = BTreeMap::new();
    for (model, list) in samples {
        let counted = match &direct {
            Some(d) if countable(&model) => count_model(d.clone(), model.clone(), list, concurrency.max(1)).await,
            _ => None,
        };
        out.insert(model, counted);
    }
    out
}

async fn count_model(
    direct: Arc<dyn DirectBackend>,
    model: Arc<str>,
    list: Vec<Sampled>,
    concurrency: usize,
) -> Counted {
    let mut tasks = tokio::task::JoinSet::new();
    let mut items = list.into_iter();
    let (mut tokens, mut estimate, mut n) = (0u64, 0u64, 0u64);
    loop {
        while tasks.len() < concurrency {
            let Some(s) = items.next() else { break };
            let (d, m) = (direct.clone(), model.clone());
            tasks.spawn(async move {
                let body = native_body(&m, &s)?;
                Some((d.count_tokens(&m, body).await, s.estimate))
            });
        }
        let Some(done) = tasks.join_next().await else { break };
        match done {
            Ok(Some((Ok(t), e))) => {
                tokens += t;
                estimate += u64::from(e);
                n += 1;
            }
            Ok(Some((Err(e), _))) => {
                tracing::warn!(model = &*model, error = %e, "tokens could not be counted; the plan estimates them");
                return None;
            }
            Ok(None) | Err(_) => {}
        }
    }
    (n > 0).then_some((tokens, estimate, n))
}

/// The InvokeModel body to count: the record as it is, or a Converse record in the model's native
/// format (the count of the same content).
fn native_body(model: &str, s: &Sampled) -> Option<Bytes> {
    if s.record_type == InvocationType::InvokeModel {
        return Some(s.body.clone());
    }
    let v: serde_json::Value = serde_json::from_slice(&s.body).ok()?;
    let native = crate::convert::converse_to_native(&v, model).ok()?;
    serde_json::to_vec(&native).ok().map(Bytes::from)
}
