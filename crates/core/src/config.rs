//! The one configuration of an engine: [`EngineConfig`], built from the options the application
//! passed (a JSON value, as JavaScript hands them over) and the environment, with every default,
//! limit and check in this module. Errors are `ValidationException`s naming the option.

mod read;
mod store_url;

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::EngineError;
use read::{env_var, Section};
pub use store_url::{PgUrl, SslMode};

/// Most records Bedrock accepts per job.
pub const MAX_RECORDS_PER_JOB: usize = 50_000;
/// Largest input file Bedrock accepts.
pub const MAX_FILE_BYTES: usize = 1_000_000_000;
/// The region when neither the options nor the AWS configuration name one.
pub const DEFAULT_REGION: &str = "us-west-2";
/// Most on-demand calls at once, by default.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Seconds an OpenAI-compatible call may take, by default.
pub const DEFAULT_OPENAI_TIMEOUT: Duration = Duration::from_secs(600);
/// Days a journal keeps finished work, by default.
pub const DEFAULT_RETENTION_DAYS: f64 = 7.0;
/// How long the shared store may take to answer when the engine starts, by default.
pub const DEFAULT_STORE_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default `store.electionInterval`.
pub const DEFAULT_ELECTION_INTERVAL: Duration = Duration::from_secs(1);
/// The default `store.outageTimeout`.
pub const DEFAULT_OUTAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// The shared store's group when none is named.
pub const DEFAULT_STORE_GROUP: &str = "default";

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

impl BelowMinimum {
    fn parse(s: &str) -> Option<BelowMinimum> {
        match s {
            "pad" => Some(BelowMinimum::Pad),
            "direct" => Some(BelowMinimum::Direct),
            "wait" => Some(BelowMinimum::Wait),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            BelowMinimum::Pad => "pad",
            BelowMinimum::Direct => "direct",
            BelowMinimum::Wait => "wait",
        }
    }
}

/// When batch mode sends requests on Bedrock's Flex tier (`batch.flex`), for models that offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlexMode {
    /// What batch mode sends on-demand goes on Flex, then standard when Flex stays throttled (default).
    #[default]
    Fallback,
    /// Requests go on Flex instead of batch; when Flex stays throttled they go into batch jobs.
    Prefer,
    /// Flex is never used.
    Never,
}

impl FlexMode {
    fn parse(s: &str) -> Option<FlexMode> {
        match s {
            "fallback" => Some(FlexMode::Fallback),
            "prefer" => Some(FlexMode::Prefer),
            "never" => Some(FlexMode::Never),
            _ => None,
        }
    }

    /// The mode as the option names it.
    pub fn as_str(self) -> &'static str {
        match self {
            FlexMode::Fallback => "fallback",
            FlexMode::Prefer => "prefer",
            FlexMode::Never => "never",
        }
    }
}

/// Settings of batch mode. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Where input JSONL is written (`s3://bucket/prefix/`). Required. Env: `BEDROCK_BATCH_S3_INPUT_URI`.
    pub s3_input_uri: String,
    /// Where Bedrock writes output (`s3://bucket/prefix/`). Required. Env: `BEDROCK_BATCH_S3_OUTPUT_URI`.
    pub s3_output_uri: String,
    /// The service role Bedrock assumes. Required. Env: `BEDROCK_BATCH_ROLE_ARN`.
    pub role_arn: String,
    /// Below this many records a flush pads, goes direct or waits (default 100).
    pub min_batch_size: usize,
    /// Hard cap on records per job (default 1000, at most 50,000). Env: `BEDROCK_BATCH_MAX_BATCH_SIZE`.
    pub max_batch_size: usize,
    /// Hard cap on bytes per input file (1 GB, Bedrock's limit; smaller in tests).
    pub max_file_bytes: usize,
    /// Flush this long after the oldest waiting request (default 60 s). Env: `BEDROCK_BATCH_TIMEOUT`.
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
    /// Whether the streaming commands (ConverseStream, InvokeModelWithResponseStream) go
    /// on-demand instead of into batch jobs (`batch.streaming: "direct"`; default `"batch"`).
    pub stream_on_demand: bool,
    /// When requests go on the Flex tier (`batch.flex`, default `"fallback"`).
    pub flex: FlexMode,
    /// How long a request keeps retrying a throttled Flex tier before it leaves it: for standard
    /// under `"fallback"`, for a batch job under `"prefer"` (`batch.flexPatience`, default 60 s).
    pub flex_patience: Duration,
    /// A request's deadline when its caller gives none, counted from its send (`batch.deadline`).
    pub deadline: Option<Duration>,
    /// How long before its deadline a request whose answer has not come is sent on-demand
    /// (`batch.fallbackMargin`, default 60 s).
    pub fallback_margin: Duration,
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
            stream_on_demand: false,
            flex: FlexMode::Fallback,
            flex_patience: Duration::from_secs(60),
            deadline: None,
            fallback_margin: Duration::from_secs(60),
            max_queued_requests: 2_000_000,
            s3_encryption_key_id: None,
            s3_bucket_owner: None,
            vpc_config: None,
            tags: Vec::new(),
        }
    }
}

