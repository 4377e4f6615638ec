//! Converse request → Anthropic Claude Messages body (InvokeModel), and Claude's answer → Converse
//! response. The mapping tables are in the [module documentation](super).

use serde_json::{json, Map, Value};

use super::converse::{
    arr, base64_bytes, base64_text, blocks, check_keys, converse_response, count, err, image_bytes, inference,
    merge_additional, message, obj, opt_str, request_obj, response_fields, str_member, text, tools, union, Obj, Tool,
    Usage,
};
use super::family::claude_default_max_tokens;
use super::{kind, ConvertError};

const TARGET: &str = "a Claude Messages body";

/// Converse request (restJson1 body) → the Claude Messages body for InvokeModel on `model_id`.
///
/// `model_id` only chooses `max_tokens` when the request has no `inferenceConfig.maxTokens`
/// (see [`claude_default_max_tokens`](super::claude_default_max_tokens)). Every mapping is listed
/// in the [module documentation](super); what Claude cannot take is a [`ConvertError`] naming it.
pub fn converse_to_claude(request: &Value, model_id: &str) -> Result<Value, ConvertError> {
    let o = request_obj(request, TARGET, false)?;
    let extra = o.get("additionalModelRequestFields").filter(|v| !v.is_null());
    let inf = inference(o)?;

    let mut body = Map::new();
    body.insert("anthropic_version".into(), json!("bedrock-2023-05-31"));
    match inf.max_tokens {
        Some(n) => {
            body.insert("max_tokens".into(), json!(n));
        }
        None if extra.is_some_and(|e| e.get("max_tokens").is_some()) => {}
        None => {
            body.insert("max_tokens".into(), json!(claude_default_max_tokens(model_id)));
        }
    }
    if let Some(system) = o.get("system").filter(|v| !v.is_null()) {
        let blocks = system_blocks(system)?;
        if !blocks.is_empty() {
            body.insert("system".into(), Value::Array(blocks));
        }
    }
    let Some(messages) = o.get("messages").filter(|v| !v.is_null()) else {
        return err("`messages` is required for a Claude Messages body");
    };
    let messages = arr(messages, "messages")?
        .iter()
        .enumerate()
        .map(|(i, m)| claude_message(m, i))
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("messages".into(), Value::Array(messages));
    inf.put_sampling(&mut body, ["temperature", "top_p", "stop_sequences"]);
    if let Some(tc) = o.get("toolConfig").filter(|v| !v.is_null()) {
        tool_config(tc, &mut body)?;
    }
    merge_additional(&mut body, extra)?;
    Ok(Value::Object(body))
}

/// `cache_control` for a Converse `cachePoint`.
fn cache_control(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["type", "ttl"], at)?;
    match str_member(o, "type", at)? {
        "default" => {}
        other => return err(format!("{at}.type `{other}` is not `default`")),
    }
    let mut cc = Map::new();
    cc.insert("type".into(), json!("ephemeral"));
    match opt_str(o, "ttl", at)? {
        None => {}
        Some(ttl @ ("5m" | "1h")) => {
            cc.insert("ttl".into(), json!(ttl));
        }
        Some(other) => return err(format!("{at}.ttl `{other}` is not `5m` or `1h`")),
    }
    Ok(Value::Object(cc))
}

/// Put a cache point's `cache_control` on the block before it.
fn attach_cache_point(blocks: &mut [Value], v: &Value, at: &str, what: &str) -> Result<(), ConvertError> {
    let cc = cache_control(v, at)?;
    match blocks.last_mut().and_then(Value::as_object_mut) {
        Some(last) => {
            last.insert("cache_control".into(), cc);
            Ok(())
        }
        None => err(format!("{at}: a cachePoint must follow the {what} it marks; Claude puts `cache_control` on a block, and there is none before it")),
    }
}

