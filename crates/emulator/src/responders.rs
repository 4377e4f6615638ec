//! Deterministic model responders, one per model family, with the real response shapes.
//!
//! Every answer is a function of the model id and the request body alone (ids come from a hash
//! of the body), so the runtime and the batch path give identical bodies for the same request.
//! The answer text always contains the last user message verbatim, so tests can prove that each
//! caller got its own answer. Input usage is counted from the request's content by
//! [`crate::tokens`], so the same content counts the same in every shape (a Converse request and
//! the Claude body it converts into, on demand or in a batch record).

use serde_json::{json, Map, Value};

use crate::ids::sha256_hex;

/// Model families the emulator answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Anthropic Claude (Messages API body).
    Claude,
    /// Amazon Nova (messages-v1 body).
    Nova,
    /// Meta Llama (prompt body).
    Llama,
    /// Mistral (prompt body, or messages for the chat models).
    Mistral,
    /// Amazon Titan text generation.
    TitanText,
    /// Amazon Titan embeddings.
    TitanEmbed,
}

impl Family {
    /// The family of a model id, inference profile id or ARN. Unknown models answer as Claude.
    pub fn of(model_id: &str) -> Family {
        let m = model_id.rsplit('/').next().unwrap_or(model_id).to_ascii_lowercase();
        if m.contains("anthropic") || m.contains("claude") {
            Family::Claude
        } else if m.contains("titan-embed") || m.contains("embed") {
            Family::TitanEmbed
        } else if m.contains("titan") {
            Family::TitanText
        } else if m.contains("nova") {
            Family::Nova
        } else if m.contains("llama") {
            Family::Llama
        } else if m.contains("mistral") || m.contains("mixtral") {
            Family::Mistral
        } else {
            Family::Claude
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The response body.
    pub body: Value,
    /// Input tokens counted.
    pub input_tokens: u64,
    /// Output tokens produced.
    pub output_tokens: u64,
}

impl Answer {
    /// The invocation latency the emulator reports for this answer, in milliseconds (the runtime's
    /// `x-amzn-bedrock-invocation-latency` header and a stream's invocation metrics).
    pub fn latency_ms(&self) -> u64 {
        100 + (self.input_tokens + self.output_tokens) % 900
    }
}

/// A rejected request: HTTP status and message.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// HTTP status (400 for a body the model cannot read).
    pub status: u16,
    /// What was wrong.
    pub message: String,
}

fn reject(message: impl Into<String>) -> Rejection {
    Rejection {
        status: 400,
        message: format!("Malformed input request: {}, please reformat your input and try again.", message.into()),
    }
}

/// Answers an InvokeModel body for `model_id`.
pub fn invoke(model_id: &str, raw: &[u8], body: &Value) -> Result<Answer, Rejection> {
    if !body.is_object() {
        return Err(reject("expected a JSON object"));
    }
    match Family::of(model_id) {
        Family::Claude => claude(model_id, raw, body),
        Family::Nova => nova(model_id, raw, body),
        Family::Llama => llama(body),
        Family::Mistral => mistral(model_id, raw, body),
        Family::TitanText => titan_text(body),
        Family::TitanEmbed => titan_embed(model_id, body),
    }
}

/// Answers a Converse request body (runtime `/converse` and `/converse-stream`, or a batch job of
/// type Converse). With tools offered and asked for (see [`crate::tools`]) the message ends in a
/// `toolUse` block and `stopReason` is `tool_use`; with Anthropic's extended thinking enabled
/// (`additionalModelRequestFields.thinking.type: "enabled"`) on a Claude model it starts with a
/// `reasoningContent` block.
pub fn converse(model_id: &str, raw: &[u8], body: &Value) -> Result<Answer, Rejection> {
    let messages =
        body.get("messages").and_then(Value::as_array).ok_or_else(|| reject("#: required key [messages] not found"))?;
    let (user, answered) = last_user_text_blocks(messages);
    let max = body.pointer("/inferenceConfig/maxTokens").and_then(Value::as_u64);
    let stops = string_list(body.pointer("/inferenceConfig/stopSequences"));
    let gen = generate(&user, max, &stops);
    let input_tokens = crate::tokens::converse(body);
    let latency = 100 + crate::ids::hash64(&[model_id.as_bytes(), raw]) % 900;
    let hash = sha256_hex(&[model_id.as_bytes(), raw]);
    let mut content = Vec::new();
    let mut output_tokens = 0;
    let thinking =
        body.pointer("/additionalModelRequestFields/thinking/type").and_then(Value::as_str) == Some("enabled");
    if thinking && Family::of(model_id) == Family::Claude {
        let r = reasoning(&user, &hash);
        output_tokens += r.tokens;
        content.push(json!({ "reasoningContent": { "reasoningText": { "text": r.text, "signature": r.signature } } }));
    }
    let (offered, choice) = crate::tools::converse_tools(body);
    let call = crate::tools::call(&offered, &choice, &user, answered);
    let mut stop_reason = gen.stop.converse();
    if !call.as_ref().is_some_and(|c| c.forced) {
        content.push(json!({ "text": gen.text }));
        output_tokens += gen.tokens;
    }
    if let Some(c) = call {
        content.push(json!({ "toolUse": { "toolUseId": format!("tooluse_{}", &hash[24..46]), "name": c.name, "input": c.input } }));
        output_tokens += TOOL_USE_TOKENS;
        stop_reason = "tool_use";
    }
    let mut usage = json!({ "inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": input_tokens + output_tokens });
    if let Some(ttl) = first_cache_point_ttl(body) {
        // The prompt up to the cache point is written to the cache (the emulator keeps no cache, so
        // every request writes it): half of the input, as a round number of tokens.
        let cached = input_tokens / 2;
        usage["cacheReadInputTokens"] = json!(0);
        usage["cacheWriteInputTokens"] = json!(cached);
        usage["cacheDetails"] = json!([{ "ttl": ttl, "inputTokens": cached }]);
    }
    let mut answer = json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": stop_reason,
        "usage": usage,
        "metrics": { "latencyMs": latency },
    });
    // The tiers asked for are echoed back, as Bedrock does.
    for key in ["performanceConfig", "serviceTier"] {
        if let Some(v) = body.get(key).filter(|v| v.is_object()) {
            answer[key] = v.clone();
        }
    }
    Ok(Answer { body: answer, input_tokens, output_tokens })
}

