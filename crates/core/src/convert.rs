//! Bedrock Claude Messages ⇄ OpenAI chat-completions conversion, for `mode: "openai"`.
//!
//! Plain functions with no I/O: [`claude_to_openai`] turns the Claude Messages body a caller
//! would send to Bedrock `InvokeModel` into an OpenAI `chat/completions` request body, and
//! [`openai_to_claude`] turns the OpenAI answer back into the body Bedrock would return. The rule
//! is: carry everything the other side can express, and refuse (with a [`ConvertError`], which
//! becomes a `ValidationException`) what it cannot. Nothing is dropped silently; the only things
//! left out on purpose are listed under "Omitted by design".
//!
//! # Request: Claude Messages body → OpenAI chat request
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
//! # Response: OpenAI chat completion → Claude Messages response
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

mod dispatch;
mod request;
mod response;

use std::fmt;

pub use dispatch::{converse_to_native, native_family, native_to_converse, NativeFamily};
pub use request::claude_to_openai;
pub use response::{openai_to_claude, stop_reason_from_openai};

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
    let unknown: Vec<String> = obj.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("`{k}`")).collect();
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
