//! What `client.stats()` reports, and the counters the worker publishes for it: the worker alone
//! writes them; anyone may read a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Price;
use crate::error::ErrorName;
use crate::status::JobStatus;

/// One job as stats report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobStats {
    /// Its ARN.
    pub job_arn: String,
    /// The name the engine created it with.
    pub job_name: String,
    /// The model its records go to.
    pub model_id: String,
    /// Its status as last known.
    pub status: JobStatus,
    /// Records in it: as written at creation, then as Bedrock reports.
    pub total_record_count: u64,
    /// Records processed so far, as Bedrock reports.
    pub processed_record_count: u64,
    /// Records answered with an output so far, as Bedrock reports.
    pub success_record_count: u64,
    /// Records answered with an error so far, as Bedrock reports.
    pub error_record_count: u64,
    /// Input tokens from the job's manifest (0 until it ends).
    pub input_tokens: u64,
    /// Output tokens from the job's manifest (0 until it ends).
    pub output_tokens: u64,
    /// The error names of the records its output answered with an error, as read so far (each
    /// record once, including those sent again), most frequent first. Empty for a job this client
    /// did not read.
    pub record_errors: ErrorCounts,
}

/// Error names, each with how many times it came.
pub type ErrorCounts = Vec<(ErrorName, u64)>;

/// A snapshot of the engine.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests waiting for a batch (or for their key to be looked up).
    pub queued: u64,
    /// Requests in batches or on-demand calls.
    pub in_flight: u64,
    /// Filler records added to reach the minimum.
    pub padded: u64,
    /// Requests sent again after a retryable failure or a missing output line.
    pub resubmitted: u64,
    /// Requests sent on-demand (options or models batch cannot honour, `belowMinimum: "direct"`).
    pub sent_direct: u64,
    /// Every job this client created or took up.
    pub jobs: Vec<JobStats>,
    /// The journal's file and its size in bytes, when there is a journal.
    pub journal: Option<(String, u64)>,
    /// A client of a group sharing a store: whether it leads the group now.
    pub leader: Option<bool>,
    /// Input tokens reported by job manifests.
    pub input_tokens: u64,
    /// Output tokens reported by job manifests.
    pub output_tokens: u64,
    /// With prices: half the on-demand cost of the jobs' tokens (batch is 50% cheaper).
    pub estimated_saving_usd: Option<f64>,
    /// Under a cost cap: the upper-bound cost of everything sent so far, in USD.
    pub committed_usd: Option<f64>,
    /// The cost cap (`maxCostUsd`).
    pub max_cost_usd: Option<f64>,
    /// Per tier (batch, flex, standard): requests answered there, and their estimated cost.
    pub tiers: [TierStats; 3],
    /// Requests sent on-demand because their deadline came, or was too close for a job.
    pub deadline_fallbacks: u64,
    /// Calls to S3 that failed (after the SDK's retries).
    pub s3_errors: u64,
    /// Calls to Bedrock's control plane (and Service Quotas) that failed (after the SDK's retries).
    pub bedrock_errors: u64,
    /// Store operations that failed (opening or reading it, a write, a read).
    pub store_errors: u64,
}

/// What one model's requests are doing in a client now (see `Engine::load`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelLoad {
    /// The model.
    pub model_id: String,
    /// Waiting in the client: in its queue, waiting for a lookup of their key, or cut into a
    /// batch that waits for a job slot.
    pub queued: u64,
    /// In batches whose job is being created or runs.
    pub in_jobs: u64,
    /// In on-demand calls, or waiting for one.
    pub on_demand: u64,
    /// A group's member: handed to the group, whose leader batches them.
    pub in_group: u64,
    /// Filler records added to this model's jobs so far.
    pub padded: u64,
}

/// Models' loads being counted.
#[derive(Debug, Default)]
pub(crate) struct Loads(BTreeMap<Arc<str>, ModelLoad>);

impl Loads {
    /// A model's counts.
    pub(crate) fn of(&mut self, model: &Arc<str>) -> &mut ModelLoad {
        self.0.entry(model.clone()).or_insert_with(|| ModelLoad { model_id: model.to_string(), ..ModelLoad::default() })
    }

    /// By model id.
    pub(crate) fn into_vec(self) -> Vec<ModelLoad> {
        self.0.into_values().collect()
    }
}

/// What one price tier served.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TierStats {
    /// Requests answered on the tier.
    pub requests: u64,
    /// Their estimated cost in USD: batch from the jobs' manifests, on-demand from each answer's
    /// `usage` (else the request's own token estimate), at the model's price and the tier's share.
    pub estimated_usd: f64,
}

/// What the worker publishes: its ledger's counters and its job table.
#[derive(Debug, Default)]
pub(crate) struct Published {
    /// Requests the worker has received (those handed over but not received yet are queued too).
    pub received: AtomicU64,
    pub queued: AtomicU64,
    pub in_flight: AtomicU64,
    pub padded: AtomicU64,
    pub resubmitted: AtomicU64,
    pub sent_direct: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    /// Requests answered per tier (batch, flex, standard).
    pub by_tier: [AtomicU64; 3],
    pub deadline_fallbacks: AtomicU64,
    /// Those the client sent as its group's leader, for the group's requests (added to its own).
    pub led_deadline_fallbacks: AtomicU64,
    /// The estimated cost of the on-demand answers per tier, USD (as `f64::to_bits`; batch's
    /// comes from the jobs' manifests).
    pub usd_by_tier: [AtomicU64; 3],
    pub jobs: Mutex<Vec<JobStats>>,
    /// The committed spend in USD (as `f64::to_bits`).
    pub committed_usd: AtomicU64,
    /// Failed calls of the batch back-end (counted by its counting layer).
    pub faults: Arc<crate::backend::counted::Faults>,
}

