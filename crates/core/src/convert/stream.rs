//! A whole answer → the stream events a streaming call would have given: ConverseStream events
//! from a Converse response, and InvokeModelWithResponseStream chunk payloads from a native body.
//! The formats and rules are in the [module documentation](super).

use serde_json::{json, Map, Value};

use super::converse::{arr, count, err, obj, str_member, union, Obj};
use super::converse_claude::claude_usage;
use super::converse_nova::nova_usage;
use super::family::{model_family, ModelFamily};
use super::{kind, ConvertError};

/// The most characters (Unicode scalar values) one text, reasoning or tool-input delta carries.
pub const STREAM_DELTA_CHARS: usize = 100;

/// `text` cut into stream deltas: pieces of at most [`STREAM_DELTA_CHARS`] characters, each cut
/// just after the last whitespace of its window when that whitespace lies in the window's second
/// half (so words stay whole), else after exactly [`STREAM_DELTA_CHARS`] characters. An empty text
/// is one empty piece. Concatenating the pieces gives `text` back.
pub fn split_deltas(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let mut end = None;
        let mut last_space = None;
        for (n, (i, c)) in rest.char_indices().enumerate() {
            if n == STREAM_DELTA_CHARS {
                end = Some(i);
                break;
            }
            if c.is_whitespace() && n >= STREAM_DELTA_CHARS / 2 {
                last_space = Some(i + c.len_utf8());
            }
        }
        match end {
            None => {
                out.push(rest);
                return out;
            }
            Some(hard) => {
                let cut = last_space.unwrap_or(hard);
                out.push(&rest[..cut]);
                rest = &rest[cut..];
                if rest.is_empty() {
                    return out;
                }
            }
        }
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).expect("a JSON value serializes")
}

fn delta(index: usize, d: Value) -> Value {
    json!({"contentBlockDelta": {"delta": d, "contentBlockIndex": index}})
}

fn block_start(index: usize, start: Value) -> Value {
    json!({"contentBlockStart": {"start": start, "contentBlockIndex": index}})
}

fn block_stop(index: usize) -> Value {
    json!({"contentBlockStop": {"contentBlockIndex": index}})
}

/// The content-block events of a Converse (or Nova native) message, in order.
fn content_events(content: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), ConvertError> {
    for (i, b) in content.iter().enumerate() {
        let bat = format!("{at}[{i}]");
        let (member, v) = union(b, &bat)?;
        let mat = format!("{bat}.{member}");
        match member {
            "text" => {
                let Some(t) = v.as_str() else {
                    return err(format!("{mat} must be a string, not {}", kind(v)));
                };
                out.extend(split_deltas(t).into_iter().map(|p| delta(i, json!({"text": p}))));
            }
            "toolUse" => {
                let o = obj(v, &mat)?;
                let mut start = Map::new();
                start.insert("toolUseId".into(), json!(str_member(o, "toolUseId", &mat)?));
                start.insert("name".into(), json!(str_member(o, "name", &mat)?));
                if let Some(t) = o.get("type").filter(|t| !t.is_null()) {
                    start.insert("type".into(), t.clone());
                }
                out.push(block_start(i, json!({"toolUse": start})));
                let input = compact(o.get("input").unwrap_or(&Value::Object(Map::new())));
                out.extend(split_deltas(&input).into_iter().map(|p| delta(i, json!({"toolUse": {"input": p}}))));
            }
            "reasoningContent" => match union(v, &mat)? {
                ("reasoningText", rt) => {
                    let rat = format!("{mat}.reasoningText");
                    let ro = obj(rt, &rat)?;
                    let text = str_member(ro, "text", &rat)?;
                    out.extend(
                        split_deltas(text).into_iter().map(|p| delta(i, json!({"reasoningContent": {"text": p}}))),
                    );
                    if let Some(sig) = ro.get("signature").filter(|s| !s.is_null()) {
                        out.push(delta(i, json!({"reasoningContent": {"signature": sig}})));
                    }
                }
                ("redactedContent", data) => out.push(delta(i, json!({"reasoningContent": {"redactedContent": data}}))),
                (m, _) => return err(format!("{mat}: unknown reasoning member `{m}`")),
            },
            "citationsContent" => {
                let o = obj(v, &mat)?;
                let mut text = String::new();
                for (k, c) in arr(o.get("content").unwrap_or(&json!([])), &format!("{mat}.content"))?.iter().enumerate()
                {
                    match c.get("text").and_then(Value::as_str) {
                        Some(t) => text.push_str(t),
                        None => return err(format!("{mat}.content[{k}] has no text")),
                    }
                }
                out.extend(split_deltas(&text).into_iter().map(|p| delta(i, json!({"text": p}))));
                for c in arr(o.get("citations").unwrap_or(&json!([])), &format!("{mat}.citations"))? {
                    out.push(delta(i, json!({"citation": c})));
                }
            }
            "image" => {
                let o = obj(v, &mat)?;
                out.push(block_start(i, json!({"image": {"format": str_member(o, "format", &mat)?}})));
                out.push(delta(i, json!({"image": {"source": o.get("source").cloned().unwrap_or(Value::Null)}})));
            }
            "toolResult" => {
                let o = obj(v, &mat)?;
                let mut start = Map::new();
                start.insert("toolUseId".into(), json!(str_member(o, "toolUseId", &mat)?));
                for key in ["type", "status"] {
                    if let Some(x) = o.get(key).filter(|x| !x.is_null()) {
                        start.insert(key.into(), x.clone());
                    }
                }
                out.push(block_start(i, json!({"toolResult": start})));
                out.push(delta(i, json!({"toolResult": o.get("content").cloned().unwrap_or(json!([]))})));
            }
            other => return err(format!("{mat}: a `{other}` block has no ConverseStream form")),
        }
        out.push(block_stop(i));
    }
    Ok(())
}

