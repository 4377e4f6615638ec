//! Claude Messages request body → OpenAI chat-completions request body.

use serde_json::{json, Map, Value};

use super::{kind, unknown_keys, ConvertError, OpenAiTarget};

type Obj = Map<String, Value>;

/// Top-level keys of a Bedrock Claude Messages body that this converter understands.
const TOP_LEVEL: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
];

fn err<T>(message: impl Into<String>) -> Result<T, ConvertError> {
    Err(ConvertError::new(message))
}

/// Bedrock Claude Messages body → OpenAI `chat/completions` request body.
///
/// Every mapping is listed in the [module documentation](super); whatever the target cannot
/// express is a [`ConvertError`] naming it.
pub fn claude_to_openai(body: &Value, target: &OpenAiTarget) -> Result<Value, ConvertError> {
    let Some(obj) = body.as_object() else {
        return err(format!(
            "the request body is {}, not a Claude Messages body (a JSON object with `messages`); \
             OpenAI-compatible mode converts only Anthropic Claude bodies",
            kind(body)
        ));
    };
    if !obj.contains_key("messages") {
        return Err(not_claude(obj));
    }
    if let Some(keys) = unknown_keys(obj, TOP_LEVEL) {
        return err(format!(
            "unsupported key(s) {keys} in the Claude Messages body: the OpenAI chat-completions \
             conversion cannot carry them (they would be dropped), so the request is refused"
        ));
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(target.model.clone()));

    // anthropic_version: consumed.
    match obj.get("anthropic_version") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(v) => return err(format!("`anthropic_version` must be a string, not {}", kind(v))),
    }
    // anthropic_beta: only an empty list carries nothing.
    match obj.get("anthropic_beta") {
        None | Some(Value::Null) => {}
        Some(Value::Array(flags)) if flags.is_empty() => {}
        Some(Value::Array(flags)) => {
            let names: Vec<String> =
                flags.iter().map(|f| f.as_str().map(|s| format!("`{s}`")).unwrap_or_else(|| f.to_string())).collect();
            return err(format!(
                "`anthropic_beta` {} cannot be carried: beta features have no OpenAI \
                 chat-completions counterpart",
                names.join(", ")
            ));
        }
        Some(v) => return err(format!("`anthropic_beta` must be an array of strings, not {}", kind(v))),
    }
    // thinking: only "disabled" carries nothing.
    match obj.get("thinking") {
        None | Some(Value::Null) => {}
        Some(Value::Object(t)) if t.get("type").and_then(Value::as_str) == Some("disabled") => {}
        Some(_) => {
            return err("`thinking` (extended thinking configuration) has no OpenAI chat-completions \
                 counterpart; remove it to use OpenAI-compatible mode (reasoning models think \
                 on their own, and their reasoning comes back as a thinking block)")
        }
    }

    // messages
    let mut messages = Vec::new();
    if let Some(system) = obj.get("system") {
        if let Some(text) = system_text(system)? {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let Some(claude_messages) = obj["messages"].as_array() else {
        return err(format!("`messages` must be an array, not {}", kind(&obj["messages"])));
    };
    for (i, m) in claude_messages.iter().enumerate() {
        convert_message(m, i, target, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));

    // sampling and limits
    match obj.get("max_tokens") {
        Some(v @ Value::Number(n)) if n.is_u64() => {
            out.insert("max_tokens".into(), v.clone());
        }
        None | Some(Value::Null) => return err("`max_tokens` is required in a Claude Messages body"),
        Some(v) => return err(format!("`max_tokens` must be a positive integer, not {v}")),
    }
    for key in ["temperature", "top_p"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(key.into(), v.clone());
            }
            Some(v) => return err(format!("`{key}` must be a number, not {}", kind(v))),
        }
    }
    match obj.get("top_k") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Number(_)) if target.supports_top_k => {
            out.insert("top_k".into(), v.clone());
        }
        Some(Value::Number(_)) => {
            return err(format!(
                "`top_k` cannot be sent: the OpenAI-compatible target for model `{}` does not \
                 accept top_k (standard OpenAI chat completions has no top_k); remove `top_k`",
                target.model
            ))
        }
        Some(v) => return err(format!("`top_k` must be an integer, not {}", kind(v))),
    }
    match obj.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(seqs)) => {
            if let Some(bad) = seqs.iter().find(|s| !s.is_string()) {
                return err(format!("`stop_sequences` must hold strings, not {}", kind(bad)));
            }
            if !seqs.is_empty() {
                out.insert("stop".into(), Value::Array(seqs.clone()));
            }
        }
        Some(v) => return err(format!("`stop_sequences` must be an array of strings, not {}", kind(v))),
    }

    // tools
    match obj.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            let converted = tools.iter().enumerate().map(|(i, t)| convert_tool(t, i)).collect::<Result<Vec<_>, _>>()?;
            if !converted.is_empty() {
                out.insert("tools".into(), Value::Array(converted));
            }
        }
        Some(v) => return err(format!("`tools` must be an array, not {}", kind(v))),
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(tc) => {
            let (choice, parallel) = convert_tool_choice(tc)?;
            out.insert("tool_choice".into(), choice);
            if let Some(p) = parallel {
                out.insert("parallel_tool_calls".into(), Value::Bool(p));
            }
        }
    }

    // metadata
    match obj.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(meta)) => {
            if let Some(keys) = unknown_keys(meta, &["user_id"]) {
                return err(format!(
                    "unsupported key(s) {keys} in `metadata`: only `user_id` can be carried (as `user`)"
                ));
            }
            match meta.get("user_id") {
                None | Some(Value::Null) => {}
                Some(Value::String(u)) => {
                    out.insert("user".into(), Value::String(u.clone()));
                }
                Some(v) => return err(format!("`metadata.user_id` must be a string, not {}", kind(v))),
            }
        }
        Some(v) => return err(format!("`metadata` must be an object, not {}", kind(v))),
    }

    Ok(Value::Object(out))
}