impl BatchConfig {
    /// Checks the settings a batch engine needs, naming the option at fault.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::validation(m));
        for (name, uri) in [("s3InputUri", &self.s3_input_uri), ("s3OutputUri", &self.s3_output_uri)] {
            if uri.is_empty() {
                return bad(format!("batch mode needs batch.{name} (an s3://bucket/prefix/ URI)"));
            }
            if let Some(why) = crate::jsonl::s3_uri_problem(uri) {
                return bad(format!("batch.{name} must be an s3://bucket/prefix/ URI: {why}; got {uri:?}"));
            }
        }
        if self.role_arn.is_empty() {
            return bad("batch mode needs batch.roleArn (the service role Bedrock assumes)".into());
        }
        if !self.role_arn.starts_with("arn:") || !self.role_arn.contains(":role/") {
            return bad(format!(
                "batch.roleArn must be an IAM role ARN (arn:aws:iam::123456789012:role/Name), got {:?}",
                self.role_arn
            ));
        }
        if self.max_batch_size == 0 || self.max_batch_size > MAX_RECORDS_PER_JOB {
            return bad(format!(
                "batch.maxBatchSize must be between 1 and {MAX_RECORDS_PER_JOB}, got {}",
                self.max_batch_size
            ));
        }
        if self.max_file_bytes == 0 || self.max_file_bytes > MAX_FILE_BYTES {
            return bad(format!("maxFileBytes must be between 1 and {MAX_FILE_BYTES}"));
        }
        if !(24..=168).contains(&self.job_timeout_hours) {
            return bad(format!("batch.jobTimeoutHours must be between 24 and 168, got {}", self.job_timeout_hours));
        }
        if self.max_concurrent_jobs == 0 {
            return bad("batch.maxConcurrentJobs must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return bad("batch.maxAttempts must be at least 1".into());
        }
        let prefix_ok = !self.job_name_prefix.is_empty()
            && self.job_name_prefix.len() <= 40
            && self.job_name_prefix.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && self.job_name_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '+');
        if !prefix_ok {
            return bad(format!(
                "batch.jobNamePrefix must start with a letter or digit, use only letters, digits, '-', '.', '+' (no '_') and be at most 40 characters, got {:?}",
                self.job_name_prefix
            ));
        }
        Ok(())
    }

    fn read(s: Section<'_>) -> Result<BatchConfig, EngineError> {
        s.only(&[
            "s3InputUri",
            "s3OutputUri",
            "roleArn",
            "minBatchSize",
            "maxBatchSize",
            "batchTimeout",
            "maxWait",
            "pollInterval",
            "jobTimeoutHours",
            "jobNamePrefix",
            "maxConcurrentJobs",
            "belowMinimum",
            "maxAttempts",
            "cleanup",
            "maxQueuedRequests",
            "s3EncryptionKeyId",
            "s3BucketOwner",
            "forcePathStyle",
            "vpcConfig",
            "tags",
            "streaming",
            "flex",
            "flexPatience",
            "deadline",
            "fallbackMargin",
        ])?;
        let d = BatchConfig::default();
        let below_minimum = match s.string("belowMinimum", None)? {
            None => d.below_minimum,
            Some(v) => BelowMinimum::parse(&v).ok_or_else(|| {
                EngineError::validation(format!(
                    "batch.belowMinimum must be \"pad\", \"direct\" or \"wait\", got {v:?}"
                ))
            })?,
        };
        let stream_on_demand = match s.string("streaming", None)?.as_deref() {
            None | Some("batch") => false,
            Some("direct") => true,
            Some(v) => {
                return Err(EngineError::validation(format!(
                    "batch.streaming must be \"batch\" or \"direct\", got {v:?}"
                )))
            }
        };
        let flex = match s.string("flex", None)? {
            None => d.flex,
            Some(v) => FlexMode::parse(&v).ok_or_else(|| {
                EngineError::validation(format!("batch.flex must be \"fallback\", \"prefer\" or \"never\", got {v:?}"))
            })?,
        };
        let vpc_config = match s.raw("vpcConfig") {
            None => None,
            Some(_) => {
                let v = s.section("vpcConfig", "batch.vpcConfig")?;
                v.only(&["subnetIds", "securityGroupIds"])?;
                let need = |k: &str| {
                    v.strings(k)?.ok_or_else(|| {
                        EngineError::validation(format!("batch.vpcConfig.{k} is required (a list of ids)"))
                    })
                };
                Some((need("subnetIds")?, need("securityGroupIds")?))
            }
        };
        Ok(BatchConfig {
            s3_input_uri: s.string("s3InputUri", Some("BEDROCK_BATCH_S3_INPUT_URI"))?.unwrap_or_default(),
            s3_output_uri: s.string("s3OutputUri", Some("BEDROCK_BATCH_S3_OUTPUT_URI"))?.unwrap_or_default(),
            role_arn: s.string("roleArn", Some("BEDROCK_BATCH_ROLE_ARN"))?.unwrap_or_default(),
            min_batch_size: s
                .integer("minBatchSize", 0, MAX_RECORDS_PER_JOB as u64, None)?
                .map_or(d.min_batch_size, |n| n as usize),
            max_batch_size: s
                .integer("maxBatchSize", 1, MAX_RECORDS_PER_JOB as u64, Some("BEDROCK_BATCH_MAX_BATCH_SIZE"))?
                .map_or(d.max_batch_size, |n| n as usize),
            max_file_bytes: d.max_file_bytes,
            batch_timeout: s.seconds("batchTimeout", Some("BEDROCK_BATCH_TIMEOUT"))?.unwrap_or(d.batch_timeout),
            max_wait: s.seconds("maxWait", None)?.unwrap_or(d.max_wait),
            poll_interval: s.seconds("pollInterval", None)?.unwrap_or(d.poll_interval),
            job_timeout_hours: s.integer("jobTimeoutHours", 24, 168, None)?.map_or(d.job_timeout_hours, |n| n as u32),
            job_name_prefix: s.string("jobNamePrefix", None)?.unwrap_or(d.job_name_prefix),
            max_concurrent_jobs: s
                .integer("maxConcurrentJobs", 1, 10_000, None)?
                .map_or(d.max_concurrent_jobs, |n| n as usize),
            below_minimum,
            max_attempts: s.integer("maxAttempts", 1, 100, None)?.map_or(d.max_attempts, |n| n as u32),
            cleanup: s.boolean("cleanup")?.unwrap_or(d.cleanup),
            max_queued_requests: s
                .integer("maxQueuedRequests", 1, 1 << 40, None)?
                .map_or(d.max_queued_requests, |n| n as usize),
            s3_encryption_key_id: s.string("s3EncryptionKeyId", None)?,
            s3_bucket_owner: s.string("s3BucketOwner", None)?,
            vpc_config,
            tags: read_tags(&s)?,
            stream_on_demand,
            flex,
            flex_patience: s.seconds("flexPatience", None)?.unwrap_or(d.flex_patience),
            deadline: s.seconds("deadline", None)?,
            fallback_margin: s.seconds("fallbackMargin", None)?.unwrap_or(d.fallback_margin),
        })
    }

    fn view(&self) -> Value {
        let mut v = json!({
            "s3InputUri": self.s3_input_uri,
            "s3OutputUri": self.s3_output_uri,
            "roleArn": self.role_arn,
            "minBatchSize": self.min_batch_size,
            "maxBatchSize": self.max_batch_size,
            "batchTimeout": self.batch_timeout.as_secs_f64(),
            "maxWait": self.max_wait.as_secs_f64(),
            "pollInterval": self.poll_interval.as_secs_f64(),
            "jobTimeoutHours": self.job_timeout_hours,
            "jobNamePrefix": self.job_name_prefix,
            "maxConcurrentJobs": self.max_concurrent_jobs,
            "belowMinimum": self.below_minimum.as_str(),
            "maxAttempts": self.max_attempts,
            "cleanup": self.cleanup,
            "streaming": if self.stream_on_demand { "direct" } else { "batch" },
            "flex": self.flex.as_str(),
            "flexPatience": self.flex_patience.as_secs_f64(),
            "fallbackMargin": self.fallback_margin.as_secs_f64(),
            "maxQueuedRequests": self.max_queued_requests,
            "tags": self.tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
        });
        if let Some(d) = self.deadline {
            v["deadline"] = json!(d.as_secs_f64());
        }
        if let Some(k) = &self.s3_encryption_key_id {
            v["s3EncryptionKeyId"] = json!(k);
        }
        if let Some(o) = &self.s3_bucket_owner {
            v["s3BucketOwner"] = json!(o);
        }
        if let Some((subnets, groups)) = &self.vpc_config {
            v["vpcConfig"] = json!({ "subnetIds": subnets, "securityGroupIds": groups });
        }
        v
    }
}

