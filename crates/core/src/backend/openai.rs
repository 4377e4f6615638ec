//! The OpenAI-compatible back-end: a Bedrock Claude body goes out as an OpenAI
//! `chat/completions` request over HTTP (reqwest) and comes back as a Bedrock Claude response
//! body (see [`crate::convert`]). LiteLLM-style model strings (`hosted_vllm/Qwen/Qwen3-32B`)
//! choose the provider's base URL and API-key variable; `anthropic/` speaks Anthropic's own
//! Messages API, where the Claude body goes nearly as is.
//!
//! A Converse request goes out the same way (Converse → OpenAI chat completions, or → a Claude
//! body for `anthropic/`) and its answer comes back as a Converse response. The streaming
//! commands ask the server to stream (`stream: true`, with usage) and convert its chunks as they
//! come (see `sse`); on `anthropic/` they are answered whole and replayed as stream events.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use super::sse::{self, Converter};
use super::DirectBackend;
use crate::convert::{
    claude_to_converse, claude_to_openai, converse_to_claude, converse_to_openai, openai_to_claude, openai_to_converse,
    ConvertError, OpenAiClaudeStream, OpenAiConverseStream, OpenAiTarget,
};
use crate::error::{EngineError, ErrorName};
use crate::request::{Operation, Request};
use crate::settle::{EventStream, Success};

/// Event arrays waiting for the caller, per stream, before the reader waits.
const STREAM_BUFFER: usize = 16;

/// Retries of a throttled (429) call before its caller gets the ThrottlingException.
const THROTTLE_RETRIES: u32 = 3;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One provider of LiteLLM-style model strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    /// The prefix, without the slash.
    pub prefix: &'static str,
    /// Default base URL (`None`: the user must give one).
    pub base: Option<&'static str>,
    /// Environment variables holding its API key, in order.
    pub key_env: &'static [&'static str],
    /// Whether it accepts `top_k`.
    pub top_k: bool,
    /// Whether it accepts `file` content parts.
    pub file_parts: bool,
}

/// The providers a model string's prefix can name.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        prefix: "openai",
        base: Some("https://api.openai.com/v1"),
        key_env: &["OPENAI_API_KEY"],
        top_k: false,
        file_parts: true,
    },
    Provider { prefix: "hosted_vllm", base: None, key_env: &["HOSTED_VLLM_API_KEY"], top_k: true, file_parts: false },
    Provider {
        prefix: "ollama",
        base: Some("http://localhost:11434/v1"),
        key_env: &["OLLAMA_API_KEY"],
        top_k: true,
        file_parts: false,
    },
    Provider {
        prefix: "groq",
        base: Some("https://api.groq.com/openai/v1"),
        key_env: &["GROQ_API_KEY"],
        top_k: false,
        file_parts: false,
    },
    Provider {
        prefix: "together_ai",
        base: Some("https://api.together.xyz/v1"),
        key_env: &["TOGETHERAI_API_KEY", "TOGETHER_API_KEY"],
        top_k: true,
        file_parts: false,
    },
    Provider {
        prefix: "deepseek",
        base: Some("https://api.deepseek.com/v1"),
        key_env: &["DEEPSEEK_API_KEY"],
        top_k: false,
        file_parts: false,
    },
    Provider {
        prefix: "mistral",
        base: Some("https://api.mistral.ai/v1"),
        key_env: &["MISTRAL_API_KEY"],
        top_k: false,
        file_parts: false,
    },
    Provider {
        prefix: "openrouter",
        base: Some("https://openrouter.ai/api/v1"),
        key_env: &["OPENROUTER_API_KEY"],
        top_k: true,
        file_parts: false,
    },
    Provider {
        prefix: "anthropic",
        base: Some("https://api.anthropic.com/v1"),
        key_env: &["ANTHROPIC_API_KEY"],
        top_k: true,
        file_parts: true,
    },
];

/// Where a model string leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An OpenAI-compatible (or Anthropic) HTTP API.
    Http {
        /// The provider its prefix names.
        provider: Provider,
        /// The model name, without the prefix.
        model: String,
    },
    /// `bedrock/<modelId>`: plain on-demand InvokeModel (direct mode).
    Bedrock {
        /// The Bedrock model id after `bedrock/`.
        model_id: String,
    },
}