fn system_blocks(system: &Value) -> Result<Vec<Value>, ConvertError> {
    let mut out = Vec::new();
    for (i, b) in arr(system, "system")?.iter().enumerate() {
        let at = format!("system[{i}]");
        match union(b, &at)? {
            ("text", Value::String(t)) => out.push(json!({"type": "text", "text": t})),
            ("text", v) => return err(format!("{at}.text must be a string, not {}", kind(v))),
            ("cachePoint", v) => attach_cache_point(&mut out, v, &format!("{at}.cachePoint"), "system block")?,
            ("guardContent", _) => {
                return err(format!(
                "{at}.guardContent cannot be carried into {TARGET}: it is for a guardrail, which only Converse runs"
            ))
            }
            (other, _) => return err(format!("{at}: system content block `{other}` cannot be carried into {TARGET}")),
        }
    }
    Ok(out)
}

fn claude_message(m: &Value, i: usize) -> Result<Value, ConvertError> {
    let (at, role, content) = message(m, i, TARGET)?;
    let mut out: Vec<Value> = Vec::with_capacity(content.len());
    for (mat, member, v) in blocks(content, &format!("{at}.content"))? {
        let wanted = match member {
            "image" | "document" | "searchResult" | "toolResult" => Some("user"),
            "toolUse" | "reasoningContent" => Some("assistant"),
            _ => None,
        };
        if let Some(w) = wanted.filter(|w| *w != role) {
            let a = |r: &str| if r == "assistant" { "an assistant" } else { "a user" };
            return err(format!("{mat}: `{member}` belongs in {} message, not {} message", a(w), a(role)));
        }
        match member {
            "text" => out.push(json!({"type": "text", "text": text(v, &mat)?})),
            "image" => out.push(image(v, &mat)?),
            "document" => out.push(document(v, &mat)?),
            "searchResult" => out.push(search_result(v, &mat)?),
            "toolUse" => out.push(tool_use(v, &mat)?),
            "toolResult" => out.push(tool_result(v, &mat)?),
            "reasoningContent" => out.push(reasoning(v, &mat)?),
            "cachePoint" => attach_cache_point(&mut out, v, &mat, "content block")?,
            "video" | "audio" => {
                return err(format!("{mat}: Claude takes no {member} input, so it cannot be carried into {TARGET}"))
            }
            "guardContent" => {
                return err(format!(
                    "{mat} cannot be carried into {TARGET}: it is for a guardrail, which only Converse runs"
                ))
            }
            "citationsContent" => {
                return err(format!("{mat}: citations cannot be carried into {TARGET} by this converter"))
            }
            other => return err(format!("{mat}: content block `{other}` cannot be carried into {TARGET}")),
        }
    }
    Ok(json!({"role": role, "content": out}))
}

fn image(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let (media_type, data) = image_bytes(v, at, TARGET)?;
    Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
}

/// Whether a `citations` config asks for citations (refused: their answer cannot be converted back).
fn refuse_citations(o: &Obj, at: &str) -> Result<(), ConvertError> {
    match o.get("citations") {
        None | Some(Value::Null) => Ok(()),
        Some(c) => {
            let co = obj(c, &format!("{at}.citations"))?;
            match co.get("enabled") {
                Some(Value::Bool(false)) => Ok(()),
                Some(Value::Bool(true)) => err(format!(
                    "{at}.citations: citations cannot be carried into {TARGET} by this converter (the cited answer has no conversion back to Converse yet)"
                )),
                _ => err(format!("{at}.citations.enabled must be a boolean")),
            }
        }
    }
}

