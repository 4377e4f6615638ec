//! Batch-mode settings, with their defaults and limits.

use std::time::Duration;

/// Most records Bedrock accepts per job.
pub const MAX_RECORDS_PER_JOB: usize = 50_000;
/// Largest input file Bedrock accepts.
pub const MAX_FILE_BYTES: usize = 1_000_000_000;

/// What to do with a queue that is below `min_batch_size` when it must be flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BelowMinimum {
    /// Fill with the cheapest filler records for the model family (default).
    #[default]
    Pad,
    /// Send those requests on-demand.
    Direct,
    /// Keep collecting, at most `max_wait` after the oldest request, then pad.
    Wait,
}

impl std::str::FromStr for BelowMinimum {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pad" => Ok(BelowMinimum::Pad),
            "direct" => Ok(BelowMinimum::Direct),
            "wait" => Ok(BelowMinimum::Wait),
            other => Err(format!("belowMinimum must be \"pad\", \"direct\" or \"wait\", got {other:?}")),
        }
    }
}

/// Settings of batch mode. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Where input JSONL is written (`s3://bucket/prefix/`). Required.
    pub s3_input_uri: String,
    /// Where Bedrock writes output (`s3://bucket/prefix/`). Required.
    pub s3_output_uri: String,
    /// The service role Bedrock assumes. Required.
    pub role_arn: String,
    /// Below this many records a flush pads, goes direct or waits (default 100).
    pub min_batch_size: usize,
    /// Hard cap on records per job (default 1000, at most 50,000).
    pub max_batch_size: usize,
    /// Hard cap on bytes per input file (default 1 GB).
    pub max_file_bytes: usize,
    /// Flush this long after the oldest waiting request (default 60 s).
    pub batch_timeout: Duration,
    /// Under `Wait`, the longest a request waits before its queue is padded (default 3600 s).
    pub max_wait: Duration,
    /// How often running jobs are polled (default 5 s).
    pub poll_interval: Duration,
    /// Job timeout given to Bedrock, in hours (default 24, 24–168).
    pub job_timeout_hours: u32,
    /// Prefix of job names (default `batch-inference`).
    pub job_name_prefix: String,
    /// Submitted + running jobs per model (default 20).
    pub max_concurrent_jobs: usize,
    /// Policy below the minimum.
    pub below_minimum: BelowMinimum,
    /// Tries per request in all, the first included (default 2).
    pub max_attempts: u32,
    /// Delete a job's input and output objects once delivered (default false).
    pub cleanup: bool,
    /// Most requests waiting in memory before `ThrottlingException` (default 2,000,000).
    pub max_queued_requests: usize,
    /// KMS key for the output.
    pub s3_encryption_key_id: Option<String>,
    /// Expected bucket owner (12-digit account id).
    pub s3_bucket_owner: Option<String>,
    /// VPC subnets and security groups for the job.
    pub vpc_config: Option<(Vec<String>, Vec<String>)>,
    /// Tags of each job.
    pub tags: Vec<(String, String)>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            s3_input_uri: String::new(),
            s3_output_uri: String::new(),
            role_arn: String::new(),
            min_batch_size: 100,
            max_batch_size: 1000,
            max_file_bytes: MAX_FILE_BYTES,
            batch_timeout: Duration::from_secs(60),
            max_wait: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(5),
            job_timeout_hours: 24,
            job_name_prefix: "batch-inference".into(),
            max_concurrent_jobs: 20,
            below_minimum: BelowMinimum::Pad,
            max_attempts: 2,
            cleanup: false,
            max_queued_requests: 2_000_000,
            s3_encryption_key_id: None,
            s3_bucket_owner: None,
            vpc_config: None,
            tags: Vec::new(),
        }
    }
}

impl BatchConfig {
    /// Checks the settings, naming the option at fault.
    pub fn validate(&self) -> Result<(), String> {
        for (name, uri) in [("s3InputUri", &self.s3_input_uri), ("s3OutputUri", &self.s3_output_uri)] {
            if uri.is_empty() {
                return Err(format!("batch mode needs {name} (an s3://bucket/prefix/ URI)"));
            }
            if let Some(why) = crate::jsonl::s3_uri_problem(uri) {
                return Err(format!("{name} must be an s3://bucket/prefix/ URI: {why}; got {uri:?}"));
            }
        }
        if self.role_arn.is_empty() {
            return Err("batch mode needs roleArn (the service role Bedrock assumes)".into());
        }
        if !self.role_arn.starts_with("arn:") || !self.role_arn.contains(":role/") {
            return Err(format!("roleArn must be an IAM role ARN (arn:aws:iam::123456789012:role/Name), got {:?}", self.role_arn));
        }
        if self.max_batch_size == 0 || self.max_batch_size > MAX_RECORDS_PER_JOB {
            return Err(format!("maxBatchSize must be between 1 and {MAX_RECORDS_PER_JOB}, got {}", self.max_batch_size));
        }
        if self.max_file_bytes == 0 || self.max_file_bytes > MAX_FILE_BYTES {
            return Err(format!("maxFileBytes must be between 1 and {MAX_FILE_BYTES}"));
        }
        if !(24..=168).contains(&self.job_timeout_hours) {
            return Err(format!("jobTimeoutHours must be between 24 and 168, got {}", self.job_timeout_hours));
        }
        if self.max_concurrent_jobs == 0 {
            return Err("maxConcurrentJobs must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return Err("maxAttempts must be at least 1".into());
        }
        let prefix_ok = !self.job_name_prefix.is_empty()
            && self.job_name_prefix.len() <= 40
            && self.job_name_prefix.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && self.job_name_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '+');
        if !prefix_ok {
            return Err(format!(
                "jobNamePrefix must start with a letter or digit, use only letters, digits, '-', '.', '+' (no '_') and be at most 40 characters, got {:?}",
                self.job_name_prefix
            ));
        }
        Ok(())
    }
}
