//! OpenAI `chat.completion.chunk` events → ConverseStream events or Claude Messages stream events,
//! one chunk at a time, for the streaming commands in `mode: "openai"`.
//!
//! Both converters share one state machine that turns the chunks into content blocks (reasoning,
//! text, refusal text, tool calls), and decide the stop reason and usage at the end exactly as
//! the non-streaming converters do, so that concatenating the deltas gives what
//! [`openai_to_converse`](super::openai_to_converse) and [`openai_to_claude`](super::openai_to_claude)
//! give for the whole answer.

use std::collections::HashSet;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::converse::err;
use super::converse_claude::{claude_usage, converse_stop_reason_from_claude};
use super::{kind, openai_to_claude, ConvertError};

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Reasoning,
    Text,
    Refusal,
    Tool(u64),
}

/// A block-level step the renderers turn into their own events.
#[derive(Debug, Clone)]
enum Step {
    StartReasoning(usize),
    StartText(usize),
    StartTool { index: usize, id: String, name: String },
    Redacted { index: usize, data: String },
    Reasoning(usize, String),
    Signature(usize, String),
    Text(usize, String),
    ToolInput(usize, String),
    Stop(usize),
}

/// The shared state: which block is open, what the chunks said about the end.
#[derive(Debug, Default)]
struct Core {
    started: bool,
    first_chunk: Option<Value>,
    next_index: usize,
    open: Option<(Kind, usize)>,
    signature: Option<String>,
    tool_input_chars: usize,
    closed_tools: HashSet<u64>,
    tools: usize,
    refused: bool,
    finish: Option<String>,
    matched: Option<String>,
    usage: Option<Value>,
    finished: bool,
}

impl Core {
    fn close(&mut self, steps: &mut Vec<Step>) {
        if let Some((kind, index)) = self.open.take() {
            match kind {
                Kind::Reasoning => steps.push(Step::Signature(index, self.signature.take().unwrap_or_default())),
                Kind::Tool(k) => {
                    if self.tool_input_chars == 0 {
                        // No arguments at all: the whole answer would hold `{}`.
                        steps.push(Step::ToolInput(index, "{}".into()));
                    }
                    self.closed_tools.insert(k);
                }
                Kind::Text | Kind::Refusal => {}
            }
            steps.push(Step::Stop(index));
        }
    }

    /// Make `kind` the open block (closing another), and say where it is.
    fn open(&mut self, kind: Kind, steps: &mut Vec<Step>) -> usize {
        if let Some((k, i)) = &self.open {
            if *k == kind {
                return *i;
            }
        }
        self.close(steps);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((kind.clone(), index));
        match kind {
            Kind::Reasoning => steps.push(Step::StartReasoning(index)),
            Kind::Text | Kind::Refusal => steps.push(Step::StartText(index)),
            Kind::Tool(_) => unreachable!("tool blocks are opened by push_tool"),
        }
        index
    }