/// `tags`: `{ key: value }` or `[{ key, value }]`.
fn read_tags(s: &Section<'_>) -> Result<Vec<(String, String)>, EngineError> {
    let bad = || {
        EngineError::validation(
            "batch.tags must be { key: value } or [{ key, value }] with string keys and values".to_string(),
        )
    };
    match s.raw("tags") {
        None => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k.clone(), v.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                _ => Err(bad()),
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| match (t.get("key").and_then(Value::as_str), t.get("value").and_then(Value::as_str)) {
                (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
                _ => Err(bad()),
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// On-demand calls (direct mode, and requests batch mode sends on-demand).
#[derive(Debug, Clone)]
pub struct DirectConfig {
    /// Most on-demand calls at once, in every mode (default 32).
    pub max_concurrency: usize,
}

impl Default for DirectConfig {
    fn default() -> Self {
        DirectConfig { max_concurrency: DEFAULT_CONCURRENCY }
    }
}

/// OpenAI-compatible mode.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// LiteLLM-style model string (`hosted_vllm/Qwen/Qwen3-32B`, `bedrock/<modelId>`, ...).
    pub model: String,
    /// Base URL; else `endpoints.openai`, else the provider's.
    pub api_base: Option<String>,
    /// API key; else the provider's environment variable.
    pub api_key: Option<String>,
    /// Most calls at once (default 32).
    pub max_concurrency: usize,
    /// Per-call timeout (default 600 s).
    pub timeout: Duration,
}

/// Which back-end serves `send()`, with its settings.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Batch inference jobs (the default).
    Batch(Box<BatchConfig>),
    /// One on-demand InvokeModel per call.
    Direct,
    /// An OpenAI-compatible server.
    OpenAi(OpenAiConfig),
}

impl Mode {
    /// `batch`, `direct` or `openai`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Batch(_) => "batch",
            Mode::Direct => "direct",
            Mode::OpenAi(_) => "openai",
        }
    }
}

