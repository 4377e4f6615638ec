//! An OpenAI-compatible endpoint: `POST /v1/chat/completions` and `GET /v1/models`.

use serde_json::{json, Value};

use crate::faults::Markers;
use crate::http::Resp;
use crate::ids::sha256_hex;
use crate::responders::{generate, Generated, Stop};
use crate::state::Ctx;

/// Model ids listed by `GET /v1/models`.
const MODELS: [&str; 3] = ["emulator-chat", "gpt-4o-mini", "Qwen/Qwen3-32B"];

/// An OpenAI error response.
pub fn error(status: u16, message: &str) -> Resp {
    let (ty, code) = match status {
        400 => ("invalid_request_error", Value::Null),
        401 => ("authentication_error", json!("invalid_api_key")),
        403 => ("permission_error", Value::Null),
        404 => ("not_found_error", json!("model_not_found")),
        408 => ("timeout_error", Value::Null),
        429 => ("rate_limit_error", json!("rate_limit_exceeded")),
        _ => ("server_error", Value::Null),
    };
    crate::http::json(status, &json!({ "error": { "message": message, "type": ty, "param": null, "code": code } }))
}

/// GET /v1/models
pub fn models() -> Resp {
    let data: Vec<Value> =
        MODELS.iter().map(|m| json!({ "id": m, "object": "model", "created": 1_700_000_000, "owned_by": "bedrock-batch-emulator" })).collect();
    crate::http::json(200, &json!({ "object": "list", "data": data }))
}

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// POST /v1/chat/completions
pub fn chat(ctx: &Ctx, body: &[u8]) -> Resp {
    let markers = Markers::scan(body);
    if let Some(code) = markers.error {
        return error(code, crate::faults::modelled_error(crate::model::BEDROCK_RUNTIME.operation("InvokeModel"), code).2);
    }
    if let Some(ms) = markers.retry_after_ms {
        if ctx.first_sight(&sha256_hex(&[body])) {
            let mut resp = error(429, "Rate limit reached; retry after the time in Retry-After.");
            resp.headers_mut().insert("retry-after", (ms as f64 / 1000.0).to_string().parse().expect("a number is a header value"));
            return resp;
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(400, "We could not parse the JSON body of your request.");
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return error(400, "'messages' is a required property");
    };
    let model = req.get("model").and_then(Value::as_str).unwrap_or("emulator-chat").to_string();
    let last = messages.last();
    let user = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")).map(|m| text_of(m.get("content"))).unwrap_or_default();
    let stops: Vec<String> = match req.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        _ => vec![],
    };
    let max = req.get("max_completion_tokens").or_else(|| req.get("max_tokens")).and_then(Value::as_u64);
    let Generated { text, tokens: mut completion, stop } = generate(&user, max, &stops);
    // vLLM reports the matched stop string in the choice's `stop_reason`.
    let (mut finish, matched_stop) = match stop {
        Stop::MaxTokens => ("length", Value::Null),
        Stop::Sequence(s) => ("stop", json!(s)),
        Stop::End => ("stop", Value::Null),
    };
    let hash = sha256_hex(&[body]);
    let mut message = serde_json::Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), json!(text));
    let answered_tool = last.and_then(|m| m.get("role")).and_then(Value::as_str) == Some("tool");
    if let Some(call) = tool_call(&req, &user, &hash).filter(|_| !answered_tool) {
        message.insert("tool_calls".into(), json!([call]));
        finish = "tool_calls";
        completion += 10;
    }
    let prompt = (body.len() as u64).div_ceil(4).max(1);
    crate::http::json(
        200,
        &json!({
            "id": format!("chatcmpl-{}", &hash[..24]),
            "object": "chat.completion",
            "created": time::OffsetDateTime::now_utc().unix_timestamp(),
            "model": model,
            "choices": [ { "index": 0, "message": message, "logprobs": null, "finish_reason": finish, "stop_reason": matched_stop } ],
            "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion },
        }),
    )
}

fn tool_call(req: &Value, user: &str, hash: &str) -> Option<Value> {
    let tools = req.get("tools")?.as_array()?;
    let choice = req.get("tool_choice");
    if tools.is_empty() || choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let named = choice.and_then(|c| c.pointer("/function/name")).and_then(Value::as_str);
    let tool = match named {
        Some(n) => tools.iter().find(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(n))?,
        None => tools.first()?,
    };
    let name = tool.pointer("/function/name")?.as_str()?;
    let args = crate::tools::input_for_schema(tool.pointer("/function/parameters"), user);
    Some(json!({ "id": format!("call_{}", &hash[24..48]), "type": "function", "function": { "name": name, "arguments": args.to_string() } }))
}
