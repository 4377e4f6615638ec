//! A batch back-end that counts the failed calls of the one it wraps, by service: S3 (writing the
//! input, reading the output and input back, deleting them) and Bedrock's control plane (creating,
//! polling, stopping, describing and listing jobs, Service Quotas). Each call that ends in an
//! error after the SDK's own retries counts once. The counts are read by `stats()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::job_views::{JobView, ListFilter};
use super::{BatchBackend, JobInfo, JobSpec, LineSink, Tokens};
use crate::error::EngineError;

/// Failed calls so far.
#[derive(Debug, Default)]
pub struct Faults {
    /// Of S3.
    pub s3: AtomicU64,
    /// Of Bedrock's control plane (and Service Quotas).
    pub bedrock: AtomicU64,
}

impl Faults {
    fn count<T>(counter: &AtomicU64, result: Result<T, EngineError>) -> Result<T, EngineError> {
        if result.is_err() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// `inner`, its failed calls counted in `faults`.
pub struct Counted {
    inner: Arc<dyn BatchBackend>,
    faults: Arc<Faults>,
}

impl Counted {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BatchBackend>, faults: Arc<Faults>) -> Counted {
        Counted { inner, faults }
    }

    fn s3<T>(&self, r: Result<T, EngineError>) -> Result<T, EngineError> {
        Faults::count(&self.faults.s3, r)
    }

    fn bedrock<T>(&self, r: Result<T, EngineError>) -> Result<T, EngineError> {
        Faults::count(&self.faults.bedrock, r)
    }
}

#[async_trait]
impl BatchBackend for Counted {
    async fn upload(&self, folder: &str, file_name: &str, data: bytes::Bytes) -> Result<String, EngineError> {
        self.s3(self.inner.upload(folder, file_name, data).await)
    }

    async fn create_job(&self, spec: &JobSpec) -> Result<String, EngineError> {
        self.bedrock(self.inner.create_job(spec).await)
    }

    async fn get_job(&self, job_arn: &str) -> Result<JobInfo, EngineError> {
        self.bedrock(self.inner.get_job(job_arn).await)
    }

    async fn stop_job(&self, job_arn: &str) -> Result<(), EngineError> {
        self.bedrock(self.inner.stop_job(job_arn).await)
    }

    async fn read_output(
        &self,
        output_uri: &str,
        job_arn: &str,
        on_line: &mut LineSink<'_>,
    ) -> Result<Option<Tokens>, EngineError> {
        self.s3(self.inner.read_output(output_uri, job_arn, on_line).await)
    }

    fn rereads_input(&self) -> bool {
        self.inner.rereads_input()
    }

    async fn read_input(
        &self,
        input_uri: &str,
        file_name: &str,
        on_line: &mut LineSink<'_>,
    ) -> Result<(), EngineError> {
        self.s3(self.inner.read_input(input_uri, file_name, on_line).await)
    }

    async fn batch_quotas(&self) -> Result<Option<Vec<(String, f64)>>, EngineError> {
        self.bedrock(self.inner.batch_quotas().await)
    }

    async fn describe_job(&self, job: &str) -> Result<JobView, EngineError> {
        self.bedrock(self.inner.describe_job(job).await)
    }

    async fn list_jobs(&self, filter: &ListFilter) -> Result<(Vec<JobView>, Option<String>), EngineError> {
        self.bedrock(self.inner.list_jobs(filter).await)
    }

    async fn cleanup(&self, input_uri: &str, output_uri: &str, job_arn: &str) -> Result<(), EngineError> {
        self.s3(self.inner.cleanup(input_uri, output_uri, job_arn).await)
    }
}
