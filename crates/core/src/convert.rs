//! Request and answer conversions: Bedrock Claude Messages ⇄ OpenAI chat completions (for
//! `mode: "openai"`), Converse ⇄ model-native InvokeModel bodies (Claude, Nova), Converse ⇄ OpenAI
//! chat completions, and whole answers → the stream events a streaming call gives.
//!
//! Every function here is pure (`serde_json::Value` in and out, no I/O) and follows one rule:
//! carry everything the other side can express, refuse with a [`ConvertError`] (which becomes a
//! `ValidationException`) naming the member it cannot, drop nothing silently (what is left out on
//! purpose is listed under "Omitted by design"). All JSON is as on the wire (restJson1): blobs
//! are base64 strings, a Converse request has no `modelId` (it is in the URI).
//!
//! | function | from | to |
//! |---|---|---|
//! | [`claude_to_openai`] / [`openai_to_claude`] | Claude Messages body / OpenAI answer | OpenAI request / Claude answer |
//! | [`converse_to_claude`] / [`claude_to_converse`] | Converse request / Claude answer | Claude Messages body / Converse response |
//! | [`converse_to_nova`] / [`nova_to_converse`] | Converse request / Nova answer | Nova native body / Converse response |
//! | [`converse_to_native`] / [`native_to_converse`] | by model id: the two above | |
//! | [`converse_to_openai`] / [`openai_to_converse`] | Converse request / OpenAI answer | OpenAI request / Converse response |
//! | [`converse_stream_events`] | Converse response | ConverseStream events |
//! | [`native_stream_chunks`] | native answer (Claude, Nova, Llama, Titan, Mistral) | InvokeModelWithResponseStream chunk payloads |
//! | [`OpenAiConverseStream`] / [`OpenAiClaudeStream`] | OpenAI `chat.completion.chunk`s | ConverseStream events / Claude stream events |
//! | [`model_family`], [`converse_family`], [`claude_default_max_tokens`], [`invocation_metrics`], [`split_deltas`] | helpers | |
//!
//! # Claude Messages ⇄ OpenAI chat completions
//!
//! [`claude_to_openai`] turns the Claude Messages body a caller
//! would send to Bedrock `InvokeModel` into an OpenAI `chat/completions` request body, and
//! [`openai_to_claude`] turns the OpenAI answer back into the body Bedrock would return. The rule
//! is: carry everything the other side can express, and refuse (with a [`ConvertError`], which
//! becomes a `ValidationException`) what it cannot. Nothing is dropped silently; the only things
//! left out on purpose are listed under "Omitted by design".
//!
//! ## Request: Claude Messages body → OpenAI chat request
//!
//! | Claude | OpenAI |
//! |---|---|
//! | body without `messages` (Titan `inputText`, Llama/Mistral `prompt`, Nova `schemaVersion`, …) | error: not a Claude Messages body |
//! | `anthropic_version` | consumed (must be a string if present) |
//! | `anthropic_beta` | empty array: consumed; any flag: error naming the flags |
//! | `max_tokens` (required) | `max_tokens` |
//! | `temperature`, `top_p` | same name, value as is |
//! | `top_k` | `top_k` when [`OpenAiTarget::supports_top_k`]; otherwise error naming `top_k` |
//! | `stop_sequences` | `stop` (omitted when the array is empty) |
//! | `metadata.user_id` | `user` (other `metadata` keys: error) |
//! | `thinking: {type:"disabled"}` | consumed; `{type:"enabled", …}`: error (no chat-completions counterpart) |
//! | any other top-level key | error naming the keys |
//! | `system` string | one leading `system` message (omitted when empty) |
//! | `system` text blocks | **one** leading `system` message, block texts joined with `"\n"`, in order (several system messages break many open-model chat templates) |
//! | `content` string | `content` string |
//! | `text` block | `{type:"text", text}` part; a user message whose only part is text gets a plain string |
//! | `image`, `source.type:"base64"` | `{type:"image_url", image_url:{url:"data:<media_type>;base64,<data>"}}` |
//! | `image`, `source.type:"url"` | `{type:"image_url", image_url:{url}}` |
//! | `document`, base64 source (PDF) | `{type:"file", file:{filename: title or "document.pdf", file_data:"data:<media_type>;base64,<data>"}}` when [`OpenAiTarget::supports_file_parts`], else error; a `context` becomes a text part just before the file part |
//! | `document`, `source.type:"text"` | one text part: `title`, `context` (each followed by a blank line, when present) then the text |
//! | `document`, `source.type:"content"` | its text and image blocks as parts (title/context as a text part before them) |
//! | `document`, `url` or `file` source; `citations.enabled: true` | error |
//! | assistant `tool_use` | `tool_calls[] {id, type:"function", function:{name, arguments: <input as a JSON string>}}`; the assistant's text stays in `content` (`null` when there is none). Text after a `tool_use` is moved before the calls: chat completions has one content and one call list per message |
//! | user `tool_result` | a `{role:"tool", tool_call_id, content}` message; string content as is, text blocks joined with `"\n"`; `is_error: true` prefixes the content with `"Error: "` (just `"Error"` when empty); an image (or any non-text block) in a result: error (tool messages take text only, and a data URI as text would feed the model base64 instead of an image) |
//! | blocks around `tool_result`s in one user message | kept in order: each run of other blocks becomes a user message between the tool messages |
//! | `tools[]` custom (`type` absent or `"custom"`) | `{type:"function", function:{name, description (default ""), parameters: input_schema}}` |
//! | `tools[]` Anthropic-defined types (`computer_*`, `bash_*`, `text_editor_*`, `web_search_*`, …) | error |
//! | `tool_choice` auto / any / tool / none | `"auto"` / `"required"` / `{type:"function", function:{name}}` / `"none"` |
//! | `tool_choice.disable_parallel_tool_use: true` | `parallel_tool_calls: false` |
//! | unknown block types, blocks in the wrong role, unknown keys in a block | error |
//!
//! Omitted by design (no place in OpenAI chat, no effect on the answer's content):
//! - assistant `thinking` and `redacted_thinking` blocks in the history (an assistant message that
//!   had nothing else is left out entirely);
//! - `cache_control` on blocks, system blocks and tools (a caching hint).
//!
//! ## Response: OpenAI chat completion → Claude Messages response
//!
//! Only a response with exactly one choice converts (`n > 1` cannot be expressed); a response
//! carrying `error` is refused. Output keys, in Bedrock's order: `id`, `type`, `role`, `model`,
//! `content`, `stop_reason`, `stop_sequence`, `usage`.
//!
//! - `id`: the OpenAI id, kept as is (it correlates with the server's logs; nothing reads the
//!   `msg_` prefix). A response without an id gets `msg_` + 24 hex digits of the SHA-256 of the
//!   response (deterministic).
//! - `type: "message"`, `role: "assistant"`, `model`: the OpenAI `model` (`""` when absent).
//! - `content`, in order:
//!   1. reasoning: `message.thinking_blocks` (LiteLLM's Anthropic blocks with signatures) as they
//!      are, else `message.reasoning_content` or `message.reasoning` as
//!      `{type:"thinking", thinking, signature:""}` (when non-empty);
//!   2. text: `message.content` as one `text` block when non-empty (an array of text parts: one
//!      block per non-empty part); then `message.refusal` as a `text` block when non-empty;
//!   3. each `message.tool_calls[]` as `{type:"tool_use", id, name, input}` with `input` the parsed
//!      arguments (`""` → `{}`; arguments that are not a JSON object: error); a missing id becomes
//!      `call_<index>`; legacy `message.function_call` becomes a `tool_use` with id
//!      `call_function_call`.
//! - `stop_reason` / `stop_sequence`: see [`stop_reason_from_openai`]; the matched stop string is
//!   the choice's `stop_reason` (vLLM) or `matched_stop` (SGLang) when it is a string. When the
//!   choice ends with tool calls but reports `stop` (or nothing), `tool_use` is used, as Claude
//!   would; a `refusal` makes it `refusal`. A `finish_reason` outside the table (e.g. vLLM's
//!   `abort`) is an error, not a silent `end_turn`.
//! - `usage` (always present, all four keys, in Claude's order): `input_tokens` =
//!   `prompt_tokens` − cache reads − cache writes (OpenAI counts cached tokens inside
//!   `prompt_tokens`); `cache_creation_input_tokens` from `usage.cache_creation_input_tokens` or
//!   `usage.prompt_tokens_details.cache_creation_tokens` (LiteLLM), else 0;
//!   `cache_read_input_tokens` from `usage.prompt_tokens_details.cached_tokens`, else
//!   `usage.cache_read_input_tokens` (LiteLLM) or `usage.prompt_cache_hit_tokens` (DeepSeek),
//!   else 0; `output_tokens` = `completion_tokens`. A missing `usage` gives zeros.
//!
//! # Converse request → native body
//!
//! A Converse request with `toolConfig` cannot run in a Converse-type batch job (AWS: such a
//! record fails with a 400), so it is batched as an InvokeModel record in the model's native
//! format. [`converse_family`] tells whether a model id has a translation (Claude, Nova); the
//! members common to every target:
//!
//! | Converse member | Claude ([`converse_to_claude`]) | Nova ([`converse_to_nova`]) | OpenAI ([`converse_to_openai`]) |
//! |---|---|---|---|
//! | (none) | `anthropic_version: "bedrock-2023-05-31"` | `schemaVersion: "messages-v1"` | `model`: the target's |
//! | `inferenceConfig.maxTokens` | `max_tokens`; absent: [`claude_default_max_tokens`] (Converse's default is the model's maximum; Claude requires the member) | `inferenceConfig.maxTokens` | `max_tokens` (absent: none sent) |
//! | `inferenceConfig.temperature`, `topP` | `temperature`, `top_p` | same names | `temperature`, `top_p` |
//! | `inferenceConfig.stopSequences` | `stop_sequences` (not sent when empty) | same name | `stop` (not sent when empty) |
//! | `system[].text` | `system[]` text blocks | as is | one leading `system` message, texts joined with `"\n"` |
//! | `system[].cachePoint` | `cache_control` on the system block before it | as is | left out |
//! | `toolConfig.tools[].toolSpec` | `tools[] {name, description?, input_schema: inputSchema.json, strict?}` | as is | `{type:"function", function:{name, description (default ""), parameters, strict?}}` |
//! | `toolConfig.tools[].cachePoint` | `cache_control` on the tool before it | as is | left out |
//! | `toolConfig.toolChoice` auto / any / tool | `{type:"auto"}` / `{type:"any"}` / `{type:"tool", name}` | as is | `"auto"` / `"required"` / `{type:"function", function:{name}}` |
//! | `additionalModelRequestFields` | merged into the body (`top_k`, `thinking`, …) | merged as given, objects member by member (`{"inferenceConfig": {"topK": 20}}` joins `inferenceConfig`) | merged (`top_k` only where [`OpenAiTarget::supports_top_k`]) |
//! | a merged field that replaces one the conversion set | error naming it | error | error |
//! | `additionalModelResponseFieldPaths` | answered by the response converter (JSON Pointers checked here) | same | same, on the Claude-shaped answer |
//! | `outputConfig.textFormat` (json_schema) / `effort` | error | error | `response_format {type:"json_schema", json_schema:{name (default "response"), description?, schema (parsed), strict: true}}` / `reasoning_effort` |
//! | `guardrailConfig`, `promptVariables` | error (only Converse runs them) | error | error |
//! | `performanceConfig`, `serviceTier`, `requestMetadata`, `projectIdentifier` | not in the body: InvokeModel takes them as headers, the caller decides | same | same |
//! | any other member (`modelId`, …) | error | error | error |
//!
//! Content blocks (a block is a union: exactly one member set, else an error):
//!
//! | Converse block | Claude | Nova | OpenAI |
//! |---|---|---|---|
//! | `text` | `{type:"text", text}` | as is | text part (a user message of one text part: a plain string) |
//! | `image` bytes (png, jpeg, gif, webp) | `{type:"image", source:{type:"base64", media_type:"image/<format>", data}}` (user only) | as is | `image_url` with a `data:` URI |
//! | `image`/`document` `s3Location` | error | as is (images, video) | error |
//! | `document` pdf bytes | `{type:"document", source:{type:"base64", media_type:"application/pdf", data}, title: name, context?}` | error (AWS: documents are Converse-only) | a `file` part named `name` (a `context` text part first) when [`OpenAiTarget::supports_file_parts`], else error |
//! | `document` txt, md, csv, html bytes | a `text` source, `media_type:"text/plain"`, the bytes as UTF-8 (else error) | error | one text part: name, context (each then a blank line), text |
//! | `document` doc, docx, xls, xlsx | error (Claude takes PDF and plain text; only Converse converts Office files) | error | error |
//! | `document` `text` / `content` source | `text` source / `content` source of text blocks | error | one text part / a heading part and text parts |
//! | `document.citations.enabled: true`, `searchResult.citations` enabled, `citationsContent` | error (the cited answer has no conversion back) | `citationsContent`: error | error |
//! | `searchResult` | `{type:"search_result", source, title, content}` | error | error |
//! | `video`, `audio` | error | as is | error |
//! | `toolUse` (assistant) | `{type:"tool_use", id: toolUseId, name, input}` (input must be an object) | as is | `tool_calls[]`, arguments = input as compact JSON |
//! | `toolUse.type` / `toolResult.type` (server tools) | error | as is | error |
//! | `toolResult` (user) | `{type:"tool_result", tool_use_id, content, is_error: true when status is error}`; content `text` → text, `json` → text holding the compact JSON, `image`/`document`/`searchResult` → those blocks, else error | as is (`text`, `json`, `image`, `video`; else error) | a `tool` message: texts and compact JSON joined with `"\n"`, `"Error: "` in front when status is error; anything else: error |
//! | `reasoningContent.reasoningText` (assistant) | `{type:"thinking", thinking, signature?}` | as is | left out (an assistant message with nothing else is left out) |
//! | `reasoningContent.redactedContent` | `{type:"redacted_thinking", data}`, data = the blob's bytes as text | as is | left out |
//! | `cachePoint` | `cache_control {type:"ephemeral", ttl?}` on the block before it (none before: error) | as is | left out |
//! | `guardContent` | error | error | error |
//! | a block in the wrong role, role `system`, unknown blocks | error | error | error |
//!
//! # Native answer → Converse response
//!
//! The response converters take the native answer, the Converse request it answers (for
//! `additionalModelResponseFieldPaths`) and the latency for `metrics.latencyMs`. Members in the
//! service model's order: `output.message{role:"assistant", content}`, `stopReason`, `usage`,
//! `metrics`, `additionalModelResponseFields` (each requested JSON Pointer found in the native
//! answer, copied to the same place; a pointer to a missing field is ignored, as AWS documents;
//! nothing found: the member is left out).
//!
//! | Claude ([`claude_to_converse`]) | Converse |
//! |---|---|
//! | `text` | `{text}` (a text with `citations`: error) |
//! | `tool_use` | `{toolUse:{toolUseId: id, name, input}}` |
//! | `thinking` | `{reasoningContent:{reasoningText:{text, signature}}}` (an empty signature is left out) |
//! | `redacted_thinking` | `{reasoningContent:{redactedContent}}`, the blob = the bytes of `data` |
//! | other blocks (`server_tool_use`, …) | error |
//! | `stop_reason` | see [`converse_stop_reason_from_claude`]: `refusal` → `content_filtered`, `pause_turn` → error |
//! | `usage.input_tokens` / `output_tokens` | `inputTokens` / `outputTokens` |
//! | `usage.cache_read_input_tokens` / `cache_creation_input_tokens` | `cacheReadInputTokens` / `cacheWriteInputTokens`, both present when either is non-zero |
//! | `usage.cache_creation.ephemeral_1h_input_tokens` / `ephemeral_5m_input_tokens` | `cacheDetails [{ttl:"1h", inputTokens}, {ttl:"5m", inputTokens}]` (non-zero ones, 1h first) |
//! | (sum) | `totalTokens` = input + output + cache reads + cache writes |
//!
//! Nova ([`nova_to_converse`]): the answer already has Converse's shape; blocks are checked to be
//! Converse blocks, `stopReason` to be in the service model's enum (else error); usage keeps
//! Nova's `totalTokens` and renames InvokeModel's `cacheReadInputTokenCount` /
//! `cacheWriteInputTokenCount` to `cacheReadInputTokens` / `cacheWriteInputTokens` (both present
//! when either is non-zero).
//!
//! OpenAI ([`openai_to_converse`]): [`openai_to_claude`], then [`claude_to_converse`]; so
//! `finish_reason` `stop` → `end_turn` (`stop_sequence` when the server reports the matched
//! string), `length` → `max_tokens`, `tool_calls` → `tool_use`, `content_filter` and refusals →
//! `content_filtered`; `inputTokens` = `prompt_tokens` − cached tokens.
//!
//! # Streams
//!
//! A batched streaming call gets its whole answer at once and hands it out as the stream the SDK
//! would have given. Text, reasoning text and tool-input JSON are cut into deltas by
//! [`split_deltas`] (at most [`STREAM_DELTA_CHARS`] characters, words kept whole where the window
//! allows); concatenating the deltas gives the answer back exactly (text, tool input JSON, stop
//! reason, usage). [`converse_stream_events`] gives the ConverseStream events (its documentation
//! lists them). [`native_stream_chunks`] gives each chunk's `bytes` JSON, in the family's own
//! format; the invocation metrics ([`invocation_metrics`]) go on the last chunk as
//! `amazon-bedrock-invocationMetrics`:
//!
//! | family | chunks |
//! |---|---|
//! | Claude | `message_start` (the message with `content: []`, null stop reason, usage with `output_tokens: 0`); per block `content_block_start` (`text` with `""`, `thinking` with `""`, `tool_use` with `input: {}`, `redacted_thinking` whole), deltas (`text_delta`, `thinking_delta` then one `signature_delta`, `input_json_delta`), `content_block_stop`; `message_delta` (`stop_reason`, `stop_sequence`, `stop_details` if any, and `usage: {output_tokens}` as Bedrock relays it); `message_stop` |
//! | Nova | the ConverseStream event shapes (`messageStart`, `contentBlockStart`/`Delta`/`Stop`, `messageStop{stopReason}`), then `metadata{usage (Nova's names), metrics:{}, trace:{}}` |
//! | Llama | `{generation, prompt_token_count, generation_token_count, stop_reason}`: the prompt count on the first chunk, the generation count and stop reason on the last, null elsewhere |
//! | Titan Text | `{outputText, index, totalOutputTextTokenCount, completionReason, inputTextTokenCount}`: same rule |
//! | Mistral | text completions: `{outputs:[{text, stop_reason}]}`; chat: `{choices:[{index, message:{role, content, tool_calls (last chunk)}, stop_reason}]}` (AWS documents no chat stream chunk: the response's own shape, cut) |
//!
//! [`OpenAiConverseStream`] and [`OpenAiClaudeStream`] turn an OpenAI stream, chunk by chunk,
//! into ConverseStream events or Claude stream events, with the stop reason and usage decided
//! at the end exactly as [`openai_to_converse`] / [`openai_to_claude`] decide them.

