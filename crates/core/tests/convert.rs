//! Conformance suite for the Bedrock Claude ⇄ OpenAI chat-completions converter.
//!
//! Every case is a named row. Outputs are compared as whole values *and* as serialized text,
//! so key order counts too (serde_json's map equality ignores order).

use bedrock_batch_core::convert::{
    claude_to_openai, openai_to_claude, stop_reason_from_openai, ConvertError, OpenAiTarget,
};
use serde_json::{json, Map, Value};

fn full() -> OpenAiTarget {
    OpenAiTarget { model: "m".into(), supports_top_k: true, supports_file_parts: true, anthropic: false }
}

fn plain() -> OpenAiTarget {
    OpenAiTarget { model: "gpt-4o".into(), supports_top_k: false, supports_file_parts: false, anthropic: false }
}

/// A Claude body with these messages (and the usual version and max_tokens).
fn claude(messages: Value) -> Value {
    json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": messages})
}

/// The OpenAI body for these messages, as `claude` would convert under `full()`.
fn openai(messages: Value) -> Value {
    json!({"model": "m", "messages": messages, "max_tokens": 100})
}

/// Merge extra top-level keys into an object (appended, in order).
fn with(mut base: Value, extra: Value) -> Value {
    let o = base.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        o.insert(k.clone(), v.clone());
    }
    base
}

/// Equal as values and as text (so key order counts).
fn same(actual: &Value, expected: &Value) -> bool {
    let (a, e) = (actual.to_string(), expected.to_string());
    actual == expected && a == e
}

