//! Pieces shared by the Converse converters: reading the request's unions, merging
//! `additionalModelRequestFields`, answering `additionalModelResponseFieldPaths`, and building
//! the Converse response.

use serde_json::{json, Map, Value};

use super::{kind, unknown_keys, ConvertError};

pub(super) type Obj = Map<String, Value>;

pub(super) fn err<T>(message: impl Into<String>) -> Result<T, ConvertError> {
    Err(ConvertError::new(message))
}

/// The `StopReason` enum of the service model (bedrock-runtime 2023-09-30).
pub(super) const STOP_REASONS: &[&str] = &[
    "end_turn",
    "tool_use",
    "max_tokens",
    "stop_sequence",
    "guardrail_intervened",
    "content_filtered",
    "malformed_model_output",
    "malformed_tool_use",
    "model_context_window_exceeded",
];

/// Every member of `ConverseRequest` that can appear in a restJson1 body (`modelId` is in the URI).
const REQUEST_MEMBERS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "projectIdentifier",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
];

/// The request as an object, checked for unknown members and for the members no native body or
/// chat request can carry (`guardrailConfig`, `promptVariables`, and `outputConfig` unless the
/// caller handles it).
///
/// `performanceConfig`, `serviceTier`, `requestMetadata` and `projectIdentifier` choose how and
/// where the call runs, not what the model sees; InvokeModel carries them as headers
/// (`X-Amzn-Bedrock-PerformanceConfig-Latency`, `…-Service-Tier`, `…-Request-Metadata`,
/// `…-ProjectIdentifier`), so a native body has no place for them: the converters leave them to
/// the caller.
pub(super) fn request_obj<'a>(
    req: &'a Value,
    target: &str,
    takes_output_config: bool,
) -> Result<&'a Obj, ConvertError> {
    let Some(o) = req.as_object() else {
        return err(format!("the Converse request is {}, not a JSON object", kind(req)));
    };
    if let Some(keys) = unknown_keys(o, REQUEST_MEMBERS) {
        return err(format!("unknown member(s) {keys} in the Converse request (a restJson1 Converse body has no `modelId`: it is in the URI)"));
    }
    if o.get("guardrailConfig").is_some_and(|v| !v.is_null()) {
        return err(format!("`guardrailConfig` cannot be carried into {target}: a guardrail runs in the Converse API itself (send the request on-demand)"));
    }
    if o.get("promptVariables").is_some_and(|v| !v.is_null()) {
        return err(format!("`promptVariables` cannot be carried into {target}: they fill a Prompt management prompt, which only the Converse API resolves"));
    }
    if !takes_output_config && o.get("outputConfig").is_some_and(|v| !v.is_null()) {
        return err(format!("`outputConfig` (structured output / effort) cannot be carried into {target}"));
    }
    if let Some(paths) = o.get("additionalModelResponseFieldPaths") {
        field_paths(paths)?;
    }
    Ok(o)
}

/// A JSON object at `at`.
pub(super) fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Obj, ConvertError> {
    v.as_object().ok_or_else(|| ConvertError::new(format!("{at} must be an object, not {}", kind(v))))
}

/// An array at `at`.
pub(super) fn arr<'a>(v: &'a Value, at: &str) -> Result<&'a Vec<Value>, ConvertError> {
    v.as_array().ok_or_else(|| ConvertError::new(format!("{at} must be an array, not {}", kind(v))))
}

/// A required string member.
pub(super) fn str_member<'a>(o: &'a Obj, key: &str, at: &str) -> Result<&'a str, ConvertError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => err(format!("{at}.{key} must be a string, not {}", kind(v))),
        None => err(format!("{at}.{key} is missing")),
    }
}

/// An optional string member.
pub(super) fn opt_str<'a>(o: &'a Obj, key: &str, at: &str) -> Result<Option<&'a str>, ConvertError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => err(format!("{at}.{key} must be a string, not {}", kind(v))),
    }
}

