//! Converse request → Amazon Nova native InvokeModel body (`schemaVersion: "messages-v1"`), and
//! Nova's native answer → Converse response.
//!
//! Nova's native format is the Converse format with blobs as base64 strings (AWS Nova user guide,
//! "Request and response schema"), which is what a restJson1 Converse body already holds: the
//! conversion is mostly a check that every block is one Nova's InvokeModel takes.

use serde_json::{json, Map, Value};

use super::converse::{
    arr, blocks, converse_response, count, err, inference, merge_additional, message, obj, request_obj,
    response_fields, tools, union, Tool, Usage, STOP_REASONS,
};
use super::{kind, ConvertError};

const TARGET: &str = "a Nova InvokeModel body";

/// Converse request (restJson1 body) → the Nova native body for InvokeModel.
///
/// Members keep their Converse names (`inferenceConfig.maxTokens`, `topP`, `stopSequences`, as
/// AWS's Nova Invoke examples use them). `additionalModelRequestFields` merge into the body as
/// given, objects member by member: `{"inferenceConfig": {"topK": 20}}` (AWS's Converse form for
/// Nova's `topK`) joins the body's `inferenceConfig`; nothing is moved elsewhere. Every mapping is
/// listed in the [module documentation](super).
pub fn converse_to_nova(request: &Value) -> Result<Value, ConvertError> {
    let o = request_obj(request, TARGET, false)?;
    let mut body = Map::new();
    body.insert("schemaVersion".into(), json!("messages-v1"));
    if let Some(system) = o.get("system").filter(|v| !v.is_null()) {
        for (i, b) in arr(system, "system")?.iter().enumerate() {
            let at = format!("system[{i}]");
            match union(b, &at)? {
                ("text", Value::String(_)) | ("cachePoint", Value::Object(_)) => {}
                ("guardContent", _) => {
                    return err(format!("{at}.guardContent cannot be carried into {TARGET}: it is for a guardrail, which only Converse runs"))
                }
                (m, _) => return err(format!("{at}: system content block `{m}` cannot be carried into {TARGET}")),
            }
        }
        body.insert("system".into(), system.clone());
    }
    let Some(messages) = o.get("messages").filter(|v| !v.is_null()) else {
        return err("`messages` is required for a Nova body");
    };
    for (i, m) in arr(messages, "messages")?.iter().enumerate() {
        check_message(m, i)?;
    }
    body.insert("messages".into(), messages.clone());
    let inf = inference(o)?;
    let mut ic = Map::new();
    if let Some(n) = inf.max_tokens {
        ic.insert("maxTokens".into(), json!(n));
    }
    inf.put_sampling(&mut ic, ["temperature", "topP", "stopSequences"]);
    if !ic.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(ic));
    }
    if let Some(tc) = o.get("toolConfig").filter(|v| !v.is_null()) {
        // Checked, then carried as it is (Nova's format is Converse's).
        for (tat, t) in tools(tc)?.tools {
            match t {
                Tool::Spec(_) => {}
                Tool::CachePoint(v) => {
                    obj(v, &format!("{tat}.cachePoint"))?;
                }
                Tool::System(v) => {
                    obj(v, &format!("{tat}.systemTool"))?;
                }
            }
        }
        body.insert("toolConfig".into(), tc.clone());
    }
    merge_additional(&mut body, o.get("additionalModelRequestFields"))?;
    Ok(Value::Object(body))
}

fn check_message(m: &Value, i: usize) -> Result<(), ConvertError> {
    let (at, _, content) = message(m, i, TARGET)?;
    for (mat, member, v) in blocks(content, &format!("{at}.content"))? {
        match member {
            "text" | "image" | "video" | "audio" | "toolUse" | "cachePoint" | "reasoningContent" => {}
            "toolResult" => {
                let cat = format!("{mat}.content");
                for (rat, m, _) in blocks(arr(obj(v, &mat)?.get("content").unwrap_or(&Value::Null), &cat)?, &cat)? {
                    if !matches!(m, "text" | "json" | "image" | "video") {
                        return err(format!("{rat}: a `{m}` tool result cannot be carried into {TARGET}"));
                    }
                }
            }
            "document" => {
                return err(format!(
                    "{mat}: Nova's InvokeModel format takes no documents (AWS: document input is specific to the Converse API), so it cannot be carried into {TARGET}"
                ))
            }
            "guardContent" => return err(format!("{mat} cannot be carried into {TARGET}: it is for a guardrail, which only Converse runs")),
            other => return err(format!("{mat}: content block `{other}` cannot be carried into {TARGET}")),
        }
    }
    Ok(())
}

/// Nova native response body → Converse response.
///
/// `request` is the Converse request it answers (for `additionalModelResponseFieldPaths`);
/// `latency_ms` becomes `metrics.latencyMs`.
pub fn nova_to_converse(response: &Value, request: &Value, latency_ms: u64) -> Result<Value, ConvertError> {
    let Some(o) = response.as_object() else {
        return err(format!("the Nova response is {}, not a JSON object", kind(response)));
    };
    let Some(message) = response.pointer("/output/message").and_then(Value::as_object) else {
        return err("not a Nova response: it has no `output.message`");
    };
    let content = arr(message.get("content").unwrap_or(&Value::Null), "output.message.content")?;
    for (at, member, _) in blocks(content, "output.message.content")? {
        if !matches!(
            member,
            "text" | "toolUse" | "reasoningContent" | "image" | "citationsContent" | "toolResult" | "video" | "audio"
        ) {
            return err(format!("{at}: Nova content block `{member}` has no place in a Converse answer"));
        }
    }
    let stop_reason = match o.get("stopReason") {
        Some(Value::String(s)) if STOP_REASONS.contains(&s.as_str()) => s.as_str(),
        Some(Value::String(s)) => return err(format!("Nova's stopReason `{s}` is not a Converse stopReason")),
        Some(v) => return err(format!("the Nova response's stopReason must be a string, not {v}")),
        None => return err("the Nova response has no stopReason"),
    };
    let usage = nova_usage(o.get("usage").unwrap_or(&Value::Null))?;
    Ok(converse_response(content.clone(), stop_reason, &usage, latency_ms, response_fields(response, request)?))
}

/// Nova `usage` → token counts. InvokeModel names the cache counts `cacheReadInputTokenCount` /
/// `cacheWriteInputTokenCount`; the Converse names are read too.
pub(super) fn nova_usage(u: &Value) -> Result<Usage, ConvertError> {
    let at = "usage";
    if !u.is_object() && !u.is_null() {
        return err(format!("`usage` must be an object, not {}", kind(u)));
    }
    let either =
        |a: &str, b: &str| -> Result<u64, ConvertError> { Ok(count(u, a, at)?.or(count(u, b, at)?).unwrap_or(0)) };
    Ok(Usage {
        input: count(u, "inputTokens", at)?.unwrap_or(0),
        output: count(u, "outputTokens", at)?.unwrap_or(0),
        cache_read: either("cacheReadInputTokenCount", "cacheReadInputTokens")?,
        cache_write: either("cacheWriteInputTokenCount", "cacheWriteInputTokens")?,
        total: count(u, "totalTokens", at)?,
        cache_details: u.get("cacheDetails").filter(|d| d.is_array()).cloned(),
    })
}