/// The error for a body without `messages`, naming the model family it looks like.
fn not_claude(obj: &Obj) -> ConvertError {
    let family = if obj.contains_key("inputText") {
        Some("an Amazon Titan text body")
    } else if obj.contains_key("schemaVersion") || obj.contains_key("inferenceConfig") {
        Some("an Amazon Nova body")
    } else if obj.contains_key("prompt") {
        Some("a text-completion body (Meta Llama, Mistral, …)")
    } else if obj.contains_key("texts") || obj.contains_key("inputImage") {
        Some("an embedding body")
    } else if obj.contains_key("message") || obj.contains_key("chat_history") {
        Some("a Cohere Command body")
    } else {
        None
    };
    let keys: Vec<String> = obj.keys().map(|k| format!("`{k}`")).collect();
    let keys = if keys.is_empty() { "none".to_string() } else { keys.join(", ") };
    let looks = family.map(|f| format!(", it looks like {f}")).unwrap_or_default();
    ConvertError::new(format!(
        "not a Claude Messages body: it has no `messages` (keys: {keys}){looks}; \
         OpenAI-compatible mode converts only Anthropic Claude Messages bodies"
    ))
}

/// The system prompt as one string (`None` when empty).
fn system_text(system: &Value) -> Result<Option<String>, ConvertError> {
    match system {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                let at = format!("system[{i}]");
                let o = block_obj(b, &at)?;
                match block_type(o, &at)? {
                    "text" => texts.push(text_block(o, &at)?.to_string()),
                    other => {
                        return err(format!("{at}: `{other}` blocks are not allowed in `system` (only `text` blocks)"))
                    }
                }
            }
            if texts.is_empty() {
                Ok(None)
            } else {
                Ok(Some(texts.join("\n")))
            }
        }
        v => err(format!("`system` must be a string or an array of text blocks, not {}", kind(v))),
    }
}

fn block_obj<'a>(b: &'a Value, at: &str) -> Result<&'a Obj, ConvertError> {
    b.as_object().ok_or_else(|| ConvertError::new(format!("{at}: a content block must be an object, not {}", kind(b))))
}

fn block_type<'a>(o: &'a Obj, at: &str) -> Result<&'a str, ConvertError> {
    match o.get("type") {
        Some(Value::String(t)) => Ok(t),
        _ => err(format!("{at}: a content block needs a string `type`")),
    }
}

fn check_keys(o: &Obj, allowed: &[&str], at: &str) -> Result<(), ConvertError> {
    match unknown_keys(o, allowed) {
        None => Ok(()),
        Some(keys) => {
            let t = o.get("type").and_then(Value::as_str).unwrap_or("?");
            err(format!("{at}: unsupported key(s) {keys} in a `{t}` block cannot be carried to OpenAI"))
        }
    }
}

fn str_field<'a>(o: &'a Obj, key: &str, at: &str) -> Result<&'a str, ConvertError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => err(format!("{at}: `{key}` must be a string, not {}", kind(v))),
        None => err(format!("{at}: `{key}` is missing")),
    }
}

