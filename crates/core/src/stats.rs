//! Counters the JS layer reads as `client.stats()`.

/// One job as stats report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobStats {
    pub job_arn: String,
    pub job_name: String,
    pub model_id: String,
    pub status: String,
    pub total_record_count: u64,
    pub processed_record_count: u64,
    pub success_record_count: u64,
    pub error_record_count: u64,
    /// Input tokens from the job's manifest (0 until it ends).
    pub input_tokens: u64,
    /// Output tokens from the job's manifest (0 until it ends).
    pub output_tokens: u64,
}

/// A snapshot of the engine.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests waiting in queues.
    pub queued: u64,
    /// Requests in submitted batches or on-demand calls.
    pub in_flight: u64,
    /// Filler records added to reach the minimum.
    pub padded: u64,
    /// Requests sent again after a retryable failure or a missing output line.
    pub resubmitted: u64,
    /// Requests sent on-demand (options batch cannot honour, or `belowMinimum: "direct"`).
    pub sent_direct: u64,
    /// Every job this client created.
    pub jobs: Vec<JobStats>,
    /// The journal's file and its size in bytes, when there is a journal.
    pub journal: Option<(String, u64)>,
    /// Input tokens reported by job manifests.
    pub input_tokens: u64,
    /// Output tokens reported by job manifests.
    pub output_tokens: u64,
}