fn document(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["format", "name", "source", "context", "citations"], at)?;
    refuse_citations(o, at)?;
    let name = str_member(o, "name", at)?;
    let context = opt_str(o, "context", at)?;
    let format = opt_str(o, "format", at)?;
    let sat = format!("{at}.source");
    let source = match union(o.get("source").unwrap_or(&Value::Null), &sat)? {
        ("bytes", data) => match format {
            Some("pdf") => {
                base64_bytes(data, &format!("{sat}.bytes"))?;
                json!({"type": "base64", "media_type": "application/pdf", "data": data})
            }
            Some("txt" | "md" | "csv" | "html") => json!({"type": "text", "media_type": "text/plain", "data": base64_text(data, &format!("{sat}.bytes"))?}),
            Some(f @ ("doc" | "docx" | "xls" | "xlsx")) => {
                return err(format!(
                    "{at}: a `{f}` document cannot be carried into {TARGET}: Claude's Messages API takes PDF and plain-text documents (only Converse converts Office formats)"
                ))
            }
            Some(f) => return err(format!("{at}.format `{f}` is not a document format")),
            None => return err(format!("{at}.format is required for a document given as bytes")),
        },
        ("text", Value::String(t)) => json!({"type": "text", "media_type": "text/plain", "data": t}),
        ("content", list) => {
            let mut parts = Vec::new();
            for (cat, member, v) in blocks(arr(list, &format!("{sat}.content"))?, &format!("{sat}.content"))? {
                match member {
                    "text" => parts.push(json!({"type": "text", "text": text(v, &cat)?})),
                    m => return err(format!("{cat}: `{m}` cannot be carried (a document's content holds text)")),
                }
            }
            json!({"type": "content", "content": parts})
        }
        ("s3Location", _) => return err(format!("{sat}.s3Location cannot be carried into {TARGET}: Claude on InvokeModel takes document bytes, not S3 locations")),
        (other, _) => return err(format!("{sat}: document source `{other}` cannot be carried into {TARGET}")),
    };
    let mut doc = Map::new();
    doc.insert("type".into(), json!("document"));
    doc.insert("source".into(), source);
    doc.insert("title".into(), json!(name));
    if let Some(c) = context {
        doc.insert("context".into(), json!(c));
    }
    Ok(Value::Object(doc))
}

fn search_result(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["source", "title", "content", "citations"], at)?;
    refuse_citations(o, at)?;
    let mut parts = Vec::new();
    for (k, b) in arr(o.get("content").unwrap_or(&Value::Null), &format!("{at}.content"))?.iter().enumerate() {
        let cat = format!("{at}.content[{k}]");
        let bo = obj(b, &cat)?;
        check_keys(bo, &["text"], &cat)?;
        parts.push(json!({"type": "text", "text": str_member(bo, "text", &cat)?}));
    }
    Ok(
        json!({"type": "search_result", "source": str_member(o, "source", at)?, "title": str_member(o, "title", at)?, "content": parts}),
    )
}

fn tool_use(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["toolUseId", "name", "input", "type"], at)?;
    if let Some(t) = o.get("type").filter(|t| !t.is_null()) {
        return err(format!("{at}.type {t}: server tool use cannot be carried into {TARGET} by this converter"));
    }
    let input = match o.get("input") {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => return err(format!("{at}.input must be a JSON object for Claude, not {}", kind(v))),
        None => return err(format!("{at}.input is missing")),
    };
    Ok(
        json!({"type": "tool_use", "id": str_member(o, "toolUseId", at)?, "name": str_member(o, "name", at)?, "input": input}),
    )
}

fn tool_result(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let r = super::converse::tool_result(v, at, TARGET)?;
    let mut parts = Vec::new();
    for (mat, member, inner) in r.content {
        match member {
            "text" => parts.push(json!({"type": "text", "text": text(inner, &mat)?})),
            "json" => parts
                .push(json!({"type": "text", "text": serde_json::to_string(inner).expect("a JSON value serializes")})),
            "image" => parts.push(image(inner, &mat)?),
            "document" => parts.push(document(inner, &mat)?),
            "searchResult" => parts.push(search_result(inner, &mat)?),
            other => return err(format!("{mat}: a `{other}` tool result cannot be carried into {TARGET}")),
        }
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("tool_result"));
    out.insert("tool_use_id".into(), json!(r.id));
    out.insert("content".into(), Value::Array(parts));
    if r.error {
        out.insert("is_error".into(), json!(true));
    }
    Ok(Value::Object(out))
}

