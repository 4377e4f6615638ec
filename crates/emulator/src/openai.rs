//! An OpenAI-compatible endpoint: `POST /v1/chat/completions` (streamed as server-sent events with
//! `"stream": true`) and `GET /v1/models`.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::faults::Markers;
use crate::http::{Body, Resp};
use crate::ids::sha256_hex;
use crate::responders::{generate, Generated, Stop};
use crate::state::Ctx;

/// Model ids listed by `GET /v1/models`.
const MODELS: [&str; 3] = ["emulator-chat", "gpt-4o-mini", "Qwen/Qwen3-32B"];

/// An OpenAI error response.
pub(crate) fn error(status: u16, message: &str) -> Resp {
    let (ty, code) = error_type(status);
    crate::http::json(status, &json!({ "error": { "message": message, "type": ty, "param": null, "code": code } }))
}

/// The error `type` and `code` OpenAI gives with an HTTP status.
fn error_type(status: u16) -> (&'static str, Value) {
    match status {
        400 => ("invalid_request_error", Value::Null),
        401 => ("authentication_error", json!("invalid_api_key")),
        403 => ("permission_error", Value::Null),
        404 => ("not_found_error", json!("model_not_found")),
        408 => ("timeout_error", Value::Null),
        429 => ("rate_limit_error", json!("rate_limit_exceeded")),
        _ => ("server_error", Value::Null),
    }
}

/// GET /v1/models
pub(crate) fn models() -> Resp {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|m| json!({ "id": m, "object": "model", "created": 1_700_000_000, "owned_by": "bedrock-batch-emulator" }))
        .collect();
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

/// POST /v1/chat/completions: one `chat.completion`, or with `"stream": true` the same answer as
/// server-sent `chat.completion.chunk`s ([`stream`]).
pub(crate) fn chat(ctx: &Ctx, body: &[u8]) -> Resp {
    let markers = Markers::scan(body);
    if let Some(code) = markers.error {
        return error(
            code,
            crate::faults::modelled_error(crate::model::BEDROCK_RUNTIME.operation("InvokeModel"), code).2,
        );
    }
    if let Some(ms) = markers.retry_after_ms {
        if ctx.first_sight(&sha256_hex(&[body])) {
            let mut resp = error(429, "Rate limit reached; retry after the time in Retry-After.");
            resp.headers_mut()
                .insert("retry-after", (ms as f64 / 1000.0).to_string().parse().expect("a number is a header value"));
            return resp;
        }
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(400, "We could not parse the JSON body of your request.");
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return error(400, "'messages' is a required property");
    };
    let c = complete(&req, messages, body);
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        let include_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        return stream(&c, include_usage, markers.stream_error);
    }
    let mut message = serde_json::Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), json!(c.text));
    if let Some(call) = &c.tool_call {
        message.insert("tool_calls".into(), json!([call]));
    }
    crate::http::json(
        200,
        &json!({
            "id": c.id,
            "object": "chat.completion",
            "created": c.created,
            "model": c.model,
            "choices": [ { "index": 0, "message": message, "logprobs": null, "finish_reason": c.finish, "stop_reason": c.matched_stop } ],
            "usage": c.usage,
        }),
    )
}

/// The emulator's answer to a chat completion request, streamed or not.
struct Completion {
    id: String,
    created: i64,
    model: String,
    /// `message.content`.
    text: String,
    /// The one tool call, `{id, type, function: {name, arguments}}`.
    tool_call: Option<Value>,
    finish: &'static str,
    /// vLLM's `stop_reason`: the matched stop string, or null.
    matched_stop: Value,
    usage: Value,
}

fn complete(req: &Value, messages: &[Value], body: &[u8]) -> Completion {
    let model = req.get("model").and_then(Value::as_str).unwrap_or("emulator-chat").to_string();
    let last = messages.last();
    let user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| text_of(m.get("content")))
        .unwrap_or_default();
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
    let answered_tool = last.and_then(|m| m.get("role")).and_then(Value::as_str) == Some("tool");
    let tool_call = tool_call(req, &user, &hash).filter(|_| !answered_tool);
    if tool_call.is_some() {
        finish = "tool_calls";
        completion += 10;
    }
    let prompt = (prompt_bytes(req, body) as u64).div_ceil(4).max(1);
    Completion {
        id: format!("chatcmpl-{}", &hash[..24]),
        created: time::OffsetDateTime::now_utc().unix_timestamp(),
        model,
        text,
        tool_call,
        finish,
        matched_stop,
        usage: json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion }),
    }
}

