//! OpenAI chat-completions response → Bedrock Claude Messages response body.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{kind, ConvertError};

fn err<T>(message: impl Into<String>) -> Result<T, ConvertError> {
    Err(ConvertError::new(message))
}

/// OpenAI `finish_reason` values [`openai_to_claude`] accepts (see [`stop_reason_from_openai`]).
const KNOWN_FINISH: &[&str] = &[
    "stop",
    "eos",
    "end_turn",
    "stop_sequence",
    "length",
    "max_tokens",
    "tool_calls",
    "function_call",
    "tool_use",
    "content_filter",
    "refusal",
    "model_context_window_exceeded",
];

/// OpenAI `finish_reason` (and the matched stop string, when the server reports it) → Claude
/// `stop_reason` and `stop_sequence`.
///
/// | `finish` | `matched` | result |
/// |---|---|---|
/// | `stop`, `eos`, `end_turn`, none | `Some(s)` | (`stop_sequence`, `Some(s)`) |
/// | `stop`, `eos`, `end_turn`, none | `None` | (`end_turn`, `None`) |
/// | `stop_sequence` | any | (`stop_sequence`, `matched`) |
/// | `length`, `max_tokens` | — | (`max_tokens`, `None`) |
/// | `tool_calls`, `function_call`, `tool_use` | — | (`tool_use`, `None`) |
/// | `content_filter`, `refusal` | — | (`refusal`, `None`) |
/// | `model_context_window_exceeded` | — | (`model_context_window_exceeded`, `None`) |
/// | anything else | — | (`end_turn`, `None`) — [`openai_to_claude`] refuses such responses before asking |
pub fn stop_reason_from_openai(finish: Option<&str>, matched: Option<&str>) -> (&'static str, Option<String>) {
    match finish {
        None | Some("stop") | Some("eos") | Some("end_turn") => match matched {
            Some(s) => ("stop_sequence", Some(s.to_string())),
            None => ("end_turn", None),
        },
        Some("stop_sequence") => ("stop_sequence", matched.map(str::to_string)),
        Some("length") | Some("max_tokens") => ("max_tokens", None),
        Some("tool_calls") | Some("function_call") | Some("tool_use") => ("tool_use", None),
        Some("content_filter") | Some("refusal") => ("refusal", None),
        Some("model_context_window_exceeded") => ("model_context_window_exceeded", None),
        Some(_) => ("end_turn", None),
    }
}

