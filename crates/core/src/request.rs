//! One InvokeModel request, validated when it is queued.

use std::sync::Arc;

use crate::error::EngineError;

/// Bytes a JSONL line adds around a body (`{"recordId":"...","modelInput":` ... `}` and newline).
pub const LINE_OVERHEAD: usize = 48;

/// Largest InvokeModel body (the runtime service model's limit).
pub const MAX_BODY_BYTES: usize = 25_000_000;

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
}

/// A validated request. Kept small: a million of them may wait in memory.
#[derive(Debug, Clone)]
pub struct Request {
    /// Model id, inference profile or ARN (shared between the requests of one model).
    pub model_id: Arc<str>,
    /// The body as one line of compact JSON text (a JSON object).
    pub body: Box<[u8]>,
    /// Options, when any is set.
    pub options: Option<Box<InvokeOptions>>,
}

impl Request {
    /// Validates a request: model id, content type, and a body that is one JSON object within
    /// the size limit. Bodies spread over several lines are compacted (JSONL needs one line).
    pub fn new(model_id: &str, body: Vec<u8>, options: InvokeOptions) -> Result<Request, EngineError> {
        Request::with_model(Arc::from(model_id), body, options)
    }

    /// [`Request::new`] with a shared model id.
    pub fn with_model(model_id: Arc<str>, body: Vec<u8>, options: InvokeOptions) -> Result<Request, EngineError> {
        if model_id.is_empty() || model_id.len() > 2048 {
            return Err(EngineError::validation(
                "1 validation error detected: Value at 'modelId' failed to satisfy constraint: Member must have length between 1 and 2048",
            ));
        }
        if let Some(ct) = &options.content_type {
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !mime.eq_ignore_ascii_case("application/json") {
                return Err(EngineError::validation(format!("contentType must be application/json, got {ct:?}")));
            }
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(EngineError::validation(format!("The request body is {} bytes, more than the limit of {MAX_BODY_BYTES} bytes.", body.len())));
        }
        let raw: &serde_json::value::RawValue =
            serde_json::from_slice(&body).map_err(|e| EngineError::validation(format!("Malformed input request: the body is not valid JSON ({e}).")))?;
        if !raw.get().starts_with('{') {
            return Err(EngineError::validation("Malformed input request: the body must be a JSON object."));
        }
        let body = if body.iter().any(|&b| b == b'\n' || b == b'\r') || raw.get().len() != body.len() {
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| EngineError::validation(e.to_string()))?;
            serde_json::to_vec(&v).map_err(|e| EngineError::validation(e.to_string()))?
        } else {
            body
        };
        let options = (options != InvokeOptions::default()).then(|| Box::new(options));
        Ok(Request { model_id, body: body.into_boxed_slice(), options })
    }

    /// The options (defaults when none were set).
    pub fn options(&self) -> &InvokeOptions {
        static DEFAULT: InvokeOptions = InvokeOptions {
            content_type: None,
            accept: None,
            trace: None,
            guardrail_identifier: None,
            guardrail_version: None,
            performance_config_latency: None,
            service_tier: None,
            request_metadata: None,
        };
        self.options.as_deref().unwrap_or(&DEFAULT)
    }

    /// Bytes this request adds to a JSONL input file.
    pub fn line_bytes(&self) -> usize {
        self.body.len() + LINE_OVERHEAD
    }
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
}