/// Output tokens a tool call costs in the emulator's count.
const TOOL_USE_TOKENS: u64 = 10;

/// The emulated model's reasoning (extended thinking) before it answers.
struct Reasoning {
    text: String,
    signature: String,
    tokens: u64,
}

fn reasoning(user: &str, hash: &str) -> Reasoning {
    let asked = crate::tools::without_markers(user);
    let text = if asked.is_empty() {
        "Nothing was asked, so I answer briefly.".to_string()
    } else {
        format!("The user asks: {asked} I answer by repeating the question.")
    };
    let tokens = text.split_whitespace().count() as u64;
    // A signature is opaque to the caller: here a deterministic base64 text.
    let signature = aws_smithy_types::base64::encode(format!("emulator-signature:{}", &hash[..32]));
    Reasoning { text, signature, tokens }
}

/// The TTL of the first `cachePoint` block of a Converse request (system or messages), `5m` when
/// it names none.
fn first_cache_point_ttl(body: &Value) -> Option<String> {
    let system = body.get("system").and_then(Value::as_array).into_iter().flatten();
    let contents = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten();
    let point = system.chain(contents).find_map(|b| b.get("cachePoint"))?;
    Some(point.get("ttl").and_then(Value::as_str).unwrap_or("5m").to_string())
}

// ===== generation =====

/// Why a generated answer ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    End,
    MaxTokens,
    Sequence(String),
}