/// OpenAI `chat.completion` response → the Claude Messages response body Bedrock returns.
///
/// Every mapping is listed in the [module documentation](super).
pub fn openai_to_claude(resp: &Value) -> Result<Value, ConvertError> {
    let Some(obj) = resp.as_object() else {
        return err(format!("the OpenAI response is {}, not a chat.completion object", kind(resp)));
    };
    if let Some(e) = obj.get("error").filter(|e| !e.is_null()) {
        let message = e.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| e.to_string());
        return err(format!("the OpenAI-compatible server answered with an error: {message}"));
    }
    let choices = match obj.get("choices") {
        Some(Value::Array(c)) => c,
        Some(v) => return err(format!("the OpenAI response's `choices` is {}, not an array", kind(v))),
        None => return err("not an OpenAI chat.completion response: it has no `choices`"),
    };
    let choice = match choices.as_slice() {
        [c] => c,
        [] => return err("the OpenAI response has no choices"),
        more => return err(format!("the OpenAI response has {} choices; a Claude message holds one", more.len())),
    };
    let Some(message) = choice.get("message").and_then(Value::as_object) else {
        return err("the OpenAI response's choice has no `message` object");
    };

    // finish reason
    let finish = match choice.get("finish_reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(f.as_str()),
        Some(v) => return err(format!("`finish_reason` must be a string, not {}", kind(v))),
    };
    if let Some(f) = finish {
        if !KNOWN_FINISH.contains(&f) {
            return err(format!("finish_reason `{f}` has no Claude stop_reason (the generation did not end normally)"));
        }
    }
    let matched = choice
        .get("stop_reason")
        .and_then(Value::as_str)
        .or_else(|| choice.get("matched_stop").and_then(Value::as_str));

    // content
    let mut content: Vec<Value> = Vec::new();
    match message.get("thinking_blocks") {
        Some(Value::Array(blocks)) if !blocks.is_empty() => {
            for (i, b) in blocks.iter().enumerate() {
                match b.get("type").and_then(Value::as_str) {
                    Some("thinking") | Some("redacted_thinking") => content.push(b.clone()),
                    _ => {
                        return err(format!(
                            "message.thinking_blocks[{i}] is not a thinking or redacted_thinking block"
                        ))
                    }
                }
            }
        }
        _ => {
            let reasoning = ["reasoning_content", "reasoning"]
                .iter()
                .find_map(|k| message.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()));
            if let Some(r) = reasoning {
                content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
            }
        }
    }
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if !s.is_empty() {
                content.push(json!({"type": "text", "text": s}));
            }
        }
        Some(Value::Array(parts)) => {
            for (i, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => {
                        if !t.is_empty() {
                            content.push(json!({"type": "text", "text": t}));
                        }
                    }
                    _ => return err(format!("message.content[{i}] is not a text part and cannot be converted")),
                }
            }
        }
        Some(v) => return err(format!("message.content is {}, not a string or an array of parts", kind(v))),
    }
    let refusal = message.get("refusal").and_then(Value::as_str).filter(|s| !s.is_empty());
    if let Some(r) = refusal {
        content.push(json!({"type": "text", "text": r}));
    }
    let mut tool_uses = 0usize;
    match message.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (i, call) in calls.iter().enumerate() {
                let at = format!("message.tool_calls[{i}]");
                match call.get("type").and_then(Value::as_str) {
                    None | Some("function") => {}
                    Some(t) => {
                        return err(format!("{at}: tool call type `{t}` cannot be converted (only function calls)"))
                    }
                }
                let Some(function) = call.get("function").and_then(Value::as_object) else {
                    return err(format!("{at}: `function` is missing"));
                };
                let id = match call.get("id").and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => id.to_string(),
                    _ => format!("call_{i}"),
                };
                content.push(tool_use(id, function, &at)?);
                tool_uses += 1;
            }
        }
        Some(v) => return err(format!("message.tool_calls is {}, not an array", kind(v))),
    }
    if let Some(Value::Object(function)) = message.get("function_call") {
        content.push(tool_use("call_function_call".into(), function, "message.function_call")?);
        tool_uses += 1;
    }

    let (mut stop_reason, mut stop_sequence) = stop_reason_from_openai(finish, matched);
    if tool_uses > 0 && stop_reason == "end_turn" {
        stop_reason = "tool_use";
    }
    if refusal.is_some() && matches!(stop_reason, "end_turn" | "stop_sequence") {
        stop_reason = "refusal";
        stop_sequence = None;
    }

    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => {
            let digest = Sha256::digest(resp.to_string().as_bytes());
            format!("msg_{}", &hex::encode(digest)[..24])
        }
    };
    let model = obj.get("model").and_then(Value::as_str).unwrap_or("");

    let mut out = Map::new();
    out.insert("id".into(), Value::String(id));
    out.insert("type".into(), json!("message"));
    out.insert("role".into(), json!("assistant"));
    out.insert("model".into(), json!(model));
    out.insert("content".into(), Value::Array(content));
    out.insert("stop_reason".into(), json!(stop_reason));
    out.insert("stop_sequence".into(), stop_sequence.map(Value::String).unwrap_or(Value::Null));
    out.insert("usage".into(), usage(obj.get("usage"))?);
    Ok(Value::Object(out))
}

/// An OpenAI `function` object → a Claude `tool_use` block with parsed arguments.
fn tool_use(id: String, function: &Map<String, Value>, at: &str) -> Result<Value, ConvertError> {
    let Some(name) = function.get("name").and_then(Value::as_str) else {
        return err(format!("{at}: the function has no `name`"));
    };
    let input = match function.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            Ok(v) => {
                return err(format!(
                    "{at}: the arguments of `{name}` are {}, not a JSON object, so they cannot be a tool_use input",
                    kind(&v)
                ))
            }
            Err(e) => return err(format!("{at}: the arguments of `{name}` are not valid JSON ({e}): {s}")),
        },
        // Some servers send the arguments already parsed.
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => return err(format!("{at}: the arguments of `{name}` are {}, not a JSON string", kind(v))),
    };
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// OpenAI `usage` → Claude `usage` (all four keys, Claude's order).
fn usage(u: Option<&Value>) -> Result<Value, ConvertError> {
    let u = match u {
        None | Some(Value::Null) => &Value::Null,
        Some(v @ Value::Object(_)) => v,
        Some(v) => return err(format!("`usage` is {}, not an object", kind(v))),
    };
    let num = |v: &Value| v.as_u64();
    let details = &u["prompt_tokens_details"];
    let prompt = num(&u["prompt_tokens"]).unwrap_or(0);
    let completion = num(&u["completion_tokens"]).unwrap_or(0);
    let cache_read = num(&details["cached_tokens"])
        .or_else(|| num(&u["cache_read_input_tokens"]))
        .or_else(|| num(&u["prompt_cache_hit_tokens"]))
        .unwrap_or(0);
    let cache_creation =
        num(&u["cache_creation_input_tokens"]).or_else(|| num(&details["cache_creation_tokens"])).unwrap_or(0);
    let input = prompt.saturating_sub(cache_read.saturating_add(cache_creation));
    Ok(json!({
        "input_tokens": input,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "output_tokens": completion,
    }))
}