/// Static AWS credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id (`AKIA...`, or `ASIA...` for temporary credentials).
    pub access_key_id: String,
    /// The secret key that signs requests.
    pub secret_access_key: String,
    /// The session token of temporary credentials; `None` for long-term keys.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Endpoint overrides (the emulator's, VPC endpoints, S3-compatible stores). The AWS SDK's own
/// `AWS_ENDPOINT_URL_<SERVICE>` variables apply when these are unset.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// The Bedrock control plane's URL (jobs).
    pub bedrock: Option<String>,
    /// The Bedrock runtime's URL (on-demand calls).
    pub bedrock_runtime: Option<String>,
    /// S3's URL (the batches' files).
    pub s3: Option<String>,
    /// OpenAI-compatible base URL (openai mode's default `apiBase`).
    pub openai: Option<String>,
    /// AWS Service Quotas' URL (for Bedrock's batch inference quotas); the emulator's `endpoints`
    /// carry it.
    pub service_quotas: Option<String>,
}

/// The durable journal (batch mode).
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The SQLite file (its folder is created when missing).
    pub path: std::path::PathBuf,
    /// Finished entries older than this many days are pruned when the journal opens (default 7).
    pub retention_days: f64,
}

/// The shared store on PostgreSQL (batch mode): `store: { url, group, connectTimeout,
/// retentionDays }`, or the URL alone from `BEDROCK_BATCH_STORE_URL`. `Debug` and
/// [`StoreConfig::view`] never show the password.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The server, the database and how to reach them.
    pub url: PgUrl,
    /// The set of batches this client works on: every row is scoped by it (default `default`).
    pub group: String,
    /// The longest the engine waits for the server when it starts (default 30 s); after it,
    /// every send is rejected with `StoreUnavailableException`.
    pub connect_timeout: Duration,
    /// Finished entries of the group older than this many days are pruned when it opens (default 7).
    pub retention_days: f64,
    /// How often a client that does not lead the group tries to take the lead, and how often the
    /// leader checks that it still holds it (default 1 s): after a leader dies, another client
    /// leads within about this long (plus the time the server takes to see the connection gone).
    pub election_interval: Duration,
    /// How long callers wait through a lost connection to the server (reconnecting with backoff)
    /// before their sends are rejected with `StoreUnavailableException` (default 120 s).
    pub outage_timeout: Duration,
}

impl StoreConfig {
    /// `postgres://host:port/database#group`: where the store is, without user or password.
    pub fn location(&self) -> String {
        format!("{}#{}", self.url.location(), self.group)
    }

    fn view(&self) -> Value {
        json!({
            "url": self.url.redacted(),
            "group": self.group,
            "connectTimeout": self.connect_timeout.as_secs_f64(),
            "retentionDays": self.retention_days,
            "electionInterval": self.election_interval.as_secs_f64(),
            "outageTimeout": self.outage_timeout.as_secs_f64(),
        })
    }

    /// The `store` option alone (`{ store: { url, group } }`, or `BEDROCK_BATCH_STORE_URL`), for
    /// reading a store without a client (the `jobs` commands); `None` when neither is set.
    pub fn from_options(options: &Value) -> Result<Option<StoreConfig>, EngineError> {
        let root = Section::root(options)?;
        StoreConfig::read(&root, true, "batch")
    }

