//! One InvokeModel request, validated before it is queued.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use regex::Regex;

use crate::error::EngineError;

/// Bytes a JSONL line adds around a body (`{"recordId":"...","modelInput":` ... `}` and newline).
pub const LINE_OVERHEAD: usize = 48;

/// Largest InvokeModel body (the runtime service model's limit).
pub const MAX_BODY_BYTES: usize = 25_000_000;

/// `InvokeModelIdentifier` of the Bedrock runtime's service model (2023-09-30): what InvokeModel
/// accepts as `modelId`. AWS matches the whole value.
const INVOKE_MODEL_ID: &str = r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}/[a-z0-9]{12})|(:foundation-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63}))|([0-9]{12}:imported-model/[a-z0-9]{12})|([0-9]{12}:provisioned-model/[a-z0-9]{12})|([0-9]{12}:custom-model-deployment/[a-z0-9]{12})|([0-9]{12}:(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+)))|([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63}))|(([0-9a-zA-Z][_-]?)+)|([a-zA-Z0-9-:.]+)$|(^(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:prompt/[0-9a-zA-Z]{10}(?::[0-9]{1,5})?))$|(^arn:aws:sagemaker:[a-z0-9-]+:[0-9]{12}:endpoint/[a-zA-Z0-9-]+$)|(^arn:aws(-[^:]+)?:bedrock:([0-9a-z-]{1,20}):([0-9]{12}):(default-)?prompt-router/[a-zA-Z0-9-:.]+$)";

/// `ModelId` of CreateModelInvocationJob in the Bedrock control plane's service model
/// (2023-04-20): the models a batch job can name.
const BATCH_MODEL_ID: &str = r"(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-:]{1,63}/[a-z0-9]{12}$)|(:foundation-model/([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)$)|([0-9]{12}:(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+$)))|([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)";

fn whole(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).expect("the service model's pattern compiles")
}

static INVOKE_MODEL_RE: LazyLock<Regex> = LazyLock::new(|| whole(INVOKE_MODEL_ID));
static BATCH_MODEL_RE: LazyLock<Regex> = LazyLock::new(|| whole(BATCH_MODEL_ID));

/// Checks a model id as InvokeModel does; the error is AWS's.
pub fn check_model_id(model_id: &str) -> Result<(), EngineError> {
    let n = model_id.chars().count();
    if n == 0 || n > 2048 {
        return Err(EngineError::validation(
            "1 validation error detected: Value at 'modelId' failed to satisfy constraint: Member must have length between 1 and 2048",
        ));
    }
    if !INVOKE_MODEL_RE.is_match(model_id) {
        return Err(EngineError::validation(format!(
            "1 validation error detected: Value '{model_id}' at 'modelId' failed to satisfy constraint: Member must satisfy regular expression pattern: {INVOKE_MODEL_ID}"
        )));
    }
    Ok(())
}

/// Whether a batch job can name this model (others go on-demand: prompt ARNs, SageMaker
/// endpoints, imported and provisioned models).
pub fn batchable_model(model_id: &str) -> bool {
    BATCH_MODEL_RE.is_match(model_id)
}

/// What a request asks of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Operation {
    /// `InvokeModel`: the body is the model's native request.
    #[default]
    InvokeModel,
    /// `InvokeModelWithResponseStream`: as InvokeModel, answered as a stream of chunks.
    InvokeModelWithResponseStream,
    /// `Converse`: the body is a Converse request (as on the wire, without `modelId`).
    Converse,
    /// `ConverseStream`: as Converse, answered as a stream of events.
    ConverseStream,
}

impl Operation {
    /// The operation as AWS names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::InvokeModel => "InvokeModel",
            Operation::InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
        }
    }

    /// Reads an operation name.
    pub fn parse(s: &str) -> Option<Operation> {
        Some(match s {
            "InvokeModel" => Operation::InvokeModel,
            "InvokeModelWithResponseStream" => Operation::InvokeModelWithResponseStream,
            "Converse" => Operation::Converse,
            "ConverseStream" => Operation::ConverseStream,
            _ => return None,
        })
    }

    /// The kind of batch record that carries it.
    pub fn invocation_type(self) -> InvocationType {
        match self {
            Operation::InvokeModel | Operation::InvokeModelWithResponseStream => InvocationType::InvokeModel,
            Operation::Converse | Operation::ConverseStream => InvocationType::Converse,
        }
    }

    /// Whether its caller reads the answer as a stream.
    pub fn streams(self) -> bool {
        matches!(self, Operation::InvokeModelWithResponseStream | Operation::ConverseStream)
    }
}

/// A batch job's `modelInvocationType`: what its records' `modelInput` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InvocationType {
    /// The model's native InvokeModel body (the default).
    #[default]
    InvokeModel,
    /// A Converse request body.
    Converse,
}