/// The ledger's counters (see `worker/ledger.rs`), published after each round of messages.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Requests received from the handle.
    pub received: u64,
    /// Requests waiting in the worker: in a queue, or for a lookup of their key.
    pub queued: u64,
    /// Requests sent: in a batch, an on-demand call, a group's hands, or waiting for the answer of
    /// the same key.
    pub in_flight: u64,
    /// Filler records added to reach the minimum.
    pub padded: u64,
    /// Requests sent again after a retryable failure or a missing output line.
    pub resubmitted: u64,
    /// Requests sent on-demand.
    pub sent_direct: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Requests answered per tier: batch, flex, standard.
    pub by_tier: [u64; 3],
    /// Requests sent on-demand because their deadline came (or was too close for a job).
    pub deadline_fallbacks: u64,
}

impl Published {
    /// Stores the worker's counters.
    pub(crate) fn publish(&self, c: &Counters) {
        self.received.store(c.received, Ordering::Release);
        self.queued.store(c.queued, Ordering::Release);
        self.in_flight.store(c.in_flight, Ordering::Release);
        self.padded.store(c.padded, Ordering::Release);
        self.resubmitted.store(c.resubmitted, Ordering::Release);
        self.sent_direct.store(c.sent_direct, Ordering::Release);
        self.input_tokens.store(c.input_tokens, Ordering::Release);
        self.output_tokens.store(c.output_tokens, Ordering::Release);
        self.deadline_fallbacks.store(c.deadline_fallbacks, Ordering::Release);
        for (to, n) in self.by_tier.iter().zip(c.by_tier) {
            to.store(n, Ordering::Release);
        }
    }

    /// Stores the committed spend, and the estimated cost of on-demand answers per tier.
    pub(crate) fn publish_spend(&self, usd: f64, by_tier: [f64; 3]) {
        self.committed_usd.store(usd.to_bits(), Ordering::Release);
        for (to, usd) in self.usd_by_tier.iter().zip(by_tier) {
            to.store(usd.to_bits(), Ordering::Release);
        }
    }

    /// Replaces the job list.
    pub(crate) fn publish_jobs(&self, jobs: &[JobStats]) {
        *self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = jobs.to_vec();
    }

    /// A snapshot; `submitted` is how many requests the handle has handed over.
    pub(crate) fn snapshot(&self, submitted: u64, pricing: &[(String, Price)]) -> Stats {
        let received = self.received.load(Ordering::Acquire);
        let jobs = self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let estimated_saving_usd = (!pricing.is_empty()).then(|| estimated_saving(&jobs, pricing));
        let mut tiers = [TierStats::default(); 3];
        for (i, t) in tiers.iter_mut().enumerate() {
            t.requests = self.by_tier[i].load(Ordering::Acquire);
            t.estimated_usd = f64::from_bits(self.usd_by_tier[i].load(Ordering::Acquire));
        }
        tiers[0].estimated_usd = jobs_cost(&jobs, pricing, crate::pricing::Tier::Batch);
        Stats {
            // Handed over but not received yet, and waiting in the worker.
            queued: submitted.saturating_sub(received) + self.queued.load(Ordering::Acquire),
            in_flight: self.in_flight.load(Ordering::Acquire),
            padded: self.padded.load(Ordering::Acquire),
            resubmitted: self.resubmitted.load(Ordering::Acquire),
            sent_direct: self.sent_direct.load(Ordering::Acquire),
            input_tokens: self.input_tokens.load(Ordering::Acquire),
            output_tokens: self.output_tokens.load(Ordering::Acquire),
            jobs,
            journal: None,
            leader: None,
            estimated_saving_usd,
            committed_usd: Some(f64::from_bits(self.committed_usd.load(Ordering::Acquire))),
            max_cost_usd: None,
            tiers,
            deadline_fallbacks: self.deadline_fallbacks.load(Ordering::Acquire)
                + self.led_deadline_fallbacks.load(Ordering::Acquire),
            s3_errors: self.faults.s3.load(Ordering::Relaxed),
            bedrock_errors: self.faults.bedrock.load(Ordering::Relaxed),
            store_errors: 0,
        }
    }
}

/// What the jobs' tokens cost at the batch price (models without a price count nothing).
fn jobs_cost(jobs: &[JobStats], pricing: &[(String, Price)], tier: crate::pricing::Tier) -> f64 {
    let mut usd = 0.0;
    for j in jobs {
        if let Some(p) = crate::pricing::price_of(&j.model_id, pricing) {
            usd += crate::pricing::cost(&p, tier, j.input_tokens, j.output_tokens);
        }
    }
    usd
}

/// What batch saved against on-demand: batch costs half the on-demand price, so the saving is
/// half of what the jobs' tokens would have cost on-demand, at each model's standard price (the
/// `pricing` option over the shipped table; models without a price count nothing).
pub fn estimated_saving(jobs: &[JobStats], pricing: &[(String, Price)]) -> f64 {
    use crate::pricing::Tier;
    let usd = jobs_cost(jobs, pricing, Tier::Standard) - jobs_cost(jobs, pricing, Tier::Batch);
    (usd * 1e6).round() / 1e6
}