fn check_rows(kind: &str, rows: Vec<(&'static str, Result<Value, ConvertError>, Value)>) -> usize {
    let n = rows.len();
    let mut failures = Vec::new();
    for (name, actual, expected) in rows {
        match actual {
            Ok(v) if same(&v, &expected) => {}
            Ok(v) => failures.push(format!("{kind} `{name}`:\n  expected {}\n  actual   {}", expected, v)),
            Err(e) => failures.push(format!("{kind} `{name}`: unexpected error: {}", e.message)),
        }
    }
    assert!(failures.is_empty(), "{} of {n} {kind} cases failed:\n{}", failures.len(), failures.join("\n"));
    n
}

fn check_errors(kind: &str, rows: Vec<(&'static str, Result<Value, ConvertError>, &'static str)>) -> usize {
    let n = rows.len();
    let mut failures = Vec::new();
    for (name, actual, fragment) in rows {
        match actual {
            Err(e) if e.message.contains(fragment) => {}
            Err(e) => failures.push(format!("{kind} `{name}`: message {:?} lacks {:?}", e.message, fragment)),
            Ok(v) => failures.push(format!("{kind} `{name}`: expected an error with {:?}, got {}", fragment, v)),
        }
    }
    assert!(failures.is_empty(), "{} of {n} {kind} cases failed:\n{}", failures.len(), failures.join("\n"));
    n
}

// ---------------------------------------------------------------------------------------------
// Request: Claude → OpenAI
// ---------------------------------------------------------------------------------------------

fn request_rows() -> Vec<(&'static str, Result<Value, ConvertError>, Value)> {
    let png = "iVBORw0KGgo=";
    let pdf = "JVBERi0xLjQ=";
    let t = full();
    let c = |body: Value| claude_to_openai(&body, &t);
    let cp = |body: Value| claude_to_openai(&body, &plain());
    vec![
        (
            "string user message; anthropic_version consumed",
            c(claude(json!([{"role": "user", "content": "Hi"}]))),
            openai(json!([{"role": "user", "content": "Hi"}])),
        ),
        (
            "model comes from the target",
            cp(claude(json!([{"role": "user", "content": "Hi"}]))),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100}),
        ),
        (
            "system string becomes the leading system message",
            c(with(claude(json!([{"role": "user", "content": "Hi"}])), json!({"system": "Be brief."}))),
            openai(json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])),
        ),
        (
            "system blocks joined with newlines in order, cache_control ignored",
            c(with(
                claude(json!([{"role": "user", "content": "Hi"}])),
                json!({"system": [
                    {"type": "text", "text": "One."},
                    {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}}
                ]}),
            )),
            openai(json!([{"role": "system", "content": "One.\nTwo."}, {"role": "user", "content": "Hi"}])),
        ),
        (
            "empty system (string and array) sends no system message",
            c(with(
                claude(json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])),
                json!({"system": []}),
            )),
            openai(json!([{"role": "user", "content": "Hi"}])),
        ),
        (
            "single text block collapses to a string",
            c(claude(
                json!([{"role": "user", "content": [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]}]),
            )),
            openai(json!([{"role": "user", "content": "Hello"}])),
        ),
        (
            "several text blocks stay parts, in order",
            c(claude(
                json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]),
            )),
            openai(
                json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]),
            ),
        ),
        (
            "base64 image becomes a data URI image_url",
            c(claude(json!([{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                {"type": "text", "text": "What is this?"}
            ]}]))),
            openai(json!([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{png}")}},
                {"type": "text", "text": "What is this?"}
            ]}])),
        ),
        (
            "URL image becomes an image_url with that URL",
            c(claude(json!([{"role": "user", "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ]}]))),
            openai(json!([{"role": "user", "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]}])),
        ),
        (
            "base64 PDF document becomes a file part named by its title",
            c(claude(json!([{"role": "user", "content": [
                {"type": "document", "title": "report.pdf", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
                {"type": "text", "text": "Summarize"}
            ]}]))),
            openai(json!([{"role": "user", "content": [
                {"type": "file", "file": {"filename": "report.pdf", "file_data": format!("data:application/pdf;base64,{pdf}")}},
                {"type": "text", "text": "Summarize"}
            ]}])),
        ),
        (
            "PDF without title gets document.pdf; its context is a text part before it",
            c(claude(json!([{"role": "user", "content": [
                {"type": "document", "context": "Q3 figures", "citations": {"enabled": false},
                 "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}
            ]}]))),
            openai(json!([{"role": "user", "content": [
                {"type": "text", "text": "Q3 figures"},
                {"type": "file", "file": {"filename": "document.pdf", "file_data": format!("data:application/pdf;base64,{pdf}")}}
            ]}])),
        ),
        (
            "text document becomes a text part (even without file-part support), title first",
            cp(claude(json!([{"role": "user", "content": [
                {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "The sky is blue."}}
            ]}]))),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Notes\n\nThe sky is blue."}], "max_tokens": 100}),
        ),
        (
            "content-source document becomes its parts",
            c(claude(json!([{"role": "user", "content": [
                {"type": "document", "source": {"type": "content", "content": [
                    {"type": "text", "text": "chunk 1"}, {"type": "text", "text": "chunk 2"}
                ]}},
                {"type": "text", "text": "Q?"}
            ]}]))),
            openai(json!([{"role": "user", "content": [
                {"type": "text", "text": "chunk 1"}, {"type": "text", "text": "chunk 2"}, {"type": "text", "text": "Q?"}
            ]}])),
        ),
        (
            "assistant text and tool_use become content and tool_calls",
            c(claude(json!([
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}
                ]}
            ]))),
            openai(json!([
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}
                ]}
            ])),
        ),
        (
            "assistant with only tool_use blocks has null content and every call in order",
            c(claude(json!([
                {"role": "user", "content": "Go"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "a", "name": "f", "input": {}},
                    {"type": "tool_use", "id": "b", "name": "g", "input": {"z": 1, "a": [1, 2]}}
                ]}
            ]))),
            openai(json!([
                {"role": "user", "content": "Go"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"z\":1,\"a\":[1,2]}"}}
                ]}
            ])),
        ),
        (
            "tool_result with string content becomes a tool message",
            c(claude(json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"}
            ]}]))),
            openai(json!([{"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"}])),
        ),
        (
            "tool_result text blocks are joined with newlines",
            c(claude(json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]}
            ]}]))),
            openai(json!([{"role": "tool", "tool_call_id": "t", "content": "line 1\nline 2"}])),
        ),
        (
            "tool_result is_error prefixes Error:",
            c(claude(json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "is_error": true, "content": "city not found"}
            ]}]))),
            openai(json!([{"role": "tool", "tool_call_id": "t", "content": "Error: city not found"}])),
        ),
        (
            "tool_result is_error with no content is just Error; is_error false changes nothing",
            c(claude(json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "is_error": true},
                {"type": "tool_result", "tool_use_id": "t2", "is_error": false, "content": []}
            ]}]))),
            openai(json!([
                {"role": "tool", "tool_call_id": "t1", "content": "Error"},
                {"role": "tool", "tool_call_id": "t2", "content": ""}
            ])),
        ),
        (
            "text after a tool_result is kept as a following user message",
            c(claude(json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": "42"},
                {"type": "text", "text": "Now explain it."}
            ]}]))),
            openai(json!([
                {"role": "tool", "tool_call_id": "t", "content": "42"},
                {"role": "user", "content": "Now explain it."}
            ])),
        ),
        (
            "several tool_results then text and image keep their order",
            c(claude(json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "1"},
                {"type": "tool_result", "tool_use_id": "b", "content": "2"},
                {"type": "text", "text": "Compare with this:"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
            ]}]))),
            openai(json!([
                {"role": "tool", "tool_call_id": "a", "content": "1"},
                {"role": "tool", "tool_call_id": "b", "content": "2"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Compare with this:"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
                ]}
            ])),
        ),
        (
            "blocks between tool_results split into user messages in order",
            c(claude(json!([{"role": "user", "content": [
                {"type": "text", "text": "before"},
                {"type": "tool_result", "tool_use_id": "a", "content": "1"},
                {"type": "text", "text": "between"},
                {"type": "tool_result", "tool_use_id": "b", "content": "2"}
            ]}]))),
            openai(json!([
                {"role": "user", "content": "before"},
                {"role": "tool", "tool_call_id": "a", "content": "1"},
                {"role": "user", "content": "between"},
                {"role": "tool", "tool_call_id": "b", "content": "2"}
            ])),
        ),
        (
            "assistant thinking blocks are omitted, the text stays",
            c(claude(json!([
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Simple sum.", "signature": "sig"},
                    {"type": "text", "text": "4"}
                ]},
                {"role": "user", "content": "Thanks"}
            ]))),
            openai(json!([
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "Thanks"}
            ])),
        ),
        (
            "an assistant message of only thinking is left out",
            c(claude(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xyz"}]},
                {"role": "user", "content": "b"}
            ]))),
            openai(json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])),
        ),
        (
            "redacted_thinking omitted before a tool_use",
            c(claude(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"x": true}}
                ]}
            ]))),
            openai(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{\"x\":true}"}}
                ]}
            ])),
        ),
        (
            "assistant with several text blocks keeps them as parts; string assistant content as is",
            c(claude(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "The answer is"}
            ]))),
            openai(json!([
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "The answer is"}
            ])),
        ),
        (
            "tools become function tools; description defaults to empty",
            c(with(
                claude(json!([{"role": "user", "content": "Hi"}])),
                json!({"tools": [
                    {"name": "get_weather", "description": "Weather by city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                    {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
                ]}),
            )),
            with(
                openai(json!([{"role": "user", "content": "Hi"}])),
                json!({"tools": [
                    {"type": "function", "function": {"name": "get_weather", "description": "Weather by city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                    {"type": "function", "function": {"name": "noop", "description": "", "parameters": {"type": "object"}}}
                ]}),
            ),
        ),
        (
            "tool_choice auto",
            c(with(claude(json!([{"role": "user", "content": "Hi"}])), json!({"tool_choice": {"type": "auto"}}))),
            with(openai(json!([{"role": "user", "content": "Hi"}])), json!({"tool_choice": "auto"})),
        ),
        (
            "tool_choice any becomes required",
            c(with(claude(json!([{"role": "user", "content": "Hi"}])), json!({"tool_choice": {"type": "any"}}))),
            with(openai(json!([{"role": "user", "content": "Hi"}])), json!({"tool_choice": "required"})),
        ),
        (
            "tool_choice tool names the function",
            c(with(
                claude(json!([{"role": "user", "content": "Hi"}])),
                json!({"tool_choice": {"type": "tool", "name": "get_weather"}}),
            )),
            with(
                openai(json!([{"role": "user", "content": "Hi"}])),
                json!({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
            ),
        ),
        (
            "tool_choice none",
            c(with(claude(json!([{"role": "user", "content": "Hi"}])), json!({"tool_choice": {"type": "none"}}))),
            with(openai(json!([{"role": "user", "content": "Hi"}])), json!({"tool_choice": "none"})),
        ),
        (
            "disable_parallel_tool_use true gives parallel_tool_calls false",
            c(with(
                claude(json!([{"role": "user", "content": "Hi"}])),
                json!({"tool_choice": {"type": "any", "disable_parallel_tool_use": true}}),
            )),
            with(
                openai(json!([{"role": "user", "content": "Hi"}])),
                json!({"tool_choice": "required", "parallel_tool_calls": false}),
            ),
        ),
        (
            "disable_parallel_tool_use false sends nothing extra",
            c(with(
                claude(json!([{"role": "user", "content": "Hi"}])),
                json!({"tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": false}}),
            )),
            with(
                openai(json!([{"role": "user", "content": "Hi"}])),
                json!({"tool_choice": {"type": "function", "function": {"name": "f"}}}),
            ),
        ),
        (
            "sampling parameters, stop sequences and user, in a fixed order",
            c(json!({
                "metadata": {"user_id": "u-42"},
                "stop_sequences": ["\n\nHuman:", "END"],
                "top_k": 40,
                "top_p": 0.9,
                "temperature": 0.25,
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 512,
                "anthropic_version": "bedrock-2023-05-31"
            })),
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 512,
                "temperature": 0.25,
                "top_p": 0.9,
                "top_k": 40,
                "stop": ["\n\nHuman:", "END"],
                "user": "u-42"
            }),
        ),
        (
            "empty stop_sequences, empty anthropic_beta, disabled thinking and null user_id carry nothing",
            c(with(
                claude(json!([{"role": "user", "content": "Hi"}])),
                json!({
                    "stop_sequences": [], "anthropic_beta": [], "thinking": {"type": "disabled"}, "metadata": {"user_id": null}
                }),
            )),
            openai(json!([{"role": "user", "content": "Hi"}])),
        ),
        (
            "a whole tool conversation",
            c(with(
                claude(json!([
                    {"role": "user", "content": "Weather in Paris and Rome?"},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "Two calls.", "signature": "s"},
                        {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "t2", "name": "w", "input": {"city": "Rome"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "18"},
                        {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "25"}]}
                    ]}
                ])),
                json!({"system": "Use tools.", "tools": [{"name": "w", "input_schema": {"type": "object"}}], "tool_choice": {"type": "auto"}}),
            )),
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "Use tools."},
                    {"role": "user", "content": "Weather in Paris and Rome?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": "t2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "t1", "content": "18"},
                    {"role": "tool", "tool_call_id": "t2", "content": "25"}
                ],
                "max_tokens": 100,
                "tools": [{"type": "function", "function": {"name": "w", "description": "", "parameters": {"type": "object"}}}],
                "tool_choice": "auto"
            }),
        ),
    ]
}