impl Stop {
    fn claude(&self) -> &'static str {
        match self {
            Stop::End => "end_turn",
            Stop::MaxTokens => "max_tokens",
            Stop::Sequence(_) => "stop_sequence",
        }
    }
    fn converse(&self) -> &'static str {
        self.claude()
    }
    fn short(&self) -> &'static str {
        match self {
            Stop::MaxTokens => "length",
            _ => "stop",
        }
    }
}

/// The emulator's generated answer.
pub(crate) struct Generated {
    pub(crate) text: String,
    pub(crate) tokens: u64,
    pub(crate) stop: Stop,
}

/// The emulator's "model": it repeats the question, cut at a stop sequence or at `max_tokens` words.
pub(crate) fn generate(user_text: &str, max_tokens: Option<u64>, stop_sequences: &[String]) -> Generated {
    let mut text = if user_text.is_empty() {
        "This is the emulator's answer.".to_string()
    } else {
        format!("This is the emulator's answer to: {user_text}")
    };
    let mut stop = Stop::End;
    // The earliest stop sequence after the fixed prefix wins.
    let prefix_len = "This is the emulator's answer to: ".len().min(text.len());
    let mut cut: Option<(usize, &String)> = None;
    for s in stop_sequences.iter().filter(|s| !s.is_empty()) {
        if let Some(pos) = text[prefix_len..].find(s.as_str()) {
            let at = prefix_len + pos;
            if cut.is_none_or(|(c, _)| at < c) {
                cut = Some((at, s));
            }
        }
    }
    if let Some((at, s)) = cut {
        text.truncate(at);
        stop = Stop::Sequence(s.clone());
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut tokens = words.len() as u64;
    if let Some(max) = max_tokens {
        if tokens > max {
            text = words[..max as usize].join(" ");
            tokens = max;
            stop = Stop::MaxTokens;
        }
    }
    Generated { text, tokens, stop }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Text of the last user message whose content is a string or a list of typed blocks (Claude).
fn last_user_text_claude(messages: &[Value]) -> (String, bool) {
    let Some(msg) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return (String::new(), false);
    };
    match msg.get("content") {
        Some(Value::String(s)) => (s.clone(), false),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::new();
            let mut has_tool_result = false;
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => parts.push(b.get("text").and_then(Value::as_str).unwrap_or("").to_string()),
                    Some("tool_result") => {
                        has_tool_result = true;
                        match b.get("content") {
                            Some(Value::String(s)) => parts.push(s.clone()),
                            Some(Value::Array(inner)) => {
                                for i in inner {
                                    if let Some(t) = i.get("text").and_then(Value::as_str) {
                                        parts.push(t.to_string());
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            (parts.join("\n"), has_tool_result)
        }
        _ => (String::new(), false),
    }
}

/// Text of the last user message whose content is a list of blocks (Nova, Converse): its `text`
/// blocks and the text or JSON of its `toolResult` blocks; and whether it carries a tool result.
fn last_user_text_blocks(messages: &[Value]) -> (String, bool) {
    let Some(msg) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return (String::new(), false);
    };
    match msg.get("content") {
        Some(Value::String(s)) => (s.clone(), false),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::new();
            let mut answered = false;
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    parts.push(t.to_string());
                } else if let Some(result) = b.get("toolResult") {
                    answered = true;
                    for c in result.get("content").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(t) = c.get("text").and_then(Value::as_str) {
                            parts.push(t.to_string());
                        } else if let Some(j) = c.get("json") {
                            parts.push(j.to_string());
                        }
                    }
                }
            }
            (parts.join("\n"), answered)
        }
        _ => (String::new(), false),
    }
}

/// Bedrock reports the Anthropic model name without provider, region prefix or version suffix.
fn claude_model_name(model_id: &str) -> String {
    let mut m = model_id.rsplit('/').next().unwrap_or(model_id);
    for p in ["us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca."] {
        if let Some(rest) = m.strip_prefix(p) {
            m = rest;
            break;
        }
    }
    let m = m.strip_prefix("anthropic.").unwrap_or(m);
    match m.rfind("-v") {
        Some(i) if m[i + 2..].chars().next().is_some_and(|c| c.is_ascii_digit()) => m[..i].to_string(),
        _ => m.to_string(),
    }
}

