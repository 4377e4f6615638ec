//! `NativeStoreReader`: a journal's or a PostgreSQL store's jobs, answers, committed spend and
//! (a group's) processes, for the `jobs` and `dashboard` commands, read without a client: without
//! the journal's lock or the group's lead, so the process that owns them keeps running.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use bedrock_batch_core::config::StoreConfig;
use bedrock_batch_core::error::EngineError;
use bedrock_batch_core::store::postgres::PgStore;
use bedrock_batch_core::store::sqlite::SqliteStore;
use bedrock_batch_core::store::Store;

use crate::engine::{stored_jobs_js, stored_results_js, NativeJobsResult, NativeResultsResult};
use crate::error::{data, throw, JsEngineError};

/// A store opened for reading.
#[napi]
pub struct NativeStoreReader {
    store: std::sync::Arc<dyn Store>,
    location: String,
}

/// A process of a group.
#[napi(object)]
pub struct NativeGroupMember {
    pub host: String,
    pub pid: u32,
    /// When it joined the group (epoch ms).
    pub since: f64,
    pub leads: bool,
}

/// The group's processes alive now (none for a journal), or why not.
#[napi(object)]
pub struct NativeMembersResult {
    pub members: Vec<NativeGroupMember>,
    pub error: Option<JsEngineError>,
}

/// The spend committed under the cost cap (USD), or why not.
#[napi(object)]
pub struct NativeSpendResult {
    pub usd: f64,
    pub error: Option<JsEngineError>,
}

/// A group's processes as JS gets them.
pub(crate) fn members_js(m: Vec<bedrock_batch_core::store::GroupMember>) -> Vec<NativeGroupMember> {
    m.into_iter()
        .map(|m| NativeGroupMember { host: m.host, pid: m.pid, since: m.since_ms as f64, leads: m.leads })
        .collect()
}

/// Runs a blocking read of the store off the JS thread.
async fn blocking<T: Send + 'static>(
    store: &std::sync::Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> std::result::Result<T, EngineError> + Send + 'static,
) -> std::result::Result<T, EngineError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&*store)).await.map_err(join_error).and_then(|r| r)
}

fn join_error(e: tokio::task::JoinError) -> EngineError {
    EngineError::internal(format!("the store read stopped: {e}"))
}

#[napi]
impl NativeStoreReader {
    /// From `{ journal: { path } }`, or `{ store: { url, group } }` (or `BEDROCK_BATCH_STORE_URL`);
    /// throws a ValidationException naming a wrong option, or when there is no store at all, and
    /// a ResourceNotFoundException when there is no journal at that path.
    #[napi(constructor)]
    pub fn new(env: Env, options: serde_json::Value) -> Result<Self> {
        if let Some(journal) = options.get("journal").filter(|j| !j.is_null()) {
            let path = journal
                .get("path")
                .and_then(|p| p.as_str())
                .filter(|p| !p.is_empty())
                .ok_or_else(|| EngineError::validation("journal.path must be the journal's file name"))
                .and_then(|p| SqliteStore::reader(std::path::Path::new(p)))
                .map_err(|e| throw(&env, &e))?;
            let location = path.path().display().to_string();
            return Ok(NativeStoreReader { store: std::sync::Arc::new(path), location });
        }
        let config = StoreConfig::from_options(&options)
            .and_then(|c| {
                c.ok_or_else(|| {
                    EngineError::validation("a store URL is needed: --store postgres://... or BEDROCK_BATCH_STORE_URL")
                })
            })
            .map_err(|e| throw(&env, &e))?;
        Ok(NativeStoreReader { location: config.location(), store: std::sync::Arc::new(PgStore::reader(&config)) })
    }

    /// The journal's path, or `postgres://host:port/database#group` without the password.
    #[napi(getter)]
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// The group's processes alive now and which one leads (none for a journal).
    #[napi]
    pub async fn members(&self) -> NativeMembersResult {
        match blocking(&self.store, |s| s.members()).await {
            Ok(m) => NativeMembersResult { members: members_js(m), error: None },
            Err(e) => NativeMembersResult { members: Vec::new(), error: Some(data(&e)) },
        }
    }

    /// The spend the run (a journal) or the group committed under its cost cap, in USD.
    #[napi]
    pub async fn committed_spend(&self) -> NativeSpendResult {
        match blocking(&self.store, |s| s.committed_spend()).await {
            Ok(usd) => NativeSpendResult { usd, error: None },
            Err(e) => NativeSpendResult { usd: 0.0, error: Some(data(&e)) },
        }
    }

    /// The group's jobs, oldest first.
    #[napi]
    pub async fn jobs(&self) -> NativeJobsResult {
        match blocking(&self.store, |s| s.jobs()).await {
            Ok(jobs) => NativeJobsResult { jobs: Some(stored_jobs_js(jobs)), error: None },
            Err(e) => NativeJobsResult { jobs: None, error: Some(data(&e)) },
        }
    }

    /// One job's answers in record order, `limit` at a time after record `after`.
    #[napi]
    pub async fn results(&self, job_arn: String, after: Option<f64>, limit: u32) -> NativeResultsResult {
        let rows = blocking(&self.store, move |s| s.results(&job_arn, after.map(|a| a as u64), limit as usize));
        match rows.await {
            Ok(rows) => NativeResultsResult { results: stored_results_js(rows), error: None },
            Err(e) => NativeResultsResult { results: Vec::new(), error: Some(data(&e)) },
        }
    }
}