#[test]
fn request_cases() {
    let n = check_rows("request", request_rows());
    assert!(n >= 30, "{n}");
}

fn request_error_rows() -> Vec<(&'static str, Result<Value, ConvertError>, &'static str)> {
    let t = full();
    let c = |body: Value| claude_to_openai(&body, &t);
    let cp = |body: Value| claude_to_openai(&body, &plain());
    let hi = || claude(json!([{"role": "user", "content": "Hi"}]));
    let user = |blocks: Value| claude(json!([{"role": "user", "content": blocks}]));
    let asst =
        |blocks: Value| claude(json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": blocks}]));
    vec![
        (
            "Titan body is not Claude",
            c(json!({"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 10}})),
            "not a Claude Messages body",
        ),
        ("Titan body is named", c(json!({"inputText": "Hi"})), "Amazon Titan"),
        (
            "Llama body is not Claude",
            c(json!({"prompt": "<s>[INST] Hi [/INST]", "max_gen_len": 10})),
            "not a Claude Messages body",
        ),
        ("Nova body is named", c(json!({"schemaVersion": "messages-v1", "inferenceConfig": {}})), "Amazon Nova"),
        ("a JSON array is not Claude", c(json!([1, 2])), "not a Claude Messages body"),
        ("unknown top-level keys are named", c(with(hi(), json!({"stream": true, "foo": 1}))), "`stream`, `foo`"),
        (
            "anthropic_beta flags are refused",
            c(with(hi(), json!({"anthropic_beta": ["computer-use-2024-10-22"]}))),
            "computer-use-2024-10-22",
        ),
        ("top_k where the target does not take it", cp(with(hi(), json!({"top_k": 5}))), "`top_k`"),
        (
            "thinking enabled has no counterpart",
            c(with(hi(), json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}))),
            "`thinking`",
        ),
        (
            "max_tokens is required",
            c(json!({"anthropic_version": "bedrock-2023-05-31", "messages": []})),
            "`max_tokens` is required",
        ),
        (
            "PDF where the target takes no file parts",
            cp(user(
                json!([{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]),
            )),
            "does not accept file content parts",
        ),
        (
            "URL document cannot be inlined",
            c(user(json!([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]))),
            "`url` source",
        ),
        (
            "document citations cannot be returned",
            c(user(
                json!([{"type": "document", "citations": {"enabled": true}, "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]),
            )),
            "citations",
        ),
        (
            "image inside a tool_result",
            c(user(
                json!([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]),
            )),
            "`image` block inside a tool_result",
        ),
        (
            "computer-use tool is refused",
            c(with(
                hi(),
                json!({"tools": [{"type": "computer_20241022", "name": "computer", "display_width_px": 1024, "display_height_px": 768}]}),
            )),
            "`computer_20241022`",
        ),
        (
            "bash tool is refused",
            c(with(hi(), json!({"tools": [{"type": "bash_20241022", "name": "bash"}]}))),
            "`bash_20241022`",
        ),
        (
            "web search tool is refused",
            c(with(hi(), json!({"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]}))),
            "server or built-in tool",
        ),
        (
            "unknown block type",
            c(user(json!([{"type": "search_result", "source": "x", "title": "t", "content": []}]))),
            "content block type `search_result`",
        ),
        (
            "tool_use in a user message",
            c(user(json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]))),
            "belong in assistant messages",
        ),
        (
            "image in an assistant message",
            c(asst(json!([{"type": "image", "source": {"type": "url", "url": "https://x"}}]))),
            "belong in user messages",
        ),
        ("unknown key in a block", c(user(json!([{"type": "text", "text": "x", "foo": 1}]))), "`foo`"),
        (
            "image file source",
            c(user(json!([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]))),
            "image source type `file`",
        ),
        ("system role inside messages", c(claude(json!([{"role": "system", "content": "x"}]))), "role `system`"),
        ("unknown tool_choice type", c(with(hi(), json!({"tool_choice": {"type": "some"}}))), "`some`"),
        (
            "tool_choice tool without a name",
            c(with(hi(), json!({"tool_choice": {"type": "tool"}}))),
            "`name` is missing",
        ),
        (
            "metadata keys other than user_id",
            c(with(hi(), json!({"metadata": {"user_id": "u", "tenant": "x"}}))),
            "`tenant`",
        ),
        (
            "tool_use input must be an object",
            c(asst(json!([{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]))),
            "`input` must be an object",
        ),
    ]
}

#[test]
fn request_error_cases() {
    let n = check_errors("request error", request_error_rows());
    assert!(n >= 20, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Response: OpenAI → Claude
// ---------------------------------------------------------------------------------------------

/// An OpenAI response with one choice.
fn oai(message: Value, finish: Value, usage: Value) -> Value {
    let mut choice = Map::new();
    choice.insert("index".into(), json!(0));
    choice.insert("message".into(), message);
    choice.insert("finish_reason".into(), finish);
    let mut r = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "qwen3",
                       "choices": [Value::Object(choice)]});
    if !usage.is_null() {
        r["usage"] = usage;
    }
    r
}

fn u(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// The Claude response we expect.
fn msg(content: Value, stop_reason: &str, stop_sequence: Value, usage: [u64; 4]) -> Value {
    json!({
        "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "qwen3",
        "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
        "usage": {"input_tokens": usage[0], "cache_creation_input_tokens": usage[1], "cache_read_input_tokens": usage[2], "output_tokens": usage[3]}
    })
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn response_rows() -> Vec<(&'static str, Result<Value, ConvertError>, Value)> {
    let r = |v: Value| openai_to_claude(&v);
    let with_choice = |mut v: Value, k: &str, x: Value| {
        v["choices"][0][k] = x;
        v
    };
    vec![
        (
            "text with stop becomes end_turn; id and model kept",
            r(oai(json!({"role": "assistant", "content": "Hello!"}), json!("stop"), u(10, 3))),
            msg(json!([text("Hello!")]), "end_turn", Value::Null, [10, 0, 0, 3]),
        ),
        (
            "stop with vLLM's matched stop string becomes stop_sequence",
            r(with_choice(
                oai(json!({"role": "assistant", "content": "1, 2, 3"}), json!("stop"), u(5, 6)),
                "stop_reason",
                json!("END"),
            )),
            msg(json!([text("1, 2, 3")]), "stop_sequence", json!("END"), [5, 0, 0, 6]),
        ),
        (
            "stop with a stop token id (number) stays end_turn",
            r(with_choice(
                oai(json!({"role": "assistant", "content": "ok"}), json!("stop"), u(5, 1)),
                "stop_reason",
                json!(128009),
            )),
            msg(json!([text("ok")]), "end_turn", Value::Null, [5, 0, 0, 1]),
        ),
        (
            "SGLang's matched_stop string becomes stop_sequence",
            r(with_choice(
                oai(json!({"role": "assistant", "content": "a"}), json!("stop"), u(1, 1)),
                "matched_stop",
                json!("###"),
            )),
            msg(json!([text("a")]), "stop_sequence", json!("###"), [1, 0, 0, 1]),
        ),
        (
            "length becomes max_tokens",
            r(oai(json!({"role": "assistant", "content": "Once upon a"}), json!("length"), u(4, 3))),
            msg(json!([text("Once upon a")]), "max_tokens", Value::Null, [4, 0, 0, 3]),
        ),
        (
            "tool_calls become tool_use blocks after the text, arguments parsed in order",
            r(oai(
                json!({"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\",\"days\":2}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}
                ]}),
                json!("tool_calls"),
                u(50, 20),
            )),
            msg(
                json!([
                    text("Checking."),
                    {"type": "tool_use", "id": "call_a", "name": "w", "input": {"city": "Paris", "days": 2}},
                    {"type": "tool_use", "id": "call_b", "name": "w", "input": {"city": "Rome"}}
                ]),
                "tool_use",
                Value::Null,
                [50, 0, 0, 20],
            ),
        ),
        (
            "null content with a tool call gives only the tool_use; empty arguments are {}",
            r(oai(
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_x", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]}),
                json!("tool_calls"),
                u(8, 2),
            )),
            msg(
                json!([{"type": "tool_use", "id": "call_x", "name": "now", "input": {}}]),
                "tool_use",
                Value::Null,
                [8, 0, 0, 2],
            ),
        ),
        (
            "legacy function_call becomes tool_use",
            r(oai(
                json!({"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{\"a\":1}"}}),
                json!("function_call"),
                u(3, 3),
            )),
            msg(
                json!([{"type": "tool_use", "id": "call_function_call", "name": "f", "input": {"a": 1}}]),
                "tool_use",
                Value::Null,
                [3, 0, 0, 3],
            ),
        ),
        (
            "tool calls reported with stop still end in tool_use",
            r(oai(
                json!({"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]}),
                json!("stop"),
                u(3, 3),
            )),
            msg(
                json!([{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}]),
                "tool_use",
                Value::Null,
                [3, 0, 0, 3],
            ),
        ),
        (
            "content_filter becomes refusal",
            r(oai(json!({"role": "assistant", "content": ""}), json!("content_filter"), u(9, 0))),
            msg(json!([]), "refusal", Value::Null, [9, 0, 0, 0]),
        ),
        (
            "message.refusal becomes text and stop_reason refusal",
            r(oai(
                json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
                json!("stop"),
                u(9, 7),
            )),
            msg(json!([text("I can't help with that.")]), "refusal", Value::Null, [9, 0, 0, 7]),
        ),
        (
            "missing finish_reason is end_turn",
            r(oai(json!({"role": "assistant", "content": "hi"}), Value::Null, u(1, 1))),
            msg(json!([text("hi")]), "end_turn", Value::Null, [1, 0, 0, 1]),
        ),
        (
            "reasoning_content comes first as a thinking block",
            r(oai(
                json!({"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4."}),
                json!("stop"),
                u(12, 9),
            )),
            msg(
                json!([{"type": "thinking", "thinking": "2+2 is 4.", "signature": ""}, text("4")]),
                "end_turn",
                Value::Null,
                [12, 0, 0, 9],
            ),
        ),
        (
            "reasoning (vLLM's newer field) is a thinking block too, before tool calls",
            r(oai(
                json!({"role": "assistant", "content": null, "reasoning": "Need the tool.", "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"q\":\"x\"}"}}
                ]}),
                json!("tool_calls"),
                u(2, 2),
            )),
            msg(
                json!([
                    {"type": "thinking", "thinking": "Need the tool.", "signature": ""},
                    {"type": "tool_use", "id": "c", "name": "f", "input": {"q": "x"}}
                ]),
                "tool_use",
                Value::Null,
                [2, 0, 0, 2],
            ),
        ),
        (
            "LiteLLM thinking_blocks keep their signatures",
            r(oai(
                json!({"role": "assistant", "content": "done", "reasoning_content": "hm",
                         "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "EqQB"}, {"type": "redacted_thinking", "data": "abc"}]}),
                json!("stop"),
                u(2, 2),
            )),
            msg(
                json!([
                    {"type": "thinking", "thinking": "hm", "signature": "EqQB"},
                    {"type": "redacted_thinking", "data": "abc"},
                    text("done")
                ]),
                "end_turn",
                Value::Null,
                [2, 0, 0, 2],
            ),
        ),
        (
            "cached prompt tokens are taken out of input_tokens",
            r(oai(
                json!({"role": "assistant", "content": "x"}),
                json!("stop"),
                json!({"prompt_tokens": 2048, "completion_tokens": 10, "total_tokens": 2058, "prompt_tokens_details": {"cached_tokens": 1920}}),
            )),
            msg(json!([text("x")]), "end_turn", Value::Null, [128, 0, 1920, 10]),
        ),
        (
            "LiteLLM cache creation and read fields",
            r(oai(
                json!({"role": "assistant", "content": "x"}),
                json!("stop"),
                json!({"prompt_tokens": 98805, "completion_tokens": 5120, "total_tokens": 103925,
                         "prompt_tokens_details": {"cached_tokens": 66360, "cache_creation_tokens": 32435},
                         "cache_read_input_tokens": 66360, "cache_creation_input_tokens": 32435}),
            )),
            msg(json!([text("x")]), "end_turn", Value::Null, [10, 32435, 66360, 5120]),
        ),
        (
            "DeepSeek prompt_cache_hit_tokens",
            r(oai(
                json!({"role": "assistant", "content": "x"}),
                json!("stop"),
                json!({"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105, "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36}),
            )),
            msg(json!([text("x")]), "end_turn", Value::Null, [36, 0, 64, 5]),
        ),
        (
            "missing usage gives zeros, every key present",
            r(oai(json!({"role": "assistant", "content": "x"}), json!("stop"), Value::Null)),
            msg(json!([text("x")]), "end_turn", Value::Null, [0, 0, 0, 0]),
        ),
        (
            "content as an array of text parts",
            r(oai(
                json!({"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
                json!("stop"),
                u(1, 2),
            )),
            msg(json!([text("a"), text("b")]), "end_turn", Value::Null, [1, 0, 0, 2]),
        ),
        (
            "tool call without an id gets call_<index>; already-parsed arguments accepted",
            r(oai(
                json!({"role": "assistant", "tool_calls": [
                    {"type": "function", "function": {"name": "f", "arguments": {"k": "v"}}}
                ]}),
                json!("tool_calls"),
                u(1, 1),
            )),
            msg(
                json!([{"type": "tool_use", "id": "call_0", "name": "f", "input": {"k": "v"}}]),
                "tool_use",
                Value::Null,
                [1, 0, 0, 1],
            ),
        ),
    ]
}

#[test]
fn response_cases() {
    let n = check_rows("response", response_rows());
    assert!(n >= 20, "{n}");
}

#[test]
fn response_key_order_is_bedrocks() {
    let out = openai_to_claude(&oai(json!({"role": "assistant", "content": "x"}), json!("stop"), Value::Null)).unwrap();
    let keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]);
    let usage: Vec<&str> = out["usage"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(usage, ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"]);
}

#[test]
fn response_without_id_gets_a_stable_msg_id() {
    let mut resp = oai(json!({"role": "assistant", "content": "x"}), json!("stop"), Value::Null);
    resp.as_object_mut().unwrap().remove("id");
    let a = openai_to_claude(&resp).unwrap();
    let b = openai_to_claude(&resp).unwrap();
    let id = a["id"].as_str().unwrap();
    assert!(id.starts_with("msg_") && id.len() == 28, "{id}");
    assert_eq!(a["id"], b["id"]);
}

fn response_error_rows() -> Vec<(&'static str, Result<Value, ConvertError>, &'static str)> {
    let r = |v: Value| openai_to_claude(&v);
    let call = |args: Value| {
        oai(
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}
            ]}),
            json!("tool_calls"),
            u(1, 1),
        )
    };
    let mut two = oai(json!({"role": "assistant", "content": "a"}), json!("stop"), u(1, 1));
    let first = two["choices"][0].clone();
    two["choices"].as_array_mut().unwrap().push(first);
    vec![
        ("unparseable arguments", r(call(json!("{\"city\": \"Par"))), "not valid JSON"),
        ("arguments that are not an object", r(call(json!("[1,2]"))), "not a JSON object"),
        (
            "finish_reason abort",
            r(oai(json!({"role": "assistant", "content": "par"}), json!("abort"), u(1, 1))),
            "finish_reason `abort`",
        ),
        ("two choices", r(two), "2 choices"),
        ("no choices key", r(json!({"id": "x", "object": "chat.completion"})), "no `choices`"),
        ("empty choices", r(json!({"id": "x", "choices": []})), "no choices"),
        (
            "an error object",
            r(json!({"error": {"message": "model not found", "type": "invalid_request_error"}})),
            "model not found",
        ),
        (
            "non-function tool call",
            r(oai(
                json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "f", "input": "x"}}]}),
                json!("tool_calls"),
                u(1, 1),
            )),
            "`custom`",
        ),
        ("not an object", r(json!("hello")), "not a chat.completion"),
    ]
}

#[test]
fn response_error_cases() {
    let n = check_errors("response error", response_error_rows());
    assert!(n >= 8, "{n}");
}

#[test]
fn stop_reason_table() {
    type Row = (Option<&'static str>, Option<&'static str>, &'static str, Option<&'static str>);
    let rows: &[Row] = &[
        (Some("stop"), None, "end_turn", None),
        (Some("stop"), Some("END"), "stop_sequence", Some("END")),
        (None, None, "end_turn", None),
        (None, Some("END"), "stop_sequence", Some("END")),
        (Some("eos"), None, "end_turn", None),
        (Some("end_turn"), None, "end_turn", None),
        (Some("stop_sequence"), Some("x"), "stop_sequence", Some("x")),
        (Some("length"), Some("ignored"), "max_tokens", None),
        (Some("max_tokens"), None, "max_tokens", None),
        (Some("tool_calls"), None, "tool_use", None),
        (Some("function_call"), None, "tool_use", None),
        (Some("tool_use"), None, "tool_use", None),
        (Some("content_filter"), None, "refusal", None),
        (Some("refusal"), None, "refusal", None),
        (Some("model_context_window_exceeded"), None, "model_context_window_exceeded", None),
        (Some("something_new"), None, "end_turn", None),
    ];
    for (finish, matched, reason, seq) in rows {
        let (r, s) = stop_reason_from_openai(*finish, *matched);
        assert_eq!((r, s.as_deref()), (*reason, *seq), "finish {finish:?} matched {matched:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

/// A Claude response expressed as an OpenAI chat completion (the reverse of `openai_to_claude`,
/// for content both sides can express: at most one text block, thinking without signature).
fn claude_response_to_openai(c: &Value) -> Value {
    let mut text = None;
    let mut reasoning = None;
    let mut calls = Vec::new();
    for b in c["content"].as_array().unwrap() {
        match b["type"].as_str().unwrap() {
            "text" => text = Some(b["text"].clone()),
            "thinking" => reasoning = Some(b["thinking"].clone()),
            "tool_use" => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            other => panic!("{other}"),
        }
    }
    let mut message = json!({"role": "assistant", "content": text.unwrap_or(Value::Null)});
    if let Some(r) = reasoning {
        message["reasoning_content"] = r;
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let finish = match c["stop_reason"].as_str().unwrap() {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => panic!("{other}"),
    };
    let mut choice = json!({"index": 0, "message": message, "finish_reason": finish});
    if let Some(s) = c["stop_sequence"].as_str() {
        choice["stop_reason"] = json!(s);
    }
    let u = &c["usage"];
    let (input, creation, read, output) = (
        u["input_tokens"].as_u64().unwrap(),
        u["cache_creation_input_tokens"].as_u64().unwrap(),
        u["cache_read_input_tokens"].as_u64().unwrap(),
        u["output_tokens"].as_u64().unwrap(),
    );
    let prompt = input + creation + read;
    json!({
        "id": c["id"], "object": "chat.completion", "created": 0, "model": c["model"], "choices": [choice],
        "usage": {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
                  "prompt_tokens_details": {"cached_tokens": read}, "cache_creation_input_tokens": creation}
    })
}

fn claude_response(content: Value, stop_reason: &str, stop_sequence: Value, usage: [u64; 4]) -> Value {
    json!({
        "id": "msg_bdrk_01ABC", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
        "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
        "usage": {"input_tokens": usage[0], "cache_creation_input_tokens": usage[1], "cache_read_input_tokens": usage[2], "output_tokens": usage[3]}
    })
}

#[test]
fn response_round_trips() {
    let rows: Vec<(&str, Value)> = vec![
        ("text, end_turn", claude_response(json!([text("Hello")]), "end_turn", Value::Null, [10, 0, 0, 2])),
        ("text, stop_sequence", claude_response(json!([text("1 2 3")]), "stop_sequence", json!("END"), [10, 0, 0, 5])),
        ("text, max_tokens", claude_response(json!([text("Once")]), "max_tokens", Value::Null, [3, 0, 0, 1])),
        ("refusal, no content", claude_response(json!([]), "refusal", Value::Null, [7, 0, 0, 0])),
        (
            "thinking, text and two tool uses",
            claude_response(
                json!([
                    {"type": "thinking", "thinking": "Plan.", "signature": ""},
                    text("Checking both."),
                    {"type": "tool_use", "id": "toolu_01", "name": "w", "input": {"city": "Paris", "opts": {"unit": "c", "days": [1, 2]}}},
                    {"type": "tool_use", "id": "toolu_02", "name": "w", "input": {}}
                ]),
                "tool_use",
                Value::Null,
                [100, 0, 0, 40],
            ),
        ),
        (
            "cache read and write usage",
            claude_response(json!([text("x")]), "end_turn", Value::Null, [12, 300, 4000, 9]),
        ),
    ];
    for (name, original) in rows {
        let back =
            openai_to_claude(&claude_response_to_openai(&original)).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        assert!(same(&back, &original), "round trip `{name}`:\n  original {original}\n  back     {back}");
    }
}

/// An OpenAI request read back as Claude, for the constructs both sides express one way only
/// (test-side inverse of `claude_to_openai`).
fn openai_request_to_claude(o: &Value) -> Value {
    let mut out = Map::new();
    out.insert("anthropic_version".into(), json!("bedrock-2023-05-31"));
    out.insert("max_tokens".into(), o["max_tokens"].clone());
    let mut messages: Vec<Value> = Vec::new();
    for m in o["messages"].as_array().unwrap() {
        match m["role"].as_str().unwrap() {
            "system" => {
                out.insert("system".into(), m["content"].clone());
            }
            "tool" => {
                let block = json!({"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]});
                match messages.last_mut() {
                    Some(last) if last["role"] == "user" && last["content"].is_array() => {
                        last["content"].as_array_mut().unwrap().push(block)
                    }
                    _ => messages.push(json!({"role": "user", "content": [block]})),
                }
            }
            "assistant" => {
                let mut blocks = Vec::new();
                if let Some(t) = m["content"].as_str() {
                    blocks.push(text(t));
                }
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let input: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
                    blocks.push(
                        json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}),
                    );
                }
                messages.push(json!({"role": "assistant", "content": blocks}));
            }
            _ => {
                let blocks: Vec<Value> = match &m["content"] {
                    Value::String(s) => vec![text(s)],
                    Value::Array(parts) => parts
                        .iter()
                        .map(|p| match p["type"].as_str().unwrap() {
                            "text" => p.clone(),
                            "image_url" => {
                                let url = p["image_url"]["url"].as_str().unwrap();
                                match url.strip_prefix("data:").and_then(|r| r.split_once(";base64,")) {
                                    Some((mt, data)) => json!({"type": "image", "source": {"type": "base64", "media_type": mt, "data": data}}),
                                    None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                                }
                            }
                            other => panic!("{other}"),
                        })
                        .collect(),
                    other => panic!("{other}"),
                };
                match messages.last_mut() {
                    Some(last) if last["role"] == "user" => last["content"].as_array_mut().unwrap().extend(blocks),
                    _ => messages.push(json!({"role": "user", "content": blocks})),
                }
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    for k in ["temperature", "top_p", "top_k"] {
        if let Some(v) = o.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(v) = o.get("stop") {
        out.insert("stop_sequences".into(), v.clone());
    }
    if let Some(tools) = o.get("tools") {
        let t: Vec<Value> = tools
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"name": t["function"]["name"], "description": t["function"]["description"], "input_schema": t["function"]["parameters"]}))
            .collect();
        out.insert("tools".into(), Value::Array(t));
    }
    if let Some(tc) = o.get("tool_choice") {
        let mut c = match tc {
            Value::String(s) if s == "auto" => json!({"type": "auto"}),
            Value::String(s) if s == "required" => json!({"type": "any"}),
            Value::String(s) if s == "none" => json!({"type": "none"}),
            obj => json!({"type": "tool", "name": obj["function"]["name"]}),
        };
        if o.get("parallel_tool_calls") == Some(&json!(false)) {
            c["disable_parallel_tool_use"] = json!(true);
        }
        out.insert("tool_choice".into(), c);
    }
    if let Some(u) = o.get("user") {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    Value::Object(out)
}

#[test]
fn request_round_trips() {
    let png = "iVBORw0KGgo=";
    let rows: Vec<(&str, Value)> = vec![
        (
            "text, images, tools and tool results, with every sampling parameter",
            json!({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 256,
                "system": "Be brief.",
                "messages": [
                    {"role": "user", "content": [
                        text("What is in this picture, and what is the weather there?"),
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.jpg"}}
                    ]},
                    {"role": "assistant", "content": [
                        text("Paris. Checking."),
                        {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris", "n": [1, 2.5, null]}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                        text("And tomorrow?")
                    ]}
                ],
                "temperature": 0.5,
                "top_p": 0.75,
                "top_k": 20,
                "stop_sequences": ["END"],
                "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "metadata": {"user_id": "u1"}
            }),
        ),
        (
            "tool_choice tool",
            json!({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [text("hi")]}],
                "tools": [{"name": "f", "description": "", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "f"}
            }),
        ),
        (
            "tool_choice none",
            json!({
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": [text("hi")]}],
                "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "none"}
            }),
        ),
    ];
    for (name, original) in rows {
        let o = claude_to_openai(&original, &full()).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        let back = openai_request_to_claude(&o);
        assert!(
            same(&back, &original),
            "round trip `{name}`:\n  original {original}\n  openai   {o}\n  back     {back}"
        );
    }
}

#[test]
fn at_least_forty_cases() {
    let total = request_rows().len() + request_error_rows().len() + response_rows().len() + response_error_rows().len();
    assert!(total >= 40, "{total}");
}

#[test]
fn convert_error_is_a_validation_exception() {
    let e = claude_to_openai(&json!({"inputText": "x"}), &full()).unwrap_err();
    let engine: bedrock_batch_core::EngineError = e.clone().into();
    assert_eq!(engine.name, bedrock_batch_core::ErrorName::ValidationException);
    assert_eq!(engine.message, e.message);
    assert_eq!(e.to_string(), e.message);
}