mod converse;
mod converse_claude;
mod converse_nova;
mod converse_openai;
mod family;
mod openai_stream;
mod request;
mod response;
mod stream;

use std::fmt;

pub use converse_claude::{claude_to_converse, converse_stop_reason_from_claude, converse_to_claude};
pub use converse_nova::{converse_to_nova, nova_to_converse};
pub use converse_openai::{converse_to_openai, openai_to_converse};
pub use family::{claude_default_max_tokens, converse_family, model_family, ModelFamily, Native};
pub use openai_stream::{OpenAiClaudeStream, OpenAiConverseStream};
pub use request::claude_to_openai;
pub use response::{openai_to_claude, stop_reason_from_openai};
pub use stream::{converse_stream_events, invocation_metrics, native_stream_chunks, split_deltas, STREAM_DELTA_CHARS};

/// Converse request → the native InvokeModel body of `model_id`'s family: Claude
/// ([`converse_to_claude`]) or Nova ([`converse_to_nova`]); any other model is a [`ConvertError`]
/// (see [`converse_family`]).
pub fn converse_to_native(request: &serde_json::Value, model_id: &str) -> Result<serde_json::Value, ConvertError> {
    match converse_family(model_id) {
        Some(ModelFamily::Claude) => converse_to_claude(request, model_id),
        Some(ModelFamily::Nova) => converse_to_nova(request),
        _ => Err(no_translation(model_id)),
    }
}