/// Converse response → the ConverseStream events a streaming call would have given, each shaped
/// `{"<event>": {…}}` as the members of `ConverseStreamOutput`:
///
/// 1. `messageStart{role}`;
/// 2. per content block `i`: `contentBlockStart{start, contentBlockIndex: i}` for `toolUse`
///    (`{toolUseId, name, type?}`), `image` (`{format}`) and `toolResult` (`{toolUseId, type?,
///    status?}`) blocks; then the deltas: `text` cut by [`split_deltas`]; `toolUse.input` as compact
///    JSON text cut the same way; `reasoningContent.text` cut the same way and then its
///    `signature` in one delta; `redactedContent` in one delta; `citationsContent` as its texts
///    (joined) then one `citation` delta per citation; an image's `source` in one delta; a tool
///    result's content list in one delta; then `contentBlockStop{contentBlockIndex: i}`;
/// 3. `messageStop{stopReason, additionalModelResponseFields?}`;
/// 4. `metadata{usage, metrics, trace?, performanceConfig?, serviceTier?}`.
pub fn converse_stream_events(response: &Value) -> Result<Vec<Value>, ConvertError> {
    let Some(o) = response.as_object() else {
        return err(format!("the Converse response is {}, not a JSON object", kind(response)));
    };
    let Some(message) = response.pointer("/output/message").and_then(Value::as_object) else {
        return err("the Converse response has no `output.message`");
    };
    let role = message.get("role").and_then(Value::as_str).unwrap_or("assistant");
    let mut events = vec![json!({"messageStart": {"role": role}})];
    content_events(
        arr(message.get("content").unwrap_or(&Value::Null), "output.message.content")?,
        "output.message.content",
        &mut events,
    )?;
    let mut stop = Map::new();
    match o.get("stopReason") {
        Some(s @ Value::String(_)) => {
            stop.insert("stopReason".into(), s.clone());
        }
        _ => return err("the Converse response has no `stopReason`"),
    }
    if let Some(f) = o.get("additionalModelResponseFields").filter(|v| !v.is_null()) {
        stop.insert("additionalModelResponseFields".into(), f.clone());
    }
    events.push(json!({"messageStop": stop}));
    let mut meta = Map::new();
    for key in ["usage", "metrics"] {
        match o.get(key).filter(|v| v.is_object()) {
            Some(v) => {
                meta.insert(key.into(), v.clone());
            }
            None => return err(format!("the Converse response has no `{key}` object")),
        }
    }
    for key in ["trace", "performanceConfig", "serviceTier"] {
        if let Some(v) = o.get(key).filter(|v| !v.is_null()) {
            meta.insert(key.into(), v.clone());
        }
    }
    events.push(json!({"metadata": meta}));
    Ok(events)
}

