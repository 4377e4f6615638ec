//! Converse request → OpenAI chat-completions request, and the OpenAI answer → Converse response,
//! for `mode: "openai"`. The mapping tables are in the [module documentation](super).

use serde_json::{json, Map, Value};

use super::converse::{
    arr, base64_bytes, base64_text, blocks, check_keys, err, image_bytes, inference, merge_additional, message, obj,
    opt_str, request_obj, str_member, text, tools, union, Obj, Tool,
};
use super::converse_claude::claude_to_converse;
use super::{openai_to_claude, ConvertError, OpenAiTarget};

const TARGET: &str = "an OpenAI chat-completions request";

/// Converse request (restJson1 body) → OpenAI `chat/completions` request body.
///
/// The request is not marked `stream`: for ConverseStream, the caller adds `"stream": true` and
/// `"stream_options": {"include_usage": true}` (so the last chunk carries the usage the
/// `metadata` event needs). Every mapping is listed in the [module documentation](super).
pub fn converse_to_openai(request: &Value, target: &OpenAiTarget) -> Result<Value, ConvertError> {
    let o = request_obj(request, TARGET, true)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));

    let mut messages = Vec::new();
    if let Some(system) = o.get("system").filter(|v| !v.is_null()) {
        let mut texts = Vec::new();
        for (i, b) in arr(system, "system")?.iter().enumerate() {
            let at = format!("system[{i}]");
            match union(b, &at)? {
                ("text", Value::String(t)) => texts.push(t.as_str()),
                ("cachePoint", _) => {}
                ("guardContent", _) => {
                    return err(format!("{at}.guardContent cannot be carried into {TARGET}: it is for a guardrail, which only Converse runs"))
                }
                (m, _) => return err(format!("{at}: system content block `{m}` cannot be carried into {TARGET}")),
            }
        }
        let joined = texts.join("\n");
        if !joined.is_empty() {
            messages.push(json!({"role": "system", "content": joined}));
        }
    }
    let Some(conv) = o.get("messages").filter(|v| !v.is_null()) else {
        return err("`messages` is required for an OpenAI chat request");
    };
    for (i, m) in arr(conv, "messages")?.iter().enumerate() {
        let (at, role, content) = message(m, i, TARGET)?;
        if role == "user" {
            user_message(content, &at, target, &mut messages)?;
        } else {
            assistant_message(content, &at, &mut messages)?;
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    let inf = inference(o)?;
    if let Some(n) = inf.max_tokens {
        out.insert("max_tokens".into(), json!(n));
    }
    inf.put_sampling(&mut out, ["temperature", "top_p", "stop"]);
    if let Some(tc) = o.get("toolConfig").filter(|v| !v.is_null()) {
        tool_config(tc, &mut out)?;
    }
    if let Some(oc) = o.get("outputConfig").filter(|v| !v.is_null()) {
        output_config(oc, &mut out)?;
    }
    if let Some(extra) = o.get("additionalModelRequestFields").and_then(Value::as_object) {
        if extra.contains_key("top_k") && !target.supports_top_k {
            return err(format!(
                "`additionalModelRequestFields.top_k` cannot be sent: the OpenAI-compatible target for model `{}` does not accept top_k",
                target.model
            ));
        }
    }
    merge_additional(&mut out, o.get("additionalModelRequestFields"))?;
    Ok(Value::Object(out))
}

fn text_part(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

/// User parts → `content`: a plain string when the only part is text.
fn user_content(parts: Vec<Value>) -> Value {
    match parts.as_slice() {
        [] => json!(""),
        [p] if p["type"] == "text" => p["text"].clone(),
        _ => Value::Array(parts),
    }
}

fn user_message(content: &[Value], at: &str, target: &OpenAiTarget, out: &mut Vec<Value>) -> Result<(), ConvertError> {
    let mut parts: Vec<Value> = Vec::new();
    let mut emitted = false;
    for (mat, member, v) in blocks(content, &format!("{at}.content"))? {
        match member {
            "text" => parts.push(text_part(text(v, &mat)?)),
            "image" => parts.push(image_part(v, &mat)?),
            "document" => parts.extend(document_parts(v, &mat, target)?),
            "toolResult" => {
                if !parts.is_empty() {
                    out.push(json!({"role": "user", "content": user_content(std::mem::take(&mut parts))}));
                }
                out.push(tool_message(v, &mat)?);
                emitted = true;
            }
            "cachePoint" => {}
            "toolUse" | "reasoningContent" | "citationsContent" => {
                return err(format!("{mat}: `{member}` belongs in an assistant message, not a user message"))
            }
            "guardContent" => {
                return err(format!(
                    "{mat} cannot be carried into {TARGET}: it is for a guardrail, which only Converse runs"
                ))
            }
            other => return err(format!("{mat}: a `{other}` block cannot be carried into {TARGET}")),
        }
    }
    if !parts.is_empty() || !emitted {
        out.push(json!({"role": "user", "content": user_content(parts)}));
    }
    Ok(())
}

fn assistant_message(content: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), ConvertError> {
    let mut texts: Vec<&str> = Vec::new();
    let mut calls: Vec<Value> = Vec::new();
    let mut omitted = 0usize;
    for (mat, member, v) in blocks(content, &format!("{at}.content"))? {
        match member {
            "text" => texts.push(text(v, &mat)?),
            "toolUse" => {
                let o = obj(v, &mat)?;
                check_keys(o, &["toolUseId", "name", "input", "type"], &mat)?;
                if let Some(t) = o.get("type").filter(|t| !t.is_null()) {
                    return err(format!("{mat}.type {t}: server tool use cannot be carried into {TARGET}"));
                }
                let input = o.get("input").ok_or_else(|| ConvertError::new(format!("{mat}.input is missing")))?;
                let arguments = serde_json::to_string(input).expect("a JSON value serializes");
                calls.push(json!({
                    "id": str_member(o, "toolUseId", &mat)?,
                    "type": "function",
                    "function": {"name": str_member(o, "name", &mat)?, "arguments": arguments}
                }));
            }
            "reasoningContent" | "cachePoint" => omitted += 1,
            "citationsContent" => return err(format!("{mat}: citations cannot be carried into {TARGET}")),
            other => {
                return err(format!(
                "{mat}: a `{other}` block cannot be carried into {TARGET} (or does not belong in an assistant message)"
            ))
            }
        }
    }
    if omitted > 0 && texts.is_empty() && calls.is_empty() {
        // Only reasoning: nothing OpenAI chat can hold.
        return Ok(());
    }
    let content = match texts.len() {
        0 if !calls.is_empty() => Value::Null,
        0 => json!(""),
        1 => json!(texts[0]),
        _ => Value::Array(texts.iter().map(|t| text_part(t)).collect()),
    };
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    msg.insert("content".into(), content);
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(msg));
    Ok(())
}

fn image_part(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let (media_type, data) = image_bytes(v, at, TARGET)?;
    Ok(json!({"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}}))
}

/// A text document as one text part: name, context (each followed by a blank line), then the text.
fn text_document(name: &str, context: Option<&str>, text: &str) -> Value {
    let mut s = String::new();
    for head in [Some(name), context].into_iter().flatten().filter(|h| !h.is_empty()) {
        s.push_str(head);
        s.push_str("\n\n");
    }
    s.push_str(text);
    text_part(&s)
}

fn document_parts(v: &Value, at: &str, target: &OpenAiTarget) -> Result<Vec<Value>, ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["format", "name", "source", "context", "citations"], at)?;
    if o.get("citations").and_then(|c| c.get("enabled")).and_then(Value::as_bool) == Some(true) {
        return err(format!(
            "{at}.citations cannot be carried into {TARGET}: OpenAI chat completions returns no citations"
        ));
    }
    let name = str_member(o, "name", at)?;
    let context = opt_str(o, "context", at)?;
    let format = opt_str(o, "format", at)?;
    let sat = format!("{at}.source");
    match union(o.get("source").unwrap_or(&Value::Null), &sat)? {
        ("bytes", data) => match format {
            Some("pdf") => {
                base64_bytes(data, &format!("{sat}.bytes"))?;
                if !target.supports_file_parts {
                    return err(format!(
                        "{at}: a PDF document cannot be sent: the OpenAI-compatible target for model `{}` does not accept file content parts",
                        target.model
                    ));
                }
                let mut parts = Vec::new();
                if let Some(c) = context.filter(|c| !c.is_empty()) {
                    parts.push(text_part(c));
                }
                let data = data.as_str().expect("checked as base64 text");
                parts.push(json!({"type": "file", "file": {"filename": name, "file_data": format!("data:application/pdf;base64,{data}")}}));
                Ok(parts)
            }
            Some("txt" | "md" | "csv" | "html") => {
                Ok(vec![text_document(name, context, &base64_text(data, &format!("{sat}.bytes"))?)])
            }
            Some(f @ ("doc" | "docx" | "xls" | "xlsx")) => {
                err(format!("{at}: a `{f}` document cannot be carried into {TARGET} (only PDF and text documents)"))
            }
            Some(f) => err(format!("{at}.format `{f}` is not a document format")),
            None => err(format!("{at}.format is required for a document given as bytes")),
        },
        ("text", Value::String(t)) => Ok(vec![text_document(name, context, t)]),
        ("content", list) => {
            let head: Vec<&str> = [Some(name), context].into_iter().flatten().filter(|h| !h.is_empty()).collect();
            let mut parts = vec![text_part(&head.join("\n\n"))];
            for (cat, member, v) in blocks(arr(list, &format!("{sat}.content"))?, &format!("{sat}.content"))? {
                match member {
                    "text" => parts.push(text_part(text(v, &cat)?)),
                    m => return err(format!("{cat}: `{m}` cannot be carried (a document's content holds text)")),
                }
            }
            Ok(parts)
        }
        ("s3Location", _) => {
            err(format!("{sat}.s3Location cannot be carried into {TARGET}: the server cannot read S3"))
        }
        (other, _) => err(format!("{sat}: document source `{other}` cannot be carried into {TARGET}")),
    }
}

fn tool_message(v: &Value, at: &str) -> Result<Value, ConvertError> {
    let r = super::converse::tool_result(v, at, TARGET)?;
    let mut texts = Vec::new();
    for (mat, member, v) in r.content {
        match member {
            "text" => texts.push(text(v, &mat)?.to_string()),
            "json" => texts.push(serde_json::to_string(v).expect("a JSON value serializes")),
            m => {
                return err(format!(
                    "{mat}: a `{m}` tool result cannot be carried into {TARGET}: tool messages take text only (send it as a user message block instead)"
                ))
            }
        }
    }
    let mut content = texts.join("\n");
    if r.error {
        content = if content.is_empty() { "Error".to_string() } else { format!("Error: {content}") };
    }
    Ok(json!({"role": "tool", "tool_call_id": r.id, "content": content}))
}

fn tool_config(tc: &Value, out: &mut Obj) -> Result<(), ConvertError> {
    let config = tools(tc)?;
    let mut functions = Vec::new();
    for (tat, t) in config.tools {
        match t {
            Tool::Spec(s) => {
                let mut f = Map::new();
                f.insert("name".into(), json!(s.name));
                f.insert("description".into(), json!(s.description.unwrap_or("")));
                f.insert("parameters".into(), s.schema.clone());
                if let Some(strict) = s.strict {
                    f.insert("strict".into(), json!(strict));
                }
                functions.push(json!({"type": "function", "function": f}));
            }
            Tool::CachePoint(_) => {}
            Tool::System(_) => {
                return err(format!(
                    "{tat}.systemTool cannot be carried into {TARGET}: Bedrock system tools run in the Converse API"
                ))
            }
        }
    }
    out.insert("tools".into(), Value::Array(functions));
    if let Some(choice) = config.choice {
        let c = match choice {
            ("auto", _) => json!("auto"),
            ("any", _) => json!("required"),
            (_, name) => json!({"type": "function", "function": {"name": name}}),
        };
        out.insert("tool_choice".into(), c);
    }
    Ok(())
}

fn output_config(oc: &Value, out: &mut Obj) -> Result<(), ConvertError> {
    let at = "outputConfig";
    let o = obj(oc, at)?;
    check_keys(o, &["textFormat", "effort"], at)?;
    if let Some(tf) = o.get("textFormat").filter(|v| !v.is_null()) {
        let tat = format!("{at}.textFormat");
        let to = obj(tf, &tat)?;
        check_keys(to, &["type", "structure"], &tat)?;
        match str_member(to, "type", &tat)? {
            "json_schema" => {}
            other => return err(format!("{tat}.type `{other}` is not json_schema")),
        }
        let sat = format!("{tat}.structure");
        let (member, js) = union(to.get("structure").unwrap_or(&Value::Null), &sat)?;
        if member != "jsonSchema" {
            return err(format!("{sat}: unknown member `{member}`"));
        }
        let jat = format!("{sat}.jsonSchema");
        let jo = obj(js, &jat)?;
        check_keys(jo, &["schema", "name", "description"], &jat)?;
        let schema: Value = serde_json::from_str(str_member(jo, "schema", &jat)?)
            .map_err(|e| ConvertError::new(format!("{jat}.schema is not valid JSON: {e}")))?;
        let mut f = Map::new();
        f.insert("name".into(), json!(opt_str(jo, "name", &jat)?.unwrap_or("response")));
        if let Some(d) = opt_str(jo, "description", &jat)? {
            f.insert("description".into(), json!(d));
        }
        f.insert("schema".into(), schema);
        f.insert("strict".into(), json!(true));
        out.insert("response_format".into(), json!({"type": "json_schema", "json_schema": f}));
    }
    if let Some(effort) = opt_str(o, "effort", at)? {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    Ok(())
}

/// OpenAI `chat.completion` response → Converse response.
///
/// The answer goes through [`openai_to_claude`](super::openai_to_claude) (every OpenAI quirk it
/// handles: reasoning fields, refusals, tool calls, cached-token usage) and then through
/// [`claude_to_converse`](super::claude_to_converse): `request`'s
/// `additionalModelResponseFieldPaths` therefore address that Claude-shaped answer (so
/// `/stop_sequence` works as on Bedrock); `latency_ms` becomes `metrics.latencyMs`.
pub fn openai_to_converse(response: &Value, request: &Value, latency_ms: u64) -> Result<Value, ConvertError> {
    claude_to_converse(&openai_to_claude(response)?, request, latency_ms)
}