/// Resolves a LiteLLM-style model string. No prefix means OpenAI, as LiteLLM has it.
pub fn route(model: &str) -> Route {
    if let Some(id) = model.strip_prefix("bedrock/") {
        return Route::Bedrock { model_id: id.to_string() };
    }
    for p in PROVIDERS {
        if let Some(rest) = model.strip_prefix(p.prefix).and_then(|r| r.strip_prefix('/')) {
            return Route::Http { provider: *p, model: rest.to_string() };
        }
    }
    Route::Http { provider: PROVIDERS[0], model: model.to_string() }
}

/// Settings of OpenAI-compatible mode.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// LiteLLM-style model string.
    pub model: String,
    /// Base URL override (required for `hosted_vllm/`).
    pub api_base: Option<String>,
    /// API key override (else the provider's environment variable).
    pub api_key: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
}

/// The back-end.
#[derive(Debug, Clone)]
pub struct OpenAiBackend {
    http: reqwest::Client,
    provider: Provider,
    model: String,
    base: String,
    key: Option<String>,
}

impl OpenAiBackend {
    /// Builds the back-end; fails when the model string needs an api base and none is given.
    pub fn new(s: &OpenAiSettings) -> Result<OpenAiBackend, EngineError> {
        let (provider, model) = match route(&s.model) {
            Route::Http { provider, model } => (provider, model),
            Route::Bedrock { .. } => {
                return Err(EngineError::validation(
                    "bedrock/ models run in direct mode, not through the OpenAI back-end",
                ))
            }
        };
        let base = match (&s.api_base, provider.base) {
            (Some(b), _) => b.trim_end_matches('/').to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => {
                return Err(EngineError::validation(format!(
                    "openai.apiBase is required for {}/ models (the server's base URL, e.g. http://127.0.0.1:8000/v1)",
                    provider.prefix
                )))
            }
        };
        let key = s
            .api_key
            .clone()
            .or_else(|| provider.key_env.iter().find_map(|v| std::env::var(v).ok()).filter(|k| !k.is_empty()));
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .build()
            .map_err(|e| EngineError::validation(format!("cannot build the HTTP client: {e}")))?;
        Ok(OpenAiBackend { http, provider, model, base, key })
    }

    fn target(&self) -> OpenAiTarget {
        OpenAiTarget {
            model: self.model.clone(),
            supports_top_k: self.provider.top_k,
            supports_file_parts: self.provider.file_parts,
            anthropic: self.provider.prefix == "anthropic",
        }
    }

    /// The request body and URL for a Claude body.
    fn outgoing(&self, body: &Value) -> Result<(String, Value), EngineError> {
        if self.provider.prefix == "anthropic" {
            let Some(obj) = body.as_object() else {
                return Err(EngineError::validation("the body must be a JSON object"));
            };
            if !obj.contains_key("messages") {
                return Err(EngineError::validation("anthropic/ models take a Claude Messages body (with `messages`)"));
            }
            let mut out = serde_json::Map::new();
            out.insert("model".into(), Value::String(self.model.clone()));
            for (k, v) in obj {
                if k != "anthropic_version" {
                    out.insert(k.clone(), v.clone());
                }
            }
            return Ok((format!("{}/messages", self.base), Value::Object(out)));
        }
        let converted = claude_to_openai(body, &self.target())?;
        Ok((format!("{}/chat/completions", self.base), converted))
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Value, EngineError> {
        let resp = self.send(url, body).await?;
        let text =
            resp.bytes().await.map_err(|e| EngineError::new(ErrorName::ServiceUnavailableException, e.to_string()))?;
        serde_json::from_slice(&text).map_err(|e| {
            EngineError::new(ErrorName::ModelErrorException, format!("the server's answer is not JSON: {e}"))
                .with_status(424)
        })
    }

    /// Sends a request until it is not throttled any more; a successful response is returned
    /// unread (a stream is read as it comes).
    async fn send(&self, url: &str, body: &Value) -> Result<reqwest::Response, EngineError> {
        let mut tries = 0;
        loop {
            let mut req = self.http.post(url).json(body);
            if let Some(k) = &self.key {
                req = if self.provider.prefix == "anthropic" {
                    req.header("x-api-key", k).header("anthropic-version", "2023-06-01")
                } else {
                    req.bearer_auth(k)
                };
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Err(EngineError::new(
                        ErrorName::ModelTimeoutException,
                        format!("the model did not answer in time: {e}"),
                    )
                    .with_status(408))
                }
                Err(e) => {
                    return Err(EngineError::new(
                        ErrorName::ServiceUnavailableException,
                        format!("the request to {} failed: {e}", self.base),
                    )
                    .with_status(503))
                }
            };
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(resp);
            }
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            let text = resp
                .bytes()
                .await
                .map_err(|e| EngineError::new(ErrorName::ServiceUnavailableException, e.to_string()))?;
            if status == 429 && tries < THROTTLE_RETRIES {
                tries += 1;
                let wait = retry_after
                    .map(Duration::from_secs_f64)
                    .unwrap_or_else(|| crate::backoff::backoff(tries, Duration::from_secs(10)));
                tokio::time::sleep(wait.min(MAX_RETRY_AFTER)).await;
                continue;
            }
            return Err(http_error(status, &text));
        }
    }
}

