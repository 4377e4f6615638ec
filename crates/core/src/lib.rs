//! The engine of bedrock-batch-bridge. It knows nothing of napi or JavaScript.
//!
//! Principal types:
//! - [`Engine`]: the handle. [`Engine::submit`] validates a [`Request`] and queues it; results
//!   come back through a [`Sink`] as [`Settlement`]s, settled by request id.
//! - The worker (private, `engine.rs`): one task that owns the queues (one per model and region)
//!   and cuts them into batches by size, bytes and time.
//! - Job tasks (`jobs.rs`): one per batch; upload JSONL, create the job, wait for the shared
//!   poller (`poller.rs`), read the output and settle each request.
//! - [`backend::BatchBackend`] / [`backend::DirectBackend`]: what the engine needs from AWS; the
//!   real ones use the AWS SDK for Rust, tests use fakes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod backend;
pub mod config;
pub mod convert;
pub mod engine;
pub mod error;
pub mod filler;
mod jobs;
pub mod journal;
pub mod jsonl;
mod poller;
pub mod request;
pub mod stats;

pub use config::{BatchConfig, BelowMinimum};
pub use engine::Engine;
pub use error::{EngineError, ErrorName};
pub use request::{InvokeOptions, Request};
pub use stats::Stats;

/// How a request ended.
#[derive(Debug)]
pub struct Settlement {
    /// The id [`Engine::submit`] returned.
    pub id: u64,
    /// The model's answer, or why there is none.
    pub result: Result<Success, EngineError>,
}

/// A model's answer.
#[derive(Debug, Clone, Default)]
pub struct Success {
    /// The response body (for batch: the record's `modelOutput`, byte for byte).
    pub body: Vec<u8>,
    /// Its content type.
    pub content_type: String,
    /// The request id of an on-demand call.
    pub request_id: Option<String>,
    /// The batch job that answered (its request id is `<jobArn>#<recordId>`).
    pub job_arn: Option<std::sync::Arc<str>>,
    /// Echoed on-demand latency tier.
    pub performance_config_latency: Option<String>,
    /// Echoed on-demand service tier.
    pub service_tier: Option<String>,
    /// The tries this request took: batch jobs it was in, or 1 for an on-demand call (0 when
    /// not known, which reads as 1).
    pub attempts: u32,
}

/// Where settlements and events go (the binding implements it with one threadsafe function).
pub trait Sink: Send + Sync + 'static {
    /// Delivers finished requests, in batches.
    fn settle(&self, settlements: Vec<Settlement>);
    /// A job changed status.
    fn job_event(&self, _job: &stats::JobStats) {}
}
