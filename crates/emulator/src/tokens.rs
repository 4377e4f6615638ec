//! How the emulator counts a request's input tokens: the content a model's tokenizer would see,
//! whatever shape carries it.
//!
//! A request is read for its content only: the text of its messages and system prompt, its tool
//! definitions, tool calls and tool results, and its images, documents, video and audio. The names
//! the carrier gives its members (`toolUseId` or `id`, `inputSchema.json` or `input_schema`), their
//! order and the whitespace between them do not count, nor do the parameters of the call
//! (`inferenceConfig`, `max_tokens`, `temperature`, `anthropic_version`, tool choice, stop
//! sequences, cache points, `additionalModelRequestFields` such as `thinking`). So a Converse
//! request and the Claude Messages body it converts into count the same, and CountTokens answers
//! what the responders report as input usage.
//!
//! The rule:
//! - **text** ([`text`]): every run of ASCII letters and digits counts one token per four characters
//!   (rounded up), every other character one token, except whitespace, which counts none;
//! - **JSON content** (tool inputs and input schemas, a Converse `json` tool result) counts as the
//!   text of its compact serialization ([`json`]), which is what Claude's body carries for a `json`
//!   tool result; the count depends on neither key order nor whitespace;
//! - **media** (an image, a binary document such as a PDF, video, audio): one token per
//!   [`MEDIA_BYTES_PER_TOKEN`] bytes (rounded up, at least one), from the base64 text's length;
//!   a text document (Converse `txt`, `md`, `csv`, `html` bytes) counts as its text; media given by
//!   reference (an S3 location, a URL, a file id) counts the reference's text;
//! - **framing**: [`FRAME`] tokens for the request, for each message, for the system prompt (once,
//!   when it has content), for each tool definition, tool call, tool result, image, document, video,
//!   audio and search result. Text, reasoning and citation blocks carry no frame.
//!
//! Prompt bodies (Llama, Mistral, Titan Text) count [`FRAME`] plus the prompt's text; Titan
//! embeddings count the input text alone.

use serde_json::{Map, Value};

/// Tokens framing a part of the prompt: the request itself, a message, the system prompt, a tool
/// definition, a tool call or result, a media or document block.
pub const FRAME: u64 = 3;

/// Bytes of an image, binary document, video or audio per token.
pub const MEDIA_BYTES_PER_TOKEN: u64 = 750;

/// Converse document formats whose bytes are text (the Claude body carries them as text).
const TEXT_FORMATS: [&str; 4] = ["txt", "md", "csv", "html"];

/// Tokens of a text: a run of ASCII letters and digits counts one per four characters (rounded
/// up), any other character one, whitespace none.
pub fn text(s: &str) -> u64 {
    let mut tokens = 0;
    let mut run: u64 = 0;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            run += 1;
            continue;
        }
        tokens += run.div_ceil(4);
        run = 0;
        if !c.is_whitespace() {
            tokens += 1;
        }
    }
    tokens + run.div_ceil(4)
}

/// Tokens of JSON content: the text of its compact serialization.
pub fn json(v: &Value) -> u64 {
    text(&v.to_string())
}

/// Tokens of media of `bytes` bytes.
pub fn media(bytes: u64) -> u64 {
    bytes.div_ceil(MEDIA_BYTES_PER_TOKEN).max(1)
}

/// Input tokens of a Converse request (also a Nova `messages-v1` body, and CountTokens' `converse`
/// input): `system`, `messages` and `toolConfig.tools`.
pub fn converse(body: &Value) -> u64 {
    let system = list(body.get("system")).map(converse_block).sum::<u64>();
    let has_system = list(body.get("system")).any(|b| b.get("cachePoint").is_none());
    let messages: u64 = list(body.get("messages"))
        .map(|m| FRAME + list(m.get("content")).map(converse_block).sum::<u64>() + string_content(m.get("content")))
        .sum();
    let tools: u64 = list(body.pointer("/toolConfig/tools"))
        .map(|t| {
            if let Some(spec) = t.get("toolSpec") {
                FRAME + str_at(spec, "name") + str_at(spec, "description") + json_at(spec, "/inputSchema/json")
            } else if let Some(tool) = t.get("systemTool") {
                FRAME + str_at(tool, "name")
            } else {
                0
            }
        })
        .sum();
    FRAME + framed(has_system, system) + messages + tools
}