    fn push(&mut self, chunk: &Value) -> Result<Vec<Step>, ConvertError> {
        if self.finished {
            return err("a chunk arrived after the stream was finished");
        }
        let Some(o) = chunk.as_object() else {
            return err(format!("an OpenAI stream chunk is {}, not a JSON object", kind(chunk)));
        };
        if let Some(e) = o.get("error").filter(|e| !e.is_null()) {
            let message = e.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| e.to_string());
            return err(format!("the OpenAI-compatible server's stream carried an error: {message}"));
        }
        if !self.started {
            self.started = true;
            self.first_chunk = Some(chunk.clone());
        }
        if let Some(u) = o.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let mut steps = Vec::new();
        let choices = match o.get("choices") {
            None | Some(Value::Null) => return Ok(steps),
            Some(Value::Array(c)) => c,
            Some(v) => return err(format!("a chunk's `choices` is {}, not an array", kind(v))),
        };
        let choice = match choices.as_slice() {
            [] => return Ok(steps),
            [c] => c,
            more => return err(format!("a chunk has {} choices; one answer holds one", more.len())),
        };
        if choice.get("index").and_then(Value::as_u64).is_some_and(|i| i != 0) {
            return err("a chunk for choice index other than 0 (n > 1 cannot be expressed)");
        }
        if let Some(d) = choice.get("delta").filter(|d| !d.is_null()) {
            self.delta(d, &mut steps)?;
        }
        match choice.get("finish_reason") {
            None | Some(Value::Null) => {}
            Some(Value::String(f)) => self.finish = Some(f.clone()),
            Some(v) => return err(format!("`finish_reason` must be a string, not {}", kind(v))),
        }
        if let Some(m) = choice
            .get("stop_reason")
            .and_then(Value::as_str)
            .or_else(|| choice.get("matched_stop").and_then(Value::as_str))
        {
            self.matched = Some(m.to_string());
        }
        Ok(steps)
    }

    fn delta(&mut self, d: &Value, steps: &mut Vec<Step>) -> Result<(), ConvertError> {
        let reasoning = ["reasoning_content", "reasoning"]
            .iter()
            .find_map(|k| d.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()));
        if let Some(r) = reasoning {
            let i = self.open(Kind::Reasoning, steps);
            steps.push(Step::Reasoning(i, r.to_string()));
        }
        if let Some(Value::Array(blocks)) = d.get("thinking_blocks") {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("thinking") => {
                        if reasoning.is_none() {
                            if let Some(t) = b.get("thinking").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                                let i = self.open(Kind::Reasoning, steps);
                                steps.push(Step::Reasoning(i, t.to_string()));
                            }
                        }
                        if let Some(s) = b.get("signature").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                            self.open(Kind::Reasoning, steps);
                            self.signature.get_or_insert_with(String::new).push_str(s);
                        }
                    }
                    Some("redacted_thinking") => {
                        self.close(steps);
                        let index = self.next_index;
                        self.next_index += 1;
                        let data = b.get("data").and_then(Value::as_str).unwrap_or("").to_string();
                        steps.push(Step::Redacted { index, data });
                    }
                    _ => return err("delta.thinking_blocks holds a block that is not thinking or redacted_thinking"),
                }
            }
        }
        match d.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => {
                let i = self.open(Kind::Text, steps);
                steps.push(Step::Text(i, s.clone()));
            }
            Some(v) => return err(format!("delta.content is {}, not a string", kind(v))),
        }
        if let Some(r) = d.get("refusal").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            self.refused = true;
            let i = self.open(Kind::Refusal, steps);
            steps.push(Step::Text(i, r.to_string()));
        }
        match d.get("tool_calls") {
            None | Some(Value::Null) => {}
            Some(Value::Array(calls)) => {
                for (pos, call) in calls.iter().enumerate() {
                    self.tool_call(call, pos, steps)?;
                }
            }
            Some(v) => return err(format!("delta.tool_calls is {}, not an array", kind(v))),
        }
        Ok(())
    }

    fn tool_call(&mut self, call: &Value, pos: usize, steps: &mut Vec<Step>) -> Result<(), ConvertError> {
        let k = call.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
        let at = format!("delta.tool_calls[{pos}]");
        match call.get("type").and_then(Value::as_str) {
            None | Some("function") => {}
            Some(t) => return err(format!("{at}: tool call type `{t}` cannot be converted (only function calls)")),
        }
        let f = call.get("function");
        let arguments = f.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("");
        let index = match &self.open {
            Some((Kind::Tool(open), i)) if *open == k => *i,
            _ if self.closed_tools.contains(&k) => {
                return err(format!(
                    "{at}: more arguments for tool call {k} after another block began; interleaved tool calls have no Converse or Claude stream form"
                ));
            }
            _ => {
                self.close(steps);
                let Some(name) = f.and_then(|f| f.get("name")).and_then(Value::as_str) else {
                    return err(format!("{at}: the first chunk of tool call {k} has no function name"));
                };
                let id = match call.get("id").and_then(Value::as_str) {
                    Some(id) if !id.is_empty() => id.to_string(),
                    _ => format!("call_{}", self.tools),
                };
                let index = self.next_index;
                self.next_index += 1;
                self.tools += 1;
                self.tool_input_chars = 0;
                self.open = Some((Kind::Tool(k), index));
                steps.push(Step::StartTool { index, id, name: name.to_string() });
                index
            }
        };
        if !arguments.is_empty() {
            self.tool_input_chars += arguments.len();
            steps.push(Step::ToolInput(index, arguments.to_string()));
        }
        Ok(())
    }

    /// Close the last block and decide the stop reason and usage as the non-streaming converter
    /// would, by handing it a whole answer with no content but the same finish, tool calls,
    /// refusal and usage.
    fn finish(&mut self) -> Result<(Vec<Step>, Value), ConvertError> {
        if self.finished {
            return err("the stream was already finished");
        }
        if !self.started {
            return err("the OpenAI stream ended before its first chunk");
        }
        self.finished = true;
        let mut steps = Vec::new();
        self.close(&mut steps);
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), Value::Null);
        if self.tools > 0 {
            message.insert(
                "tool_calls".into(),
                json!([{"id": "x", "type": "function", "function": {"name": "x", "arguments": "{}"}}]),
            );
        }
        if self.refused {
            message.insert("refusal".into(), json!("x"));
        }
        let mut choice = Map::new();
        choice.insert("index".into(), json!(0));
        choice.insert("message".into(), Value::Object(message));
        choice.insert("finish_reason".into(), self.finish.clone().map(Value::String).unwrap_or(Value::Null));
        if let Some(m) = &self.matched {
            choice.insert("stop_reason".into(), json!(m));
        }
        let whole = json!({"id": "x", "choices": [choice], "usage": self.usage.clone().unwrap_or(Value::Null)});
        Ok((steps, openai_to_claude(&whole)?))
    }
}

