//! The Bedrock runtime: `POST /model/{modelId}/invoke`, `/converse`, and their streaming twins
//! `/invoke-with-response-stream` and `/converse-stream` (AWS's event-stream framing, see
//! [`crate::eventstream`] and [`crate::streaming`]).

use serde_json::{json, Value};

use crate::faults::{modelled_error, Markers};
use crate::http::{aws_error, Body, Resp};
use crate::model::BEDROCK_RUNTIME;
use crate::request::{input, Parts};
use crate::responders::{Answer, Family, Rejection};
use crate::state::Ctx;

/// A runtime operation, by the last segment of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `InvokeModel`: `/invoke`.
    Invoke,
    /// `Converse`: `/converse`.
    Converse,
    /// `InvokeModelWithResponseStream`: `/invoke-with-response-stream`.
    InvokeStream,
    /// `ConverseStream`: `/converse-stream`.
    ConverseStream,
}

impl Op {
    /// The operation a path segment names.
    pub(crate) fn from_segment(segment: &str) -> Option<Op> {
        match segment {
            "invoke" => Some(Op::Invoke),
            "converse" => Some(Op::Converse),
            "invoke-with-response-stream" => Some(Op::InvokeStream),
            "converse-stream" => Some(Op::ConverseStream),
            _ => None,
        }
    }

    /// The path segment (what the runtime log calls the operation).
    pub(crate) fn segment(self) -> &'static str {
        match self {
            Op::Invoke => "invoke",
            Op::Converse => "converse",
            Op::InvokeStream => "invoke-with-response-stream",
            Op::ConverseStream => "converse-stream",
        }
    }

    /// The operation's name in the service model.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Invoke => "InvokeModel",
            Op::Converse => "Converse",
            Op::InvokeStream => "InvokeModelWithResponseStream",
            Op::ConverseStream => "ConverseStream",
        }
    }

    fn converse(self) -> bool {
        matches!(self, Op::Converse | Op::ConverseStream)
    }

    fn streams(self) -> bool {
        matches!(self, Op::InvokeStream | Op::ConverseStream)
    }
}

/// Headers of InvokeModel (and its streaming twin) that the log keeps, by their member names.
const LOGGED_HEADERS: [(&str, &str); 10] = [
    ("content-type", "contentType"),
    ("accept", "accept"),
    ("x-amzn-bedrock-accept", "accept"),
    ("x-amzn-bedrock-trace", "trace"),
    ("x-amzn-bedrock-guardrailidentifier", "guardrailIdentifier"),
    ("x-amzn-bedrock-guardrailversion", "guardrailVersion"),
    ("x-amzn-bedrock-performanceconfig-latency", "performanceConfigLatency"),
    ("x-amzn-bedrock-service-tier", "serviceTier"),
    ("x-amzn-bedrock-request-metadata", "requestMetadata"),
    ("x-amzn-bedrock-projectidentifier", "projectIdentifier"),
];

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A fault marker's effect on a streaming call: the HTTP error every marker gives on the
/// non-streaming twin, except `[[error:424]]` (the model failed while it streamed), which starts
/// the stream and ends it with `modelStreamErrorException`; `[[stream-error:NNN]]` always ends the
/// stream with the exception event for NNN.
fn stream_fault(markers: &Markers) -> Option<u16> {
    match markers.error {
        Some(424) => Some(424),
        Some(_) => None,
        None => markers.stream_error,
    }
}

