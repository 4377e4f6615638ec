//! The Bedrock runtime: `POST /model/{modelId}/invoke` and `POST /model/{modelId}/converse`.

use serde_json::{json, Value};

use crate::faults::{modelled_error, Markers};
use crate::http::{aws_error, Resp};
use crate::model::BEDROCK_RUNTIME;
use crate::request::{input, Parts};
use crate::responders::{Answer, Rejection};
use crate::state::Ctx;

/// Headers of InvokeModel that the log keeps, by their InvokeModel member names.
const LOGGED_HEADERS: [(&str, &str); 9] = [
    ("content-type", "contentType"),
    ("accept", "accept"),
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

/// Handles one runtime operation (`invoke` or `converse`) for a decoded model id.
pub fn handle(ctx: &Ctx, model_id: &str, operation: &str, headers: &http::HeaderMap, body: &[u8]) -> Resp {
    let mut entry = serde_json::Map::new();
    entry.insert("operation".into(), json!(operation));
    entry.insert("modelId".into(), json!(model_id));
    for (h, name) in LOGGED_HEADERS {
        if let Some(v) = header(headers, h) {
            entry.insert(name.into(), json!(v));
        }
    }
    ctx.log_runtime(Value::Object(entry));

    let name = if operation == "converse" { "Converse" } else { "InvokeModel" };
    let op = BEDROCK_RUNTIME.operation(name);
    let labels = [("modelId", model_id.to_string())];
    let checked = match input(&BEDROCK_RUNTIME, name, &Parts { labels: &labels, headers, query: &[], body }) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    if operation == "invoke" {
        if let Some(ct) = header(headers, "content-type") {
            // AWS's guide asks for application/json; the JS SDK sends application/octet-stream when
            // the caller gives no contentType.
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if mime != "application/json" && mime != "application/octet-stream" {
                return aws_error(400, "ValidationException", &format!("The content type {ct} is not supported; use application/json."));
            }
        }
        if header(headers, "x-amzn-bedrock-guardrailidentifier").is_some() && header(headers, "x-amzn-bedrock-guardrailversion").is_none() {
            return aws_error(400, "ValidationException", "Guardrail version is required when a guardrail identifier is given.");
        }
    }
    if let Some(code) = Markers::scan(body).error {
        let (error, status, message) = modelled_error(op, code);
        return aws_error(status, error, message);
    }
    let answered = if operation == "converse" {
        crate::responders::converse(model_id, body, &Value::Object(checked))
    } else {
        let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
            return aws_error(400, "ValidationException", "Malformed input request: the body is not valid JSON, please reformat your input and try again.");
        };
        crate::responders::invoke(model_id, body, &parsed)
    };
    match answered {
        Ok(a) => success(a, headers),
        Err(Rejection { status, message }) => {
            let (error, status, _) = modelled_error(op, status);
            aws_error(status, error, &message)
        }
    }
}

fn success(a: Answer, req_headers: &http::HeaderMap) -> Resp {
    let mut resp = crate::http::json(200, &a.body);
    let h = resp.headers_mut();
    let latency = 100 + (a.input_tokens + a.output_tokens) % 900;
    for (name, value) in [
        ("x-amzn-bedrock-invocation-latency", latency.to_string()),
        ("x-amzn-bedrock-input-token-count", a.input_tokens.to_string()),
        ("x-amzn-bedrock-output-token-count", a.output_tokens.to_string()),
    ] {
        h.insert(name, http::HeaderValue::from_str(&value).expect("ascii"));
    }
    // On-demand tiers are echoed back, as Bedrock does.
    for name in ["x-amzn-bedrock-performanceconfig-latency", "x-amzn-bedrock-service-tier"] {
        if let Some(v) = req_headers.get(name) {
            h.insert(name, v.clone());
        }
    }
    resp
}