/// OpenAI `chat.completion.chunk`s → ConverseStream events.
///
/// Call [`push`](Self::push) with each chunk (parsed `data:` line; skip `[DONE]`) and
/// [`finish`](Self::finish) when the stream ends. Events are shaped as
/// [`converse_stream_events`](super::converse_stream_events) gives them: `messageStart` with the
/// first chunk; per block a `contentBlockStart` (tool calls only), deltas, `contentBlockStop`;
/// `messageStop` and `metadata` at the end, when the finish reason and the usage (sent after
/// it, with `stream_options.include_usage`) are known. Blocks: reasoning
/// (`delta.reasoning_content` or `delta.reasoning`; a signature from `delta.thinking_blocks`),
/// text (`delta.content`), refusal text (`delta.refusal`, its own block), one block per tool call.
#[derive(Debug, Default)]
pub struct OpenAiConverseStream {
    core: Core,
}

impl OpenAiConverseStream {
    /// A converter for one stream.
    pub fn new() -> OpenAiConverseStream {
        OpenAiConverseStream::default()
    }

    /// The events for one chunk (none, for a chunk that only carries usage or a finish reason).
    pub fn push(&mut self, chunk: &Value) -> Result<Vec<Value>, ConvertError> {
        let first = !self.core.started;
        let steps = self.core.push(chunk)?;
        let mut out = Vec::new();
        if first {
            out.push(json!({"messageStart": {"role": "assistant"}}));
        }
        out.extend(steps.into_iter().flat_map(converse_events));
        Ok(out)
    }

    /// The closing events: the last `contentBlockStop`, `messageStop{stopReason}` and
    /// `metadata{usage, metrics{latencyMs}}`.
    pub fn finish(&mut self, latency_ms: u64) -> Result<Vec<Value>, ConvertError> {
        let (steps, claude) = self.core.finish()?;
        let mut out: Vec<Value> = steps.into_iter().flat_map(converse_events).collect();
        let stop = claude["stop_reason"].as_str().unwrap_or("end_turn");
        let Some(stop) = converse_stop_reason_from_claude(stop) else {
            return err(format!("stop reason `{stop}` has no Converse stopReason"));
        };
        out.push(json!({"messageStop": {"stopReason": stop}}));
        let usage = claude_usage(&claude["usage"])?;
        out.push(json!({"metadata": {"usage": usage.to_converse(), "metrics": {"latencyMs": latency_ms}}}));
        Ok(out)
    }
}

