//! `NativeEngine`: the engine as a JS class. Options arrive as the user wrote them (JSON) and the
//! core resolves them; requests arrive packed (one call per few thousand `send()`s: the bodies
//! back to back in one buffer); settlements leave packed through one threadsafe function (the
//! Promise resolvers live in JS, see `settle.rs`), so a pending request costs no native callback.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;

use bedrock_batch_core::backend::credentials::{CredentialSource, CredentialsFuture, SuppliedCredentials};
use bedrock_batch_core::request::options_from_json;
use bedrock_batch_core::stats::JobStats;
use bedrock_batch_core::store::{display_key, Answer, StoredJob, StoredResult};
use bedrock_batch_core::{Engine, EngineConfig, InvokeOptions, Submission};

use crate::error::{data, throw, JsEngineError};
use crate::operation::NativeOperation;
use crate::settle::{JsSink, NativeSettleChunk, SettleFn};

/// Credentials returned by the application's credentials function.
#[napi(object)]
pub struct NativeCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// When they expire, in milliseconds since the epoch.
    pub expiration: Option<f64>,
}

type CredentialsFn = ThreadsafeFunction<(), Promise<NativeCredentials>, (), Status, false, true>;

/// The application's credentials function, called from the engine's threads.
struct JsCredentials(CredentialsFn);

impl std::fmt::Debug for JsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsCredentials")
    }
}

impl CredentialSource for JsCredentials {
    fn fetch(&self) -> CredentialsFuture<'_> {
        Box::pin(async move {
            let pending =
                self.0.call_async(()).await.map_err(|e| format!("the credentials function failed: {}", e.reason))?;
            let c = pending.await.map_err(|e| format!("the credentials function failed: {}", e.reason))?;
            Ok(SuppliedCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: c.session_token,
                expiration: c
                    .expiration
                    .filter(|ms| ms.is_finite() && *ms > 0.0)
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms as u64)),
            })
        })
    }
}

/// Requests, packed: request `i` has id `firstId + i`, model `models[modelOf[i]]` (or `models[0]`)
/// and the body `data[ends[i-1]..ends[i]]`; `options` lists the few with InvokeModel options or
/// an idempotency key, each as `{ index, contentType?, accept?, ..., idempotencyKey? }`.
#[napi(object)]
pub struct NativeSubmitChunk {
    pub first_id: f64,
    pub data: Buffer,
    pub ends: Uint32Array,
    pub models: Vec<String>,
    pub model_of: Option<Uint16Array>,
    /// The operation of each request, as its [`NativeOperation`] code (absent: all InvokeModel).
    pub operations: Option<Uint8Array>,
    pub options: Option<Vec<serde_json::Value>>,
}

/// One job as stats report it.
#[napi(object)]
pub struct NativeJobStats {
    pub job_arn: String,
    pub job_name: String,
    pub model_id: String,
    pub status: String,
    pub total_record_count: f64,
    pub processed_record_count: f64,
    pub success_record_count: f64,
    pub error_record_count: f64,
    pub input_tokens: f64,
    pub output_tokens: f64,
    /// The error names of the records its output answered with an error, counted, most frequent
    /// first (empty for a job this client did not read).
    pub record_errors: Vec<NativeErrorCount>,
}

/// How many records a job answered with one error name.
#[napi(object)]
pub struct NativeErrorCount {
    pub name: String,
    pub count: f64,
}

/// What one model's requests are doing in the client now.
#[napi(object)]
pub struct NativeModelLoad {
    pub model_id: String,
    pub queued: f64,
    pub in_jobs: f64,
    pub on_demand: f64,
    pub in_group: f64,
    pub padded: f64,
}

/// Each model's requests, or why they could not be counted.
#[napi(object)]
pub struct NativeLoadResult {
    pub models: Option<Vec<NativeModelLoad>>,
    pub error: Option<JsEngineError>,
}