/// An Anthropic Messages response with its keys in the order Bedrock returns them.
fn in_bedrock_order(answer: Value) -> Value {
    const ORDER: [&str; 8] = ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"];
    let Value::Object(mut obj) = answer else { return answer };
    let mut out = serde_json::Map::new();
    for k in ORDER {
        if let Some(v) = obj.shift_remove(k) {
            out.insert(k.to_string(), v);
        }
    }
    out.extend(obj);
    Value::Object(out)
}

/// Maps an HTTP failure to the AWS exception name users of InvokeModel expect.
pub fn http_error(status: u16, body: &[u8]) -> EngineError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect());
    let name = match status {
        401 | 403 => ErrorName::AccessDeniedException,
        s => ErrorName::from_status(s),
    };
    EngineError::new(name, format!("HTTP {status}: {message}")).with_status(status)
}

impl OpenAiBackend {
    fn anthropic(&self) -> bool {
        self.provider.prefix == "anthropic"
    }

    /// InvokeModel: a Claude body in, a Claude response out.
    async fn invoke_model(&self, body: &Value) -> Result<Value, EngineError> {
        let (url, out) = self.outgoing(body)?;
        let answer = self.post(&url, &out).await?;
        if self.anthropic() {
            Ok(in_bedrock_order(answer))
        } else {
            openai_to_claude(&answer).map_err(unreadable)
        }
    }

    /// Converse: a Converse request in, a Converse response out.
    async fn converse(&self, model_id: &str, request: &Value) -> Result<Value, EngineError> {
        let started = Instant::now();
        if self.anthropic() {
            let claude = self.invoke_model(&converse_to_claude(request, model_id)?).await?;
            return claude_to_converse(&claude, request, started.elapsed().as_millis() as u64).map_err(unreadable);
        }
        let answer = self
            .post(&format!("{}/chat/completions", self.base), &converse_to_openai(request, &self.target())?)
            .await?;
        openai_to_converse(&answer, request, started.elapsed().as_millis() as u64).map_err(unreadable)
    }

    /// A streaming call: the server's stream, converted as it comes; a server that answers
    /// whole instead (plain JSON) has its answer replayed as the stream's events.
    async fn stream(
        &self,
        r: &Request,
        request: &Value,
        mut out: Value,
        converter: Converter,
    ) -> Result<Success, EngineError> {
        let started = Instant::now();
        if let Some(o) = out.as_object_mut() {
            o.insert("stream".into(), Value::Bool(true));
            o.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
        }
        let resp = self.send(&format!("{}/chat/completions", self.base), &out).await?;
        let streams = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if !streams {
            let text = resp
                .bytes()
                .await
                .map_err(|e| EngineError::new(ErrorName::ServiceUnavailableException, e.to_string()))?;
            let answer: Value = serde_json::from_slice(&text).map_err(|e| {
                EngineError::new(ErrorName::ModelErrorException, format!("the server's answer is not JSON: {e}"))
                    .with_status(424)
            })?;
            let whole = match converter {
                Converter::Converse(_) => openai_to_converse(&answer, request, started.elapsed().as_millis() as u64),
                Converter::Claude(_) => openai_to_claude(&answer),
            }
            .map_err(unreadable)?;
            let events = crate::stream_events::events_of(
                r.operation,
                "claude",
                &serde_json::to_vec(&whole).unwrap_or_default().into(),
            )?;
            return Ok(Success { body: events, content_type: "application/json".into(), ..Default::default() });
        }
        let (tx, stream) = EventStream::channel(STREAM_BUFFER);
        tokio::spawn(sse::read(resp, converter, started, tx));
        Ok(Success {
            body: bytes::Bytes::from_static(b"[]"),
            content_type: "application/json".into(),
            stream: Some(stream),
            ..Default::default()
        })
    }
}