/// Only `allowed` keys in `o`.
pub(super) fn check_keys(o: &Obj, allowed: &[&str], at: &str) -> Result<(), ConvertError> {
    match unknown_keys(o, allowed) {
        Some(keys) => err(format!("{at}: unknown member(s) {keys}")),
        None => Ok(()),
    }
}

/// The one member set in a union (`{"text": …}`, `{"image": …}`, …): its name and value.
pub(super) fn union<'a>(v: &'a Value, at: &str) -> Result<(&'a str, &'a Value), ConvertError> {
    let o = obj(v, at)?;
    let mut set = o.iter().filter(|(_, v)| !v.is_null());
    match (set.next(), set.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        (None, _) => err(format!("{at}: a union with no member set")),
        (Some((a, _)), Some((b, _))) => {
            err(format!("{at}: a union must have exactly one member set, not `{a}` and `{b}`"))
        }
    }
}

/// The blocks of a content list, each a checked union: (path of the member set, its name, its value).
pub(super) fn blocks<'a>(content: &'a [Value], at: &str) -> Result<Vec<(String, &'a str, &'a Value)>, ConvertError> {
    content
        .iter()
        .enumerate()
        .map(|(j, b)| {
            let bat = format!("{at}[{j}]");
            let (member, v) = union(b, &bat)?;
            Ok((format!("{bat}.{member}"), member, v))
        })
        .collect()
}

/// A string value at `at`.
pub(super) fn text<'a>(v: &'a Value, at: &str) -> Result<&'a str, ConvertError> {
    v.as_str().ok_or_else(|| ConvertError::new(format!("{at} must be a string, not {}", kind(v))))
}

/// `messages[i]`: its path, its role (`user` or `assistant`; anything else is an error naming
/// `target`) and its content blocks.
pub(super) fn message<'a>(
    m: &'a Value,
    i: usize,
    target: &str,
) -> Result<(String, &'a str, &'a [Value]), ConvertError> {
    let at = format!("messages[{i}]");
    let mo = obj(m, &at)?;
    check_keys(mo, &["role", "content"], &at)?;
    let role = match str_member(mo, "role", &at)? {
        r @ ("user" | "assistant") => r,
        r => return err(format!("{at}.role `{r}` cannot be carried into {target} (only user and assistant messages)")),
    };
    let content = arr(mo.get("content").unwrap_or(&Value::Null), &format!("{at}.content"))?;
    Ok((at, role, content))
}

/// The bytes of a base64 blob (as restJson1 puts it on the wire).
pub(super) fn base64_bytes(v: &Value, at: &str) -> Result<Vec<u8>, ConvertError> {
    let Some(s) = v.as_str() else {
        return err(format!("{at} must be a base64 string, not {}", kind(v)));
    };
    aws_smithy_types::base64::decode(s).map_err(|e| ConvertError::new(format!("{at} is not valid base64: {e}")))
}

/// A base64 blob that must hold UTF-8 text.
pub(super) fn base64_text(v: &Value, at: &str) -> Result<String, ConvertError> {
    String::from_utf8(base64_bytes(v, at)?)
        .map_err(|_| ConvertError::new(format!("{at}: the document's bytes are not UTF-8 text")))
}

/// `additionalModelRequestFields` merged into a native body: objects merge member by member
/// (so `{"inferenceConfig": {"topK": 20}}` joins Nova's `inferenceConfig`), and a value that would
/// replace one the conversion already set is an error naming it.
pub(super) fn merge_additional(body: &mut Obj, extra: Option<&Value>) -> Result<(), ConvertError> {
    match extra {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(fields)) => merge_into(body, fields, "additionalModelRequestFields"),
        Some(v) => err(format!("`additionalModelRequestFields` must be an object, not {}", kind(v))),
    }
}

fn merge_into(body: &mut Obj, fields: &Obj, at: &str) -> Result<(), ConvertError> {
    for (k, v) in fields {
        let here = format!("{at}.{k}");
        match (body.get_mut(k), v) {
            (None, _) => {
                body.insert(k.clone(), v.clone());
            }
            (Some(Value::Object(existing)), Value::Object(more)) => merge_into(existing, more, &here)?,
            (Some(existing), _) if existing == v => {}
            (Some(_), _) => {
                return err(format!("`{here}` sets a field the Converse request already sets through its own members; set it in one place"));
            }
        }
    }
    Ok(())
}