/// A snapshot of the engine.
#[napi(object)]
pub struct NativeStats {
    pub queued: f64,
    pub in_flight: f64,
    pub padded: f64,
    pub resubmitted: f64,
    pub sent_direct: f64,
    pub jobs: Vec<NativeJobStats>,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub estimated_saving_usd: Option<f64>,
    pub store: Option<NativeStoreStats>,
    pub leader: Option<bool>,
    /// Under a cost cap: the upper-bound cost committed so far, in USD.
    pub committed_usd: Option<f64>,
    /// The cost cap.
    pub max_cost_usd: Option<f64>,
    /// Per price tier: requests answered there and their estimated cost.
    pub tiers: NativeTiers,
    /// Requests sent on-demand because their deadline came (or was too close for a job).
    pub deadline_fallbacks: f64,
    /// Calls that failed (after the SDK's retries): to S3, to Bedrock's control plane, to the store.
    pub failed_calls: NativeFailedCalls,
}

/// Calls that failed, by what they called.
#[napi(object)]
pub struct NativeFailedCalls {
    pub s3: f64,
    pub bedrock: f64,
    pub store: f64,
}

/// What one price tier served.
#[napi(object)]
pub struct NativeTierStats {
    pub requests: f64,
    pub estimated_usd: f64,
}

/// Per price tier.
#[napi(object)]
pub struct NativeTiers {
    pub batch: NativeTierStats,
    pub flex: NativeTierStats,
    pub standard: NativeTierStats,
}

/// One model's part of a dry run's plan.
#[napi(object)]
pub struct NativeModelPlan {
    pub model_id: String,
    pub jobs: f64,
    pub records: f64,
    pub padded_records: f64,
    /// Requests by tier: batch, flex, standard.
    pub batch_requests: f64,
    pub flex_requests: f64,
    pub standard_requests: f64,
    pub input_tokens: f64,
    /// `count-tokens`, `count-tokens-sample` or `estimate`.
    pub input_tokens_method: String,
    /// With `count-tokens-sample`: the requests counted.
    pub input_tokens_counted: Option<f64>,
    pub output_tokens_upper_bound: f64,
    pub requests_without_max_tokens: f64,
    pub cost_usd: Option<f64>,
    pub standard_cost_usd: Option<f64>,
}

/// A dry run's plan, or why not.
#[napi(object)]
pub struct NativePlanResult {
    pub models: Vec<NativeModelPlan>,
    pub error: Option<JsEngineError>,
}

fn plan_js(p: bedrock_batch_core::plan::RunPlan) -> Vec<NativeModelPlan> {
    p.models
        .into_iter()
        .map(|m| NativeModelPlan {
            model_id: m.model_id,
            jobs: m.jobs as f64,
            records: m.records as f64,
            padded_records: m.padded_records as f64,
            batch_requests: m.requests_by_tier[0] as f64,
            flex_requests: m.requests_by_tier[1] as f64,
            standard_requests: m.requests_by_tier[2] as f64,
            input_tokens: m.input_tokens as f64,
            input_tokens_method: m.input_count.as_str().to_string(),
            input_tokens_counted: match m.input_count {
                bedrock_batch_core::plan::InputCount::Sampled { counted } => Some(counted as f64),
                _ => None,
            },
            output_tokens_upper_bound: m.output_tokens_upper_bound as f64,
            requests_without_max_tokens: m.requests_without_max_tokens as f64,
            cost_usd: m.cost_usd,
            standard_cost_usd: m.standard_cost_usd,
        })
        .collect()
}

/// Which store keeps the requests and answers.
#[napi(string_enum = "lowercase")]
pub enum NativeStoreKind {
    /// The SQLite journal (`journal: { path }`).
    Sqlite,
    /// A PostgreSQL store (`store: { url }`).
    Postgres,
}