fn converse_events(step: Step) -> Vec<Value> {
    let d = |i: usize, delta: Value| json!({"contentBlockDelta": {"delta": delta, "contentBlockIndex": i}});
    vec![match step {
        Step::StartReasoning(_) | Step::StartText(_) => return vec![],
        Step::StartTool { index, id, name } => {
            json!({"contentBlockStart": {"start": {"toolUse": {"toolUseId": id, "name": name}}, "contentBlockIndex": index}})
        }
        Step::Redacted { index, data } => {
            // Converse's redactedContent is a blob; the bytes are those of the data string. The
            // block's stop follows at once.
            return vec![
                d(
                    index,
                    json!({"reasoningContent": {"redactedContent": aws_smithy_types::base64::encode(data.as_bytes())}}),
                ),
                json!({"contentBlockStop": {"contentBlockIndex": index}}),
            ];
        }
        Step::Reasoning(i, t) => d(i, json!({"reasoningContent": {"text": t}})),
        Step::Signature(_, s) if s.is_empty() => return vec![],
        Step::Signature(i, s) => d(i, json!({"reasoningContent": {"signature": s}})),
        Step::Text(i, t) => d(i, json!({"text": t})),
        Step::ToolInput(i, t) => d(i, json!({"toolUse": {"input": t}})),
        Step::Stop(i) => json!({"contentBlockStop": {"contentBlockIndex": i}}),
    }]
}

/// OpenAI `chat.completion.chunk`s → Claude Messages stream events (the chunk payloads of
/// InvokeModelWithResponseStream for a Claude body in `mode: "openai"`).
///
/// `message_start` comes with the first chunk (its `id` and `model`, usage still zero);
/// reasoning becomes a `thinking` block (`thinking_delta`s, then a `signature_delta`), text and
/// refusal text `text` blocks, tool calls `tool_use` blocks with `input_json_delta`s;
/// [`finish`](Self::finish) gives the last `content_block_stop`, `message_delta` (stop reason,
/// stop sequence and the whole usage) and `message_stop` with `amazon-bedrock-invocationMetrics`.
#[derive(Debug, Default)]
pub struct OpenAiClaudeStream {
    core: Core,
}

impl OpenAiClaudeStream {
    /// A converter for one stream.
    pub fn new() -> OpenAiClaudeStream {
        OpenAiClaudeStream::default()
    }

    /// The events for one chunk.
    pub fn push(&mut self, chunk: &Value) -> Result<Vec<Value>, ConvertError> {
        let first = !self.core.started;
        let steps = self.core.push(chunk)?;
        let mut out = Vec::new();
        if first {
            let id = match chunk.get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => id.to_string(),
                _ => format!("msg_{}", &hex::encode(Sha256::digest(chunk.to_string().as_bytes()))[..24]),
            };
            let model = chunk.get("model").and_then(Value::as_str).unwrap_or("");
            out.push(json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}
            }}));
        }
        out.extend(steps.into_iter().flat_map(claude_events));
        Ok(out)
    }

    /// The closing events. The invocation metrics are built from the usage (`inputTokenCount`
    /// without cached tokens, `outputTokenCount`, cache counts when non-zero) and the latencies.
    pub fn finish(
        &mut self,
        invocation_latency_ms: u64,
        first_byte_latency_ms: u64,
    ) -> Result<Vec<Value>, ConvertError> {
        let (steps, claude) = self.core.finish()?;
        let mut out: Vec<Value> = steps.into_iter().flat_map(claude_events).collect();
        out.push(json!({"type": "message_delta", "delta": {"stop_reason": claude["stop_reason"], "stop_sequence": claude["stop_sequence"]}, "usage": claude["usage"]}));
        let metrics = super::invocation_metrics("claude", &claude, invocation_latency_ms, first_byte_latency_ms)?;
        out.push(json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}));
        Ok(out)
    }
}

fn claude_events(step: Step) -> Vec<Value> {
    let d = |i: usize, delta: Value| json!({"type": "content_block_delta", "index": i, "delta": delta});
    vec![match step {
        Step::StartReasoning(i) => {
            json!({"type": "content_block_start", "index": i, "content_block": {"type": "thinking", "thinking": ""}})
        }
        Step::StartText(i) => {
            json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
        }
        Step::StartTool { index, id, name } => {
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})
        }
        Step::Redacted { index, data } => {
            return vec![
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "redacted_thinking", "data": data}}),
                json!({"type": "content_block_stop", "index": index}),
            ]
        }
        Step::Reasoning(i, t) => d(i, json!({"type": "thinking_delta", "thinking": t})),
        Step::Signature(i, s) => d(i, json!({"type": "signature_delta", "signature": s})),
        Step::Text(i, t) => d(i, json!({"type": "text_delta", "text": t})),
        Step::ToolInput(i, t) => d(i, json!({"type": "input_json_delta", "partial_json": t})),
        Step::Stop(i) => json!({"type": "content_block_stop", "index": i}),
    }]
}
