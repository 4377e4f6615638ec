//! What the engine needs from the outside world. The real implementations talk to AWS through
//! the AWS SDK for Rust; engine tests use in-memory fakes.

pub mod bedrock;
pub mod counted;
pub mod credentials;
pub mod direct;
mod event_stream;
pub mod job_views;
pub mod lines;
pub mod openai;
pub mod sdk_error;
mod sse;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::EngineError;
use crate::request::Request;
use crate::settle::Success;
pub use crate::status::JobStatus;

/// Receives output lines one at a time.
pub type LineSink<'a> = dyn for<'l> FnMut(&'l Bytes) + Send + 'a;

/// A job to create.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Job name (AWS rules: ≤ 63 chars, no `_`).
    pub job_name: String,
    /// Idempotency token derived from the batch id.
    pub client_request_token: String,
    /// Model.
    pub model_id: String,
    /// What the records are (`modelInvocationType`).
    pub invocation_type: crate::request::InvocationType,
    /// `s3://` URI of the input folder.
    pub input_uri: String,
    /// `s3://` URI of the output prefix.
    pub output_uri: String,
}

/// A job's state as polled.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    /// Its status at this poll.
    pub status: JobStatus,
    /// Bedrock's message about the status, if any.
    pub message: Option<String>,
    /// Records in the job, once Bedrock reports the count.
    pub total_record_count: Option<u64>,
    /// Records processed so far, once reported.
    pub processed_record_count: Option<u64>,
    /// Records answered with an output so far, once reported.
    pub success_record_count: Option<u64>,
    /// Records answered with an error so far, once reported.
    pub error_record_count: Option<u64>,
}

impl JobInfo {
    /// Whether the status is terminal.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// Token totals from a job's manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens {
    /// Input tokens of all its records (the manifest's `inputTokenCount`).
    pub input: u64,
    /// Output tokens of all its records (the manifest's `outputTokenCount`).
    pub output: u64,
}

/// The Bedrock batch back-end.
#[async_trait]
pub trait BatchBackend: Send + Sync + 'static {
    /// Writes one JSONL input file; returns the `s3://` URI of the folder that holds it.
    async fn upload(&self, folder: &str, file_name: &str, data: bytes::Bytes) -> Result<String, EngineError>;
    /// Creates a job; returns its ARN.
    async fn create_job(&self, spec: &JobSpec) -> Result<String, EngineError>;
    /// Polls a job.
    async fn get_job(&self, job_arn: &str) -> Result<JobInfo, EngineError>;
    /// Stops a job.
    async fn stop_job(&self, job_arn: &str) -> Result<(), EngineError>;
    /// Reads every output file of a job, calling `on_line` for each line (streamed); returns the
    /// manifest's token totals when there is a manifest.
    async fn read_output(
        &self,
        output_uri: &str,
        job_arn: &str,
        on_line: &mut LineSink<'_>,
    ) -> Result<Option<Tokens>, EngineError>;
    /// Whether [`BatchBackend::read_input`] works. When it does, the engine drops request bodies
    /// once they are uploaded (a million in-flight requests then cost little memory) and reads
    /// them back only to resubmit.
    fn rereads_input(&self) -> bool {
        false
    }
    /// Reads back the lines of an input file written by `upload` (`input_uri` as `upload`
    /// returned it), calling `on_line` for each. The engine reads bodies back from there to send
    /// a request again, so a body leaves memory once its batch is uploaded.
    async fn read_input(
        &self,
        _input_uri: &str,
        _file_name: &str,
        _on_line: &mut LineSink<'_>,
    ) -> Result<(), EngineError> {
        Err(EngineError::new(
            crate::error::ErrorName::InternalServerException,
            "this back-end cannot read its input back",
        ))
    }
    /// Bedrock's quotas as `(name, value)` from Service Quotas (`ListServiceQuotas` for service
    /// code `bedrock`); `Ok(None)` when this back-end has none to read.
    async fn batch_quotas(&self) -> Result<Option<Vec<(String, f64)>>, EngineError> {
        Ok(None)
    }
    /// A job as Bedrock describes it (by ARN or id), to adopt it.
    async fn describe_job(&self, _job: &str) -> Result<job_views::JobView, EngineError> {
        Err(EngineError::validation("this back-end cannot describe jobs"))
    }
    /// One page of the jobs whose name contains `filter.name_contains`, newest first, and the
    /// next page's token, to adopt them.
    async fn list_jobs(
        &self,
        _filter: &job_views::ListFilter,
    ) -> Result<(Vec<job_views::JobView>, Option<String>), EngineError> {
        Err(EngineError::validation("this back-end cannot list jobs"))
    }
    /// Deletes a job's input folder and output folder.
    async fn cleanup(&self, input_uri: &str, output_uri: &str, job_arn: &str) -> Result<(), EngineError>;
}

/// On-demand InvokeModel.
#[async_trait]
pub trait DirectBackend: Send + Sync + 'static {
    /// Calls InvokeModel once (with the SDK's own retries).
    async fn invoke(&self, request: &Request) -> Result<Success, EngineError>;

    /// Counts the input tokens of an InvokeModel body for a model (Bedrock's CountTokens), for a
    /// dry run's plan; back-ends that cannot count say so with a ValidationException.
    async fn count_tokens(&self, _model_id: &str, _body: Bytes) -> Result<u64, EngineError> {
        Err(EngineError::validation("this back-end cannot count tokens"))
    }
}
