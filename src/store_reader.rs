//! `NativeStoreReader`: a PostgreSQL store's jobs and answers for the `jobs` commands, read
//! without a client (and without the group's lock, so a running client keeps it).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use bedrock_batch_core::config::StoreConfig;
use bedrock_batch_core::error::EngineError;
use bedrock_batch_core::store::postgres::PgStore;
use bedrock_batch_core::store::Store;

use crate::engine::{stored_jobs_js, stored_results_js, NativeJobsResult, NativeResultsResult};
use crate::error::{data, throw};

/// A store opened for reading.
#[napi]
pub struct NativeStoreReader {
    store: std::sync::Arc<PgStore>,
}

fn join_error(e: tokio::task::JoinError) -> EngineError {
    EngineError::internal(format!("the store read stopped: {e}"))
}

#[napi]
impl NativeStoreReader {
    /// From `{ store: { url, group } }` (or `BEDROCK_BATCH_STORE_URL`); throws a
    /// ValidationException naming a wrong option, or when there is no store at all.
    #[napi(constructor)]
    pub fn new(env: Env, options: serde_json::Value) -> Result<Self> {
        let config = StoreConfig::from_options(&options)
            .and_then(|c| {
                c.ok_or_else(|| {
                    EngineError::validation("a store URL is needed: --store postgres://... or BEDROCK_BATCH_STORE_URL")
                })
            })
            .map_err(|e| throw(&env, &e))?;
        Ok(NativeStoreReader { store: std::sync::Arc::new(PgStore::reader(&config)) })
    }

    /// `postgres://host:port/database#group`, without the password.
    #[napi(getter)]
    pub fn location(&self) -> String {
        self.store.config().location()
    }

    /// The group's jobs, oldest first.
    #[napi]
    pub async fn jobs(&self) -> NativeJobsResult {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.jobs()).await.map_err(join_error).and_then(|r| r) {
            Ok(jobs) => NativeJobsResult { jobs: Some(stored_jobs_js(jobs)), error: None },
            Err(e) => NativeJobsResult { jobs: None, error: Some(data(&e)) },
        }
    }

    /// One job's answers in record order, `limit` at a time after record `after`.
    #[napi]
    pub async fn results(&self, job_arn: String, after: Option<f64>, limit: u32) -> NativeResultsResult {
        let store = self.store.clone();
        let rows =
            tokio::task::spawn_blocking(move || store.results(&job_arn, after.map(|a| a as u64), limit as usize));
        match rows.await.map_err(join_error).and_then(|r| r) {
            Ok(rows) => NativeResultsResult { results: stored_results_js(rows), error: None },
            Err(e) => NativeResultsResult { results: Vec::new(), error: Some(data(&e)) },
        }
    }
}