// ===== families =====

fn claude(model_id: &str, raw: &[u8], body: &Value) -> Result<Answer, Rejection> {
    if body.get("anthropic_version").and_then(Value::as_str).is_none() {
        return Err(reject("#: required key [anthropic_version] not found"));
    }
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| reject("#: required key [max_tokens] not found"))?;
    let messages =
        body.get("messages").and_then(Value::as_array).ok_or_else(|| reject("#: required key [messages] not found"))?;
    if messages.is_empty() {
        return Err(reject("#/messages: expected minimum item count: 1, found: 0"));
    }
    let (user, answered_tool) = last_user_text_claude(messages);
    let stops = string_list(body.get("stop_sequences"));
    let gen = generate(&user, Some(max_tokens), &stops);
    let hash = sha256_hex(&[model_id.as_bytes(), raw]);
    let mut content = Vec::new();
    let mut output_tokens = 0;
    if body.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled") {
        let r = reasoning(&user, &hash);
        output_tokens += r.tokens;
        content.push(json!({ "type": "thinking", "thinking": r.text, "signature": r.signature }));
    }
    let (offered, choice) = crate::tools::claude_tools(body);
    let call = crate::tools::call(&offered, &choice, &user, answered_tool);
    let mut stop_reason = gen.stop.claude();
    if !call.as_ref().is_some_and(|c| c.forced) {
        content.push(json!({ "type": "text", "text": gen.text }));
        output_tokens += gen.tokens;
    }
    if let Some(c) = call {
        content.push(json!({ "type": "tool_use", "id": format!("toolu_bdrk_{}", &hash[24..48]), "name": c.name, "input": c.input }));
        stop_reason = "tool_use";
        output_tokens += TOOL_USE_TOKENS;
    }
    let stop_sequence = match &gen.stop {
        Stop::Sequence(s) if stop_reason == "stop_sequence" => Value::String(s.clone()),
        _ => Value::Null,
    };
    let input_tokens = crate::tokens::claude(body);
    Ok(Answer {
        body: json!({
            "id": format!("msg_bdrk_{}", &hash[..24]),
            "type": "message",
            "role": "assistant",
            "model": claude_model_name(model_id),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
        }),
        input_tokens,
        output_tokens,
    })
}

fn nova(model_id: &str, raw: &[u8], body: &Value) -> Result<Answer, Rejection> {
    let messages =
        body.get("messages").and_then(Value::as_array).ok_or_else(|| reject("#: required key [messages] not found"))?;
    let (user, answered) = last_user_text_blocks(messages);
    let cfg = body.get("inferenceConfig");
    let max = cfg.and_then(|c| c.get("maxTokens").or_else(|| c.get("max_new_tokens"))).and_then(Value::as_u64);
    let stops = string_list(cfg.and_then(|c| c.get("stopSequences")));
    let gen = generate(&user, max, &stops);
    let input_tokens = crate::tokens::converse(body);
    let (offered, choice) = crate::tools::converse_tools(body);
    let call = crate::tools::call(&offered, &choice, &user, answered);
    let mut content = Vec::new();
    let mut output_tokens = 0;
    let mut stop_reason = gen.stop.claude();
    if !call.as_ref().is_some_and(|c| c.forced) {
        content.push(json!({ "text": gen.text }));
        output_tokens += gen.tokens;
    }
    if let Some(c) = call {
        let hash = sha256_hex(&[model_id.as_bytes(), raw]);
        content.push(json!({ "toolUse": { "toolUseId": format!("tooluse_{}", &hash[24..46]), "name": c.name, "input": c.input } }));
        output_tokens += TOOL_USE_TOKENS;
        stop_reason = "tool_use";
    }
    Ok(Answer {
        body: json!({
            "output": { "message": { "content": content, "role": "assistant" } },
            "stopReason": stop_reason,
            "usage": {
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "totalTokens": input_tokens + output_tokens,
                "cacheReadInputTokenCount": 0,
                "cacheWriteInputTokenCount": 0,
            },
        }),
        input_tokens,
        output_tokens,
    })
}