/// Where the store is and its size.
#[napi(object)]
pub struct NativeStoreStats {
    pub kind: NativeStoreKind,
    /// SQLite: the file's path; PostgreSQL: `postgres://host:port/database#group` (no user or password).
    pub location: String,
    /// SQLite: the file's size; PostgreSQL: about the group's size.
    pub bytes: f64,
}

/// One job of the store.
#[napi(object)]
pub struct NativeStoredJob {
    pub job_arn: String,
    pub job_name: String,
    pub model_id: String,
    pub status: String,
    /// Milliseconds since the epoch.
    pub created_at: f64,
    pub total_record_count: f64,
    pub success_record_count: f64,
    pub error_record_count: f64,
}

/// One answer of a job, from the store.
#[napi(object)]
pub struct NativeStoredResult {
    pub record: f64,
    pub record_id: String,
    pub idempotency_key: String,
    pub output: Option<Buffer>,
    pub error_name: Option<String>,
    pub error_message: Option<String>,
}

/// The store's jobs, or why not (`jobs` is absent without a store).
#[napi(object)]
pub struct NativeJobsResult {
    pub jobs: Option<Vec<NativeStoredJob>>,
    pub error: Option<JsEngineError>,
}

/// A page of answers, or why not.
#[napi(object)]
pub struct NativeResultsResult {
    pub results: Vec<NativeStoredResult>,
    pub error: Option<JsEngineError>,
}

/// Stored jobs as JS gets them.
pub(crate) fn stored_jobs_js(jobs: Vec<StoredJob>) -> Vec<NativeStoredJob> {
    jobs.into_iter()
        .map(|j| NativeStoredJob {
            job_arn: j.job_arn,
            job_name: j.job_name,
            model_id: j.model_id,
            status: j.status.to_string(),
            created_at: j.created_at as f64 * 1000.0,
            total_record_count: j.total_record_count as f64,
            success_record_count: j.success_record_count as f64,
            error_record_count: j.error_record_count as f64,
        })
        .collect()
}

/// Stored answers as JS gets them.
pub(crate) fn stored_results_js(rows: Vec<StoredResult>) -> Vec<NativeStoredResult> {
    rows.into_iter()
        .map(|r| {
            let (output, error_name, error_message) = match r.answer {
                Answer::Output(o) => (Some(o.to_vec().into()), None, None),
                Answer::Error { name, message } => (None, Some(name), Some(message)),
            };
            NativeStoredResult {
                record: r.record as f64,
                record_id: bedrock_batch_core::jsonl::record_id(r.record),
                idempotency_key: display_key(&r.key).to_string(),
                output,
                error_name,
                error_message,
            }
        })
        .collect()
}

pub(crate) fn job_js(j: &JobStats) -> NativeJobStats {
    NativeJobStats {
        job_arn: j.job_arn.clone(),
        job_name: j.job_name.clone(),
        model_id: j.model_id.clone(),
        status: j.status.to_string(),
        total_record_count: j.total_record_count as f64,
        processed_record_count: j.processed_record_count as f64,
        success_record_count: j.success_record_count as f64,
        error_record_count: j.error_record_count as f64,
        input_tokens: j.input_tokens as f64,
        output_tokens: j.output_tokens as f64,
        record_errors: j
            .record_errors
            .iter()
            .map(|(name, n)| NativeErrorCount { name: name.as_str().to_string(), count: *n as f64 })
            .collect(),
    }
}

/// The options resolved as the core resolves them (region from the AWS configuration, defaults,
/// the environment), as `client.config` shows them. Throws a ValidationException naming a
/// wrong option.
#[napi]
pub fn resolve_config(env: Env, options: serde_json::Value) -> Result<serde_json::Value> {
    let config = napi::bindgen_prelude::block_on(EngineConfig::from_options(&options)).map_err(|e| throw(&env, &e))?;
    Ok(config.view())
}

/// The engine, as the JS layer drives it.
#[napi]
pub struct NativeEngine {
    pub(crate) engine: Engine,
}