fn opt_str<'a>(o: &'a Obj, key: &str, at: &str) -> Result<Option<&'a str>, ConvertError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => err(format!("{at}: `{key}` must be a string, not {}", kind(v))),
    }
}

/// A `text` block's text (checks its keys; non-empty `citations` cannot be carried).
fn text_block<'a>(o: &'a Obj, at: &str) -> Result<&'a str, ConvertError> {
    check_keys(o, &["type", "text", "cache_control", "citations"], at)?;
    match o.get("citations") {
        None | Some(Value::Null) => {}
        Some(Value::Array(c)) if c.is_empty() => {}
        Some(_) => return err(format!("{at}: `citations` on a text block cannot be carried to OpenAI")),
    }
    str_field(o, "text", at)
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// An `image` block → an `image_url` part.
fn image_part(o: &Obj, at: &str) -> Result<Value, ConvertError> {
    check_keys(o, &["type", "source", "cache_control"], at)?;
    let Some(source) = o.get("source").and_then(Value::as_object) else {
        return err(format!("{at}: an image block needs a `source` object"));
    };
    let sat = format!("{at}.source");
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            check_keys(source, &["type", "media_type", "data"], &sat)?;
            let media_type = str_field(source, "media_type", &sat)?;
            let data = str_field(source, "data", &sat)?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => {
            check_keys(source, &["type", "url"], &sat)?;
            str_field(source, "url", &sat)?.to_string()
        }
        Some(other) => {
            return err(format!(
                "{sat}: image source type `{other}` cannot be carried to OpenAI (only `base64` and `url`)"
            ))
        }
        None => return err(format!("{sat}: `type` is missing")),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `document` block → content parts.
fn document_parts(o: &Obj, at: &str, target: &OpenAiTarget) -> Result<Vec<Value>, ConvertError> {
    check_keys(o, &["type", "source", "title", "context", "citations", "cache_control"], at)?;
    match o.get("citations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) if c.get("enabled").and_then(Value::as_bool) != Some(true) => {}
        Some(_) => {
            return err(format!(
                "{at}: document citations cannot be carried: OpenAI chat completions returns no citations"
            ))
        }
    }
    let title = opt_str(o, "title", at)?.filter(|t| !t.is_empty());
    let context = opt_str(o, "context", at)?.filter(|c| !c.is_empty());
    let Some(source) = o.get("source").and_then(Value::as_object) else {
        return err(format!("{at}: a document block needs a `source` object"));
    };
    let sat = format!("{at}.source");
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            check_keys(source, &["type", "media_type", "data"], &sat)?;
            let media_type = opt_str(source, "media_type", &sat)?.unwrap_or("application/pdf");
            let data = str_field(source, "data", &sat)?;
            if !target.supports_file_parts {
                return err(format!(
                    "{at}: a `{media_type}` document cannot be sent: the OpenAI-compatible target \
                     for model `{}` does not accept file content parts",
                    target.model
                ));
            }
            let mut parts = Vec::new();
            if let Some(c) = context {
                parts.push(text_part(c));
            }
            parts.push(json!({
                "type": "file",
                "file": {
                    "filename": title.unwrap_or("document.pdf"),
                    "file_data": format!("data:{media_type};base64,{data}"),
                }
            }));
            Ok(parts)
        }
        Some("text") => {
            check_keys(source, &["type", "media_type", "data"], &sat)?;
            let data = str_field(source, "data", &sat)?;
            let mut text = String::new();
            for head in [title, context].into_iter().flatten() {
                text.push_str(head);
                text.push_str("\n\n");
            }
            text.push_str(data);
            Ok(vec![text_part(&text)])
        }
        Some("content") => {
            check_keys(source, &["type", "content"], &sat)?;
            let mut parts = Vec::new();
            let head: Vec<&str> = [title, context].into_iter().flatten().collect();
            if !head.is_empty() {
                parts.push(text_part(&head.join("\n\n")));
            }
            match source.get("content") {
                Some(Value::String(s)) => parts.push(text_part(s)),
                Some(Value::Array(blocks)) => {
                    for (i, b) in blocks.iter().enumerate() {
                        let bat = format!("{sat}.content[{i}]");
                        let bo = block_obj(b, &bat)?;
                        match block_type(bo, &bat)? {
                            "text" => parts.push(text_part(text_block(bo, &bat)?)),
                            "image" => parts.push(image_part(bo, &bat)?),
                            other => {
                                return err(format!(
                                "{bat}: `{other}` blocks cannot appear in a document's content (only text and image)"
                            ))
                            }
                        }
                    }
                }
                _ => return err(format!("{sat}: `content` must be a string or an array of blocks")),
            }
            Ok(parts)
        }
        Some(other) => err(format!(
            "{sat}: a document with a `{other}` source cannot be sent: OpenAI file parts take \
             inline data only (use a base64 or text source)"
        )),
        None => err(format!("{sat}: `type` is missing")),
    }
}