/// The `amazon-bedrock-invocationMetrics` object Bedrock puts on the last stream chunk, from a
/// native answer's token counts: `inputTokenCount`, `outputTokenCount`, `invocationLatency`,
/// `firstByteLatency`, and for Claude and Nova `cacheReadInputTokenCount` and
/// `cacheWriteInputTokenCount` when either is non-zero. Counts are read from Claude's `usage`
/// (`input_tokens` without cached tokens), Nova's `usage`, Llama's `prompt_token_count` /
/// `generation_token_count`, Titan's `inputTextTokenCount` / `results[0].tokenCount`; a Mistral
/// body carries no counts, so they are 0 there.
pub fn invocation_metrics(
    model_id_or_family: &str,
    response_body: &Value,
    invocation_latency_ms: u64,
    first_byte_latency_ms: u64,
) -> Result<Value, ConvertError> {
    let family = family_of(model_id_or_family)?;
    let (input, output, cache_read, cache_write) = match family {
        ModelFamily::Claude => {
            let u = claude_usage(response_body.get("usage").unwrap_or(&Value::Null))?;
            (u.input, u.output, u.cache_read, u.cache_write)
        }
        ModelFamily::Nova => {
            let u = nova_usage(response_body.get("usage").unwrap_or(&Value::Null))?;
            (u.input, u.output, u.cache_read, u.cache_write)
        }
        ModelFamily::Llama => (
            count(response_body, "prompt_token_count", "body")?.unwrap_or(0),
            count(response_body, "generation_token_count", "body")?.unwrap_or(0),
            0,
            0,
        ),
        ModelFamily::Titan => (
            count(response_body, "inputTextTokenCount", "body")?.unwrap_or(0),
            count(response_body.pointer("/results/0").unwrap_or(&Value::Null), "tokenCount", "results[0]")?
                .unwrap_or(0),
            0,
            0,
        ),
        ModelFamily::Mistral => (0, 0, 0, 0),
    };
    let mut m = Map::new();
    m.insert("inputTokenCount".into(), json!(input));
    m.insert("outputTokenCount".into(), json!(output));
    m.insert("invocationLatency".into(), json!(invocation_latency_ms));
    m.insert("firstByteLatency".into(), json!(first_byte_latency_ms));
    if cache_read > 0 || cache_write > 0 {
        m.insert("cacheReadInputTokenCount".into(), json!(cache_read));
        m.insert("cacheWriteInputTokenCount".into(), json!(cache_write));
    }
    Ok(Value::Object(m))
}

fn family_of(model_id_or_family: &str) -> Result<ModelFamily, ConvertError> {
    model_family(model_id_or_family).ok_or_else(|| {
        ConvertError::new(format!("no stream format is known for model `{model_id_or_family}` (Claude, Nova, Llama, Titan Text and Mistral have one)"))
    })
}

/// A native InvokeModel answer → the payloads of the InvokeModelWithResponseStream chunks a
/// streaming call would have given (each the JSON carried in a chunk's `bytes`), in the family's
/// own streaming format. `invocation_metrics` (see [`invocation_metrics`]) goes on the last chunk
/// as `amazon-bedrock-invocationMetrics`; `Value::Null` leaves it out.
///
/// The formats, per family, are listed in the [module documentation](super).
pub fn native_stream_chunks(
    model_id_or_family: &str,
    response_body: &Value,
    invocation_metrics: &Value,
) -> Result<Vec<Value>, ConvertError> {
    let Some(body) = response_body.as_object() else {
        return err(format!("the response body is {}, not a JSON object", kind(response_body)));
    };
    let mut chunks = match family_of(model_id_or_family)? {
        ModelFamily::Claude => claude_chunks(body)?,
        ModelFamily::Nova => nova_chunks(response_body)?,
        ModelFamily::Llama => llama_chunks(body)?,
        ModelFamily::Titan => titan_chunks(body)?,
        ModelFamily::Mistral => mistral_chunks(body)?,
    };
    if !invocation_metrics.is_null() {
        let last = chunks.last_mut().and_then(Value::as_object_mut).expect("every format gives at least one chunk");
        last.insert("amazon-bedrock-invocationMetrics".into(), invocation_metrics.clone());
    }
    Ok(chunks)
}