impl InvocationType {
    /// As the job's `modelInvocationType` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationType::InvokeModel => "InvokeModel",
            InvocationType::Converse => "Converse",
        }
    }

    /// Reads it back (unknown values are InvokeModel, the API's default).
    pub fn parse(s: &str) -> InvocationType {
        if s == "Converse" {
            InvocationType::Converse
        } else {
            InvocationType::InvokeModel
        }
    }
}

/// The InvokeModel options other than model and body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvokeOptions {
    /// Request content type; `None` means `application/json`.
    pub content_type: Option<String>,
    /// Response content type.
    pub accept: Option<String>,
    /// `ENABLED`, `DISABLED` or `ENABLED_FULL`.
    pub trace: Option<String>,
    /// Guardrail id or ARN.
    pub guardrail_identifier: Option<String>,
    /// Guardrail version.
    pub guardrail_version: Option<String>,
    /// On-demand latency tier (ignored in batch).
    pub performance_config_latency: Option<String>,
    /// On-demand service tier (ignored in batch).
    pub service_tier: Option<String>,
    /// Invocation-log metadata.
    pub request_metadata: Option<String>,
}

impl InvokeOptions {
    /// Whether batch inference cannot honour these options, so the request must go on-demand.
    pub fn needs_on_demand(&self) -> bool {
        self.guardrail_identifier.is_some() || matches!(self.trace.as_deref(), Some("ENABLED" | "ENABLED_FULL"))
    }

    /// Checks the content type (InvokeModel takes JSON only).
    pub fn check(&self) -> Result<(), EngineError> {
        if let Some(ct) = &self.content_type {
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !mime.eq_ignore_ascii_case("application/json") {
                return Err(EngineError::validation(format!("contentType must be application/json, got {ct:?}")));
            }
        }
        Ok(())
    }
}

static NO_OPTIONS: InvokeOptions = InvokeOptions {
    content_type: None,
    accept: None,
    trace: None,
    guardrail_identifier: None,
    guardrail_version: None,
    performance_config_latency: None,
    service_tier: None,
    request_metadata: None,
};

/// Checks that a body is one JSON object within the size limit; returns it as one line of JSON
/// (bodies spread over several lines are compacted: JSONL needs one line, and key order stays).
pub fn check_body(body: Bytes) -> Result<Bytes, EngineError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(EngineError::validation(format!(
            "The request body is {} bytes, more than the limit of {MAX_BODY_BYTES} bytes.",
            body.len()
        )));
    }
    let raw: &serde_json::value::RawValue = serde_json::from_slice(&body)
        .map_err(|e| EngineError::validation(format!("Malformed input request: the body is not valid JSON ({e}).")))?;
    if !raw.get().starts_with('{') {
        return Err(EngineError::validation("Malformed input request: the body must be a JSON object."));
    }
    if raw.get().len() == body.len() && memchr::memchr2(b'\n', b'\r', &body).is_none() {
        return Ok(body);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| EngineError::validation(e.to_string()))?;
    Ok(Bytes::from(serde_json::to_vec(&v).map_err(|e| EngineError::validation(e.to_string()))?))
}

/// A validated request. Kept small: a million of them may wait in memory.
#[derive(Debug, Clone)]
pub struct Request {
    /// What it asks of the runtime.
    pub operation: Operation,
    /// Model id, inference profile or ARN (shared between the requests of one model).
    pub model_id: Arc<str>,
    /// The body as one line of compact JSON text (a JSON object).
    pub body: Bytes,
    /// Options, when any is set.
    pub options: Option<Box<InvokeOptions>>,
}

impl Request {
    /// Validates a request: model id, content type, and a body that is one JSON object within the
    /// size limit.
    pub fn new(model_id: &str, body: impl Into<Bytes>, options: InvokeOptions) -> Result<Request, EngineError> {
        check_model_id(model_id)?;
        Request::checked(Arc::from(model_id), body.into(), options)
    }

    /// [`Request::new`] for a model id already checked.
    pub fn checked(model_id: Arc<str>, body: Bytes, options: InvokeOptions) -> Result<Request, EngineError> {
        options.check()?;
        let body = check_body(body)?;
        let options = (options != InvokeOptions::default()).then(|| Box::new(options));
        Ok(Request { operation: Operation::InvokeModel, model_id, body, options })
    }

    /// The options (defaults when none were set).
    pub fn options(&self) -> &InvokeOptions {
        self.options.as_deref().unwrap_or(&NO_OPTIONS)
    }

    /// Bytes this request adds to a JSONL input file.
    pub fn line_bytes(&self) -> usize {
        self.body.len() + LINE_OVERHEAD
    }
}