/// The JSON Pointers of `additionalModelResponseFieldPaths`, checked.
fn field_paths(v: &Value) -> Result<Vec<&str>, ConvertError> {
    let at = "additionalModelResponseFieldPaths";
    let mut out = Vec::new();
    for (i, p) in arr(v, at)?.iter().enumerate() {
        match p.as_str() {
            Some(s) if s.starts_with('/') && s.len() > 1 => out.push(s),
            Some(s) => {
                return err(format!("{at}[{i}] `{s}` is not a JSON Pointer to a field (it must start with `/`)"))
            }
            None => return err(format!("{at}[{i}] must be a string, not {}", kind(p))),
        }
    }
    Ok(out)
}

/// `additionalModelResponseFields`: each requested JSON Pointer that exists in the native answer,
/// copied to the same place in a new object (AWS: a valid pointer to a missing field is ignored).
/// `None` when nothing was asked for or nothing was found.
pub(super) fn response_fields(native: &Value, request: &Value) -> Result<Option<Value>, ConvertError> {
    let Some(paths) = request.get("additionalModelResponseFieldPaths").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let mut out = Map::new();
    for p in field_paths(paths)? {
        let Some(found) = native.pointer(p) else { continue };
        let tokens: Vec<String> = p[1..].split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
        let mut here = &mut out;
        for t in &tokens[..tokens.len() - 1] {
            let next = here.entry(t.clone()).or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            here = next.as_object_mut().expect("just made an object");
        }
        here.insert(tokens[tokens.len() - 1].clone(), found.clone());
    }
    Ok(if out.is_empty() { None } else { Some(Value::Object(out)) })
}

/// Token counts of an answer, as the native side reports them.
#[derive(Debug, Default, Clone)]
pub(super) struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// The native side's own total, when it reports one.
    pub total: Option<u64>,
    /// `cacheDetails` (cache writes by TTL), when the native side reports them.
    pub cache_details: Option<Value>,
}

impl Usage {
    /// Converse `TokenUsage`: `inputTokens` (not read from or written to the cache), `outputTokens`,
    /// `totalTokens` (the native total, else input + output + cache reads + cache writes);
    /// `cacheReadInputTokens` and `cacheWriteInputTokens` when either is non-zero; `cacheDetails`
    /// when the native side gave them.
    pub(super) fn to_converse(&self) -> Value {
        let total = self.total.unwrap_or(self.input + self.output + self.cache_read + self.cache_write);
        let mut u = Map::new();
        u.insert("inputTokens".into(), json!(self.input));
        u.insert("outputTokens".into(), json!(self.output));
        u.insert("totalTokens".into(), json!(total));
        if self.cache_read > 0 || self.cache_write > 0 {
            u.insert("cacheReadInputTokens".into(), json!(self.cache_read));
            u.insert("cacheWriteInputTokens".into(), json!(self.cache_write));
        }
        if let Some(d) = &self.cache_details {
            u.insert("cacheDetails".into(), d.clone());
        }
        Value::Object(u)
    }
}

/// A count in a usage object (`None` when absent or null).
pub(super) fn count(u: &Value, key: &str, at: &str) -> Result<Option<u64>, ConvertError> {
    match u.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ConvertError::new(format!("{at}.{key} must be a non-negative integer, not {v}"))),
    }
}

/// A Converse response, members in the service model's order.
pub(super) fn converse_response(
    content: Vec<Value>,
    stop_reason: &str,
    usage: &Usage,
    latency_ms: u64,
    extra: Option<Value>,
) -> Value {
    let mut out = Map::new();
    out.insert("output".into(), json!({"message": {"role": "assistant", "content": content}}));
    out.insert("stopReason".into(), json!(stop_reason));
    out.insert("usage".into(), usage.to_converse());
    out.insert("metrics".into(), json!({"latencyMs": latency_ms}));
    if let Some(fields) = extra {
        out.insert("additionalModelResponseFields".into(), fields);
    }
    Value::Object(out)
}