/// Claude Messages stream events (Anthropic's streaming format, as Bedrock relays it).
fn claude_chunks(body: &Obj) -> Result<Vec<Value>, ConvertError> {
    let content = arr(body.get("content").unwrap_or(&Value::Null), "content")?;
    let usage = body.get("usage").cloned().unwrap_or_else(|| json!({}));
    if !usage.is_object() {
        return err(format!("`usage` must be an object, not {}", kind(&usage)));
    }
    // message_start: the message without content, stop reason or output tokens yet.
    let mut start = body.clone();
    start.insert("content".into(), json!([]));
    start.insert("stop_reason".into(), Value::Null);
    start.insert("stop_sequence".into(), Value::Null);
    start.shift_remove("stop_details");
    let mut start_usage = usage.as_object().cloned().unwrap_or_default();
    start_usage.insert("output_tokens".into(), json!(0));
    start.insert("usage".into(), Value::Object(start_usage));
    let mut out = vec![json!({"type": "message_start", "message": start})];

    for (i, b) in content.iter().enumerate() {
        let at = format!("content[{i}]");
        let o = obj(b, &at)?;
        let cbd = |d: Value| json!({"type": "content_block_delta", "index": i, "delta": d});
        match o.get("type").and_then(Value::as_str) {
            Some("text") => {
                if o.get("citations").is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
                    return err(format!("{at}: a text block with citations has no stream form in this converter"));
                }
                out.push(
                    json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                );
                for p in split_deltas(str_member(o, "text", &at)?) {
                    out.push(cbd(json!({"type": "text_delta", "text": p})));
                }
            }
            Some("tool_use") => {
                let mut cb = o.clone();
                cb.insert("input".into(), json!({}));
                out.push(json!({"type": "content_block_start", "index": i, "content_block": cb}));
                for p in split_deltas(&compact(o.get("input").unwrap_or(&json!({})))) {
                    out.push(cbd(json!({"type": "input_json_delta", "partial_json": p})));
                }
            }
            Some("thinking") => {
                out.push(json!({"type": "content_block_start", "index": i, "content_block": {"type": "thinking", "thinking": ""}}));
                for p in split_deltas(str_member(o, "thinking", &at)?) {
                    out.push(cbd(json!({"type": "thinking_delta", "thinking": p})));
                }
                if let Some(sig) = o.get("signature").filter(|s| !s.is_null()) {
                    out.push(cbd(json!({"type": "signature_delta", "signature": sig})));
                }
            }
            Some("redacted_thinking") => {
                out.push(json!({"type": "content_block_start", "index": i, "content_block": b}))
            }
            Some(other) => return err(format!("{at}: a `{other}` block has no stream form in this converter")),
            None => return err(format!("{at}: a content block without `type`")),
        }
        out.push(json!({"type": "content_block_stop", "index": i}));
    }

    let mut d = Map::new();
    d.insert("stop_reason".into(), body.get("stop_reason").cloned().unwrap_or(Value::Null));
    d.insert("stop_sequence".into(), body.get("stop_sequence").cloned().unwrap_or(Value::Null));
    if let Some(sd) = body.get("stop_details") {
        d.insert("stop_details".into(), sd.clone());
    }
    // Bedrock relays Claude's message_delta with the output tokens only (the input counts came
    // with message_start).
    let output_tokens = usage.get("output_tokens").cloned().unwrap_or(json!(0));
    out.push(json!({"type": "message_delta", "delta": d, "usage": {"output_tokens": output_tokens}}));
    out.push(json!({"type": "message_stop"}));
    Ok(out)
}

/// Nova native stream: the ConverseStream event shapes, usage with Nova's own names in `metadata`.
fn nova_chunks(body: &Value) -> Result<Vec<Value>, ConvertError> {
    let Some(message) = body.pointer("/output/message").and_then(Value::as_object) else {
        return err("not a Nova response: it has no `output.message`");
    };
    let role = message.get("role").and_then(Value::as_str).unwrap_or("assistant");
    let mut out = vec![json!({"messageStart": {"role": role}})];
    content_events(
        arr(message.get("content").unwrap_or(&Value::Null), "output.message.content")?,
        "output.message.content",
        &mut out,
    )?;
    match body.get("stopReason") {
        Some(s @ Value::String(_)) => out.push(json!({"messageStop": {"stopReason": s}})),
        _ => return err("the Nova response has no `stopReason`"),
    }
    let usage = body.get("usage").cloned().unwrap_or_else(|| json!({}));
    out.push(json!({"metadata": {"usage": usage, "metrics": {}, "trace": {}}}));
    Ok(out)
}