/// The last user turn of a Llama 3 chat prompt, or the whole prompt.
fn llama_user_text(prompt: &str) -> String {
    const USER: &str = "<|start_header_id|>user<|end_header_id|>";
    match prompt.rfind(USER) {
        Some(i) => {
            let rest = &prompt[i + USER.len()..];
            let end = rest.find("<|eot_id|>").unwrap_or(rest.len());
            rest[..end].trim().to_string()
        }
        None => prompt.trim().to_string(),
    }
}

fn llama(body: &Value) -> Result<Answer, Rejection> {
    let prompt =
        body.get("prompt").and_then(Value::as_str).ok_or_else(|| reject("#: required key [prompt] not found"))?;
    let max = body.get("max_gen_len").and_then(Value::as_u64);
    let gen = generate(&llama_user_text(prompt), max, &[]);
    let input_tokens = crate::tokens::prompt(prompt);
    Ok(Answer {
        body: json!({
            "generation": gen.text,
            "prompt_token_count": input_tokens,
            "generation_token_count": gen.tokens,
            "stop_reason": gen.stop.short(),
        }),
        input_tokens,
        output_tokens: gen.tokens,
    })
}

/// The last instruction of a Mistral `[INST] ... [/INST]` prompt, or the whole prompt.
fn mistral_user_text(prompt: &str) -> String {
    match prompt.rfind("[INST]") {
        Some(i) => {
            let rest = &prompt[i + "[INST]".len()..];
            let end = rest.find("[/INST]").unwrap_or(rest.len());
            rest[..end].trim().to_string()
        }
        None => prompt.trim().to_string(),
    }
}

fn mistral(model_id: &str, raw: &[u8], body: &Value) -> Result<Answer, Rejection> {
    let max = body.get("max_tokens").and_then(Value::as_u64);
    let stops = string_list(body.get("stop"));
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        let input_tokens = crate::tokens::chat(body);
        let (user, _) = last_user_text_blocks(messages);
        let gen = generate(&user, max, &stops);
        let hash = sha256_hex(&[model_id.as_bytes(), raw]);
        return Ok(Answer {
            body: json!({
                "id": &hash[..32],
                "object": "chat.completion",
                "model": model_id,
                "choices": [ { "index": 0, "message": { "role": "assistant", "content": gen.text }, "stop_reason": gen.stop.short() } ],
                "usage": { "prompt_tokens": input_tokens, "completion_tokens": gen.tokens, "total_tokens": input_tokens + gen.tokens },
            }),
            input_tokens,
            output_tokens: gen.tokens,
        });
    }
    let prompt =
        body.get("prompt").and_then(Value::as_str).ok_or_else(|| reject("#: required key [prompt] not found"))?;
    let gen = generate(&mistral_user_text(prompt), max, &stops);
    let input_tokens = crate::tokens::prompt(prompt);
    Ok(Answer {
        body: json!({ "outputs": [ { "text": gen.text, "stop_reason": gen.stop.short() } ] }),
        input_tokens,
        output_tokens: gen.tokens,
    })
}

fn titan_text(body: &Value) -> Result<Answer, Rejection> {
    let input =
        body.get("inputText").and_then(Value::as_str).ok_or_else(|| reject("#: required key [inputText] not found"))?;
    let cfg = body.get("textGenerationConfig");
    let max = cfg.and_then(|c| c.get("maxTokenCount")).and_then(Value::as_u64);
    let stops = string_list(cfg.and_then(|c| c.get("stopSequences")));
    let gen = generate(input.trim(), max, &stops);
    let input_tokens = crate::tokens::prompt(input);
    let reason = match gen.stop {
        Stop::MaxTokens => "LENGTH",
        Stop::Sequence(_) => "STOP_CRITERIA_MET",
        Stop::End => "FINISH",
    };
    Ok(Answer {
        body: json!({
            "inputTextTokenCount": input_tokens,
            "results": [ { "tokenCount": gen.tokens, "outputText": gen.text, "completionReason": reason } ],
        }),
        input_tokens,
        output_tokens: gen.tokens,
    })
}