/// A `tool_result` block → the content of a `role:"tool"` message.
fn tool_result(o: &Obj, at: &str) -> Result<Value, ConvertError> {
    check_keys(o, &["type", "tool_use_id", "content", "is_error", "cache_control"], at)?;
    let id = str_field(o, "tool_use_id", at)?;
    let mut content = match o.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                let bat = format!("{at}.content[{i}]");
                let bo = block_obj(b, &bat)?;
                match block_type(bo, &bat)? {
                    "text" => texts.push(text_block(bo, &bat)?),
                    other => {
                        return err(format!(
                            "{bat}: a `{other}` block inside a tool_result cannot be carried: \
                             OpenAI tool messages take text only"
                        ))
                    }
                }
            }
            texts.join("\n")
        }
        Some(v) => return err(format!("{at}: `content` must be a string or an array of blocks, not {}", kind(v))),
    };
    match o.get("is_error") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            content = if content.is_empty() { "Error".to_string() } else { format!("Error: {content}") };
        }
        Some(v) => return err(format!("{at}: `is_error` must be a boolean, not {}", kind(v))),
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// User content parts → `content`: a plain string when the only part is text.
fn user_content(parts: Vec<Value>) -> Value {
    if parts.len() == 1 && parts[0]["type"] == "text" {
        return parts[0]["text"].clone();
    }
    if parts.is_empty() {
        return Value::String(String::new());
    }
    Value::Array(parts)
}

fn convert_message(m: &Value, i: usize, target: &OpenAiTarget, out: &mut Vec<Value>) -> Result<(), ConvertError> {
    let at = format!("messages[{i}]");
    let Some(mo) = m.as_object() else {
        return err(format!("{at}: a message must be an object, not {}", kind(m)));
    };
    if let Some(keys) = unknown_keys(mo, &["role", "content"]) {
        return err(format!("{at}: unsupported key(s) {keys} in a message"));
    }
    let role = match mo.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant")) => r,
        Some(r) => return err(format!("{at}: role `{r}` is not a Claude role (`user` or `assistant`)")),
        None => return err(format!("{at}: `role` is missing")),
    };
    let blocks = match mo.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        Some(v) => return err(format!("{at}: `content` must be a string or an array of blocks, not {}", kind(v))),
        None => return err(format!("{at}: `content` is missing")),
    };
    if role == "user" {
        convert_user(blocks, &at, target, out)
    } else {
        convert_assistant(blocks, &at, out)
    }
}

fn convert_user(blocks: &[Value], at: &str, target: &OpenAiTarget, out: &mut Vec<Value>) -> Result<(), ConvertError> {
    let mut parts: Vec<Value> = Vec::new();
    let mut emitted = false;
    for (j, b) in blocks.iter().enumerate() {
        let bat = format!("{at}.content[{j}]");
        let o = block_obj(b, &bat)?;
        match block_type(o, &bat)? {
            "text" => parts.push(text_part(text_block(o, &bat)?)),
            "image" => parts.push(image_part(o, &bat)?),
            "document" => parts.extend(document_parts(o, &bat, target)?),
            "tool_result" => {
                if !parts.is_empty() {
                    out.push(json!({"role": "user", "content": user_content(std::mem::take(&mut parts))}));
                }
                out.push(tool_result(o, &bat)?);
                emitted = true;
            }
            t @ ("tool_use" | "thinking" | "redacted_thinking") => {
                return err(format!("{bat}: `{t}` blocks belong in assistant messages, not user messages"))
            }
            other => return err(format!("{bat}: content block type `{other}` cannot be converted to OpenAI")),
        }
    }
    if !parts.is_empty() || !emitted {
        out.push(json!({"role": "user", "content": user_content(parts)}));
    }
    Ok(())
}