/// `inferenceConfig`, checked against the service model's constraints.
pub(super) struct Inference<'a> {
    pub max_tokens: Option<u64>,
    pub temperature: Option<&'a Value>,
    pub top_p: Option<&'a Value>,
    pub stop_sequences: Option<&'a Vec<Value>>,
}

pub(super) fn inference(o: &Obj) -> Result<Inference<'_>, ConvertError> {
    let mut out = Inference { max_tokens: None, temperature: None, top_p: None, stop_sequences: None };
    let Some(ic) = o.get("inferenceConfig").filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let at = "inferenceConfig";
    let ic = obj(ic, at)?;
    check_keys(ic, &["maxTokens", "temperature", "topP", "stopSequences"], at)?;
    match ic.get("maxTokens") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => out.max_tokens = Some(n),
            _ => return err(format!("{at}.maxTokens must be an integer of at least 1, not {v}")),
        },
    }
    for (key, slot) in [("temperature", &mut out.temperature), ("topP", &mut out.top_p)] {
        match ic.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => *slot = Some(v),
                _ => return err(format!("{at}.{key} must be a number from 0 to 1, not {v}")),
            },
        }
    }
    match ic.get("stopSequences") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let seqs = arr(v, &format!("{at}.stopSequences"))?;
            if let Some(bad) = seqs.iter().find(|s| s.as_str().is_none_or(str::is_empty)) {
                return err(format!("{at}.stopSequences must hold non-empty strings, not {bad}"));
            }
            out.stop_sequences = Some(seqs);
        }
    }
    Ok(out)
}

impl Inference<'_> {
    /// Put `temperature`, `topP` and (non-empty) `stopSequences` into `out` under these names.
    pub(super) fn put_sampling(&self, out: &mut Obj, [temperature, top_p, stop]: [&str; 3]) {
        if let Some(t) = self.temperature {
            out.insert(temperature.into(), t.clone());
        }
        if let Some(p) = self.top_p {
            out.insert(top_p.into(), p.clone());
        }
        if let Some(s) = self.stop_sequences.filter(|s| !s.is_empty()) {
            out.insert(stop.into(), Value::Array(s.clone()));
        }
    }
}

/// A tool's `toolSpec` fields: name, description, JSON schema, strict.
pub(super) struct ToolSpec<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub schema: &'a Value,
    pub strict: Option<bool>,
}

fn tool_spec<'a>(v: &'a Value, at: &str) -> Result<ToolSpec<'a>, ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["name", "description", "inputSchema", "strict"], at)?;
    let name = str_member(o, "name", at)?;
    let description = opt_str(o, "description", at)?;
    let sat = format!("{at}.inputSchema");
    let (member, schema) = union(o.get("inputSchema").unwrap_or(&Value::Null), &sat)?;
    if member != "json" {
        return err(format!("{sat}: unknown member `{member}` (only `json`)"));
    }
    if !schema.is_object() {
        return err(format!("{sat}.json must be a JSON Schema object, not {}", kind(schema)));
    }
    let strict = match o.get("strict") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => return err(format!("{at}.strict must be a boolean, not {}", kind(v))),
    };
    Ok(ToolSpec { name, description, schema, strict })
}

/// `toolChoice`: `auto`, `any`, or `tool` with its name.
fn tool_choice(v: &Value) -> Result<(&str, Option<&str>), ConvertError> {
    let at = "toolConfig.toolChoice";
    let (member, inner) = union(v, at)?;
    let io = obj(inner, &format!("{at}.{member}"))?;
    match member {
        "auto" | "any" => {
            check_keys(io, &[], &format!("{at}.{member}"))?;
            Ok((member, None))
        }
        "tool" => {
            check_keys(io, &["name"], &format!("{at}.tool"))?;
            Ok(("tool", Some(str_member(io, "name", &format!("{at}.tool"))?)))
        }
        other => err(format!("{at}: unknown member `{other}` (auto, any or tool)")),
    }
}

