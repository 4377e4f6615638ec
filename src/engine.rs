//! `NativeEngine`: the batch engine as a JS class. Requests settle by id through one shared
//! threadsafe function (the Promise resolvers live in JS), so a pending request costs no
//! per-request native callback.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use bedrock_batch_core::backend::bedrock::{AwsClients, AwsSettings, BedrockBatch, BedrockDirect};
use bedrock_batch_core::backend::credentials::{CredentialSource, CredentialsFuture, SuppliedCredentials};
use bedrock_batch_core::backend::openai::{route, OpenAiBackend, OpenAiSettings, Route};
use bedrock_batch_core::journal::{Answer, JournalConfig};
use bedrock_batch_core::stats::JobStats;
use bedrock_batch_core::{BatchConfig, Engine, InvokeOptions, Settlement, Sink};

use crate::error::{engine_error, settlement_error, JsEngineError};

/// Batch-mode options as the JS layer resolved them (seconds for times).
#[napi(object)]
pub struct NativeBatchOptions {
    pub s3_input_uri: String,
    pub s3_output_uri: String,
    pub role_arn: String,
    pub min_batch_size: Option<u32>,
    pub max_batch_size: Option<u32>,
    pub batch_timeout: Option<f64>,
    pub max_wait: Option<f64>,
    pub poll_interval: Option<f64>,
    pub job_timeout_hours: Option<u32>,
    pub job_name_prefix: Option<String>,
    pub max_concurrent_jobs: Option<u32>,
    pub below_minimum: Option<String>,
    pub max_attempts: Option<u32>,
    pub cleanup: Option<bool>,
    pub max_queued_requests: Option<u32>,
    pub s3_encryption_key_id: Option<String>,
    pub s3_bucket_owner: Option<String>,
    pub force_path_style: Option<bool>,
    pub vpc_config: Option<NativeVpcConfig>,
    pub tags: Option<Vec<NativeTag>>,
}

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
            let pending = self.0.call_async(()).await.map_err(|e| format!("the credentials function failed: {}", e.reason))?;
            let c = pending.await.map_err(|e| format!("the credentials function failed: {}", e.reason))?;
            Ok(SuppliedCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: c.session_token,
                expiration: c.expiration.filter(|ms| ms.is_finite() && *ms > 0.0).map(|ms| UNIX_EPOCH + Duration::from_millis(ms as u64)),
            })
        })
    }
}

/// The durable journal.
#[napi(object)]
pub struct NativeJournalOptions {
    pub path: String,
    pub retention_days: Option<f64>,
}