/// One text cut into chunks; `make(piece, first, last)` builds each chunk.
fn text_chunks(text: &str, mut make: impl FnMut(&str, bool, bool) -> Value) -> Vec<Value> {
    let pieces = split_deltas(text);
    let n = pieces.len();
    pieces.into_iter().enumerate().map(|(k, p)| make(p, k == 0, k + 1 == n)).collect()
}

fn first_last(v: Option<&Value>, yes: bool) -> Value {
    if yes {
        v.cloned().unwrap_or(Value::Null)
    } else {
        Value::Null
    }
}

/// Llama: `{generation, prompt_token_count, generation_token_count, stop_reason}` per chunk.
fn llama_chunks(body: &Obj) -> Result<Vec<Value>, ConvertError> {
    let text = str_member(body, "generation", "the Llama response")?;
    Ok(text_chunks(text, |p, first, last| {
        json!({
            "generation": p,
            "prompt_token_count": first_last(body.get("prompt_token_count"), first),
            "generation_token_count": first_last(body.get("generation_token_count"), last),
            "stop_reason": first_last(body.get("stop_reason"), last),
        })
    }))
}

/// Titan Text: `{outputText, index, totalOutputTextTokenCount, completionReason, inputTextTokenCount}` per chunk.
fn titan_chunks(body: &Obj) -> Result<Vec<Value>, ConvertError> {
    let results = arr(body.get("results").unwrap_or(&Value::Null), "results")?;
    let [result] = results.as_slice() else {
        return err(format!("the Titan response has {} results; a stream carries one", results.len()));
    };
    let r = obj(result, "results[0]")?;
    let text = str_member(r, "outputText", "results[0]")?;
    let mut index = 0;
    Ok(text_chunks(text, |p, first, last| {
        let c = json!({
            "outputText": p,
            "index": index,
            "totalOutputTextTokenCount": first_last(r.get("tokenCount"), last),
            "completionReason": first_last(r.get("completionReason"), last),
            "inputTextTokenCount": first_last(body.get("inputTextTokenCount"), first),
        });
        index += 1;
        c
    }))
}

/// Mistral: text completions (`outputs`) or chat completions (`choices`), each chunk shaped as the
/// response with a piece of the text.
fn mistral_chunks(body: &Obj) -> Result<Vec<Value>, ConvertError> {
    if let Some(outputs) = body.get("outputs") {
        let outputs = arr(outputs, "outputs")?;
        let [output] = outputs.as_slice() else {
            return err(format!("the Mistral response has {} outputs; a stream carries one", outputs.len()));
        };
        let o = obj(output, "outputs[0]")?;
        let text = str_member(o, "text", "outputs[0]")?;
        return Ok(text_chunks(
            text,
            |p, _, last| json!({"outputs": [{"text": p, "stop_reason": first_last(o.get("stop_reason"), last)}]}),
        ));
    }
    let choices = arr(body.get("choices").unwrap_or(&Value::Null), "choices")?;
    let [choice] = choices.as_slice() else {
        return err(format!("the Mistral response has {} choices; a stream carries one", choices.len()));
    };
    let c = obj(choice, "choices[0]")?;
    let m = obj(c.get("message").unwrap_or(&Value::Null), "choices[0].message")?;
    let role = m.get("role").cloned().unwrap_or_else(|| json!("assistant"));
    let index = c.get("index").cloned().unwrap_or_else(|| json!(0));
    let chunk = |content: Value, last: bool| {
        let mut msg = Map::new();
        msg.insert("role".into(), role.clone());
        msg.insert("content".into(), content);
        if last {
            if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null()) {
                msg.insert("tool_calls".into(), calls.clone());
            }
        }
        json!({"choices": [{"index": index, "message": msg, "stop_reason": first_last(c.get("stop_reason"), last)}]})
    };
    match m.get("content") {
        Some(Value::String(text)) => Ok(text_chunks(text, |p, _, last| chunk(json!(p), last))),
        None | Some(Value::Null) => Ok(vec![chunk(Value::Null, true)]),
        Some(v) => err(format!("choices[0].message.content must be a string or null, not {}", kind(v))),
    }
}