#[napi]
impl NativeEngine {
    /// Builds the engine from the user's options (functions left out: `credentials` as a function
    /// comes as `credentials`). `onEvents` receives packed settlements and job status changes, in
    /// order; it does not keep the process alive.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        options: serde_json::Value,
        on_events: Function<NativeSettleChunk, ()>,
        credentials: Option<Function<(), Promise<NativeCredentials>>>,
    ) -> Result<Self> {
        let events: SettleFn =
            on_events.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
        let credential_source: Option<Arc<dyn CredentialSource>> = match credentials {
            Some(f) => Some(Arc::new(JsCredentials(
                f.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?,
            ))),
            None => None,
        };
        let sink = Arc::new(JsSink { events });
        let engine = napi::bindgen_prelude::block_on(async move {
            let config = EngineConfig::from_options(&options).await?;
            Engine::connect(config, sink, credential_source).await
        })
        .map_err(|e| throw(&env, &e))?;
        Ok(NativeEngine { engine })
    }

    /// The configuration it runs with, as `client.config` shows it.
    #[napi(getter)]
    pub fn config(&self) -> serde_json::Value {
        self.engine.config().view()
    }

    /// Hands a chunk of requests to the engine; each settles by its id (a bad one alone, with
    /// its ValidationException).
    #[napi]
    pub fn submit(&self, env: Env, chunk: NativeSubmitChunk) -> Result<()> {
        let ends: &[u32] = &chunk.ends;
        let first = chunk.first_id as u64;
        let data = Bytes::copy_from_slice(&chunk.data);
        let models: Vec<Arc<str>> = chunk.models.iter().map(|m| Arc::from(m.as_str())).collect();
        let model_of: Option<&[u16]> = chunk.model_of.as_deref();
        let operations: Option<&[u8]> = chunk.operations.as_deref();
        let mut list: Vec<Submission> = Vec::with_capacity(ends.len());
        let mut start = 0usize;
        for (i, &end) in ends.iter().enumerate() {
            let end = (end as usize).min(data.len()).max(start);
            let model = models
                .get(model_of.map_or(0, |m| m.get(i).copied().unwrap_or(0) as usize))
                .cloned()
                .unwrap_or_else(|| Arc::from(""));
            let mut s = Submission::new(first + i as u64, model, data.slice(start..end));
            if let Some(code) = operations.and_then(|o| o.get(i)) {
                s.operation = NativeOperation::from_code(*code).unwrap_or_default();
            }
            list.push(s);
            start = end;
        }
        for o in chunk.options.unwrap_or_default() {
            let Some(s) = o.get("index").and_then(serde_json::Value::as_u64).and_then(|i| list.get_mut(i as usize))
            else {
                continue;
            };
            match options_from_json(&o) {
                Ok((options, key)) => {
                    s.key = key;
                    s.options = (options != InvokeOptions::default()).then(|| Box::new(options));
                }
                Err(e) => s.rejected = Some(Box::new(e)),
            }
            // The deadline, in epoch milliseconds (the JS layer checked it).
            s.deadline_ms = o.get("deadline").and_then(serde_json::Value::as_f64).map(|ms| ms.max(0.0) as u64);
        }
        self.engine.submit_batch(list).map_err(|e| throw(&env, &e))
    }

    /// Submits what is queued now.
    #[napi]
    pub fn flush(&self) {
        self.engine.flush();
    }

    /// Takes a request out of its queue if it has not been sent yet.
    #[napi]
    pub fn cancel(&self, id: f64) {
        self.engine.cancel(id as u64);
    }

    /// Rejects new requests, flushes, and resolves once every request has settled.
    #[napi(catch_unwind)]
    pub async fn close(&self) -> Result<()> {
        self.engine.close().await;
        Ok(())
    }

    /// Stops at once; pending requests settle with ClientClosedException.
    #[napi]
    pub fn destroy(&self, stop_jobs: Option<bool>) {
        let engine = self.engine.clone();
        let stop = stop_jobs.unwrap_or(false);
        napi::bindgen_prelude::spawn(async move { engine.destroy(stop) });
    }

    /// What each model's requests are doing now, by model id.
    #[napi(catch_unwind)]
    pub async fn load(&self) -> NativeLoadResult {
        match self.engine.load().await {
            Ok(models) => NativeLoadResult {
                models: Some(
                    models
                        .into_iter()
                        .map(|m| NativeModelLoad {
                            model_id: m.model_id,
                            queued: m.queued as f64,
                            in_jobs: m.in_jobs as f64,
                            on_demand: m.on_demand as f64,
                            in_group: m.in_group as f64,
                            padded: m.padded as f64,
                        })
                        .collect(),
                ),
                error: None,
            },
            Err(e) => NativeLoadResult { models: None, error: Some(data(&e)) },
        }
    }

    /// Counters and jobs.
    #[napi]
    pub fn stats(&self) -> NativeStats {
        let s = self.engine.stats();
        NativeStats {
            queued: s.queued as f64,
            in_flight: s.in_flight as f64,
            padded: s.padded as f64,
            resubmitted: s.resubmitted as f64,
            sent_direct: s.sent_direct as f64,
            jobs: s.jobs.iter().map(job_js).collect(),
            input_tokens: s.input_tokens as f64,
            output_tokens: s.output_tokens as f64,
            estimated_saving_usd: s.estimated_saving_usd,
            store: s.journal.map(|(location, bytes)| NativeStoreStats {
                // The engine opens the journal when both are configured.
                kind: if self.engine.config().journal.is_some() {
                    NativeStoreKind::Sqlite
                } else {
                    NativeStoreKind::Postgres
                },
                location,
                bytes: bytes as f64,
            }),
            leader: s.leader,
            committed_usd: s.committed_usd,
            tiers: {
                let t = |i: usize| NativeTierStats {
                    requests: s.tiers[i].requests as f64,
                    estimated_usd: (s.tiers[i].estimated_usd * 1e6).round() / 1e6,
                };
                NativeTiers { batch: t(0), flex: t(1), standard: t(2) }
            },
            max_cost_usd: s.max_cost_usd,
            deadline_fallbacks: s.deadline_fallbacks as f64,
            failed_calls: NativeFailedCalls {
                s3: s.s3_errors as f64,
                bedrock: s.bedrock_errors as f64,
                store: s.store_errors as f64,
            },
        }
    }

    /// A dry run's plan (the requests held then reject with DryRunException).
    #[napi(catch_unwind)]
    pub async fn plan(&self) -> NativePlanResult {
        match self.engine.plan().await {
            Ok(p) => NativePlanResult { models: plan_js(p), error: None },
            Err(e) => NativePlanResult { models: Vec::new(), error: Some(data(&e)) },
        }
    }

    /// The store's jobs, oldest first (`jobs` absent without a store).
    #[napi(catch_unwind)]
    pub async fn stored_jobs(&self) -> NativeJobsResult {
        match self.engine.stored_jobs().await {
            Ok(jobs) => NativeJobsResult { jobs: jobs.map(stored_jobs_js), error: None },
            Err(e) => NativeJobsResult { jobs: None, error: Some(data(&e)) },
        }
    }

    /// Up to `limit` answers of a job from the store, after record number `after`.
    #[napi(catch_unwind)]
    pub async fn stored_results(&self, job_arn: String, after: Option<f64>, limit: u32) -> NativeResultsResult {
        match self.engine.stored_results(&job_arn, after.map(|a| a as u64), limit as usize).await {
            Ok(rows) => NativeResultsResult { results: stored_results_js(rows), error: None },
            Err(e) => NativeResultsResult { results: Vec::new(), error: Some(data(&e)) },
        }
    }
}