/// The length of the request the prompt tokens are estimated from: the body, without `stream` and
/// `stream_options` (so that a streamed answer counts the tokens its non-streaming twin counts).
fn prompt_bytes(req: &Value, body: &[u8]) -> usize {
    match req.as_object() {
        Some(o) if o.contains_key("stream") || o.contains_key("stream_options") => {
            let rest: serde_json::Map<String, Value> = o
                .iter()
                .filter(|(k, _)| *k != "stream" && *k != "stream_options")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            serde_json::to_vec(&rest).map(|v| v.len()).unwrap_or(body.len())
        }
        _ => body.len(),
    }
}

/// Bytes of a tool call's arguments per streamed piece.
const ARGUMENT_PIECE: usize = 16;

/// A text in pieces of about `size` bytes (cut at character boundaries); joined they are the text.
fn slices(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// The answer as OpenAI streams it: `text/event-stream`, one `data: <chat.completion.chunk>` event
/// per piece, then `data: [DONE]`. The first chunk's delta is `{role: "assistant", content: ""}`;
/// then the content in pieces of a few words ([`crate::streaming::pieces`]), the tool call (its
/// first chunk with `id`, `type`, `function.name` and the start of `function.arguments`, the next
/// ones with more `arguments` only), a chunk with an empty delta and the `finish_reason` (and vLLM's
/// `stop_reason`), and with `include_usage` a chunk with `choices: []` and the `usage` (every other
/// chunk then has `usage: null`).
///
/// `fault` (`[[stream-error:NNN]]`): the stream stops after the first content (or tool call) chunk
/// with an event `{error: {message, type, param, code: NNN}}`, then `[DONE]`, as vLLM ends a stream
/// that failed.
fn stream(c: &Completion, include_usage: bool, fault: Option<u16>) -> Resp {
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut v = json!({ "id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model, "choices": choices });
        if include_usage {
            v["usage"] = usage.cloned().unwrap_or(Value::Null);
        }
        v
    };
    let delta = |d: Value| chunk(json!([{ "index": 0, "delta": d, "logprobs": null, "finish_reason": null }]), None);
    let mut deltas = vec![json!({ "role": "assistant", "content": "" })];
    deltas.extend(
        crate::streaming::pieces(&c.text).into_iter().filter(|p| !p.is_empty()).map(|p| json!({ "content": p })),
    );
    if let Some(call) = &c.tool_call {
        let arguments = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("");
        let mut parts = slices(arguments, ARGUMENT_PIECE).into_iter();
        let first = parts.next().unwrap_or("");
        deltas.push(json!({ "tool_calls": [{ "index": 0, "id": call["id"], "type": "function", "function": { "name": call["function"]["name"], "arguments": first } }] }));
        deltas.extend(parts.map(|p| json!({ "tool_calls": [{ "index": 0, "function": { "arguments": p } }] })));
    }
    let mut events: Vec<Value> = Vec::new();
    match fault {
        Some(code) => {
            events.extend(deltas.into_iter().take(2).map(delta));
            let message = crate::faults::modelled_error(crate::model::BEDROCK_RUNTIME.operation("InvokeModel"), code).2;
            events.push(
                json!({ "error": { "message": message, "type": error_type(code).0, "param": null, "code": code } }),
            );
        }
        None => {
            events.extend(deltas.into_iter().map(delta));
            events.push(chunk(json!([{ "index": 0, "delta": {}, "logprobs": null, "finish_reason": c.finish, "stop_reason": c.matched_stop }]), None));
            if include_usage {
                events.push(chunk(json!([]), Some(&c.usage)));
            }
        }
    }
    let mut pieces: Vec<Bytes> = events.iter().map(|e| Bytes::from(format!("data: {e}\n\n"))).collect();
    pieces.push(Bytes::from_static(b"data: [DONE]\n\n"));
    http::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("x-amzn-requestid", crate::ids::request_id())
        .body(Body::stream(pieces))
        .expect("valid response")
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
    Some(
        json!({ "id": format!("call_{}", &hash[24..48]), "type": "function", "function": { "name": name, "arguments": args.to_string() } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_join_to_the_text_at_character_boundaries() {
        for text in ["", "{}", r#"{"city":"Oslo","days":3}"#, r#"{"q":"Zürich ☃ and more ☃☃☃☃ text"}"#] {
            let parts = slices(text, 4);
            assert_eq!(parts.concat(), text);
            assert!(parts.iter().all(|p| !p.is_empty() && p.len() <= 4 + 3), "{parts:?}");
        }
        assert_eq!(slices("abcdefgh", 4), ["abcd", "efgh"]);
    }

    #[test]
    fn the_prompt_is_counted_without_the_stream_options() {
        let plain = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let streamed = br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#;
        let len = |b: &[u8]| prompt_bytes(&serde_json::from_slice(b).unwrap(), b);
        assert_eq!(len(plain), plain.len());
        assert_eq!(len(streamed), plain.len());
    }
}