    /// Reads `store` (or `BEDROCK_BATCH_STORE_URL`); `None` when neither is set.
    fn read(root: &Section<'_>, batch_mode: bool, mode_name: &str) -> Result<Option<StoreConfig>, EngineError> {
        const ENV: &str = "BEDROCK_BATCH_STORE_URL";
        let given = root.raw("store").is_some();
        if !given && (!batch_mode || env_var(ENV).is_none()) {
            // The variable configures batch clients; others ignore it.
            return Ok(None);
        }
        if !batch_mode {
            return Err(EngineError::validation(format!(
                "store: the shared store serves batch mode only (mode is {mode_name:?})"
            )));
        }
        let s = root.section("store", "store")?;
        s.only(&["url", "group", "connectTimeout", "retentionDays", "electionInterval", "outageTimeout"])?;
        let url = s.string("url", Some(ENV))?.filter(|u| !u.is_empty()).ok_or_else(|| {
            EngineError::validation(format!(
                "store.url must be a postgres://user:password@host:port/database URL (or set {ENV})"
            ))
        })?;
        let url = PgUrl::parse(&url)?;
        let group = s.string("group", None)?.unwrap_or_else(|| DEFAULT_STORE_GROUP.into());
        if group.is_empty() || group.chars().count() > 200 || group.chars().any(char::is_control) {
            return Err(EngineError::validation(format!(
                "store.group must be a name of 1 to 200 characters without control characters, got {group:?}"
            )));
        }
        let connect_timeout = match s.seconds("connectTimeout", None)? {
            None => DEFAULT_STORE_CONNECT_TIMEOUT,
            Some(t) if t > Duration::ZERO && t <= Duration::from_secs(3600) => t,
            Some(t) => {
                return Err(EngineError::validation(format!(
                    "store.connectTimeout must be a number of seconds above 0 and at most 3600, got {}",
                    t.as_secs_f64()
                )))
            }
        };
        let retention_days =
            s.number("retentionDays", "a number of days >= 0", None)?.unwrap_or(DEFAULT_RETENTION_DAYS);
        if retention_days < 0.0 {
            return Err(EngineError::validation(format!(
                "store.retentionDays must be a number of days >= 0, got {retention_days}"
            )));
        }
        let bounded = |key: &str, default: Duration, min: f64, max: f64| -> Result<Duration, EngineError> {
            match s.seconds(key, None)? {
                None => Ok(default),
                Some(t) if t.as_secs_f64() >= min && t.as_secs_f64() <= max => Ok(t),
                Some(t) => Err(EngineError::validation(format!(
                    "store.{key} must be a number of seconds from {min} to {max}, got {}",
                    t.as_secs_f64()
                ))),
            }
        };
        let election_interval = bounded("electionInterval", DEFAULT_ELECTION_INTERVAL, 0.05, 60.0)?;
        let outage_timeout = bounded("outageTimeout", DEFAULT_OUTAGE_TIMEOUT, 0.0, 86_400.0)?;
        Ok(Some(StoreConfig { url, group, connect_timeout, retention_days, election_interval, outage_timeout }))
    }
}

/// On-demand prices of one model, for the estimated saving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// US dollars per 1,000 input tokens.
    pub input_per_1k_tokens: f64,
    /// US dollars per 1,000 output tokens.
    pub output_per_1k_tokens: f64,
}

/// Everything an engine is built from.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The region: the option, else the AWS configuration (`AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// the profile's), else `us-west-2`.
    pub region: String,
    /// The default model; a request's own wins.
    pub model_id: Option<String>,
    /// The back-end and its settings.
    pub mode: Mode,
    /// On-demand calls.
    pub direct: DirectConfig,
    /// Endpoint overrides.
    pub endpoints: Endpoints,
    /// Static credentials; else the application's credentials function, else the AWS default chain.
    pub credentials: Option<StaticCredentials>,
    /// Path-style S3 addressing (default: on when an S3 endpoint is set).
    pub force_path_style: Option<bool>,
    /// The journal.
    pub journal: Option<JournalConfig>,
    /// The shared store on PostgreSQL (instead of the journal).
    pub store: Option<StoreConfig>,
    /// Per-model standard prices, over the shipped table (`pricing.rs`).
    pub pricing: Vec<(String, Price)>,
    /// A dry run: batches are formed as they would be, nothing is uploaded, created or sent, and
    /// `plan()` says what the run would do and cost.
    pub dry_run: bool,
    /// The most the run may commit to spend, in USD: work whose upper-bound cost would cross it is
    /// not sent (`CostLimitExceededException`).
    pub max_cost_usd: Option<f64>,
    /// The models that offer the Flex tier (`tiers.flex`), in place of the shipped list.
    pub flex_models: Option<Vec<String>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            region: DEFAULT_REGION.into(),
            model_id: None,
            mode: Mode::Batch(Box::default()),
            direct: DirectConfig::default(),
            endpoints: Endpoints::default(),
            credentials: None,
            force_path_style: None,
            journal: None,
            store: None,
            pricing: Vec::new(),
            dry_run: false,
            max_cost_usd: None,
            flex_models: None,
        }
    }
}