fn titan_embed(model_id: &str, body: &Value) -> Result<Answer, Rejection> {
    let input =
        body.get("inputText").and_then(Value::as_str).ok_or_else(|| reject("#: required key [inputText] not found"))?;
    let v2 = !model_id.contains("embed-text-v1") && !model_id.contains("embed-g1");
    let dims = if v2 { body.get("dimensions").and_then(Value::as_u64).unwrap_or(1024) } else { 1536 };
    if v2 && ![256, 512, 1024].contains(&dims) {
        return Err(reject("#/dimensions: must be one of 256, 512, 1024"));
    }
    let normalize = body.get("normalize").and_then(Value::as_bool).unwrap_or(true);
    // Deterministic pseudo-random vector from the text.
    let mut state = crate::ids::hash64(&[input.as_bytes()]) | 1;
    let mut v: Vec<f64> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 20_000) as f64 / 10_000.0 - 1.0
        })
        .collect();
    if normalize {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::EPSILON);
        v.iter_mut().for_each(|x| *x = ((*x / norm) * 1e6).round() / 1e6);
    }
    let input_tokens = crate::tokens::text(input).max(1);
    let mut out = Map::new();
    out.insert("embedding".into(), json!(v));
    if v2 {
        out.insert("embeddingsByType".into(), json!({ "float": v }));
    }
    out.insert("inputTextTokenCount".into(), json!(input_tokens));
    Ok(Answer { body: Value::Object(out), input_tokens, output_tokens: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(model: &str, body: &Value) -> Result<Answer, Rejection> {
        invoke(model, body.to_string().as_bytes(), body)
    }

    fn claude_body(text: &str) -> Value {
        json!({"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":text}]})
    }

    #[test]
    fn claude_answer_contains_the_question_and_is_deterministic() {
        let a = inv("anthropic.claude-3-haiku-20240307-v1:0", &claude_body("What is 2 + 2?")).unwrap();
        let b = inv("anthropic.claude-3-haiku-20240307-v1:0", &claude_body("What is 2 + 2?")).unwrap();
        assert_eq!(serde_json::to_vec(&a.body).unwrap(), serde_json::to_vec(&b.body).unwrap());
        assert!(a.body["content"][0]["text"].as_str().unwrap().contains("What is 2 + 2?"));
        assert_eq!(a.body["model"], "claude-3-haiku-20240307");
        assert_eq!(a.body["stop_reason"], "end_turn");
        let keys: Vec<&String> = a.body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]);
    }

    #[test]
    fn max_tokens_and_stop_sequences_cut_the_answer() {
        let mut body = claude_body("one two three four five six seven");
        body["max_tokens"] = json!(3);
        let a = inv("anthropic.claude-3-haiku-20240307-v1:0", &body).unwrap();
        assert_eq!(a.body["stop_reason"], "max_tokens");
        assert_eq!(a.output_tokens, 3);
        let mut body = claude_body("alpha STOP beta");
        body["stop_sequences"] = json!(["STOP"]);
        let a = inv("anthropic.claude-3-haiku-20240307-v1:0", &body).unwrap();
        assert_eq!(a.body["stop_reason"], "stop_sequence");
        assert_eq!(a.body["stop_sequence"], "STOP");
    }

    #[test]
    fn claude_without_anthropic_version_is_rejected() {
        let body = json!({"max_tokens":10,"messages":[{"role":"user","content":"x"}]});
        assert_eq!(inv("anthropic.claude-3-haiku-20240307-v1:0", &body).unwrap_err().status, 400);
    }

    #[test]
    fn families_are_recognised_from_ids_profiles_and_arns() {
        assert_eq!(Family::of("us.anthropic.claude-3-5-haiku-20241022-v1:0"), Family::Claude);
        assert_eq!(Family::of("amazon.nova-lite-v1:0"), Family::Nova);
        assert_eq!(Family::of("meta.llama3-1-8b-instruct-v1:0"), Family::Llama);
        assert_eq!(Family::of("mistral.mistral-large-2407-v1:0"), Family::Mistral);
        assert_eq!(Family::of("amazon.titan-text-express-v1"), Family::TitanText);
        assert_eq!(Family::of("amazon.titan-embed-text-v2:0"), Family::TitanEmbed);
        assert_eq!(Family::of("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"), Family::Nova);
    }

    #[test]
    fn every_family_repeats_the_question() {
        let cases = [
            (
                "amazon.nova-lite-v1:0",
                json!({"messages":[{"role":"user","content":[{"text":"Q-nova"}]}]}),
                "/output/message/content/0/text",
                "Q-nova",
            ),
            (
                "meta.llama3-1-8b-instruct-v1:0",
                json!({"prompt":"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\nQ-llama<|eot_id|>"}),
                "/generation",
                "Q-llama",
            ),
            (
                "mistral.mistral-7b-instruct-v0:2",
                json!({"prompt":"<s>[INST] Q-mistral [/INST]"}),
                "/outputs/0/text",
                "Q-mistral",
            ),
            (
                "mistral.mistral-large-2407-v1:0",
                json!({"messages":[{"role":"user","content":"Q-large"}]}),
                "/choices/0/message/content",
                "Q-large",
            ),
            ("amazon.titan-text-express-v1", json!({"inputText":"Q-titan"}), "/results/0/outputText", "Q-titan"),
        ];
        for (model, body, ptr, q) in cases {
            let a = inv(model, &body).unwrap();
            assert!(a.body.pointer(ptr).and_then(Value::as_str).unwrap().contains(q), "{model}: {}", a.body);
        }
        let e = inv("amazon.titan-embed-text-v2:0", &json!({"inputText":"x","dimensions":256})).unwrap();
        assert_eq!(e.body["embedding"].as_array().unwrap().len(), 256);
    }

    fn weather_claude(text: &str) -> Value {
        let mut body = claude_body(text);
        body["tools"] = json!([{ "name": "get_weather", "description": "Weather", "input_schema": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } }]);
        body
    }

    #[test]
    fn claude_calls_a_tool_when_asked_and_answers_its_result_with_text() {
        let model = "anthropic.claude-3-haiku-20240307-v1:0";
        let plain = inv(model, &weather_claude("What is the weather in Oslo?")).unwrap();
        assert_eq!(plain.body["stop_reason"], "end_turn", "tools offered but not asked for");
        let asked = inv(model, &weather_claude("What is the weather in Oslo? [[tool:get_weather]]")).unwrap();
        assert_eq!(asked.body["stop_reason"], "tool_use");
        assert_eq!(asked.body["stop_sequence"], Value::Null);
        let content = asked.body["content"].as_array().unwrap();
        assert_eq!(content[0]["type"], "text");
        let call = &content[1];
        assert_eq!((call["type"].as_str(), call["name"].as_str()), (Some("tool_use"), Some("get_weather")));
        assert_eq!(call["input"], json!({ "city": "What is the weather in Oslo?" }));
        assert!(call["id"].as_str().unwrap().starts_with("toolu_bdrk_"));
        assert_eq!(
            asked.body,
            inv(model, &weather_claude("What is the weather in Oslo? [[tool:get_weather]]")).unwrap().body,
            "deterministic"
        );

        let mut forced = weather_claude("Oslo");
        forced["tool_choice"] = json!({ "type": "any" });
        let forced = inv(model, &forced).unwrap();
        assert_eq!(forced.body["content"].as_array().unwrap().len(), 1, "a forced call has no text before it");

        let mut second = weather_claude("unused");
        second["messages"] = json!([
            { "role": "user", "content": "What is the weather in Oslo? [[tool:get_weather]]" },
            { "role": "assistant", "content": content },
            { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": call["id"], "content": "Sunny, 21 degrees" }] },
        ]);
        let second = inv(model, &second).unwrap();
        assert_eq!(second.body["stop_reason"], "end_turn");
        assert!(second.body["content"][0]["text"].as_str().unwrap().contains("Sunny, 21 degrees"));
    }

    #[test]
    fn converse_and_nova_call_tools_in_their_own_shapes() {
        let tool_config = json!({ "tools": [{ "toolSpec": { "name": "lookup", "inputSchema": { "json": { "type": "object", "properties": { "q": { "type": "string" } }, "required": ["q"] } } } }] });
        let request = json!({ "messages": [{ "role": "user", "content": [{ "text": "Find cats, use the tool" }] }], "toolConfig": tool_config });
        for (model, answer) in [
            (
                "amazon.nova-lite-v1:0",
                converse("amazon.nova-lite-v1:0", request.to_string().as_bytes(), &request).unwrap(),
            ),
            ("amazon.nova-lite-v1:0 native", inv("amazon.nova-lite-v1:0", &request).unwrap()),
            (
                "meta.llama3-1-8b-instruct-v1:0",
                converse("meta.llama3-1-8b-instruct-v1:0", request.to_string().as_bytes(), &request).unwrap(),
            ),
        ] {
            assert_eq!(answer.body["stopReason"], "tool_use", "{model}");
            let content = answer.body["output"]["message"]["content"].as_array().unwrap();
            let tool = &content[1]["toolUse"];
            assert_eq!(
                (tool["name"].as_str(), &tool["input"]),
                (Some("lookup"), &json!({ "q": "Find cats, use the tool" })),
                "{model}"
            );
            let id = tool["toolUseId"].as_str().unwrap();
            assert!(id.starts_with("tooluse_") && id.len() <= 64, "{id}");
            assert_eq!(answer.body["usage"]["outputTokens"].as_u64(), Some(answer.output_tokens));

            let follow = json!({
                "messages": [
                    request["messages"][0],
                    { "role": "assistant", "content": content },
                    { "role": "user", "content": [{ "toolResult": { "toolUseId": id, "content": [{ "json": { "found": 3 } }, { "text": "three cats" }] } }] },
                ],
                "toolConfig": tool_config,
            });
            let next = converse(model, follow.to_string().as_bytes(), &follow).unwrap();
            assert_eq!(next.body["stopReason"], "end_turn");
            let text = next.body["output"]["message"]["content"][0]["text"].as_str().unwrap();
            assert!(text.contains("{\"found\":3}") && text.contains("three cats"), "{text}");
        }
    }

    #[test]
    fn extended_thinking_adds_a_reasoning_block_for_claude() {
        let request = json!({ "messages": [{ "role": "user", "content": [{ "text": "Why?" }] }], "additionalModelRequestFields": { "thinking": { "type": "enabled", "budget_tokens": 1024 } } });
        let a =
            converse("anthropic.claude-3-7-sonnet-20250219-v1:0", request.to_string().as_bytes(), &request).unwrap();
        let r = &a.body["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"];
        assert!(r["text"].as_str().unwrap().contains("Why?") && r["signature"].is_string());
        let nova = converse("amazon.nova-lite-v1:0", request.to_string().as_bytes(), &request).unwrap();
        assert!(nova.body["output"]["message"]["content"][0].get("text").is_some(), "thinking is Anthropic's");
        let mut native = claude_body("Why?");
        native["thinking"] = json!({ "type": "enabled", "budget_tokens": 1024 });
        let n = inv("anthropic.claude-3-7-sonnet-20250219-v1:0", &native).unwrap();
        assert_eq!(n.body["content"][0]["type"], "thinking");
        assert_eq!(n.body["content"][1]["type"], "text");
        assert_eq!(n.body["usage"]["output_tokens"].as_u64(), Some(n.output_tokens));
    }
}