/// One member of `toolConfig.tools`.
pub(super) enum Tool<'a> {
    Spec(ToolSpec<'a>),
    CachePoint(&'a Value),
    System(&'a Value),
}

/// `toolConfig`, checked: each tool with its path, and the tool choice.
pub(super) struct Tools<'a> {
    pub tools: Vec<(String, Tool<'a>)>,
    pub choice: Option<(&'a str, Option<&'a str>)>,
}

pub(super) fn tools(tc: &Value) -> Result<Tools<'_>, ConvertError> {
    let at = "toolConfig";
    let o = obj(tc, at)?;
    check_keys(o, &["tools", "toolChoice"], at)?;
    let mut tools = Vec::new();
    for (i, t) in arr(o.get("tools").unwrap_or(&Value::Null), "toolConfig.tools")?.iter().enumerate() {
        let tat = format!("toolConfig.tools[{i}]");
        let tool = match union(t, &tat)? {
            ("toolSpec", spec) => Tool::Spec(tool_spec(spec, &format!("{tat}.toolSpec"))?),
            ("cachePoint", v) => Tool::CachePoint(v),
            ("systemTool", v) => Tool::System(v),
            (other, _) => return err(format!("{tat}: unknown tool member `{other}`")),
        };
        tools.push((tat, tool));
    }
    let choice = match o.get("toolChoice").filter(|v| !v.is_null()) {
        Some(c) => Some(tool_choice(c)?),
        None => None,
    };
    Ok(Tools { tools, choice })
}

/// A `toolResult` block, checked: its tool use id, its content blocks, and whether its status is
/// `error`. Server tool results (`type` set) are refused: no target here can carry them.
pub(super) struct ToolResult<'a> {
    pub id: &'a str,
    pub content: Vec<(String, &'a str, &'a Value)>,
    pub error: bool,
}

pub(super) fn tool_result<'a>(v: &'a Value, at: &str, target: &str) -> Result<ToolResult<'a>, ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["toolUseId", "content", "status", "type"], at)?;
    if let Some(t) = o.get("type").filter(|t| !t.is_null()) {
        return err(format!("{at}.type {t}: server tool results cannot be carried into {target}"));
    }
    let cat = format!("{at}.content");
    let content = blocks(arr(o.get("content").unwrap_or(&Value::Null), &cat)?, &cat)?;
    let error = match opt_str(o, "status", at)? {
        None | Some("success") => false,
        Some("error") => true,
        Some(s) => return err(format!("{at}.status `{s}` is not success or error")),
    };
    Ok(ToolResult { id: str_member(o, "toolUseId", at)?, content, error })
}

/// An `image` block given as bytes: its media type (`image/<format>`) and its base64 data. An S3
/// location is refused: neither Claude's InvokeModel body nor an OpenAI server reads S3.
pub(super) fn image_bytes<'a>(v: &'a Value, at: &str, target: &str) -> Result<(&'static str, &'a str), ConvertError> {
    let o = obj(v, at)?;
    check_keys(o, &["format", "source"], at)?;
    let media_type = image_media_type(str_member(o, "format", at)?, at)?;
    let sat = format!("{at}.source");
    match union(o.get("source").unwrap_or(&Value::Null), &sat)? {
        ("bytes", data) => {
            base64_bytes(data, &format!("{sat}.bytes"))?;
            Ok((media_type, data.as_str().expect("checked as base64 text")))
        }
        ("s3Location", _) => {
            err(format!("{sat}.s3Location cannot be carried into {target}: it takes image bytes, not S3 locations"))
        }
        (other, _) => err(format!("{sat}: unknown image source `{other}`")),
    }
}

/// `image/<format>` for a Converse image format.
fn image_media_type(format: &str, at: &str) -> Result<&'static str, ConvertError> {
    Ok(match format {
        "png" => "image/png",
        "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        other => return err(format!("{at}: image format `{other}` is not one of png, jpeg, gif, webp")),
    })
}