/// Subnets and security groups the job runs in.
#[napi(object)]
pub struct NativeVpcConfig {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

/// One job tag.
#[napi(object)]
pub struct NativeTag {
    pub key: String,
    pub value: String,
}

/// Direct-mode options.
#[napi(object)]
pub struct NativeDirectOptions {
    pub max_concurrency: Option<u32>,
}

/// OpenAI-compatible mode options.
#[napi(object)]
pub struct NativeOpenAiOptions {
    pub model: String,
    pub api_base: Option<String>,
    pub api_key: Option<String>,
    pub max_concurrency: Option<u32>,
    pub timeout: Option<f64>,
}

/// Where AWS is and as whom.
#[napi(object)]
pub struct NativeAwsOptions {
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub bedrock_endpoint: Option<String>,
    pub bedrock_runtime_endpoint: Option<String>,
    pub s3_endpoint: Option<String>,
}

/// The InvokeModel options of one request.
#[napi(object)]
pub struct NativeInvokeOptions {
    pub content_type: Option<String>,
    pub accept: Option<String>,
    pub trace: Option<String>,
    pub guardrail_identifier: Option<String>,
    pub guardrail_version: Option<String>,
    pub performance_config_latency: Option<String>,
    pub service_tier: Option<String>,
    pub request_metadata: Option<String>,
}

/// Settled requests, packed so that a thousand of them cross into JS in one call: bodies are
/// slices of `data` (`ends[i]` is where body `i` ends), errors and non-default fields come apart.
#[napi(object)]
pub struct NativeSettleChunk {
    /// Request ids, in order.
    pub ids: Float64Array,
    /// End offset of each body in `data` (errors have empty bodies).
    pub ends: Uint32Array,
    /// Every body, one after the other.
    pub data: Buffer,
    /// The batch job that answered the successes, when they share one.
    pub job_arn: Option<String>,
    /// Successes whose metadata differs from a batch answer's.
    pub extras: Vec<NativeExtra>,
    /// Failures.
    pub errors: Vec<NativeSettleError>,
}

/// Metadata of one success that differs from a plain batch answer (on-demand answers, and
/// answers that took more than one job).
#[napi(object)]
pub struct NativeExtra {
    pub index: u32,
    pub content_type: String,
    pub request_id: Option<String>,
    pub job_arn: Option<String>,
    pub performance_config_latency: Option<String>,
    pub service_tier: Option<String>,
    pub attempts: u32,
}

/// One failure.
#[napi(object)]
pub struct NativeSettleError {
    pub index: u32,
    pub error: JsEngineError,
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
    pub journal: Option<NativeJournalStats>,
}

/// The journal's file and size.
#[napi(object)]
pub struct NativeJournalStats {
    pub path: String,
    pub bytes: f64,
}

/// One job of the journal.
#[napi(object)]
pub struct NativeJournalJob {
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

/// One answer of a job, from the journal.
#[napi(object)]
pub struct NativeJournalResult {
    pub record: f64,
    pub record_id: String,
    pub idempotency_key: String,
    pub output: Option<Buffer>,
    pub error_name: Option<String>,
    pub error_message: Option<String>,
}

fn job_js(j: &JobStats) -> NativeJobStats {
    NativeJobStats {
        job_arn: j.job_arn.clone(),
        job_name: j.job_name.clone(),
        model_id: j.model_id.clone(),
        status: j.status.clone(),
        total_record_count: j.total_record_count as f64,
        processed_record_count: j.processed_record_count as f64,
        success_record_count: j.success_record_count as f64,
        error_record_count: j.error_record_count as f64,
        input_tokens: j.input_tokens as f64,
        output_tokens: j.output_tokens as f64,
    }
}

type SettleFn = ThreadsafeFunction<NativeSettleChunk, (), NativeSettleChunk, Status, false, true>;
type JobFn = ThreadsafeFunction<NativeJobStats, (), NativeJobStats, Status, false, true>;

struct JsSink {
    settle: SettleFn,
    job: Option<JobFn>,
}

/// Packs settlements into one chunk.
fn pack(settlements: Vec<Settlement>) -> NativeSettleChunk {
    let n = settlements.len();
    let mut ids = Vec::with_capacity(n);
    let mut ends = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(settlements.iter().map(|s| s.result.as_ref().map_or(0, |ok| ok.body.len())).sum());
    let mut extras = Vec::new();
    let mut errors = Vec::new();
    let chunk_arn = settlements.iter().find_map(|s| s.result.as_ref().ok().and_then(|ok| ok.job_arn.clone()));
    for (i, s) in settlements.into_iter().enumerate() {
        ids.push(s.id as f64);
        match s.result {
            Ok(ok) => {
                data.extend_from_slice(&ok.body);
                let plain = ok.request_id.is_none()
                    && ok.performance_config_latency.is_none()
                    && ok.service_tier.is_none()
                    && ok.content_type == "application/json"
                    && ok.attempts <= 1
                    && ok.job_arn.is_some()
                    && ok.job_arn == chunk_arn;
                if !plain {
                    extras.push(NativeExtra {
                        index: i as u32,
                        content_type: ok.content_type,
                        request_id: ok.request_id,
                        job_arn: ok.job_arn.map(|a| a.to_string()),
                        performance_config_latency: ok.performance_config_latency,
                        service_tier: ok.service_tier,
                        attempts: ok.attempts.max(1),
                    });
                }
            }
            Err(e) => errors.push(NativeSettleError { index: i as u32, error: settlement_error(&e) }),
        }
        ends.push(data.len() as u32);
    }
    NativeSettleChunk {
        ids: Float64Array::new(ids),
        ends: Uint32Array::new(ends),
        data: data.into(),
        job_arn: chunk_arn.map(|a| a.to_string()),
        extras,
        errors,
    }
}

impl Sink for JsSink {
    fn settle(&self, settlements: Vec<Settlement>) {
        self.settle.call(pack(settlements), ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn job_event(&self, job: &JobStats) {
        if let Some(f) = &self.job {
            f.call(job_js(job), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// Region, static credentials and endpoints as the AWS clients take them.
pub(crate) fn aws_settings(aws: NativeAwsOptions) -> AwsSettings {
    AwsSettings {
        region: Some(aws.region),
        credentials: match (aws.access_key_id, aws.secret_access_key) {
            (Some(a), Some(s)) => Some((a, s, aws.session_token)),
            _ => None,
        },
        bedrock_endpoint: aws.bedrock_endpoint,
        bedrock_runtime_endpoint: aws.bedrock_runtime_endpoint,
        s3_endpoint: aws.s3_endpoint,
        ..Default::default()
    }
}

fn secs(v: Option<f64>, default: Duration, name: &str) -> Result<Duration> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(crate::error::js_error("ValidationException", format!("{name} must be a number of seconds >= 0, got {s}"))),
    }
}

fn batch_config(o: &NativeBatchOptions) -> Result<BatchConfig> {
    let d = BatchConfig::default();
    let below = match &o.below_minimum {
        Some(s) => s.parse().map_err(|e: String| crate::error::js_error("ValidationException", e))?,
        None => d.below_minimum,
    };
    Ok(BatchConfig {
        s3_input_uri: o.s3_input_uri.clone(),
        s3_output_uri: o.s3_output_uri.clone(),
        role_arn: o.role_arn.clone(),
        min_batch_size: o.min_batch_size.map_or(d.min_batch_size, |n| n as usize),
        max_batch_size: o.max_batch_size.map_or(d.max_batch_size, |n| n as usize),
        batch_timeout: secs(o.batch_timeout, d.batch_timeout, "batchTimeout")?,
        max_wait: secs(o.max_wait, d.max_wait, "maxWait")?,
        poll_interval: secs(o.poll_interval, d.poll_interval, "pollInterval")?,
        job_timeout_hours: o.job_timeout_hours.unwrap_or(d.job_timeout_hours),
        job_name_prefix: o.job_name_prefix.clone().unwrap_or(d.job_name_prefix.clone()),
        max_concurrent_jobs: o.max_concurrent_jobs.map_or(d.max_concurrent_jobs, |n| n as usize),
        below_minimum: below,
        max_attempts: o.max_attempts.unwrap_or(d.max_attempts),
        cleanup: o.cleanup.unwrap_or(d.cleanup),
        max_queued_requests: o.max_queued_requests.map_or(d.max_queued_requests, |n| n as usize),
        s3_encryption_key_id: o.s3_encryption_key_id.clone(),
        s3_bucket_owner: o.s3_bucket_owner.clone(),
        vpc_config: o.vpc_config.as_ref().map(|v| (v.subnet_ids.clone(), v.security_group_ids.clone())),
        tags: o.tags.as_ref().map(|t| t.iter().map(|t| (t.key.clone(), t.value.clone())).collect()).unwrap_or_default(),
        ..d
    })
}

/// The engine, as the JS layer drives it.
#[napi]
pub struct NativeEngine {
    engine: Engine,
}

#[napi]
impl NativeEngine {
    /// Builds the engine. `onSettle` receives arrays of settlements, `onJob` job status changes;
    /// neither keeps the process alive.
    #[napi(constructor)]
    pub fn new(
        mode: String,
        aws: NativeAwsOptions,
        batch: Option<NativeBatchOptions>,
        direct: Option<NativeDirectOptions>,
        openai: Option<NativeOpenAiOptions>,
        journal: Option<NativeJournalOptions>,
        on_settle: Function<NativeSettleChunk, ()>,
        on_job: Option<Function<NativeJobStats, ()>>,
        credentials: Option<Function<(), Promise<NativeCredentials>>>,
    ) -> Result<Self> {
        let settle: SettleFn = on_settle.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?;
        let job: Option<JobFn> = match on_job {
            Some(f) => Some(f.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?),
            None => None,
        };
        let credential_source: Option<Arc<dyn CredentialSource>> = match credentials {
            Some(f) => Some(Arc::new(JsCredentials(f.build_threadsafe_function().callee_handled::<false>().weak::<true>().build()?))),
            None => None,
        };
        let settings = AwsSettings { credential_source, force_path_style: batch.as_ref().and_then(|b| b.force_path_style), ..aws_settings(aws) };
        let sink = Arc::new(JsSink { settle, job });
        let engine = match mode.as_str() {
            "batch" => {
                let config = batch_config(batch.as_ref().ok_or_else(|| crate::error::js_error("ValidationException", "batch mode needs batch options"))?)?;
                let journal = journal.map(|j| JournalConfig { path: j.path.into(), retention_days: j.retention_days.unwrap_or(7.0) });
                napi::bindgen_prelude::block_on(async move {
                    let clients = AwsClients::new(&settings).await;
                    let region = clients.region.clone();
                    let backend = Arc::new(BedrockBatch::new(clients.clone(), config.clone()));
                    let direct = Arc::new(BedrockDirect::new(clients));
                    Engine::with_journal(config, region, backend, Some(direct), sink, journal)
                })
                .map_err(|e| engine_error(&e))?
            }
            "direct" => {
                let max = direct.and_then(|d| d.max_concurrency).map_or(bedrock_batch_core::engine::DIRECT_CONCURRENCY, |n| n as usize);
                napi::bindgen_prelude::block_on(async move {
                    let clients = AwsClients::new(&settings).await;
                    let region = clients.region.clone();
                    Engine::direct(region, Arc::new(BedrockDirect::new(clients)), sink, max)
                })
            }
            "openai" => {
                let o = openai.ok_or_else(|| crate::error::js_error("ValidationException", "openai mode needs openai.model"))?;
                let max = o.max_concurrency.map_or(bedrock_batch_core::engine::DIRECT_CONCURRENCY, |n| n as usize);
                let timeout = secs(o.timeout, Duration::from_secs(600), "openai.timeout")?;
                match route(&o.model) {
                    // bedrock/<modelId> is plain on-demand InvokeModel.
                    Route::Bedrock { .. } => napi::bindgen_prelude::block_on(async move {
                        let clients = AwsClients::new(&settings).await;
                        let region = clients.region.clone();
                        Engine::direct(region, Arc::new(BedrockDirect::new(clients)), sink, max)
                    }),
                    Route::Http { .. } => {
                        let backend = OpenAiBackend::new(&OpenAiSettings { model: o.model, api_base: o.api_base, api_key: o.api_key, timeout })
                            .map_err(|e| engine_error(&e))?;
                        let region = settings.region.clone().unwrap_or_default();
                        napi::bindgen_prelude::block_on(async move { Engine::direct(region, Arc::new(backend), sink, max) })
                    }
                }
            }
            other => return Err(crate::error::js_error("ValidationException", format!("unknown mode {other:?}"))),
        };
        Ok(NativeEngine { engine })
    }

    /// Validates and queues one request; returns its id, or throws a typed error at once.
    #[napi]
    pub fn submit(&self, model_id: String, body: Either<String, Buffer>, options: Option<NativeInvokeOptions>, idempotency_key: Option<String>) -> Result<f64> {
        let body = match body {
            Either::A(s) => s.into_bytes(),
            Either::B(b) => b.to_vec(),
        };
        let o = options.map(|o| InvokeOptions {
            content_type: o.content_type,
            accept: o.accept,
            trace: o.trace,
            guardrail_identifier: o.guardrail_identifier,
            guardrail_version: o.guardrail_version,
            performance_config_latency: o.performance_config_latency,
            service_tier: o.service_tier,
            request_metadata: o.request_metadata,
        });
        self.engine.submit_keyed(&model_id, body, o.unwrap_or_default(), idempotency_key.as_deref()).map(|id| id as f64).map_err(|e| engine_error(&e))
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

    /// Stops at once; queued requests settle with ClientClosedException.
    #[napi]
    pub fn destroy(&self, stop_jobs: Option<bool>) {
        let engine = self.engine.clone();
        let stop = stop_jobs.unwrap_or(false);
        napi::bindgen_prelude::spawn(async move { engine.destroy(stop) });
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
            journal: s.journal.map(|(path, bytes)| NativeJournalStats { path, bytes: bytes as f64 }),
        }
    }

    /// The journal's jobs, oldest first (`null` without a journal).
    #[napi]
    pub async fn journal_jobs(&self) -> Result<Option<Vec<NativeJournalJob>>> {
        let Some(j) = self.engine.journal() else { return Ok(None) };
        let jobs = tokio::task::spawn_blocking(move || j.jobs()).await.map_err(|e| crate::error::js_error("InternalServerException", e))?;
        let jobs = jobs.map_err(|e| engine_error(&e))?;
        Ok(Some(
            jobs.into_iter()
                .map(|j| NativeJournalJob {
                    job_arn: j.job_arn,
                    job_name: j.job_name,
                    model_id: j.model_id,
                    status: j.status,
                    created_at: j.created_at as f64 * 1000.0,
                    total_record_count: j.total_record_count as f64,
                    success_record_count: j.success_record_count as f64,
                    error_record_count: j.error_record_count as f64,
                })
                .collect(),
        ))
    }

    /// Up to `limit` answers of a job from the journal, after record number `after`.
    #[napi]
    pub async fn journal_results(&self, job_arn: String, after: Option<f64>, limit: u32) -> Result<Vec<NativeJournalResult>> {
        let Some(j) = self.engine.journal() else {
            return Err(crate::error::js_error("ValidationException", "results() needs a journal: set the journal option (journal: { path })"));
        };
        let rows = tokio::task::spawn_blocking(move || j.results(&job_arn, after.map(|a| a as u64), limit as usize))
            .await
            .map_err(|e| crate::error::js_error("InternalServerException", e))?;
        let rows = rows.map_err(|e| engine_error(&e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (output, error_name, error_message) = match r.answer {
                    Answer::Output(o) => (Some(o.into()), None, None),
                    Answer::Error { name, message } => (None, Some(name), Some(message)),
                };
                NativeJournalResult {
                    record: r.record as f64,
                    record_id: bedrock_batch_core::jsonl::record_id(r.record),
                    idempotency_key: bedrock_batch_core::journal::display_key(&r.key).to_string(),
                    output,
                    error_name,
                    error_message,
                }
            })
            .collect())
    }
}