impl EngineConfig {
    /// Builds the configuration from the application's options and the environment. Checks
    /// types, ranges and names; what a mode needs to start is checked by [`EngineConfig::validate`].
    /// Top-level keys it does not know are ignored (options meant for the AWS SDK's client pass
    /// through a migration unchanged); unknown keys inside `batch`, `direct`, `openai`,
    /// `journal`, `store` and `endpoints` are errors.
    pub async fn from_options(options: &Value) -> Result<EngineConfig, EngineError> {
        let root = Section::root(options)?;
        let region = match root.string("region", None)? {
            Some(r) if !r.is_empty() => r,
            _ => default_region().await,
        };
        let mode_name = root.string("mode", Some("BEDROCK_BATCH_MODE"))?.unwrap_or_else(|| "batch".into());
        let endpoints = {
            let e = root.section("endpoints", "endpoints")?;
            e.only(&["bedrock", "bedrockRuntime", "s3", "openai", "serviceQuotas"])?;
            Endpoints {
                bedrock: e.string("bedrock", None)?,
                bedrock_runtime: e.string("bedrockRuntime", None)?,
                s3: e.string("s3", None)?,
                openai: e.string("openai", None)?,
                service_quotas: e.string("serviceQuotas", None)?,
            }
        };
        let batch_section = root.section("batch", "batch")?;
        let mode = match mode_name.as_str() {
            "batch" => Mode::Batch(Box::new(BatchConfig::read(batch_section)?)),
            "direct" => Mode::Direct,
            "openai" => {
                let o = root.section("openai", "openai")?;
                o.only(&["model", "apiBase", "apiKey", "maxConcurrency", "timeout"])?;
                let model = o.string("model", None)?.filter(|m| !m.is_empty()).ok_or_else(|| {
                    EngineError::validation("openai mode needs openai.model (a LiteLLM-style model string such as \"hosted_vllm/Qwen/Qwen3-32B\")")
                })?;
                Mode::OpenAi(OpenAiConfig {
                    model,
                    api_base: o.string("apiBase", None)?.or_else(|| endpoints.openai.clone()),
                    api_key: o.string("apiKey", None)?,
                    max_concurrency: o
                        .integer("maxConcurrency", 1, 100_000, None)?
                        .map_or(DEFAULT_CONCURRENCY, |n| n as usize),
                    timeout: o.seconds("timeout", None)?.unwrap_or(DEFAULT_OPENAI_TIMEOUT),
                })
            }
            other => {
                return Err(EngineError::validation(format!(
                    "mode must be \"batch\", \"direct\" or \"openai\", got {other:?}"
                )))
            }
        };
        let direct = {
            let d = root.section("direct", "direct")?;
            d.only(&["maxConcurrency"])?;
            DirectConfig {
                max_concurrency: d
                    .integer("maxConcurrency", 1, 100_000, None)?
                    .map_or(DEFAULT_CONCURRENCY, |n| n as usize),
            }
        };
        let credentials = match root.raw("credentials") {
            None => None,
            Some(_) => {
                let c = root.section("credentials", "credentials")?;
                let bad = || {
                    EngineError::validation("credentials must be { accessKeyId, secretAccessKey, sessionToken? } or an async function returning them")
                };
                Some(StaticCredentials {
                    access_key_id: c.string("accessKeyId", None).map_err(|_| bad())?.ok_or_else(bad)?,
                    secret_access_key: c.string("secretAccessKey", None).map_err(|_| bad())?.ok_or_else(bad)?,
                    session_token: c.string("sessionToken", None).map_err(|_| bad())?,
                })
            }
        };
        let journal = match root.raw("journal") {
            None => None,
            Some(_) => {
                let j = root.section("journal", "journal")?;
                j.only(&["path", "retentionDays"])?;
                if !matches!(mode, Mode::Batch(_)) {
                    return Err(EngineError::validation(format!(
                        "journal: the journal serves batch mode only (mode is {mode_name:?})"
                    )));
                }
                let path = j.string("path", None)?.filter(|p| !p.is_empty()).ok_or_else(|| {
                    EngineError::validation(
                        "journal.path must be the path of the journal file (e.g. \"./.bedrock-batch/journal.db\")",
                    )
                })?;
                let days = j.number("retentionDays", "a number of days >= 0", None)?.unwrap_or(DEFAULT_RETENTION_DAYS);
                if days < 0.0 {
                    return Err(EngineError::validation(format!(
                        "journal.retentionDays must be a number of days >= 0, got {days}"
                    )));
                }
                Some(JournalConfig { path: path.into(), retention_days: days })
            }
        };
        let store = StoreConfig::read(&root, matches!(mode, Mode::Batch(_)), &mode_name)?;
        if let (Some(_), Some(_)) = (&store, &journal) {
            let from = if root.raw("store").is_some() { "store" } else { "store (from BEDROCK_BATCH_STORE_URL)" };
            return Err(EngineError::validation(format!(
                "{from} and journal cannot be used together: a client records its batches in one place; keep one of them"
            )));
        }
        let pricing = match root.raw("pricing") {
            None => Vec::new(),
            Some(Value::Object(models)) => models
                .iter()
                .map(|(model, p)| {
                    let num = |k: &str| p.get(k).and_then(Value::as_f64).filter(|n| *n >= 0.0);
                    match (num("inputPer1kTokens"), num("outputPer1kTokens")) {
                        (Some(i), Some(o)) => {
                            Ok((model.clone(), Price { input_per_1k_tokens: i, output_per_1k_tokens: o }))
                        }
                        _ => Err(EngineError::validation(format!(
                            "pricing[{model:?}] must be {{ inputPer1kTokens, outputPer1kTokens }} with numbers >= 0"
                        ))),
                    }
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(EngineError::validation(
                    "pricing must be { [modelId]: { inputPer1kTokens, outputPer1kTokens } }",
                ))
            }
        };
        let dry_run = root.boolean("dryRun")?.unwrap_or(false);
        if dry_run && store.is_some() {
            return Err(EngineError::validation(
                "dryRun cannot be used with store: a group's leader would send the requests for real; plan the run without a store",
            ));
        }
        let max_cost_usd = root.number("maxCostUsd", "a number of USD > 0", None)?;
        if let Some(cap) = max_cost_usd {
            if cap <= 0.0 || !cap.is_finite() {
                return Err(EngineError::validation(format!("maxCostUsd must be a number of USD > 0, got {cap}")));
            }
        }
        let flex_models = match root.raw("tiers") {
            None => None,
            Some(_) => {
                let t = root.section("tiers", "tiers")?;
                t.only(&["flex"])?;
                t.strings("flex").map_err(|_| {
                    EngineError::validation("tiers.flex must be a list of model ids (or id prefixes ending in - or .)")
                })?
            }
        };
        Ok(EngineConfig {
            region,
            model_id: root.string("modelId", None)?.filter(|m| !m.is_empty()),
            mode,
            direct,
            force_path_style: batch_section.boolean("forcePathStyle")?,
            endpoints,
            credentials,
            journal,
            store,
            pricing,
            dry_run,
            max_cost_usd,
            flex_models,
        })
    }

    /// Checks what the mode needs to start (batch: the S3 locations and the role).
    pub fn validate(&self) -> Result<(), EngineError> {
        match &self.mode {
            Mode::Batch(b) => b.validate(),
            Mode::Direct | Mode::OpenAi(_) => Ok(()),
        }
    }

    /// The configuration as the JS `client.config` shows it (no secrets).
    pub fn view(&self) -> Value {
        let batch = match &self.mode {
            Mode::Batch(b) => b.view(),
            _ => BatchConfig::default().view(),
        };
        let mut v = json!({
            "region": self.region,
            "mode": self.mode.name(),
            "batch": batch,
            "direct": { "maxConcurrency": self.direct.max_concurrency },
            "endpoints": {},
        });
        if let Some(m) = &self.model_id {
            v["modelId"] = json!(m);
        }
        for (k, e) in [
            ("bedrock", &self.endpoints.bedrock),
            ("bedrockRuntime", &self.endpoints.bedrock_runtime),
            ("s3", &self.endpoints.s3),
            ("openai", &self.endpoints.openai),
            ("serviceQuotas", &self.endpoints.service_quotas),
        ] {
            if let Some(e) = e {
                v["endpoints"][k] = json!(e);
            }
        }
        if let Mode::OpenAi(o) = &self.mode {
            v["openai"] = json!({ "model": o.model, "apiBase": o.api_base, "maxConcurrency": o.max_concurrency, "timeout": o.timeout.as_secs_f64() });
        }
        if let Some(j) = &self.journal {
            v["journal"] = json!({ "path": j.path.display().to_string(), "retentionDays": j.retention_days });
        }
        if self.dry_run {
            v["dryRun"] = json!(true);
        }
        if let Some(cap) = self.max_cost_usd {
            v["maxCostUsd"] = json!(cap);
        }
        if let Some(flex) = &self.flex_models {
            v["tiers"] = json!({ "flex": flex });
        }
        if let Some(st) = &self.store {
            v["store"] = st.view();
        }
        v
    }

    /// The batch settings, in batch mode.
    pub fn batch(&self) -> Option<&BatchConfig> {
        match &self.mode {
            Mode::Batch(b) => Some(b),
            _ => None,
        }
    }
}

/// The region of the AWS configuration: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's
/// (`AWS_PROFILE`, else `default`, in the shared config and credentials files, as `aws-config`
/// reads them), else `us-west-2`. Instance metadata is not asked.
pub async fn default_region() -> String {
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(r) = env_var(var) {
            return r;
        }
    }
    let profile = aws_config::profile::ProfileFileRegionProvider::builder().build();
    use aws_config::meta::region::ProvideRegion;
    match profile.region().await {
        Some(r) => r.to_string(),
        None => DEFAULT_REGION.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn defaults_come_from_one_place_and_the_view_shows_them() {
        let c = block(EngineConfig::from_options(&json!({ "region": "eu-west-1" }))).unwrap();
        assert_eq!(c.region, "eu-west-1");
        let b = c.batch().unwrap();
        assert_eq!(b.max_batch_size, 1000);
        assert_eq!(c.direct.max_concurrency, DEFAULT_CONCURRENCY);
        let v = c.view();
        assert_eq!(v["batch"]["batchTimeout"], 60.0);
        assert_eq!(v["direct"]["maxConcurrency"], 32);
        assert!(c.validate().unwrap_err().message.contains("batch.s3InputUri"));
    }

    #[test]
    fn options_of_the_wrong_type_or_range_are_validation_errors_naming_them() {
        let cases = [
            (json!({ "batch": { "pollInterval": "soon" } }), "batch.pollInterval must be a number of seconds"),
            (json!({ "batch": { "maxBatchSize": 50_001 } }), "batch.maxBatchSize"),
            (json!({ "batch": { "belowMinimum": "sometimes" } }), "batch.belowMinimum"),
            (json!({ "batch": { "maxBatchsize": 5 } }), "unknown option batch.maxBatchsize"),
            (json!({ "mode": "sideways" }), "mode must be"),
            (json!({ "mode": "openai" }), "openai.model"),
            (json!({ "direct": { "maxConcurrency": 0 } }), "direct.maxConcurrency"),
            (json!({ "journal": { "path": "" } }), "journal.path"),
            (json!({ "mode": "direct", "journal": { "path": "x.db" } }), "batch mode only"),
            (json!({ "credentials": { "accessKeyId": 1 } }), "credentials must be"),
            (json!({ "store": { "url": "" } }), "store.url must be a postgres://"),
            (json!({ "store": { "url": "postgres://u@h/db", "connectTimeout": 0 } }), "store.connectTimeout"),
            (json!({ "store": { "url": "postgres://u@h/db", "group": "" } }), "store.group"),
            (json!({ "store": { "url": "postgres://u@h/db", "retentionDays": -1 } }), "store.retentionDays"),
            (json!({ "store": { "url": "postgres://u@h/db", "size": 1 } }), "unknown option store.size"),
            (json!({ "mode": "direct", "store": { "url": "postgres://u@h/db" } }), "batch mode only"),
            (
                json!({ "store": { "url": "postgres://u@h/db" }, "journal": { "path": "x.db" } }),
                "store and journal cannot be used together",
            ),
        ];
        for (opts, want) in cases {
            let e = block(EngineConfig::from_options(&opts)).unwrap_err();
            assert_eq!(e.name, crate::ErrorName::ValidationException, "{opts}");
            assert!(e.message.contains(want), "{opts}: {}", e.message);
        }
    }

    #[test]
    fn the_store_is_read_with_its_defaults_and_shown_without_its_password() {
        let c = block(EngineConfig::from_options(
            &json!({ "store": { "url": "postgres://bbb:pa55word@127.0.0.1:5433/jobs?sslmode=require" } }),
        ))
        .unwrap();
        let st = c.store.as_ref().unwrap();
        assert_eq!(
            (st.group.as_str(), st.connect_timeout, st.retention_days),
            ("default", DEFAULT_STORE_CONNECT_TIMEOUT, DEFAULT_RETENTION_DAYS)
        );
        assert_eq!(st.location(), "postgres://127.0.0.1:5433/jobs#default");
        assert_eq!(st.url.ssl_mode, SslMode::Require);
        let shown = format!("{} {c:?}", c.view());
        assert!(!shown.contains("pa55word"), "{shown}");
        assert_eq!(c.view()["store"]["url"], "postgres://bbb@127.0.0.1:5433/jobs?sslmode=require");
        assert_eq!(c.view()["store"]["connectTimeout"], 30.0);
        let e = block(EngineConfig::from_options(&json!({ "store": { "url": "postgres://bbb:pa55word@h:0/db" } })))
            .unwrap_err();
        assert!(!e.message.contains("pa55word"), "{}", e.message);
    }

    #[test]
    fn unknown_top_level_options_pass_through_a_migration() {
        let c = block(EngineConfig::from_options(&json!({ "region": "r", "maxAttempts": 3, "requestHandler": {} })))
            .unwrap();
        assert_eq!(c.region, "r");
    }

    #[test]
    fn openai_mode_takes_the_emulator_endpoint_as_its_default_api_base() {
        let c =
            block(EngineConfig::from_options(&json!({ "mode": "openai", "openai": { "model": "hosted_vllm/x" }, "endpoints": { "openai": "http://h/v1" } })))
                .unwrap();
        match c.mode {
            Mode::OpenAi(o) => assert_eq!(o.api_base.as_deref(), Some("http://h/v1")),
            other => panic!("{other:?}"),
        }
    }
}