/// Handles one runtime operation for a decoded model id.
pub(crate) fn handle(ctx: &Ctx, model_id: &str, op: Op, request: &http::request::Parts, body: &[u8]) -> Resp {
    let headers = &request.headers;
    let mut entry = serde_json::Map::new();
    entry.insert("operation".into(), json!(op.segment()));
    entry.insert("modelId".into(), json!(model_id));
    // The protocol the client spoke (`HTTP/1.1`, `HTTP/2.0`), for tests of what reached the server.
    entry.insert("httpVersion".into(), json!(format!("{:?}", request.version)));
    for (h, name) in LOGGED_HEADERS {
        if let Some(v) = header(headers, h) {
            entry.insert(name.into(), json!(v));
        }
    }
    // Converse names its tier in the body: the log keeps it as InvokeModel's header is kept.
    let tier = if op.converse() {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.pointer("/serviceTier/type").and_then(Value::as_str).map(str::to_string))
    } else {
        header(headers, "x-amzn-bedrock-service-tier").map(str::to_string)
    };
    if let (true, Some(t)) = (op.converse(), &tier) {
        entry.insert("serviceTier".into(), json!(t));
    }
    ctx.log_runtime(Value::Object(entry));

    let operation = BEDROCK_RUNTIME.operation(op.name());
    let labels = [("modelId", model_id.to_string())];
    let checked = match input(&BEDROCK_RUNTIME, op.name(), &Parts { labels: &labels, headers, query: &[], body }) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    if !op.converse() {
        if let Some(ct) = header(headers, "content-type") {
            // AWS's guide asks for application/json; the JS SDK sends application/octet-stream when
            // the caller gives no contentType.
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if mime != "application/json" && mime != "application/octet-stream" {
                return aws_error(
                    400,
                    "ValidationException",
                    &format!("The content type {ct} is not supported; use application/json."),
                );
            }
        }
        if header(headers, "x-amzn-bedrock-guardrailidentifier").is_some()
            && header(headers, "x-amzn-bedrock-guardrailversion").is_none()
        {
            return aws_error(
                400,
                "ValidationException",
                "Guardrail version is required when a guardrail identifier is given.",
            );
        }
    }
    if tier.as_deref() == Some("flex") {
        if !ctx.opts.flex.offered(model_id) {
            return aws_error(
                400,
                "ValidationException",
                &format!("The model {model_id} does not support the flex service tier."),
            );
        }
        if ctx.flex_throttled.load(std::sync::atomic::Ordering::SeqCst) {
            return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.");
        }
    }
    let markers = Markers::scan(body);
    let in_stream = if op.streams() { stream_fault(&markers) } else { None };
    if let (Some(code), None) = (markers.error, in_stream) {
        let (error, status, message) = modelled_error(operation, code);
        return aws_error(status, error, message);
    }
    if op == Op::InvokeStream && Family::of(model_id) == Family::TitanEmbed {
        // What Bedrock answers for a model that cannot stream (an embeddings model).
        return aws_error(400, "ValidationException", "The model is unsupported for streaming.");
    }
    let answered = if op.converse() {
        crate::responders::converse(model_id, body, &Value::Object(checked))
    } else {
        let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
            return aws_error(
                400,
                "ValidationException",
                "Malformed input request: the body is not valid JSON, please reformat your input and try again.",
            );
        };
        crate::responders::invoke(model_id, body, &parsed)
    };
    match answered {
        Ok(a) if op.streams() => stream(model_id, op, &a, in_stream, headers),
        Ok(a) => success(a, headers),
        Err(Rejection { status, message }) => {
            let (error, status, _) = modelled_error(operation, status);
            aws_error(status, error, &message)
        }
    }
}

fn success(a: Answer, req_headers: &http::HeaderMap) -> Resp {
    let mut resp = crate::http::json(200, &a.body);
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-amzn-bedrock-invocation-latency", a.latency_ms().to_string()),
        ("x-amzn-bedrock-input-token-count", a.input_tokens.to_string()),
        ("x-amzn-bedrock-output-token-count", a.output_tokens.to_string()),
    ] {
        h.insert(name, http::HeaderValue::from_str(&value).expect("ascii"));
    }
    echo_tiers(h, req_headers);
    resp
}

/// On-demand tiers are echoed back, as Bedrock does.
fn echo_tiers(h: &mut http::HeaderMap, req_headers: &http::HeaderMap) {
    for name in ["x-amzn-bedrock-performanceconfig-latency", "x-amzn-bedrock-service-tier"] {
        if let Some(v) = req_headers.get(name) {
            h.insert(name, v.clone());
        }
    }
}

/// A 200 event-stream response: the answer's events, or (for a fault inside the stream) the events
/// up to the first content delta and then the exception event.
fn stream(model_id: &str, op: Op, a: &Answer, fault: Option<u16>, req_headers: &http::HeaderMap) -> Resp {
    let built = if op == Op::ConverseStream {
        crate::streaming::converse(&a.body)
    } else {
        crate::streaming::invoke(model_id, a)
    };
    let mut frames: Vec<bytes::Bytes> = Vec::new();
    let shown = match fault {
        Some(_) => &built.events[..=built.first_delta.min(built.events.len().saturating_sub(1))],
        None => &built.events[..],
    };
    frames.extend(shown.iter().map(|(t, payload)| crate::eventstream::event(t, payload)));
    if let Some(code) = fault {
        let (member, payload) = crate::streaming::exception(op.name(), code);
        frames.push(crate::eventstream::exception(member, &payload));
    }
    let mut resp = http::Response::builder()
        .status(200)
        .header("content-type", crate::eventstream::CONTENT_TYPE)
        .header("x-amzn-requestid", crate::ids::request_id())
        .body(Body::stream(frames))
        .expect("valid response");
    let h = resp.headers_mut();
    if op == Op::InvokeStream {
        // The output's required `contentType` member: the type of each chunk's bytes.
        h.insert("x-amzn-bedrock-content-type", http::HeaderValue::from_static("application/json"));
        echo_tiers(h, req_headers);
    }
    resp
}