/// Input tokens of an Anthropic Claude Messages body: `system`, `messages` and `tools`.
pub fn claude(body: &Value) -> u64 {
    let (has_system, system) = match body.get("system") {
        Some(Value::String(s)) => (!s.is_empty(), text(s)),
        Some(Value::Array(blocks)) => (!blocks.is_empty(), blocks.iter().map(claude_block).sum()),
        _ => (false, 0),
    };
    let messages: u64 = list(body.get("messages"))
        .map(|m| FRAME + list(m.get("content")).map(claude_block).sum::<u64>() + string_content(m.get("content")))
        .sum();
    let tools: u64 = list(body.get("tools"))
        .map(|t| FRAME + str_at(t, "name") + str_at(t, "description") + json_at(t, "/input_schema"))
        .sum();
    FRAME + framed(has_system, system) + messages + tools
}

/// Input tokens of a chat body in the OpenAI style (Mistral's chat models): `messages` with string
/// or text-part content and `tool_calls`, and `tools[].function`.
pub fn chat(body: &Value) -> u64 {
    let messages: u64 = list(body.get("messages"))
        .map(|m| {
            let parts: u64 =
                list(m.get("content")).map(|p| str_at(p, "text") + str_at(p, "/image_url/url")).sum::<u64>();
            let calls: u64 = list(m.get("tool_calls"))
                .map(|c| FRAME + str_at(c, "id") + str_at(c, "/function/name") + str_at(c, "/function/arguments"))
                .sum();
            FRAME + string_content(m.get("content")) + parts + calls + str_at(m, "tool_call_id")
        })
        .sum();
    let tools: u64 = list(body.get("tools"))
        .map(|t| {
            FRAME
                + str_at(t, "/function/name")
                + str_at(t, "/function/description")
                + json_at(t, "/function/parameters")
        })
        .sum();
    FRAME + messages + tools
}

/// Input tokens of a prompt body (Llama, Mistral's prompt models, Titan Text).
pub fn prompt(prompt: &str) -> u64 {
    FRAME + text(prompt)
}

// ===== Converse blocks =====

/// A Converse content block, system block or tool-result block (a union: its one member counts).
fn converse_block(block: &Value) -> u64 {
    let Some(o) = block.as_object() else {
        return 0;
    };
    o.iter()
        .map(|(member, v)| match member.as_str() {
            "text" => v.as_str().map_or_else(|| str_at(v, "text"), text),
            "json" => json(v),
            "image" | "video" | "audio" => FRAME + converse_media(v.get("source")),
            "document" => converse_document(v),
            "searchResult" => FRAME + search_result(v),
            "toolUse" => FRAME + str_at(v, "toolUseId") + str_at(v, "name") + json_at(v, "/input"),
            "toolResult" => FRAME + str_at(v, "toolUseId") + list(v.get("content")).map(converse_block).sum::<u64>(),
            // A guardrail's text or image ({text: {text}} or {image: {format, source}}).
            "guardContent" => converse_block(v),
            "reasoningContent" => {
                str_at(v, "/reasoningText/text") + v.get("redactedContent").map_or(0, |b| base64_len(b).div_ceil(4))
            }
            "citationsContent" => list(v.get("content")).map(|c| str_at(c, "text")).sum(),
            "toolAddition" | "toolRemoval" => str_at(v, "/tool/name") + str_at(v, "/tool/serverName"),
            _ => 0,
        })
        .sum()
}

