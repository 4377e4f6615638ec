//! How a request ends, and where endings go: the [`Sink`] (the binding implements it with one
//! threadsafe function into JavaScript).

use std::sync::Arc;

use bytes::Bytes;

use crate::error::EngineError;
use crate::stats::JobStats;

/// How a request ended.
#[derive(Debug)]
pub struct Settlement {
    /// The id the request was submitted with.
    pub id: u64,
    /// The model's answer, or why there is none.
    pub result: Result<Success, EngineError>,
}

/// A model's answer.
#[derive(Debug, Clone, Default)]
pub struct Success {
    /// The response body (for batch: the record's `modelOutput`, byte for byte).
    pub body: Bytes,
    /// Its content type.
    pub content_type: String,
    /// The request id of an on-demand call.
    pub request_id: Option<String>,
    /// The batch job that answered (its request id is `<jobArn>#<recordId>`).
    pub job_arn: Option<Arc<str>>,
    /// Echoed on-demand latency tier.
    pub performance_config_latency: Option<String>,
    /// Echoed on-demand service tier.
    pub service_tier: Option<String>,
    /// The tries this request took: batch jobs it was in, or 1 for an on-demand call (0 when
    /// not known, which reads as 1).
    pub attempts: u32,
}

/// Where settlements and events go.
pub trait Sink: Send + Sync + 'static {
    /// Delivers finished requests, in batches.
    fn settle(&self, settlements: Vec<Settlement>);
    /// A job changed status.
    fn job_event(&self, _job: &JobStats) {}
}