fn convert_assistant(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), ConvertError> {
    let mut texts: Vec<&str> = Vec::new();
    let mut calls: Vec<Value> = Vec::new();
    let mut omitted = 0usize;
    for (j, b) in blocks.iter().enumerate() {
        let bat = format!("{at}.content[{j}]");
        let o = block_obj(b, &bat)?;
        match block_type(o, &bat)? {
            "text" => texts.push(text_block(o, &bat)?),
            "tool_use" => {
                check_keys(o, &["type", "id", "name", "input", "cache_control"], &bat)?;
                let id = str_field(o, "id", &bat)?;
                let name = str_field(o, "name", &bat)?;
                let input = match o.get("input") {
                    Some(v @ Value::Object(_)) => v,
                    Some(v) => return err(format!("{bat}: `input` must be an object, not {}", kind(v))),
                    None => return err(format!("{bat}: `input` is missing")),
                };
                let arguments = serde_json::to_string(input).expect("a JSON value serializes");
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}));
            }
            "thinking" => {
                check_keys(o, &["type", "thinking", "signature"], &bat)?;
                omitted += 1;
            }
            "redacted_thinking" => {
                check_keys(o, &["type", "data"], &bat)?;
                omitted += 1;
            }
            t @ ("tool_result" | "image" | "document") => {
                return err(format!("{bat}: `{t}` blocks belong in user messages, not assistant messages"))
            }
            other => return err(format!("{bat}: content block type `{other}` cannot be converted to OpenAI")),
        }
    }
    if omitted > 0 && omitted == blocks.len() {
        // Only thinking: nothing OpenAI chat can hold.
        return Ok(());
    }
    let content = match texts.len() {
        0 if !calls.is_empty() => Value::Null,
        0 => Value::String(String::new()),
        1 => Value::String(texts[0].to_string()),
        _ => Value::Array(texts.iter().map(|t| text_part(t)).collect()),
    };
    let mut msg = Map::new();
    msg.insert("role".into(), Value::String("assistant".into()));
    msg.insert("content".into(), content);
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(msg));
    Ok(())
}

fn convert_tool(t: &Value, i: usize) -> Result<Value, ConvertError> {
    let at = format!("tools[{i}]");
    let Some(o) = t.as_object() else {
        return err(format!("{at}: a tool must be an object, not {}", kind(t)));
    };
    match o.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "custom" => {}
        Some(Value::String(s)) => {
            let name = o.get("name").and_then(Value::as_str).unwrap_or("?");
            return err(format!(
                "{at}: Anthropic-defined tool `{name}` of type `{s}` (a server or built-in tool) has \
                 no OpenAI function-tool counterpart"
            ));
        }
        Some(v) => return err(format!("{at}: `type` must be a string, not {}", kind(v))),
    }
    if let Some(keys) = unknown_keys(o, &["type", "name", "description", "input_schema", "cache_control"]) {
        return err(format!("{at}: unsupported key(s) {keys} in a tool cannot be carried to OpenAI"));
    }
    let name = str_field(o, "name", &at)?;
    let description = opt_str(o, "description", &at)?.unwrap_or("");
    let parameters = match o.get("input_schema") {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => return err(format!("{at}: `input_schema` must be an object, not {}", kind(v))),
        None => return err(format!("{at}: `input_schema` is missing")),
    };
    Ok(json!({
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters}
    }))
}

/// `tool_choice` → (OpenAI `tool_choice`, `parallel_tool_calls` to send).
fn convert_tool_choice(tc: &Value) -> Result<(Value, Option<bool>), ConvertError> {
    let at = "tool_choice";
    let Some(o) = tc.as_object() else {
        return err(format!("`tool_choice` must be an object, not {}", kind(tc)));
    };
    let t = match o.get("type").and_then(Value::as_str) {
        Some(t) => t,
        None => return err("`tool_choice.type` is missing"),
    };
    let allowed: &[&str] = match t {
        "auto" | "any" => &["type", "disable_parallel_tool_use"],
        "tool" => &["type", "name", "disable_parallel_tool_use"],
        "none" => &["type"],
        other => return err(format!("`tool_choice.type` `{other}` is not one of auto, any, tool, none")),
    };
    if let Some(keys) = unknown_keys(o, allowed) {
        return err(format!("unsupported key(s) {keys} in a `{t}` tool_choice"));
    }
    let parallel = match o.get("disable_parallel_tool_use") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(false),
        Some(v) => return err(format!("`tool_choice.disable_parallel_tool_use` must be a boolean, not {}", kind(v))),
    };
    let choice = match t {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        _ => json!({"type": "function", "function": {"name": str_field(o, "name", at)?}}),
    };
    Ok((choice, parallel))
}