/// A server answer the converters cannot read.
fn unreadable(e: ConvertError) -> EngineError {
    EngineError::new(
        ErrorName::ModelErrorException,
        format!("the server's answer could not be converted: {}", e.message),
    )
    .with_status(424)
}

fn whole(body: &Value) -> Result<Success, EngineError> {
    Ok(Success {
        body: serde_json::to_vec(body).map_err(|e| EngineError::validation(e.to_string()))?.into(),
        content_type: "application/json".into(),
        request_id: body.get("id").and_then(Value::as_str).map(str::to_string),
        ..Default::default()
    })
}

#[async_trait]
impl DirectBackend for OpenAiBackend {
    async fn invoke(&self, r: &Request) -> Result<Success, EngineError> {
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|e| EngineError::validation(format!("the body is not JSON: {e}")))?;
        match (r.operation, self.anthropic()) {
            (Operation::InvokeModel, _) => whole(&self.invoke_model(&body).await?),
            (Operation::Converse, _) => whole(&self.converse(&r.model_id, &body).await?),
            // Anthropic's own stream is not read here: its answer comes whole, replayed as events.
            (Operation::ConverseStream, true) => {
                let answer = self.converse(&r.model_id, &body).await?;
                let events =
                    crate::stream_events::events_of(Operation::ConverseStream, &r.model_id, &whole(&answer)?.body)?;
                Ok(Success { body: events, content_type: "application/json".into(), ..Default::default() })
            }
            (Operation::InvokeModelWithResponseStream, true) => {
                let answer = whole(&self.invoke_model(&body).await?)?;
                let events =
                    crate::stream_events::events_of(Operation::InvokeModelWithResponseStream, "claude", &answer.body)?;
                Ok(Success { body: events, ..answer })
            }
            (Operation::ConverseStream, false) => {
                self.stream(
                    r,
                    &body,
                    converse_to_openai(&body, &self.target())?,
                    Converter::Converse(OpenAiConverseStream::new()),
                )
                .await
            }
            (Operation::InvokeModelWithResponseStream, false) => {
                self.stream(
                    r,
                    &body,
                    claude_to_openai(&body, &self.target())?,
                    Converter::Claude(OpenAiClaudeStream::new()),
                )
                .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_strings_choose_providers_as_litellm_does() {
        assert_eq!(
            route("bedrock/anthropic.claude-3-haiku-20240307-v1:0"),
            Route::Bedrock { model_id: "anthropic.claude-3-haiku-20240307-v1:0".into() }
        );
        match route("hosted_vllm/Qwen/Qwen3-32B") {
            Route::Http { provider, model } => {
                assert_eq!(provider.prefix, "hosted_vllm");
                assert_eq!(model, "Qwen/Qwen3-32B");
            }
            other => panic!("{other:?}"),
        }
        match route("gpt-4o") {
            Route::Http { provider, model } => {
                assert_eq!(provider.prefix, "openai");
                assert_eq!(model, "gpt-4o");
            }
            other => panic!("{other:?}"),
        }
        let e = OpenAiBackend::new(&OpenAiSettings {
            model: "hosted_vllm/x".into(),
            api_base: None,
            api_key: None,
            timeout: Duration::from_secs(1),
        })
        .unwrap_err();
        assert!(e.message.contains("apiBase"));
    }

    #[test]
    fn http_failures_map_to_aws_names() {
        for (status, name) in [
            (400, "ValidationException"),
            (401, "AccessDeniedException"),
            (403, "AccessDeniedException"),
            (404, "ResourceNotFoundException"),
            (408, "ModelTimeoutException"),
            (429, "ThrottlingException"),
            (500, "InternalServerException"),
            (503, "ServiceUnavailableException"),
        ] {
            let e = http_error(status, br#"{"error":{"message":"nope","type":"x"}}"#);
            assert_eq!(e.name.as_str(), name);
            assert!(e.message.contains("nope"));
            assert_eq!(e.http_status, Some(status));
        }
    }
}
