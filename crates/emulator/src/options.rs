//! Emulator options, as JS (`startEmulator(options)`) and the CLI give them.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// How fast jobs walk through their statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// For tests: a 1,000-record job ends well under a second.
    #[default]
    Fast,
    /// For demos: each stage takes 1–3 s, a 500-record job about 15 s.
    Realistic,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(Profile::Fast),
            "realistic" => Ok(Profile::Realistic),
            other => Err(format!("unknown profile {other:?} (expected fast or realistic)")),
        }
    }
}

/// The minimum number of records per job: one number, or one per model id.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MinRecords {
    /// The same minimum for every model.
    All(u64),
    /// A minimum per model id; models not listed use 100.
    PerModel(HashMap<String, u64>),
}

impl Default for MinRecords {
    fn default() -> Self {
        MinRecords::All(DEFAULT_MIN_RECORDS)
    }
}

/// Bedrock's minimum number of records per batch job for most models.
pub const DEFAULT_MIN_RECORDS: u64 = 100;

impl MinRecords {
    /// The minimum that applies to `model_id`.
    pub fn for_model(&self, model_id: &str) -> u64 {
        match self {
            MinRecords::All(n) => *n,
            MinRecords::PerModel(map) => map.get(model_id).copied().unwrap_or(DEFAULT_MIN_RECORDS),
        }
    }
}

/// Control-plane throttling: the first N calls of each operation get ThrottlingException (`POST
/// /_emulator/faults` arms the next N while the emulator runs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Throttle {
    /// Throttled CreateModelInvocationJob calls.
    pub create: u64,
    /// Throttled GetModelInvocationJob calls.
    pub get: u64,
}

/// S3 faults for clients (the emulator's own reads and writes are exempt).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct S3Faults {
    /// The first N S3 requests fail with 503 SlowDown (`POST /_emulator/faults` arms the next N
    /// while the emulator runs).
    pub fail_first: u64,
    /// Latency added to every S3 request, in milliseconds.
    pub latency_ms: u64,
}

/// Stage timing overrides, in milliseconds (profile defaults otherwise).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Timing {
    /// Time spent in each of Submitted, Validating and Scheduled.
    pub stage_ms: Option<u64>,
    /// Processing time per record while InProgress.
    pub per_record_ms: Option<f64>,
}

/// The models that offer Bedrock's Flex service tier here, as model id prefixes (AWS's list as of
/// 2025-12: gpt-oss, DeepSeek, Qwen3, Nova Pro and Premier, Nova 2 Lite, Mistral Large 3).
pub const FLEX_MODELS: &[&str] = &[
    "openai.gpt-oss-",
    "deepseek.",
    "qwen.qwen3-",
    "amazon.nova-pro-",
    "amazon.nova-premier-",
    "amazon.nova-2-lite-",
    "mistral.mistral-large-3-",
];

/// The Flex service tier.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FlexTier {
    /// The models that offer it, as ids or id prefixes (in place of [`FLEX_MODELS`]); a model's
    /// inference profile (`us.` ...) offers it when the model does.
    pub models: Option<Vec<String>>,
    /// Whether every Flex call is throttled (`ThrottlingException`) at start; `POST
    /// /_emulator/flex` with `{ "throttled": bool }` changes it while the emulator runs.
    pub throttled: bool,
}

impl FlexTier {
    /// Whether `model_id` offers the Flex tier.
    pub fn offered(&self, model_id: &str) -> bool {
        let listed = |id: &str| match &self.models {
            Some(list) => list.iter().any(|m| id.starts_with(m.as_str())),
            None => FLEX_MODELS.iter().any(|p| id.starts_with(p)),
        };
        listed(model_id) || model_id.split_once('.').is_some_and(|(_, rest)| listed(rest))
    }
}

/// The emulator's AWS Service Quotas API (ListServiceQuotas, GetServiceQuota).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceQuotasOptions {
    /// Whether both operations answer `AccessDeniedException`, as AWS does for a caller without
    /// the `servicequotas:*` permissions.
    pub denied: bool,
}

/// Everything `startEmulator()` accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EmulatorOptions {
    /// First port to use (control plane, runtime and OpenAI share it; S3 is the next one). 0: free ports.
    pub port: u16,
    /// Job timing profile.
    pub profile: Profile,
    /// Minimum records per job.
    pub min_records: MinRecords,
    /// Submitted + in-progress jobs per model before ServiceQuotaExceededException (`POST
    /// /_emulator/faults` changes it while the emulator runs).
    pub max_concurrent_jobs: u64,
    /// Control-plane throttling.
    pub throttle: Throttle,
    /// Added latency of CreateModelInvocationJob, in milliseconds.
    pub create_latency_ms: u64,
    /// Delay of the reply to a CreateModelInvocationJob that created a new job (the job exists
    /// and runs meanwhile), in milliseconds.
    pub create_reply_delay_ms: u64,
    /// Added latency of every runtime call (InvokeModel, Converse and their streaming twins), in milliseconds.
    pub runtime_latency_ms: u64,
    /// S3 faults.
    pub s3: S3Faults,
    /// Stage timing overrides.
    pub timing: Timing,
    /// AWS region the emulator claims to be.
    pub region: String,
    /// Name of the bucket created at start.
    pub bucket: String,
    /// Where S3 objects are stored; a temporary folder (removed on stop) when empty.
    pub data_dir: Option<String>,
    /// How long a `[[job:slow]]` job stays InProgress before it completes anyway, in seconds.
    pub slow_job_seconds: u64,
    /// Whether the control plane and the runtime check each request's SigV4 signature against the
    /// emulator's credentials, as AWS does (S3 always checks). Default true.
    pub verify_signatures: bool,
    /// The Flex service tier: which models offer it, and whether it is throttled.
    pub flex: FlexTier,
    /// The Service Quotas API: whether its callers are denied.
    pub service_quotas: ServiceQuotasOptions,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            port: 0,
            profile: Profile::Fast,
            min_records: MinRecords::default(),
            max_concurrent_jobs: 20,
            throttle: Throttle::default(),
            create_latency_ms: 0,
            create_reply_delay_ms: 0,
            runtime_latency_ms: 0,
            s3: S3Faults::default(),
            timing: Timing::default(),
            region: "us-east-1".to_string(),
            bucket: "bedrock-batch-emulator".to_string(),
            data_dir: None,
            slow_job_seconds: 300,
            verify_signatures: true,
            flex: FlexTier::default(),
            service_quotas: ServiceQuotasOptions::default(),
        }
    }
}

impl EmulatorOptions {
    /// How long each waiting stage lasts for the `index`-th stage of a job (deterministic per job).
    pub(crate) fn stage_duration(&self, salt: u64) -> Duration {
        if let Some(ms) = self.timing.stage_ms {
            return Duration::from_millis(ms);
        }
        match self.profile {
            Profile::Fast => Duration::from_millis(5),
            // 1–3 s, varying by job and stage.
            Profile::Realistic => Duration::from_millis(1000 + salt % 2000),
        }
    }

    /// Processing time of one record while InProgress.
    pub(crate) fn per_record(&self) -> Duration {
        let ms = self.timing.per_record_ms.unwrap_or(match self.profile {
            Profile::Fast => 0.0,
            Profile::Realistic => 16.0,
        });
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}