/// The native InvokeModel answer of `model_id`'s family → Converse response: Claude
/// ([`claude_to_converse`]) or Nova ([`nova_to_converse`]).
pub fn native_to_converse(
    model_id: &str,
    response: &serde_json::Value,
    request: &serde_json::Value,
    latency_ms: u64,
) -> Result<serde_json::Value, ConvertError> {
    match converse_family(model_id) {
        Some(ModelFamily::Claude) => claude_to_converse(response, request, latency_ms),
        Some(ModelFamily::Nova) => nova_to_converse(response, request, latency_ms),
        _ => Err(no_translation(model_id)),
    }
}

fn no_translation(model_id: &str) -> ConvertError {
    ConvertError::new(format!("model `{model_id}` has no Converse translation into a native InvokeModel body (Anthropic Claude and Amazon Nova have one)"))
}

/// What the OpenAI-compatible server on the other side accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenAiTarget {
    /// The model name sent as `model`.
    pub model: String,
    /// Whether the server takes `top_k` as an extra parameter (vLLM, Ollama, …).
    pub supports_top_k: bool,
    /// Whether the server takes `{type:"file"}` content parts (PDF documents).
    pub supports_file_parts: bool,
    /// Anthropic's own Messages API (the body goes nearly as is); unused by these functions.
    pub anthropic: bool,
}

/// Why a body could not be converted; it becomes a `ValidationException`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// What could not be converted, and why.
    pub message: String,
}

impl ConvertError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> ConvertError {
        ConvertError { message: message.into() }
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConvertError {}

impl From<ConvertError> for crate::error::EngineError {
    fn from(e: ConvertError) -> Self {
        crate::error::EngineError::validation(e.message)
    }
}

/// The keys of `obj` outside `allowed`, as "`a`, `b`".
fn unknown_keys(obj: &serde_json::Map<String, serde_json::Value>, allowed: &[&str]) -> Option<String> {
    let unknown: Vec<String> =
        obj.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("`{k}`")).collect();
    if unknown.is_empty() {
        None
    } else {
        Some(unknown.join(", "))
    }
}

/// A short name for a JSON value's type, for messages.
fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