fn reasoning(v: &Value, at: &str) -> Result<Value, ConvertError> {
    match union(v, at)? {
        ("reasoningText", rt) => {
            let rat = format!("{at}.reasoningText");
            let ro = obj(rt, &rat)?;
            check_keys(ro, &["text", "signature"], &rat)?;
            let mut b = Map::new();
            b.insert("type".into(), json!("thinking"));
            b.insert("thinking".into(), json!(str_member(ro, "text", &rat)?));
            if let Some(sig) = opt_str(ro, "signature", &rat)? {
                b.insert("signature".into(), json!(sig));
            }
            Ok(Value::Object(b))
        }
        ("redactedContent", data) => {
            let bytes = base64_bytes(data, &format!("{at}.redactedContent"))?;
            let data = String::from_utf8(bytes).map_err(|_| {
                ConvertError::new(format!("{at}.redactedContent is not the bytes of Claude's redacted_thinking data"))
            })?;
            Ok(json!({"type": "redacted_thinking", "data": data}))
        }
        (other, _) => err(format!("{at}: unknown reasoning member `{other}`")),
    }
}

fn tool_config(tc: &Value, body: &mut Obj) -> Result<(), ConvertError> {
    let config = tools(tc)?;
    let mut out: Vec<Value> = Vec::new();
    for (tat, t) in config.tools {
        match t {
            Tool::Spec(s) => {
                let mut tool = Map::new();
                tool.insert("name".into(), json!(s.name));
                if let Some(d) = s.description {
                    tool.insert("description".into(), json!(d));
                }
                tool.insert("input_schema".into(), s.schema.clone());
                if let Some(strict) = s.strict {
                    tool.insert("strict".into(), json!(strict));
                }
                out.push(Value::Object(tool));
            }
            Tool::CachePoint(v) => attach_cache_point(&mut out, v, &format!("{tat}.cachePoint"), "tool")?,
            Tool::System(_) => {
                return err(format!(
                    "{tat}.systemTool cannot be carried into {TARGET}: Bedrock system tools run in the Converse API"
                ))
            }
        }
    }
    body.insert("tools".into(), Value::Array(out));
    if let Some(choice) = config.choice {
        let c = match choice {
            ("tool", Some(name)) => json!({"type": "tool", "name": name}),
            (t, _) => json!({"type": t}),
        };
        body.insert("tool_choice".into(), c);
    }
    Ok(())
}

/// Claude `stop_reason` → Converse `stopReason` (`None`: no Converse counterpart).
///
/// | Claude | Converse |
/// |---|---|
/// | `end_turn` | `end_turn` |
/// | `tool_use` | `tool_use` |
/// | `max_tokens` | `max_tokens` |
/// | `stop_sequence` | `stop_sequence` |
/// | `model_context_window_exceeded` | `model_context_window_exceeded` |
/// | `refusal` | `content_filtered` (Converse's only "declined for safety" value) |
/// | `pause_turn` (server tools only), anything else | `None` |
pub fn converse_stop_reason_from_claude(stop_reason: &str) -> Option<&'static str> {
    Some(match stop_reason {
        "end_turn" => "end_turn",
        "tool_use" => "tool_use",
        "max_tokens" => "max_tokens",
        "stop_sequence" => "stop_sequence",
        "model_context_window_exceeded" => "model_context_window_exceeded",
        "refusal" => "content_filtered",
        _ => return None,
    })
}