/// A Converse media source: `bytes` (base64) by size, an `s3Location` by its URI.
fn converse_media(source: Option<&Value>) -> u64 {
    match source {
        Some(s) if s.get("bytes").is_some() => media(s.get("bytes").map_or(0, base64_len)),
        Some(s) => str_at(s, "/s3Location/uri"),
        None => 0,
    }
}

fn converse_document(doc: &Value) -> u64 {
    let framing = FRAME + str_at(doc, "name") + str_at(doc, "context");
    let Some(source) = doc.get("source") else {
        return framing;
    };
    let content = if let Some(bytes) = source.get("bytes") {
        let is_text = doc.get("format").and_then(Value::as_str).is_some_and(|f| TEXT_FORMATS.contains(&f));
        match decoded_text(bytes).filter(|_| is_text) {
            Some(t) => text(&t),
            None => media(base64_len(bytes)),
        }
    } else if let Some(t) = source.get("text").and_then(Value::as_str) {
        text(t)
    } else if let Some(parts) = source.get("content") {
        list(Some(parts)).map(|p| str_at(p, "text")).sum()
    } else {
        str_at(source, "/s3Location/uri")
    };
    framing + content
}

/// A search result (Converse `searchResult`, Claude `search_result`): source, title and texts.
fn search_result(v: &Value) -> u64 {
    str_at(v, "source") + str_at(v, "title") + list(v.get("content")).map(|c| str_at(c, "text")).sum::<u64>()
}

// ===== Claude blocks =====

fn claude_block(block: &Value) -> u64 {
    match block.get("type").and_then(Value::as_str) {
        Some("text") => str_at(block, "text"),
        Some("image") => FRAME + claude_source(block.get("source")),
        Some("document") => {
            FRAME + str_at(block, "title") + str_at(block, "context") + claude_source(block.get("source"))
        }
        Some("search_result") => FRAME + search_result(block),
        Some("tool_use" | "server_tool_use") => {
            FRAME + str_at(block, "id") + str_at(block, "name") + json_at(block, "/input")
        }
        Some("tool_result") => {
            let content = match block.get("content") {
                Some(Value::String(s)) => text(s),
                other => list(other).map(claude_block).sum(),
            };
            FRAME + str_at(block, "tool_use_id") + content
        }
        Some("thinking") => str_at(block, "thinking"),
        // The data of redacted thinking is the bytes Converse carries as `redactedContent`.
        Some("redacted_thinking") => {
            block.get("data").and_then(Value::as_str).map_or(0, |d| (d.len() as u64).div_ceil(4))
        }
        // Another block (a server tool's result, say): the text it holds.
        _ => block.as_object().map_or(0, strings_but_type),
    }
}

/// A Claude source: base64 data by size, text by its text, content blocks, or a URL / file id.
fn claude_source(source: Option<&Value>) -> u64 {
    let Some(s) = source else {
        return 0;
    };
    match s.get("type").and_then(Value::as_str) {
        Some("base64") => media(s.get("data").map_or(0, base64_len)),
        Some("text") => str_at(s, "data"),
        Some("content") => match s.get("content") {
            Some(Value::String(t)) => text(t),
            other => list(other).map(claude_block).sum(),
        },
        Some("url") => str_at(s, "url"),
        Some("file") => str_at(s, "file_id"),
        _ => 0,
    }
}

/// The text of every string in an object (nested too), but its `type`.
fn strings_but_type(o: &Map<String, Value>) -> u64 {
    fn all(v: &Value) -> u64 {
        match v {
            Value::String(s) => text(s),
            Value::Array(items) => items.iter().map(all).sum(),
            Value::Object(o) => o.values().map(all).sum(),
            _ => 0,
        }
    }
    o.iter().filter(|(k, _)| *k != "type").map(|(_, v)| all(v)).sum()
}

// ===== helpers =====

/// The system prompt's tokens with its frame, when it has content.
fn framed(has: bool, tokens: u64) -> u64 {
    if has {
        FRAME + tokens
    } else {
        0
    }
}

/// The items of a JSON array (none for anything else).
fn list(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

/// Tokens of message content given as a plain string (Claude, chat bodies); 0 for blocks.
fn string_content(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_str).map_or(0, text)
}