/// A request as a caller hands it over, not yet checked: the engine validates it and settles it
/// by `id` (a bad one alone is rejected).
#[derive(Debug, Clone)]
pub struct Submission {
    /// The caller's id for it (unique among the engine's pending requests).
    pub id: u64,
    /// What it asks of the runtime.
    pub operation: Operation,
    /// The model (one allocation can serve many submissions).
    pub model_id: Arc<str>,
    /// The body bytes.
    pub body: Bytes,
    /// InvokeModel options, when any is set.
    pub options: Option<Box<InvokeOptions>>,
    /// The caller's idempotency key (with a store).
    pub key: Option<String>,
    /// The caller's deadline, in milliseconds since the Unix epoch (batch mode sends the request
    /// on-demand when its answer has not come `batch.fallbackMargin` before it).
    pub deadline_ms: Option<u64>,
    /// A problem found while the request was converted (its options as JSON did not read): the
    /// engine rejects it with this error, alone.
    pub rejected: Option<Box<EngineError>>,
}

impl Submission {
    /// A request with its id, model and body.
    pub fn new(id: u64, model_id: Arc<str>, body: Bytes) -> Submission {
        Submission {
            id,
            operation: Operation::InvokeModel,
            model_id,
            body,
            options: None,
            key: None,
            deadline_ms: None,
            rejected: None,
        }
    }
}

/// Reads a request's InvokeModel options (and idempotency key) from JSON, as the JS layer passes
/// them: every member a string; an error names the member.
pub fn options_from_json(v: &serde_json::Value) -> Result<(InvokeOptions, Option<String>), EngineError> {
    let get = |k: &str| -> Result<Option<String>, EngineError> {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(EngineError::validation(format!("{k} must be a string, got {other}"))),
        }
    };
    let options = InvokeOptions {
        content_type: get("contentType")?,
        accept: get("accept")?,
        trace: get("trace")?,
        guardrail_identifier: get("guardrailIdentifier")?,
        guardrail_version: get("guardrailVersion")?,
        performance_config_latency: get("performanceConfigLatency")?,
        service_tier: get("serviceTier")?,
        request_metadata: get("requestMetadata")?,
    };
    Ok((options, get("idempotencyKey")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_and_content_types_are_validation_errors() {
        let o = InvokeOptions::default();
        assert!(Request::new("m", b"not json".to_vec(), o.clone()).is_err());
        assert!(Request::new("m", b"[1,2]".to_vec(), o.clone()).is_err());
        assert!(Request::new("", b"{}".to_vec(), o.clone()).is_err());
        let text = InvokeOptions { content_type: Some("text/plain".into()), ..Default::default() };
        let e = Request::new("m", b"{}".to_vec(), text).unwrap_err();
        assert_eq!(e.name.as_str(), "ValidationException");
        let json = InvokeOptions { content_type: Some("application/json; charset=utf-8".into()), ..Default::default() };
        assert!(Request::new("m", b"{}".to_vec(), json).is_ok());
    }

    #[test]
    fn multi_line_bodies_become_one_line_with_their_key_order() {
        let r = Request::new("m", b"{\n  \"b\": 1,\n  \"a\": [1, 2]\n}\n".to_vec(), InvokeOptions::default()).unwrap();
        assert_eq!(&*r.body, br#"{"b":1,"a":[1,2]}"#);
        let r = Request::new("m", br#"{"x":1}"#.to_vec(), InvokeOptions::default()).unwrap();
        assert_eq!(&*r.body, br#"{"x":1}"#);
    }

    #[test]
    fn guardrails_and_trace_need_on_demand() {
        assert!(InvokeOptions { trace: Some("ENABLED".into()), ..Default::default() }.needs_on_demand());
        assert!(!InvokeOptions { trace: Some("DISABLED".into()), ..Default::default() }.needs_on_demand());
        assert!(InvokeOptions { guardrail_identifier: Some("g".into()), ..Default::default() }.needs_on_demand());
    }

    #[test]
    fn model_ids_follow_the_service_models_patterns() {
        for ok in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234",
            "m",
        ] {
            assert!(check_model_id(ok).is_ok(), "{ok}");
        }
        for bad in ["model with spaces", "../etc/passwd", "anthropic.claude/../x", ""] {
            let e = check_model_id(bad).unwrap_err();
            assert!(e.message.contains("'modelId'"), "{bad}: {}", e.message);
        }
        assert!(batchable_model("anthropic.claude-3-haiku-20240307-v1:0"));
        assert!(batchable_model("us.anthropic.claude-3-7-sonnet-20250219-v1:0"));
        assert!(
            !batchable_model("arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT1234"),
            "a prompt ARN runs on-demand only"
        );
    }
}