/// Claude Messages response body → Converse response.
///
/// `request` is the Converse request it answers (its `additionalModelResponseFieldPaths` pick
/// `additionalModelResponseFields` out of Claude's body); `latency_ms` becomes `metrics.latencyMs`.
pub fn claude_to_converse(response: &Value, request: &Value, latency_ms: u64) -> Result<Value, ConvertError> {
    let Some(o) = response.as_object() else {
        return err(format!("the Claude response is {}, not a JSON object", kind(response)));
    };
    if o.get("type").and_then(Value::as_str) == Some("error") {
        let message = response.pointer("/error/message").and_then(Value::as_str).unwrap_or("(no message)");
        return err(format!("Claude answered with an error: {message}"));
    }
    let content = match o.get("content") {
        Some(Value::Array(c)) => c,
        Some(v) => return err(format!("the Claude response's `content` is {}, not an array", kind(v))),
        None => return err("not a Claude Messages response: it has no `content`"),
    };
    let mut blocks = Vec::with_capacity(content.len());
    for (i, b) in content.iter().enumerate() {
        blocks.push(response_block(b, &format!("content[{i}]"))?);
    }
    let stop_reason = match o.get("stop_reason") {
        Some(Value::String(s)) => match converse_stop_reason_from_claude(s) {
            Some(r) => r,
            None => return err(format!("Claude's stop_reason `{s}` has no Converse stopReason")),
        },
        Some(Value::Null) | None => return err("the Claude response has no stop_reason (an incomplete answer)"),
        Some(v) => return err(format!("stop_reason must be a string, not {}", kind(v))),
    };
    let usage = claude_usage(o.get("usage").unwrap_or(&Value::Null))?;
    Ok(converse_response(blocks, stop_reason, &usage, latency_ms, response_fields(response, request)?))
}

/// Claude `usage` → token counts (with `cache_creation` by TTL as `cacheDetails`, 1h before 5m).
pub(super) fn claude_usage(u: &Value) -> Result<Usage, ConvertError> {
    let at = "usage";
    if !u.is_object() && !u.is_null() {
        return err(format!("`usage` must be an object, not {}", kind(u)));
    }
    let mut usage = Usage {
        input: count(u, "input_tokens", at)?.unwrap_or(0),
        output: count(u, "output_tokens", at)?.unwrap_or(0),
        cache_read: count(u, "cache_read_input_tokens", at)?.unwrap_or(0),
        cache_write: count(u, "cache_creation_input_tokens", at)?.unwrap_or(0),
        ..Usage::default()
    };
    if let Some(cc) = u.get("cache_creation").filter(|v| v.is_object()) {
        let mut details = Vec::new();
        for (ttl, key) in [("1h", "ephemeral_1h_input_tokens"), ("5m", "ephemeral_5m_input_tokens")] {
            if let Some(n) = count(cc, key, "usage.cache_creation")?.filter(|n| *n > 0) {
                details.push(json!({"ttl": ttl, "inputTokens": n}));
            }
        }
        if !details.is_empty() {
            usage.cache_details = Some(Value::Array(details));
        }
    }
    Ok(usage)
}

fn response_block(b: &Value, at: &str) -> Result<Value, ConvertError> {
    let o = obj(b, at)?;
    match o.get("type").and_then(Value::as_str) {
        Some("text") => {
            if o.get("citations").is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
                return err(format!(
                    "{at}: a text block with citations cannot be converted to Converse by this converter"
                ));
            }
            Ok(json!({"text": str_member(o, "text", at)?}))
        }
        Some("tool_use") => {
            let input = o.get("input").cloned().unwrap_or_else(|| json!({}));
            Ok(
                json!({"toolUse": {"toolUseId": str_member(o, "id", at)?, "name": str_member(o, "name", at)?, "input": input}}),
            )
        }
        Some("thinking") => {
            let mut rt = Map::new();
            rt.insert("text".into(), json!(str_member(o, "thinking", at)?));
            if let Some(sig) = opt_str(o, "signature", at)?.filter(|s| !s.is_empty()) {
                rt.insert("signature".into(), json!(sig));
            }
            Ok(json!({"reasoningContent": {"reasoningText": rt}}))
        }
        Some("redacted_thinking") => {
            let data = str_member(o, "data", at)?;
            Ok(json!({"reasoningContent": {"redactedContent": aws_smithy_types::base64::encode(data.as_bytes())}}))
        }
        Some(other) => {
            err(format!("{at}: Claude content block `{other}` has no Converse counterpart in this converter"))
        }
        None => err(format!("{at}: a content block without `type`")),
    }
}