/// Tokens of the string at `key` (a member name, or a JSON pointer when it starts with `/`).
fn str_at(v: &Value, key: &str) -> u64 {
    let found = if key.starts_with('/') { v.pointer(key) } else { v.get(key) };
    found.and_then(Value::as_str).map_or(0, text)
}

/// Tokens of the JSON content at pointer `at`.
fn json_at(v: &Value, at: &str) -> u64 {
    v.pointer(at).map_or(0, json)
}

/// The number of bytes base64 text decodes to, from its length (padding and whitespace aside).
fn base64_len(v: &Value) -> u64 {
    let Some(s) = v.as_str() else {
        return 0;
    };
    let symbols = s.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=').count() as u64;
    symbols * 3 / 4
}

/// Base64 bytes decoded to UTF-8 text, if they are.
fn decoded_text(v: &Value) -> Option<String> {
    let bytes = aws_smithy_types::base64::decode(v.as_str()?).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn text_counts_word_pieces_and_symbols_but_not_whitespace() {
        assert_eq!(text(""), 0);
        assert_eq!(text("   \n\t"), 0);
        assert_eq!(text("What is 2 + 2?"), 6, "What, is, 2, +, 2, ?");
        assert_eq!(text("weather"), 2, "seven letters: two pieces of four");
        assert_eq!(text("emulator's"), 4, "emul ator ' s");
        assert_eq!(text("naïve"), 3, "na, ï, ve");
        assert_eq!(text("日本語"), 3, "one a character outside ASCII");
        assert_eq!(text("a  b\n\nc"), text("a b c"), "whitespace does not count");
    }

    #[test]
    fn json_content_ignores_key_order_and_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#)
                .unwrap();
        let b: Value = serde_json::from_str(
            "{\n  \"required\": [\"city\"],\n  \"properties\": { \"city\": { \"type\": \"string\" } },\n  \"type\": \"object\"\n}",
        )
        .unwrap();
        assert_eq!(json(&a), json(&b));
        assert_eq!(json(&a), text(&a.to_string()));
        assert!(json(&a) > 20, "{}", json(&a));
    }

    #[test]
    fn media_counts_by_decoded_size() {
        assert_eq!(base64_len(&json!("aGVsbG8=")), 5);
        assert_eq!(base64_len(&json!("aGVsbG8")), 5, "unpadded");
        assert_eq!(media(1), 1);
        assert_eq!(media(750), 1);
        assert_eq!(media(751), 2);
    }

    #[test]
    fn parameters_do_not_count_and_content_does() {
        let plain = json!({ "messages": [{ "role": "user", "content": [{ "text": "Hello there" }] }] });
        let mut tuned = plain.clone();
        tuned["inferenceConfig"] = json!({ "maxTokens": 10, "temperature": 0.5, "stopSequences": ["END"] });
        tuned["additionalModelRequestFields"] = json!({ "thinking": { "type": "enabled", "budget_tokens": 1024 } });
        tuned["messages"][0]["content"].as_array_mut().unwrap().push(json!({ "cachePoint": { "type": "default" } }));
        assert_eq!(converse(&plain), converse(&tuned));
        assert_eq!(converse(&plain), FRAME + FRAME + text("Hello there"));
        let mut more = plain.clone();
        more["system"] = json!([{ "text": "Be brief." }]);
        assert_eq!(converse(&more), converse(&plain) + FRAME + text("Be brief."));
    }

    #[test]
    fn a_claude_message_counts_the_same_as_a_string_or_as_text_blocks() {
        let string = json!({ "anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "system": "Be brief.",
            "messages": [{ "role": "user", "content": "Hello there" }] });
        let blocks = json!({ "max_tokens": 99, "anthropic_version": "bedrock-2023-05-31", "system": [{ "type": "text", "text": "Be brief." }],
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Hello there" }] }] });
        assert_eq!(claude(&string), claude(&blocks));
        let as_converse = json!({ "system": [{ "text": "Be brief." }], "messages": [{ "role": "user", "content": [{ "text": "Hello there" }] }] });
        assert_eq!(claude(&string), converse(&as_converse));
    }

    #[test]
    fn a_text_document_counts_its_text_and_a_pdf_its_size() {
        let encoded = aws_smithy_types::base64::encode("A short note about cats.");
        let doc = |format: &str| json!({ "messages": [{ "role": "user", "content": [{ "document": { "format": format, "name": "note", "source": { "bytes": encoded } } }] }] });
        let base = FRAME + FRAME + FRAME + text("note");
        assert_eq!(converse(&doc("txt")), base + text("A short note about cats."));
        assert_eq!(converse(&doc("pdf")), base + media(24));
    }

    // ===== a Converse request and the native body the engine converts it into =====

    const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
    const NOVA: &str = "amazon.nova-lite-v1:0";

    /// A one-pixel PNG.
    const PNG: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

    fn user(blocks: Value) -> Value {
        json!({ "role": "user", "content": blocks })
    }

    fn weather_tool() -> Value {
        json!({ "tools": [{ "toolSpec": { "name": "get_weather", "description": "The weather in a city",
            "inputSchema": { "json": { "type": "object", "properties": { "city": { "type": "string", "description": "City name" } }, "required": ["city"] } } } }] })
    }

    /// Converse requests of every kind of content the converters carry, by name.
    fn cases() -> Vec<(&'static str, Value)> {
        let tool_use =
            json!({ "toolUse": { "toolUseId": "tooluse_abc123", "name": "get_weather", "input": { "city": "Oslo" } } });
        vec![
            ("plain text", json!({ "messages": [user(json!([{ "text": "What is the capital of Norway?" }]))] })),
            (
                "system prompt and inference parameters",
                json!({ "system": [{ "text": "You are terse." }, { "text": "Answer in English." }],
                    "messages": [user(json!([{ "text": "Hello" }]))],
                    "inferenceConfig": { "maxTokens": 50, "temperature": 0.2, "stopSequences": ["STOP"] } }),
            ),
            (
                "multi-turn",
                json!({ "messages": [
                    user(json!([{ "text": "My name is Ada." }])),
                    { "role": "assistant", "content": [{ "text": "Nice to meet you, Ada." }] },
                    user(json!([{ "text": "What is my name?" }, { "text": "Answer in one word." }])),
                ] }),
            ),
            (
                "tool use with a tool result",
                json!({ "messages": [
                    user(json!([{ "text": "What is the weather in Oslo? [[tool:get_weather]]" }])),
                    { "role": "assistant", "content": [{ "text": "Let me check." }, tool_use] },
                    user(json!([{ "toolResult": { "toolUseId": "tooluse_abc123", "content": [{ "text": "Sunny, 21 degrees" }] } }])),
                ], "toolConfig": weather_tool() }),
            ),
            (
                "a json tool result that failed",
                json!({ "messages": [
                    user(json!([{ "text": "Weather?" }])),
                    { "role": "assistant", "content": [tool_use] },
                    user(json!([{ "toolResult": { "toolUseId": "tooluse_abc123", "status": "error",
                        "content": [{ "json": { "error": "no such city", "code": 404, "tried": ["Oslo", "Bergen"] } }] } }])),
                ], "toolConfig": { "tools": weather_tool()["tools"], "toolChoice": { "any": {} } } }),
            ),
            (
                "an image",
                json!({ "messages": [user(json!([{ "image": { "format": "png", "source": { "bytes": PNG } } }, { "text": "Describe it." }]))] }),
            ),
            (
                "documents",
                json!({ "messages": [user(json!([
                    { "document": { "format": "pdf", "name": "Report", "source": { "bytes": PNG } } },
                    { "document": { "format": "txt", "name": "Notes", "context": "meeting notes",
                        "source": { "bytes": aws_smithy_types::base64::encode("Cats sleep sixteen hours a day.") } } },
                    { "document": { "name": "Inline", "source": { "text": "Dogs bark." } } },
                    { "document": { "name": "Parts", "source": { "content": [{ "text": "Part one." }, { "text": "Part two." }] } } },
                    { "text": "Summarise." },
                ]))] }),
            ),
            (
                "cache points",
                json!({ "system": [{ "text": "A long system prompt." }, { "cachePoint": { "type": "default" } }],
                    "messages": [user(json!([{ "text": "Question" }, { "cachePoint": { "type": "default", "ttl": "1h" } }]))],
                    "toolConfig": { "tools": [weather_tool()["tools"][0], { "cachePoint": { "type": "default" } }] } }),
            ),
            (
                "reasoning in an earlier turn",
                json!({ "messages": [
                    user(json!([{ "text": "Why is the sky blue?" }])),
                    { "role": "assistant", "content": [
                        { "reasoningContent": { "reasoningText": { "text": "Rayleigh scattering.", "signature": "c2ln" } } },
                        { "text": "Because of scattering." },
                    ] },
                    user(json!([{ "text": "And at sunset?" }])),
                ], "additionalModelRequestFields": { "thinking": { "type": "enabled", "budget_tokens": 1024 } } }),
            ),
            (
                "a search result",
                json!({ "messages": [user(json!([
                    { "searchResult": { "source": "https://example.com/a", "title": "A page", "content": [{ "text": "Some found text." }] } },
                    { "text": "Use it." },
                ]))] }),
            ),
        ]
    }

    #[test]
    fn a_converse_request_and_its_claude_body_report_the_same_input_usage() {
        for (name, request) in cases() {
            let native = bedrock_batch_core::convert::converse_to_claude(&request, CLAUDE)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(converse(&request), claude(&native), "{name}: {native}");
            // The responders report these counts, on demand and in batch records alike.
            let on_demand = crate::responders::converse(CLAUDE, request.to_string().as_bytes(), &request).unwrap();
            let invoked = crate::responders::invoke(CLAUDE, native.to_string().as_bytes(), &native).unwrap();
            assert_eq!(on_demand.input_tokens, invoked.input_tokens, "{name}");
            assert_eq!(on_demand.body["usage"]["inputTokens"], invoked.body["usage"]["input_tokens"], "{name}");
            // Pretty-printed, the same body counts the same.
            let pretty = serde_json::to_string_pretty(&native).unwrap();
            let again = crate::responders::invoke(CLAUDE, pretty.as_bytes(), &native).unwrap();
            assert_eq!(again.input_tokens, invoked.input_tokens, "{name}");
        }
    }

    #[test]
    fn a_converse_request_and_its_nova_body_report_the_same_input_usage() {
        let mut converted = Vec::new();
        for (name, request) in cases() {
            // Content Nova cannot take (a search result, reasoning) is refused by the converter.
            let Ok(native) = bedrock_batch_core::convert::converse_to_nova(&request) else {
                continue;
            };
            let on_demand = crate::responders::converse(NOVA, request.to_string().as_bytes(), &request).unwrap();
            let invoked = crate::responders::invoke(NOVA, native.to_string().as_bytes(), &native).unwrap();
            assert_eq!(on_demand.input_tokens, invoked.input_tokens, "{name}: {native}");
            converted.push(name);
        }
        assert!(converted.len() >= 6, "{converted:?}");
    }

    #[test]
    fn the_counts_of_the_cases_are_what_the_rule_says() {
        let counts: Vec<(&str, u64)> = cases().into_iter().map(|(name, r)| (name, converse(&r))).collect();
        // "What is the capital of Norway?": What is the capi tal of Norw ay ? = 9, plus the request's
        // and the message's frames.
        assert_eq!(counts[0], ("plain text", 3 + 3 + 9));
        // The image: a frame and one token for its 67 bytes; "Describe it.": Desc ribe it . = 4.
        assert_eq!(counts[5], ("an image", 3 + 3 + (3 + 1) + 4));
    }
}
