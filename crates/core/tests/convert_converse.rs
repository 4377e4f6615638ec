//! Conformance suite for the Converse converters: Converse ⇄ Claude Messages, Converse ⇄ Nova
//! native, Converse ⇄ OpenAI chat completions, and model-family detection.
//!
//! Every case is a named row. Outputs are compared as whole values *and* as serialized text, so
//! key order counts too (serde_json's map equality ignores order).

use bedrock_batch_core::convert::{
    claude_default_max_tokens, claude_to_converse, converse_family, converse_stop_reason_from_claude,
    converse_to_claude, converse_to_native, converse_to_nova, converse_to_openai, model_family, native_to_converse,
    nova_to_converse, openai_to_claude, openai_to_converse, ConvertError, ModelFamily, OpenAiTarget,
};
use serde_json::{json, Value};

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const NOVA: &str = "amazon.nova-pro-v1:0";
const PNG: &str = "iVBORw0KGgo=";
const PDF: &str = "JVBERi0xLjQ=";
/// base64 of "Hello, world!".
const HELLO: &str = "SGVsbG8sIHdvcmxkIQ==";
/// The data of a Claude redacted_thinking block, and base64 of its bytes (Converse's blob).
const REDACTED_DATA: &str = "EmwKAhgBEgy3va3pSIGNATURE";
const REDACTED_BLOB: &str = "RW13S0FoZ0JFZ3kzdmEzcFNJR05BVFVSRQ==";

type Row = (&'static str, Result<Value, ConvertError>, Value);
type ErrRow = (&'static str, Result<Value, ConvertError>, &'static str);

/// Equal as values and as text (so key order counts).
fn same(actual: &Value, expected: &Value) -> bool {
    let (a, e) = (actual.to_string(), expected.to_string());
    actual == expected && a == e
}

fn check_rows(kind: &str, rows: Vec<Row>) -> usize {
    let n = rows.len();
    let mut failures = Vec::new();
    for (name, actual, expected) in rows {
        match actual {
            Ok(v) if same(&v, &expected) => {}
            Ok(v) => failures.push(format!("{kind} `{name}`:\n  expected {expected}\n  actual   {v}")),
            Err(e) => failures.push(format!("{kind} `{name}`: unexpected error: {}", e.message)),
        }
    }
    assert!(failures.is_empty(), "{} of {n} {kind} cases failed:\n{}", failures.len(), failures.join("\n"));
    n
}

fn check_errors(kind: &str, rows: Vec<ErrRow>) -> usize {
    let n = rows.len();
    let mut failures = Vec::new();
    for (name, actual, fragment) in rows {
        match actual {
            Err(e) if e.message.contains(fragment) => {}
            Err(e) => failures.push(format!("{kind} `{name}`: message {:?} lacks {:?}", e.message, fragment)),
            Ok(v) => failures.push(format!("{kind} `{name}`: expected an error with {fragment:?}, got {v}")),
        }
    }
    assert!(failures.is_empty(), "{} of {n} {kind} cases failed:\n{}", failures.len(), failures.join("\n"));
    n
}

/// Merge extra top-level keys into an object (appended, in order).
fn with(mut base: Value, extra: Value) -> Value {
    let o = base.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        o.insert(k.clone(), v.clone());
    }
    base
}

fn user(content: Value) -> Value {
    json!({"role": "user", "content": content})
}

fn asst(content: Value) -> Value {
    json!({"role": "assistant", "content": content})
}

/// A Converse request with these messages and `maxTokens: 100`.
fn conv(messages: Value) -> Value {
    json!({"messages": messages, "inferenceConfig": {"maxTokens": 100}})
}

/// A Converse request with one user text message.
fn hi() -> Value {
    conv(json!([user(json!([{"text": "Hi"}]))]))
}

/// The Claude body for these messages, as `conv` converts.
fn claude(messages: Value) -> Value {
    json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": messages})
}

fn ctext(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn tools() -> Value {
    json!({"tools": [
        {"toolSpec": {"name": "weather", "description": "Weather for a city", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
        {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object"}}, "strict": true}}
    ]})
}

fn to_claude(req: Value) -> Result<Value, ConvertError> {
    converse_to_claude(&req, SONNET)
}

// ---------------------------------------------------------------------------------------------
// Model families
// ---------------------------------------------------------------------------------------------

#[test]
fn model_family_table() {
    let rows: &[(&str, Option<ModelFamily>)] = &[
        ("anthropic.claude-3-haiku-20240307-v1:0", Some(ModelFamily::Claude)),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Some(ModelFamily::Claude)),
        ("global.anthropic.claude-opus-4-5-20251101-v1:0", Some(ModelFamily::Claude)),
        ("us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0", Some(ModelFamily::Claude)),
        (
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            Some(ModelFamily::Claude),
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            Some(ModelFamily::Claude),
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-express-v1:0:8k/abc123",
            Some(ModelFamily::Titan),
        ),
        ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3", None),
        ("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz", None),
        ("amazon.nova-pro-v1:0", Some(ModelFamily::Nova)),
        ("us.amazon.nova-2-lite-v1:0", Some(ModelFamily::Nova)),
        ("amazon.nova-canvas-v1:0", None),
        ("amazon.nova-sonic-v1:0", None),
        ("amazon.titan-text-premier-v1:0", Some(ModelFamily::Titan)),
        ("amazon.titan-embed-text-v2:0", None),
        ("meta.llama3-8b-instruct-v1:0", Some(ModelFamily::Llama)),
        ("us.meta.llama3-2-90b-instruct-v1:0", Some(ModelFamily::Llama)),
        ("mistral.mistral-large-2402-v1:0", Some(ModelFamily::Mistral)),
        ("cohere.command-r-v1:0", None),
        ("us.deepseek.r1-v1:0", None),
        ("claude", Some(ModelFamily::Claude)),
        ("nova", Some(ModelFamily::Nova)),
        ("llama", Some(ModelFamily::Llama)),
        ("titan", Some(ModelFamily::Titan)),
        ("mistral", Some(ModelFamily::Mistral)),
        ("gpt-4o", None),
        ("", None),
    ];
    for (id, expected) in rows {
        assert_eq!(model_family(id), *expected, "{id}");
    }
    assert_eq!(converse_family(SONNET), Some(ModelFamily::Claude));
    assert_eq!(converse_family(NOVA), Some(ModelFamily::Nova));
    assert_eq!(converse_family("meta.llama3-8b-instruct-v1:0"), None);
    assert_eq!(ModelFamily::Claude.as_str(), "claude");
    assert_eq!(ModelFamily::Titan.as_str(), "titan");
}

#[test]
fn claude_default_max_tokens_table() {
    let rows: &[(&str, u64)] = &[
        ("anthropic.claude-3-haiku-20240307-v1:0", 4_096),
        ("anthropic.claude-3-opus-20240229-v1:0", 4_096),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", 8_192),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", 8_192),
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", 64_000),
        ("anthropic.claude-opus-4-20250514-v1:0", 32_000),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", 32_000),
        ("anthropic.claude-sonnet-4-20250514-v1:0", 64_000),
        (SONNET, 64_000),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", 64_000),
        ("anthropic.claude-opus-4-5-20251101-v1:0", 64_000),
        ("us.anthropic.claude-opus-4-6-v1", 128_000),
        ("anthropic.claude-sonnet-4-6", 128_000),
        ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0", 8_192),
        ("anthropic.claude-v2:1", 4_096),
        ("anthropic.claude-future-9", 4_096),
    ];
    for (id, n) in rows {
        assert_eq!(claude_default_max_tokens(id), *n, "{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// Converse → Claude
// ---------------------------------------------------------------------------------------------

fn claude_request_rows() -> Vec<Row> {
    vec![
        (
            "text; anthropic_version added; no maxTokens: the model's maximum",
            converse_to_claude(&json!({"messages": [user(json!([{"text": "Hi"}]))]}), SONNET),
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64000, "messages": [{"role": "user", "content": [ctext("Hi")]}]}),
        ),
        (
            "unknown Claude model without maxTokens: 4096",
            converse_to_claude(&json!({"messages": [user(json!([{"text": "Hi"}]))]}), "anthropic.claude-next"),
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096, "messages": [{"role": "user", "content": [ctext("Hi")]}]}),
        ),
        (
            "inferenceConfig: maxTokens, temperature, topP, stopSequences",
            to_claude(
                json!({"messages": [user(json!([{"text": "Hi"}]))], "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END", "STOP"]}}),
            ),
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": [ctext("Hi")]}],
                   "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END", "STOP"]}),
        ),
        (
            "empty stopSequences are not sent",
            to_claude(with(hi(), json!({"inferenceConfig": {"maxTokens": 100, "stopSequences": []}}))),
            claude(json!([{"role": "user", "content": [ctext("Hi")]}])),
        ),
        (
            "system text blocks; cachePoint puts cache_control (with ttl) on the block before it",
            to_claude(with(
                hi(),
                json!({"system": [{"text": "One."}, {"cachePoint": {"type": "default", "ttl": "1h"}}, {"text": "Two."}, {"cachePoint": {"type": "default"}}]}),
            )),
            json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
                   "system": [{"type": "text", "text": "One.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                              {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}}],
                   "messages": [{"role": "user", "content": [ctext("Hi")]}]}),
        ),
        ("empty system sends none", to_claude(with(hi(), json!({"system": []}))), claude(json!([{"role": "user", "content": [ctext("Hi")]}]))),
        (
            "image bytes become a base64 source with the media type",
            to_claude(conv(json!([user(json!([
                {"image": {"format": "png", "source": {"bytes": PNG}}},
                {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
                {"image": {"format": "gif", "source": {"bytes": PNG}}},
                {"image": {"format": "webp", "source": {"bytes": PNG}}},
                {"text": "What is this?"}
            ]))]))),
            claude(json!([{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": PNG}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": PNG}},
                ctext("What is this?")
            ]}])),
        ),
        (
            "PDF document: base64 source, name as title, context kept, citations disabled is fine",
            to_claude(conv(json!([user(json!([
                {"document": {"format": "pdf", "name": "report", "context": "Q3 figures", "citations": {"enabled": false}, "source": {"bytes": PDF}}},
                {"text": "Summarize"}
            ]))]))),
            claude(json!([{"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}, "title": "report", "context": "Q3 figures"},
                ctext("Summarize")
            ]}])),
        ),
        (
            "txt, md, csv and html documents given as bytes become plain-text sources",
            to_claude(conv(json!([user(json!([
                {"document": {"format": "txt", "name": "a", "source": {"bytes": HELLO}}},
                {"document": {"format": "md", "name": "b", "source": {"bytes": "IyBUaXRsZQoKQm9keQ=="}}},
                {"document": {"format": "csv", "name": "c", "source": {"bytes": "YSxiCjEsMgo="}}},
                {"document": {"format": "html", "name": "d", "source": {"bytes": "PHA+eDwvcD4="}}}
            ]))]))),
            claude(json!([{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Hello, world!"}, "title": "a"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "# Title\n\nBody"}, "title": "b"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a,b\n1,2\n"}, "title": "c"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "<p>x</p>"}, "title": "d"}
            ]}])),
        ),
        (
            "document with a text source and with a content source",
            to_claude(conv(json!([user(json!([
                {"document": {"name": "notes", "source": {"text": "The sky is blue."}}},
                {"document": {"name": "chunks", "source": {"content": [{"text": "c1"}, {"text": "c2"}]}}}
            ]))]))),
            claude(json!([{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "The sky is blue."}, "title": "notes"},
                {"type": "document", "source": {"type": "content", "content": [ctext("c1"), ctext("c2")]}, "title": "chunks"}
            ]}])),
        ),
        (
            "search result becomes a search_result block",
            to_claude(conv(json!([user(json!([{"searchResult": {"source": "https://x.test/a", "title": "A", "content": [{"text": "fact"}]}}]))]))),
            claude(json!([{"role": "user", "content": [
                {"type": "search_result", "source": "https://x.test/a", "title": "A", "content": [ctext("fact")]}
            ]}])),
        ),
        (
            "assistant text, reasoning and toolUse; user toolResult (text, json, image; error status)",
            to_claude(conv(json!([
                user(json!([{"text": "Weather in Paris?"}])),
                asst(json!([
                    {"reasoningContent": {"reasoningText": {"text": "Need the tool.", "signature": "sig=="}}},
                    {"reasoningContent": {"redactedContent": REDACTED_BLOB}},
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_2", "name": "now", "input": {}}}
                ])),
                user(json!([
                    {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}, {"json": {"wind": 5, "sky": "clear"}}, {"image": {"format": "png", "source": {"bytes": PNG}}}]}},
                    {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "clock broken"}], "status": "error"}},
                    {"toolResult": {"toolUseId": "tooluse_3", "content": [], "status": "success"}},
                    {"text": "Thanks"}
                ]))
            ]))),
            claude(json!([
                {"role": "user", "content": [ctext("Weather in Paris?")]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Need the tool.", "signature": "sig=="},
                    {"type": "redacted_thinking", "data": REDACTED_DATA},
                    ctext("Checking."),
                    {"type": "tool_use", "id": "tooluse_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "tooluse_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "tooluse_1", "content": [
                        ctext("18C"), ctext("{\"wind\":5,\"sky\":\"clear\"}"),
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
                    ]},
                    {"type": "tool_result", "tool_use_id": "tooluse_2", "content": [ctext("clock broken")], "is_error": true},
                    {"type": "tool_result", "tool_use_id": "tooluse_3", "content": []},
                    ctext("Thanks")
                ]}
            ])),
        ),
        (
            "a tool result holding a document and a search result",
            to_claude(conv(json!([user(json!([{"toolResult": {"toolUseId": "t", "content": [
                {"document": {"format": "pdf", "name": "r", "source": {"bytes": PDF}}},
                {"searchResult": {"source": "s", "title": "t", "content": [{"text": "c"}]}}
            ]}}]))]))),
            claude(json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}, "title": "r"},
                {"type": "search_result", "source": "s", "title": "t", "content": [ctext("c")]}
            ]}]}])),
        ),
        (
            "cachePoint in a message marks the block before it",
            to_claude(conv(json!([user(json!([{"text": "long context"}, {"cachePoint": {"type": "default", "ttl": "5m"}}, {"text": "question"}]))]))),
            claude(json!([{"role": "user", "content": [
                {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                ctext("question")
            ]}])),
        ),
        (
            "tools: inputSchema.json → input_schema, description optional, strict kept, cachePoint on the tool before; toolChoice auto",
            to_claude(with(
                hi(),
                json!({"toolConfig": {"tools": [
                    {"toolSpec": {"name": "weather", "description": "Weather for a city", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
                    {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object"}}, "strict": true}},
                    {"cachePoint": {"type": "default"}}
                ], "toolChoice": {"auto": {}}}}),
            )),
            with(
                claude(json!([{"role": "user", "content": [ctext("Hi")]}])),
                json!({"tools": [
                    {"name": "weather", "description": "Weather for a city", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "now", "input_schema": {"type": "object"}, "strict": true, "cache_control": {"type": "ephemeral"}}
                ], "tool_choice": {"type": "auto"}}),
            ),
        ),
        (
            "toolChoice any",
            to_claude(with(hi(), json!({"toolConfig": with(tools(), json!({"toolChoice": {"any": {}}}))}))).map(|b| b["tool_choice"].clone()),
            json!({"type": "any"}),
        ),
        (
            "toolChoice tool",
            to_claude(with(hi(), json!({"toolConfig": with(tools(), json!({"toolChoice": {"tool": {"name": "now"}}}))}))).map(|b| b["tool_choice"].clone()),
            json!({"type": "tool", "name": "now"}),
        ),
        ("no toolChoice: none sent", to_claude(with(hi(), json!({"toolConfig": tools()}))).map(|b| json!(b.get("tool_choice").is_none())), json!(true)),
        (
            "additionalModelRequestFields merge into the body (top_k, thinking)",
            to_claude(with(hi(), json!({"additionalModelRequestFields": {"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 1024}}}))),
            with(claude(json!([{"role": "user", "content": [ctext("Hi")]}])), json!({"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 1024}})),
        ),
        (
            "max_tokens given only in additionalModelRequestFields wins over the default",
            converse_to_claude(&json!({"messages": [user(json!([{"text": "Hi"}]))], "additionalModelRequestFields": {"max_tokens": 77}}), SONNET),
            json!({"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": [ctext("Hi")]}], "max_tokens": 77}),
        ),
        (
            "the same value set twice is fine",
            to_claude(with(hi(), json!({"additionalModelRequestFields": {"max_tokens": 100}}))),
            claude(json!([{"role": "user", "content": [ctext("Hi")]}])),
        ),
        (
            "transport members (performanceConfig, serviceTier, requestMetadata, projectIdentifier) and response field paths are not in the body",
            to_claude(with(
                hi(),
                json!({"performanceConfig": {"latency": "optimized"}, "serviceTier": {"type": "flex"}, "requestMetadata": {"team": "a"},
                       "projectIdentifier": "p", "additionalModelResponseFieldPaths": ["/stop_sequence"]}),
            )),
            claude(json!([{"role": "user", "content": [ctext("Hi")]}])),
        ),
    ]
}

#[test]
fn claude_request_cases() {
    let n = check_rows("Converse→Claude", claude_request_rows());
    assert!(n >= 20, "{n}");
}

fn claude_request_error_rows() -> Vec<ErrRow> {
    let m = |block: Value| conv(json!([user(json!([block]))]));
    let a = |block: Value| conv(json!([user(json!([{"text": "q"}])), asst(json!([block]))]));
    vec![
        ("not an object", converse_to_claude(&json!([1]), SONNET), "not a JSON object"),
        ("modelId in the body", to_claude(with(hi(), json!({"modelId": "x"}))), "`modelId`"),
        (
            "guardrailConfig",
            to_claude(with(hi(), json!({"guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}}))),
            "`guardrailConfig`",
        ),
        (
            "promptVariables",
            to_claude(with(hi(), json!({"promptVariables": {"x": {"text": "y"}}}))),
            "`promptVariables`",
        ),
        ("outputConfig", to_claude(with(hi(), json!({"outputConfig": {"effort": "high"}}))), "`outputConfig`"),
        ("no messages", to_claude(json!({"system": [{"text": "x"}]})), "`messages` is required"),
        (
            "system role",
            to_claude(conv(json!([{"role": "system", "content": [{"text": "x"}]}]))),
            "messages[0].role `system`",
        ),
        (
            "video",
            to_claude(m(json!({"video": {"format": "mp4", "source": {"bytes": PNG}}}))),
            "messages[0].content[0].video: Claude takes no video",
        ),
        ("audio", to_claude(m(json!({"audio": {"format": "mp3", "source": {"bytes": PNG}}}))), "takes no audio"),
        (
            "guardContent",
            to_claude(m(json!({"guardContent": {"text": {"text": "x"}}}))),
            "messages[0].content[0].guardContent",
        ),
        (
            "system guardContent",
            to_claude(with(hi(), json!({"system": [{"guardContent": {"text": {"text": "x"}}}]}))),
            "system[0].guardContent",
        ),
        (
            "citationsContent",
            to_claude(a(json!({"citationsContent": {"content": [{"text": "x"}], "citations": []}}))),
            "citations cannot be carried",
        ),
        (
            "toolAddition",
            to_claude(m(json!({"toolAddition": {"tool": {"name": "x"}}}))),
            "content block `toolAddition`",
        ),
        (
            "image in an assistant message",
            to_claude(a(json!({"image": {"format": "png", "source": {"bytes": PNG}}}))),
            "belongs in a user message",
        ),
        (
            "toolUse in a user message",
            to_claude(m(json!({"toolUse": {"toolUseId": "t", "name": "n", "input": {}}}))),
            "belongs in an assistant message",
        ),
        (
            "toolResult in an assistant message",
            to_claude(a(json!({"toolResult": {"toolUseId": "t", "content": []}}))),
            "belongs in a user message",
        ),
        (
            "reasoning in a user message",
            to_claude(m(json!({"reasoningContent": {"reasoningText": {"text": "x"}}}))),
            "belongs in an assistant message",
        ),
        (
            "image from S3",
            to_claude(m(json!({"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k"}}}}))),
            "source.s3Location cannot be carried",
        ),
        (
            "image format",
            to_claude(m(json!({"image": {"format": "bmp", "source": {"bytes": PNG}}}))),
            "image format `bmp`",
        ),
        (
            "image bytes not base64",
            to_claude(m(json!({"image": {"format": "png", "source": {"bytes": "%%%"}}}))),
            "source.bytes is not valid base64",
        ),
        (
            "document from S3",
            to_claude(m(
                json!({"document": {"format": "pdf", "name": "d", "source": {"s3Location": {"uri": "s3://b/k"}}}}),
            )),
            "source.s3Location",
        ),
        (
            "docx",
            to_claude(m(json!({"document": {"format": "docx", "name": "d", "source": {"bytes": PDF}}}))),
            "a `docx` document cannot be carried",
        ),
        (
            "bytes without format",
            to_claude(m(json!({"document": {"name": "d", "source": {"bytes": PDF}}}))),
            "format is required",
        ),
        (
            "text bytes not UTF-8",
            to_claude(m(json!({"document": {"format": "txt", "name": "d", "source": {"bytes": "//4="}}}))),
            "not UTF-8",
        ),
        (
            "citations enabled",
            to_claude(m(
                json!({"document": {"format": "pdf", "name": "d", "source": {"bytes": PDF}, "citations": {"enabled": true}}}),
            )),
            "document.citations: citations cannot be carried",
        ),
        (
            "cachePoint first in a message",
            to_claude(m(json!({"cachePoint": {"type": "default"}}))),
            "a cachePoint must follow the content block",
        ),
        (
            "cachePoint first in system",
            to_claude(with(hi(), json!({"system": [{"cachePoint": {"type": "default"}}]}))),
            "system[0].cachePoint: a cachePoint must follow",
        ),
        (
            "cachePoint first in tools",
            to_claude(with(hi(), json!({"toolConfig": {"tools": [{"cachePoint": {"type": "default"}}]}}))),
            "toolConfig.tools[0].cachePoint",
        ),
        (
            "cachePoint ttl",
            to_claude(conv(json!([user(json!([{"text": "x"}, {"cachePoint": {"type": "default", "ttl": "2h"}}]))]))),
            "ttl `2h`",
        ),
        (
            "systemTool",
            to_claude(with(hi(), json!({"toolConfig": {"tools": [{"systemTool": {"name": "nova_grounding"}}]}}))),
            "toolConfig.tools[0].systemTool",
        ),
        (
            "server tool use",
            to_claude(a(json!({"toolUse": {"toolUseId": "t", "name": "n", "input": {}, "type": "server_tool_use"}}))),
            "server tool use",
        ),
        (
            "server tool result",
            to_claude(m(json!({"toolResult": {"toolUseId": "t", "content": [], "type": "x"}}))),
            "server tool results",
        ),
        (
            "tool result video",
            to_claude(m(json!({"toolResult": {"toolUseId": "t", "content": [{"video": {}}]}}))),
            "a `video` tool result",
        ),
        (
            "tool result status",
            to_claude(m(json!({"toolResult": {"toolUseId": "t", "content": [], "status": "maybe"}}))),
            "status `maybe`",
        ),
        (
            "toolUse input not an object",
            to_claude(a(json!({"toolUse": {"toolUseId": "t", "name": "n", "input": [1]}}))),
            "input must be a JSON object",
        ),
        (
            "redacted bytes not Claude data",
            to_claude(a(json!({"reasoningContent": {"redactedContent": "//4="}}))),
            "redactedContent is not the bytes",
        ),
        (
            "maxTokens 0",
            to_claude(with(hi(), json!({"inferenceConfig": {"maxTokens": 0}}))),
            "inferenceConfig.maxTokens must be an integer of at least 1",
        ),
        (
            "temperature 1.5",
            to_claude(with(hi(), json!({"inferenceConfig": {"temperature": 1.5}}))),
            "inferenceConfig.temperature must be a number from 0 to 1",
        ),
        (
            "empty stop sequence",
            to_claude(with(hi(), json!({"inferenceConfig": {"stopSequences": [""]}}))),
            "stopSequences must hold non-empty strings",
        ),
        (
            "unknown inferenceConfig member",
            to_claude(with(hi(), json!({"inferenceConfig": {"topK": 3}}))),
            "inferenceConfig: unknown member(s) `topK`",
        ),
        ("union with two members", to_claude(m(json!({"text": "a", "image": {}}))), "exactly one member set"),
        ("empty union", to_claude(m(json!({}))), "a union with no member set"),
        (
            "additional field set twice",
            to_claude(with(
                hi(),
                json!({"inferenceConfig": {"maxTokens": 100, "temperature": 0.5}, "additionalModelRequestFields": {"temperature": 0.7}}),
            )),
            "`additionalModelRequestFields.temperature` sets a field",
        ),
        (
            "additional fields not an object",
            to_claude(with(hi(), json!({"additionalModelRequestFields": [1]}))),
            "must be an object",
        ),
        (
            "field path without slash",
            to_claude(with(hi(), json!({"additionalModelResponseFieldPaths": ["stop_sequence"]}))),
            "is not a JSON Pointer",
        ),
        (
            "toolChoice unknown",
            to_claude(with(hi(), json!({"toolConfig": with(tools(), json!({"toolChoice": {"none": {}}}))}))),
            "unknown member `none`",
        ),
        (
            "toolSpec without schema",
            to_claude(with(hi(), json!({"toolConfig": {"tools": [{"toolSpec": {"name": "x"}}]}}))),
            "inputSchema must be an object",
        ),
    ]
}

#[test]
fn claude_request_error_cases() {
    let n = check_errors("Converse→Claude error", claude_request_error_rows());
    assert!(n >= 40, "{n}");
}

// ---------------------------------------------------------------------------------------------
// Claude → Converse
// ---------------------------------------------------------------------------------------------

fn claude_answer(content: Value, stop_reason: &str, usage: Value) -> Value {
    json!({"id": "msg_bdrk_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
           "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage})
}

fn u(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output})
}

fn converse_answer(content: Value, stop_reason: &str, usage: Value, latency: u64) -> Value {
    json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop_reason, "usage": usage, "metrics": {"latencyMs": latency}})
}

fn cu(input: u64, output: u64) -> Value {
    json!({"inputTokens": input, "outputTokens": output, "totalTokens": input + output})
}

fn claude_response_rows() -> Vec<Row> {
    let req = hi();
    let c = |answer: Value| claude_to_converse(&answer, &req, 250);
    let mut rows: Vec<Row> = vec![
        (
            "text",
            c(claude_answer(json!([ctext("Hello!")]), "end_turn", u(10, 3))),
            converse_answer(json!([{"text": "Hello!"}]), "end_turn", cu(10, 3), 250),
        ),
        (
            "tool_use with parsed input",
            c(claude_answer(
                json!([ctext("Checking."), {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris", "n": [1, 2.5, null]}}]),
                "tool_use",
                u(20, 9),
            )),
            converse_answer(
                json!([{"text": "Checking."}, {"toolUse": {"toolUseId": "toolu_1", "name": "weather", "input": {"city": "Paris", "n": [1, 2.5, null]}}}]),
                "tool_use",
                cu(20, 9),
                250,
            ),
        ),
        (
            "thinking with signature and redacted thinking",
            c(claude_answer(
                json!([{"type": "thinking", "thinking": "Hmm.", "signature": "sig=="}, {"type": "redacted_thinking", "data": REDACTED_DATA}, ctext("42")]),
                "end_turn",
                u(5, 7),
            )),
            converse_answer(
                json!([
                    {"reasoningContent": {"reasoningText": {"text": "Hmm.", "signature": "sig=="}}},
                    {"reasoningContent": {"redactedContent": REDACTED_BLOB}},
                    {"text": "42"}
                ]),
                "end_turn",
                cu(5, 7),
                250,
            ),
        ),
        (
            "cache reads and writes: both keys, total includes them, writes by TTL as cacheDetails (1h first)",
            c(claude_answer(
                json!([ctext("ok")]),
                "end_turn",
                json!({"input_tokens": 10, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 0, "output_tokens": 5,
                       "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}}),
            )),
            converse_answer(
                json!([{"text": "ok"}]),
                "end_turn",
                json!({"inputTokens": 10, "outputTokens": 5, "totalTokens": 315, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 300,
                       "cacheDetails": [{"ttl": "1h", "inputTokens": 200}, {"ttl": "5m", "inputTokens": 100}]}),
                250,
            ),
        ),
        (
            "zero cache counts leave the cache keys out",
            c(claude_answer(
                json!([ctext("ok")]),
                "end_turn",
                json!({"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}),
            )),
            converse_answer(json!([{"text": "ok"}]), "end_turn", cu(4, 1), 250),
        ),
        (
            "cache read only",
            c(claude_answer(
                json!([ctext("ok")]),
                "end_turn",
                json!({"input_tokens": 4, "cache_read_input_tokens": 1000, "output_tokens": 1}),
            )),
            converse_answer(
                json!([{"text": "ok"}]),
                "end_turn",
                json!({"inputTokens": 4, "outputTokens": 1, "totalTokens": 1005, "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 0}),
                250,
            ),
        ),
        (
            "additionalModelResponseFieldPaths pick fields out of Claude's body (missing ones ignored)",
            claude_to_converse(
                &with(claude_answer(json!([ctext("a")]), "stop_sequence", u(1, 1)), json!({"stop_sequence": "END"})),
                &with(
                    hi(),
                    json!({"additionalModelResponseFieldPaths": ["/stop_sequence", "/usage/output_tokens", "/nope", "/model"]}),
                ),
                9,
            ),
            with(
                converse_answer(json!([{"text": "a"}]), "stop_sequence", cu(1, 1), 9),
                json!({"additionalModelResponseFields": {"stop_sequence": "END", "usage": {"output_tokens": 1}, "model": "claude-sonnet-4-5-20250929"}}),
            ),
        ),
        (
            "paths that find nothing give no additionalModelResponseFields",
            claude_to_converse(
                &claude_answer(json!([ctext("a")]), "end_turn", u(1, 1)),
                &with(hi(), json!({"additionalModelResponseFieldPaths": ["/nope"]})),
                0,
            ),
            converse_answer(json!([{"text": "a"}]), "end_turn", cu(1, 1), 0),
        ),
        (
            "empty thinking signature is left out",
            c(claude_answer(json!([{"type": "thinking", "thinking": "t", "signature": ""}]), "end_turn", u(1, 1))),
            converse_answer(json!([{"reasoningContent": {"reasoningText": {"text": "t"}}}]), "end_turn", cu(1, 1), 250),
        ),
    ];
    // The stop-reason table.
    for (claude_stop, converse_stop) in [
        ("end_turn", "end_turn"),
        ("tool_use", "tool_use"),
        ("max_tokens", "max_tokens"),
        ("stop_sequence", "stop_sequence"),
        ("model_context_window_exceeded", "model_context_window_exceeded"),
        ("refusal", "content_filtered"),
    ] {
        rows.push((
            "stop reason row",
            c(claude_answer(json!([ctext("x")]), claude_stop, u(1, 1))).map(|r| r["stopReason"].clone()),
            json!(converse_stop),
        ));
    }
    rows
}

#[test]
fn claude_response_cases() {
    let n = check_rows("Claude→Converse", claude_response_rows());
    assert!(n >= 15, "{n}");
}

#[test]
fn claude_stop_reason_table() {
    let rows = [
        ("end_turn", Some("end_turn")),
        ("tool_use", Some("tool_use")),
        ("max_tokens", Some("max_tokens")),
        ("stop_sequence", Some("stop_sequence")),
        ("model_context_window_exceeded", Some("model_context_window_exceeded")),
        ("refusal", Some("content_filtered")),
        ("pause_turn", None),
        ("", None),
    ];
    for (claude, converse) in rows {
        assert_eq!(converse_stop_reason_from_claude(claude), converse, "{claude}");
    }
}

#[test]
fn claude_response_error_cases() {
    let req = hi();
    let c = |answer: Value| claude_to_converse(&answer, &req, 0);
    let rows: Vec<ErrRow> = vec![
        ("not an object", c(json!("x")), "not a JSON object"),
        (
            "error body",
            c(json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})),
            "Claude answered with an error: busy",
        ),
        ("no content", c(json!({"stop_reason": "end_turn"})), "no `content`"),
        (
            "pause_turn",
            c(claude_answer(json!([ctext("x")]), "pause_turn", u(1, 1))),
            "stop_reason `pause_turn` has no Converse stopReason",
        ),
        (
            "no stop_reason",
            c(with(claude_answer(json!([ctext("x")]), "end_turn", u(1, 1)), json!({"stop_reason": null}))),
            "no stop_reason",
        ),
        (
            "citations",
            c(claude_answer(
                json!([{"type": "text", "text": "x", "citations": [{"type": "char_location"}]}]),
                "end_turn",
                u(1, 1),
            )),
            "content[0]: a text block with citations",
        ),
        (
            "server tool block",
            c(claude_answer(
                json!([{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]),
                "end_turn",
                u(1, 1),
            )),
            "content[0]: Claude content block `server_tool_use`",
        ),
        (
            "bad usage",
            c(claude_answer(json!([ctext("x")]), "end_turn", json!({"input_tokens": -1}))),
            "usage.input_tokens must be a non-negative integer",
        ),
    ];
    let n = check_errors("Claude→Converse error", rows);
    assert!(n >= 8);
}

// ---------------------------------------------------------------------------------------------
// Converse ⇄ Nova
// ---------------------------------------------------------------------------------------------

fn nova(messages: Value) -> Value {
    json!({"schemaVersion": "messages-v1", "messages": messages, "inferenceConfig": {"maxTokens": 100}})
}

fn nova_request_rows() -> Vec<Row> {
    let everything = json!([
        user(json!([
            {"text": "Look"},
            {"image": {"format": "png", "source": {"bytes": PNG}}},
            {"video": {"format": "mp4", "source": {"s3Location": {"uri": "s3://b/v.mp4", "bucketOwner": "123456789012"}}}},
            {"audio": {"format": "wav", "source": {"bytes": PNG}}},
            {"cachePoint": {"type": "default"}}
        ])),
        asst(json!([
            {"reasoningContent": {"reasoningText": {"text": "[REDACTED]"}}},
            {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Oslo"}}}
        ])),
        user(
            json!([{"toolResult": {"toolUseId": "t1", "content": [{"json": {"c": 3}}, {"text": "cold"}, {"image": {"format": "png", "source": {"bytes": PNG}}}], "status": "success"}}])
        )
    ]);
    vec![
        (
            "schemaVersion added; messages (text, image, video, audio, cachePoint, reasoning, toolUse, toolResult) as they are",
            converse_to_nova(&conv(everything.clone())),
            nova(everything),
        ),
        (
            "system and inferenceConfig keep their Converse names",
            converse_to_nova(&json!({"system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}], "messages": [user(json!([{"text": "Hi"}]))],
                                      "inferenceConfig": {"maxTokens": 20, "temperature": 0.3, "topP": 0.8, "stopSequences": ["END"]}})),
            json!({"schemaVersion": "messages-v1", "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}], "messages": [user(json!([{"text": "Hi"}]))],
                   "inferenceConfig": {"maxTokens": 20, "temperature": 0.3, "topP": 0.8, "stopSequences": ["END"]}}),
        ),
        (
            "no inferenceConfig: none sent (Nova has its own defaults)",
            converse_to_nova(&json!({"messages": [user(json!([{"text": "Hi"}]))]})),
            json!({"schemaVersion": "messages-v1", "messages": [user(json!([{"text": "Hi"}]))]}),
        ),
        (
            "toolConfig as it is, toolChoice any",
            converse_to_nova(&with(hi(), json!({"toolConfig": with(tools(), json!({"toolChoice": {"any": {}}}))}))),
            with(nova(json!([user(json!([{"text": "Hi"}]))])), json!({"toolConfig": with(tools(), json!({"toolChoice": {"any": {}}}))})),
        ),
        (
            "toolChoice tool, systemTool and cachePoint tools",
            converse_to_nova(&with(
                hi(),
                json!({"toolConfig": {"tools": [{"systemTool": {"name": "nova_grounding"}}, {"cachePoint": {"type": "default"}}], "toolChoice": {"tool": {"name": "x"}}}}),
            )),
            with(
                nova(json!([user(json!([{"text": "Hi"}]))])),
                json!({"toolConfig": {"tools": [{"systemTool": {"name": "nova_grounding"}}, {"cachePoint": {"type": "default"}}], "toolChoice": {"tool": {"name": "x"}}}}),
            ),
        ),
        (
            "additionalModelRequestFields merge as given: inferenceConfig.topK joins inferenceConfig, other members are added",
            converse_to_nova(&with(
                hi(),
                json!({"additionalModelRequestFields": {"inferenceConfig": {"topK": 20}, "reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}}),
            )),
            json!({"schemaVersion": "messages-v1", "messages": [user(json!([{"text": "Hi"}]))], "inferenceConfig": {"maxTokens": 100, "topK": 20},
                   "reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}),
        ),
    ]
}

#[test]
fn nova_request_cases() {
    let n = check_rows("Converse→Nova", nova_request_rows());
    let m = |block: Value| conv(json!([user(json!([block]))]));
    let errors: Vec<ErrRow> = vec![
        (
            "document",
            converse_to_nova(&m(json!({"document": {"format": "pdf", "name": "d", "source": {"bytes": PDF}}}))),
            "messages[0].content[0].document: Nova's InvokeModel format takes no documents",
        ),
        (
            "guardContent",
            converse_to_nova(&m(json!({"guardContent": {"text": {"text": "x"}}}))),
            "guardContent cannot be carried",
        ),
        ("citationsContent", converse_to_nova(&m(json!({"citationsContent": {}}))), "content block `citationsContent`"),
        (
            "tool result document",
            converse_to_nova(&m(json!({"toolResult": {"toolUseId": "t", "content": [{"document": {}}]}}))),
            "a `document` tool result",
        ),
        (
            "system guardContent",
            converse_to_nova(&with(hi(), json!({"system": [{"guardContent": {}}]}))),
            "system[0].guardContent",
        ),
        ("system role", converse_to_nova(&conv(json!([{"role": "system", "content": []}]))), "role `system`"),
        ("guardrailConfig", converse_to_nova(&with(hi(), json!({"guardrailConfig": {}}))), "`guardrailConfig`"),
        ("outputConfig", converse_to_nova(&with(hi(), json!({"outputConfig": {}}))), "`outputConfig`"),
        (
            "additional field set twice",
            converse_to_nova(&with(
                hi(),
                json!({"additionalModelRequestFields": {"inferenceConfig": {"maxTokens": 5}}}),
            )),
            "`additionalModelRequestFields.inferenceConfig.maxTokens` sets a field",
        ),
        (
            "bad toolSpec",
            converse_to_nova(&with(
                hi(),
                json!({"toolConfig": {"tools": [{"toolSpec": {"name": "x", "inputSchema": {"json": "schema"}}}]}}),
            )),
            "must be a JSON Schema object",
        ),
        ("no messages", converse_to_nova(&json!({})), "`messages` is required"),
    ];
    let e = check_errors("Converse→Nova error", errors);
    assert!(n + e >= 15);
}

fn nova_answer(content: Value, stop: &str, usage: Value) -> Value {
    json!({"output": {"message": {"content": content, "role": "assistant"}}, "stopReason": stop, "usage": usage})
}

#[test]
fn nova_response_cases() {
    let req = hi();
    let rows: Vec<Row> = vec![
        (
            "text, usage",
            nova_to_converse(
                &nova_answer(
                    json!([{"text": "Hi!"}]),
                    "end_turn",
                    json!({"inputTokens": 4, "outputTokens": 2, "totalTokens": 6}),
                ),
                &req,
                31,
            ),
            converse_answer(json!([{"text": "Hi!"}]), "end_turn", cu(4, 2), 31),
        ),
        (
            "toolUse and reasoning, tool_use",
            nova_to_converse(
                &nova_answer(
                    json!([{"reasoningContent": {"reasoningText": {"text": "[REDACTED]"}}}, {"toolUse": {"toolUseId": "tooluse_x", "name": "weather", "input": {"city": "Oslo"}}}]),
                    "tool_use",
                    json!({"inputTokens": 40, "outputTokens": 12, "totalTokens": 52}),
                ),
                &req,
                5,
            ),
            converse_answer(
                json!([{"reasoningContent": {"reasoningText": {"text": "[REDACTED]"}}}, {"toolUse": {"toolUseId": "tooluse_x", "name": "weather", "input": {"city": "Oslo"}}}]),
                "tool_use",
                cu(40, 12),
                5,
            ),
        ),
        (
            "InvokeModel's cache count names become Converse's; Nova's total is kept",
            nova_to_converse(
                &nova_answer(
                    json!([{"text": "x"}]),
                    "max_tokens",
                    json!({"inputTokens": 10, "outputTokens": 2, "totalTokens": 1012, "cacheReadInputTokenCount": 1000, "cacheWriteInputTokenCount": 0}),
                ),
                &req,
                1,
            ),
            converse_answer(
                json!([{"text": "x"}]),
                "max_tokens",
                json!({"inputTokens": 10, "outputTokens": 2, "totalTokens": 1012, "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 0}),
                1,
            ),
        ),
        (
            "Converse cache names are read too; no total: computed",
            nova_to_converse(
                &nova_answer(
                    json!([{"text": "x"}]),
                    "end_turn",
                    json!({"inputTokens": 1, "outputTokens": 1, "cacheWriteInputTokens": 8}),
                ),
                &req,
                1,
            ),
            converse_answer(
                json!([{"text": "x"}]),
                "end_turn",
                json!({"inputTokens": 1, "outputTokens": 1, "totalTokens": 10, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 8}),
                1,
            ),
        ),
        (
            "content_filtered passes; field paths work on Nova's body",
            nova_to_converse(
                &nova_answer(
                    json!([]),
                    "content_filtered",
                    json!({"inputTokens": 1, "outputTokens": 0, "totalTokens": 1}),
                ),
                &with(hi(), json!({"additionalModelResponseFieldPaths": ["/stopReason"]})),
                2,
            ),
            with(
                converse_answer(json!([]), "content_filtered", cu(1, 0), 2),
                json!({"additionalModelResponseFields": {"stopReason": "content_filtered"}}),
            ),
        ),
    ];
    let n = check_rows("Nova→Converse", rows);
    let errors: Vec<ErrRow> = vec![
        ("no output", nova_to_converse(&json!({"stopReason": "end_turn"}), &req, 0), "no `output.message`"),
        (
            "unknown stop",
            nova_to_converse(&nova_answer(json!([]), "finished", json!({})), &req, 0),
            "stopReason `finished` is not a Converse stopReason",
        ),
        (
            "unknown block",
            nova_to_converse(&nova_answer(json!([{"weird": 1}]), "end_turn", json!({})), &req, 0),
            "content block `weird`",
        ),
        (
            "no stop",
            nova_to_converse(&json!({"output": {"message": {"role": "assistant", "content": []}}}), &req, 0),
            "no stopReason",
        ),
    ];
    let e = check_errors("Nova→Converse error", errors);
    assert!(n + e >= 9);
}

// ---------------------------------------------------------------------------------------------
// Dispatch by model id
// ---------------------------------------------------------------------------------------------

#[test]
fn dispatch_by_model_id() {
    let req = hi();
    assert_eq!(converse_to_native(&req, SONNET).unwrap(), converse_to_claude(&req, SONNET).unwrap());
    assert_eq!(converse_to_native(&req, NOVA).unwrap(), converse_to_nova(&req).unwrap());
    let e = converse_to_native(&req, "meta.llama3-8b-instruct-v1:0").unwrap_err();
    assert!(e.message.contains("has no Converse translation"), "{}", e.message);
    let claude = claude_answer(json!([ctext("x")]), "end_turn", u(1, 1));
    assert_eq!(native_to_converse(SONNET, &claude, &req, 3).unwrap(), claude_to_converse(&claude, &req, 3).unwrap());
    let n =
        nova_answer(json!([{"text": "x"}]), "end_turn", json!({"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}));
    assert_eq!(native_to_converse(NOVA, &n, &req, 3).unwrap(), nova_to_converse(&n, &req, 3).unwrap());
    assert!(native_to_converse("cohere.command-r-v1:0", &n, &req, 3).is_err());
}

// ---------------------------------------------------------------------------------------------
// Converse → OpenAI
// ---------------------------------------------------------------------------------------------

fn full() -> OpenAiTarget {
    OpenAiTarget { model: "m".into(), supports_top_k: true, supports_file_parts: true, anthropic: false }
}

fn plain() -> OpenAiTarget {
    OpenAiTarget { model: "gpt-4o".into(), supports_top_k: false, supports_file_parts: false, anthropic: false }
}

fn oai(messages: Value) -> Value {
    json!({"model": "m", "messages": messages, "max_tokens": 100})
}

fn openai_request_rows() -> Vec<Row> {
    let t = full();
    let o = |req: Value| converse_to_openai(&req, &t);
    vec![
        ("single text becomes a string", o(hi()), oai(json!([{"role": "user", "content": "Hi"}]))),
        (
            "no maxTokens: none sent; model from the target",
            converse_to_openai(&json!({"messages": [user(json!([{"text": "Hi"}]))]}), &plain()),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
        ),
        (
            "system text blocks joined with newlines, cachePoints left out",
            o(with(hi(), json!({"system": [{"text": "One."}, {"cachePoint": {"type": "default"}}, {"text": "Two."}]}))),
            oai(json!([{"role": "system", "content": "One.\nTwo."}, {"role": "user", "content": "Hi"}])),
        ),
        (
            "inferenceConfig → max_tokens, temperature, top_p, stop",
            o(
                json!({"messages": [user(json!([{"text": "Hi"}]))], "inferenceConfig": {"maxTokens": 9, "temperature": 0.1, "topP": 0.5, "stopSequences": ["X"]}}),
            ),
            json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 9, "temperature": 0.1, "top_p": 0.5, "stop": ["X"]}),
        ),
        (
            "image bytes become a data URI; several parts stay parts",
            o(conv(json!([user(json!([{"image": {"format": "jpeg", "source": {"bytes": PNG}}}, {"text": "What?"}]))]))),
            oai(json!([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{PNG}")}},
                {"type": "text", "text": "What?"}
            ]}])),
        ),
        (
            "PDF document: context part, then a file part named by the document",
            o(conv(json!([user(json!([{"document": {"format": "pdf", "name": "report", "context": "Q3", "source": {"bytes": PDF}}}]))]))),
            oai(json!([{"role": "user", "content": [
                {"type": "text", "text": "Q3"},
                {"type": "file", "file": {"filename": "report", "file_data": format!("data:application/pdf;base64,{PDF}")}}
            ]}])),
        ),
        (
            "text documents (bytes or text source) become one text part: name, context, text",
            converse_to_openai(
                &conv(json!([user(json!([
                    {"document": {"format": "txt", "name": "a.txt", "context": "ctx", "source": {"bytes": HELLO}}},
                    {"document": {"name": "b", "source": {"text": "plain"}}}
                ]))])),
                &plain(),
            ),
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "a.txt\n\nctx\n\nHello, world!"},
                {"type": "text", "text": "b\n\nplain"}
            ]}], "max_tokens": 100}),
        ),
        (
            "content-source document: a heading part, then its texts",
            o(conv(json!([user(json!([{"document": {"name": "doc", "source": {"content": [{"text": "c1"}, {"text": "c2"}]}}}]))]))),
            oai(json!([{"role": "user", "content": [{"type": "text", "text": "doc"}, {"type": "text", "text": "c1"}, {"type": "text", "text": "c2"}]}])),
        ),
        (
            "assistant text and toolUse → content and tool_calls; reasoning left out; user toolResults → tool messages in order",
            o(conv(json!([
                user(json!([{"text": "Weather?"}])),
                asst(json!([
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "s"}}},
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "call_2", "name": "now", "input": {}}}
                ])),
                user(json!([
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}, {"json": {"wind": 5}}]}},
                    {"text": "between"},
                    {"toolResult": {"toolUseId": "call_2", "content": [{"text": "broken"}], "status": "error"}},
                    {"toolResult": {"toolUseId": "call_3", "content": [], "status": "error"}},
                    {"text": "Thanks"}
                ]))
            ]))),
            oai(json!([
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C\n{\"wind\":5}"},
                {"role": "user", "content": "between"},
                {"role": "tool", "tool_call_id": "call_2", "content": "Error: broken"},
                {"role": "tool", "tool_call_id": "call_3", "content": "Error"},
                {"role": "user", "content": "Thanks"}
            ])),
        ),
        (
            "assistant with only tool calls has null content; reasoning-only assistant message is left out",
            o(conv(json!([
                user(json!([{"text": "q"}])),
                asst(json!([{"reasoningContent": {"reasoningText": {"text": "only thinking"}}}])),
                user(json!([{"text": "again"}])),
                asst(json!([{"toolUse": {"toolUseId": "c", "name": "f", "input": {"a": 1}}}]))
            ]))),
            oai(json!([
                {"role": "user", "content": "q"},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}
            ])),
        ),
        (
            "tools → functions (description defaults to \"\", strict kept); cachePoint left out; toolChoice any → required",
            o(with(
                hi(),
                json!({"toolConfig": {"tools": [
                {"toolSpec": {"name": "weather", "description": "W", "inputSchema": {"json": {"type": "object"}}}},
                {"cachePoint": {"type": "default"}},
                {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object"}}, "strict": true}}
            ], "toolChoice": {"any": {}}}}),
            )),
            with(
                oai(json!([{"role": "user", "content": "Hi"}])),
                json!({"tools": [
                    {"type": "function", "function": {"name": "weather", "description": "W", "parameters": {"type": "object"}}},
                    {"type": "function", "function": {"name": "now", "description": "", "parameters": {"type": "object"}, "strict": true}}
                ], "tool_choice": "required"}),
            ),
        ),
        (
            "toolChoice auto",
            o(with(hi(), json!({"toolConfig": with(tools(), json!({"toolChoice": {"auto": {}}}))}))).map(|b| b["tool_choice"].clone()),
            json!("auto"),
        ),
        (
            "toolChoice tool",
            o(with(hi(), json!({"toolConfig": with(tools(), json!({"toolChoice": {"tool": {"name": "now"}}}))}))).map(|b| b["tool_choice"].clone()),
            json!({"type": "function", "function": {"name": "now"}}),
        ),
        (
            "outputConfig: json_schema text format → response_format (strict), effort → reasoning_effort",
            o(with(
                hi(),
                json!({"outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", "name": "answer", "description": "d"}}}, "effort": "high"}}),
            )),
            with(
                oai(json!([{"role": "user", "content": "Hi"}])),
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "description": "d", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}, "strict": true}},
                       "reasoning_effort": "high"}),
            ),
        ),
        (
            "json_schema without a name gets `response`",
            o(with(hi(), json!({"outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{}"}}}}})))
                .map(|b| b["response_format"].clone()),
            json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {}, "strict": true}}),
        ),
        (
            "additionalModelRequestFields merged (top_k where the target takes it)",
            o(with(hi(), json!({"additionalModelRequestFields": {"top_k": 5, "repetition_penalty": 1.1}}))),
            with(oai(json!([{"role": "user", "content": "Hi"}])), json!({"top_k": 5, "repetition_penalty": 1.1})),
        ),
        (
            "cachePoint in a user message is left out",
            o(conv(json!([user(json!([{"text": "a"}, {"cachePoint": {"type": "default"}}]))]))),
            oai(json!([{"role": "user", "content": "a"}])),
        ),
    ]
}

#[test]
fn openai_request_cases() {
    let n = check_rows("Converse→OpenAI", openai_request_rows());
    assert!(n >= 15, "{n}");
}

#[test]
fn openai_request_error_cases() {
    let t = full();
    let o = |req: Value| converse_to_openai(&req, &t);
    let m = |block: Value| conv(json!([user(json!([block]))]));
    let rows: Vec<ErrRow> = vec![
        (
            "PDF without file parts",
            converse_to_openai(
                &m(json!({"document": {"format": "pdf", "name": "d", "source": {"bytes": PDF}}})),
                &plain(),
            ),
            "does not accept file content parts",
        ),
        (
            "tool result image",
            o(m(
                json!({"toolResult": {"toolUseId": "t", "content": [{"image": {"format": "png", "source": {"bytes": PNG}}}]}}),
            )),
            "a `image` tool result cannot be carried",
        ),
        (
            "top_k unsupported",
            converse_to_openai(&with(hi(), json!({"additionalModelRequestFields": {"top_k": 5}})), &plain()),
            "does not accept top_k",
        ),
        (
            "video",
            o(m(json!({"video": {"format": "mp4", "source": {"bytes": PNG}}}))),
            "messages[0].content[0].video: a `video` block",
        ),
        (
            "audio",
            o(m(json!({"audio": {"format": "wav", "source": {"bytes": PNG}}}))),
            "messages[0].content[0].audio: a `audio` block",
        ),
        (
            "image from S3",
            o(m(json!({"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k"}}}}))),
            "source.s3Location cannot be carried",
        ),
        (
            "docx",
            o(m(json!({"document": {"format": "docx", "name": "d", "source": {"bytes": PDF}}}))),
            "a `docx` document",
        ),
        (
            "citations",
            o(m(
                json!({"document": {"format": "pdf", "name": "d", "source": {"bytes": PDF}, "citations": {"enabled": true}}}),
            )),
            "citations cannot be carried",
        ),
        (
            "citations in history",
            o(conv(json!([asst(json!([{"citationsContent": {}}]))]))),
            "citations cannot be carried",
        ),
        ("systemTool", o(with(hi(), json!({"toolConfig": {"tools": [{"systemTool": {"name": "x"}}]}}))), "systemTool"),
        ("guardrail", o(with(hi(), json!({"guardrailConfig": {}}))), "`guardrailConfig`"),
        ("guardContent", o(m(json!({"guardContent": {}}))), "guardContent"),
        ("toolUse in a user message", o(m(json!({"toolUse": {}}))), "belongs in an assistant message"),
        ("image in an assistant message", o(conv(json!([asst(json!([{"image": {}}]))]))), "a `image` block"),
        (
            "bad schema JSON",
            o(with(
                hi(),
                json!({"outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{"}}}}}),
            )),
            "schema is not valid JSON",
        ),
        ("search result", o(m(json!({"searchResult": {}}))), "a `searchResult` block"),
    ];
    let n = check_errors("Converse→OpenAI error", rows);
    assert!(n >= 15);
}

// ---------------------------------------------------------------------------------------------
// OpenAI → Converse
// ---------------------------------------------------------------------------------------------

fn completion(message: Value, finish: &str, usage: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage})
}

fn ou(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

#[test]
fn openai_response_cases() {
    let req = hi();
    let c = |resp: Value| openai_to_converse(&resp, &req, 40);
    let rows: Vec<Row> = vec![
        (
            "text, stop → end_turn",
            c(completion(json!({"role": "assistant", "content": "Hello"}), "stop", ou(9, 2))),
            converse_answer(json!([{"text": "Hello"}]), "end_turn", cu(9, 2), 40),
        ),
        (
            "tool calls → toolUse with parsed input, tool_use",
            c(completion(
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
                "tool_calls",
                ou(30, 12),
            )),
            converse_answer(
                json!([{"toolUse": {"toolUseId": "call_a", "name": "weather", "input": {"city": "Paris"}}}]),
                "tool_use",
                cu(30, 12),
                40,
            ),
        ),
        (
            "length → max_tokens",
            c(completion(json!({"content": "cut"}), "length", ou(1, 1))).map(|r| r["stopReason"].clone()),
            json!("max_tokens"),
        ),
        (
            "content_filter → content_filtered",
            c(completion(json!({"content": ""}), "content_filter", ou(1, 0))).map(|r| r["stopReason"].clone()),
            json!("content_filtered"),
        ),
        (
            "a refusal is a text block and content_filtered",
            c(completion(json!({"content": null, "refusal": "I can't help with that."}), "stop", ou(3, 4))),
            converse_answer(json!([{"text": "I can't help with that."}]), "content_filtered", cu(3, 4), 40),
        ),
        (
            "matched stop string → stop_sequence, reachable as /stop_sequence",
            openai_to_converse(
                &json!({"choices": [{"message": {"content": "a"}, "finish_reason": "stop", "stop_reason": "END"}], "usage": ou(1, 1)}),
                &with(hi(), json!({"additionalModelResponseFieldPaths": ["/stop_sequence"]})),
                1,
            ),
            with(
                converse_answer(json!([{"text": "a"}]), "stop_sequence", cu(1, 1), 1),
                json!({"additionalModelResponseFields": {"stop_sequence": "END"}}),
            ),
        ),
        (
            "reasoning_content → reasoningContent without signature",
            c(completion(json!({"content": "42", "reasoning_content": "Let me think."}), "stop", ou(2, 2))),
            converse_answer(
                json!([{"reasoningContent": {"reasoningText": {"text": "Let me think."}}}, {"text": "42"}]),
                "end_turn",
                cu(2, 2),
                40,
            ),
        ),
        (
            "cached prompt tokens: inputTokens without them, cache keys",
            c(completion(
                json!({"content": "a"}),
                "stop",
                json!({"prompt_tokens": 1000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 900}}),
            )),
            converse_answer(
                json!([{"text": "a"}]),
                "end_turn",
                json!({"inputTokens": 100, "outputTokens": 5, "totalTokens": 1005, "cacheReadInputTokens": 900, "cacheWriteInputTokens": 0}),
                40,
            ),
        ),
    ];
    let n = check_rows("OpenAI→Converse", rows);
    let errors: Vec<ErrRow> = vec![
        (
            "two choices",
            c(json!({"choices": [{"message": {"content": "a"}}, {"message": {"content": "b"}}]})),
            "2 choices",
        ),
        ("error body", c(json!({"error": {"message": "bad key"}})), "bad key"),
        ("unknown finish", c(completion(json!({"content": "a"}), "abort", ou(1, 1))), "finish_reason `abort`"),
    ];
    let e = check_errors("OpenAI→Converse error", errors);
    assert!(n + e >= 11);
}

// ---------------------------------------------------------------------------------------------
// Round trips: an answer converted to Converse and sent back as history gives the native blocks back
// ---------------------------------------------------------------------------------------------

#[test]
fn claude_answer_round_trips_through_converse_history() {
    let answers = [
        json!([{"type": "thinking", "thinking": "Plan.", "signature": "EqoBCkgIBRABGAIiQ=="}, {"type": "redacted_thinking", "data": REDACTED_DATA}, ctext("Let me look."),
               {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris", "days": [1, 2], "units": {"t": "C"}}}]),
        json!([ctext("Just text.")]),
        json!([{"type": "tool_use", "id": "toolu_02", "name": "now", "input": {}}]),
    ];
    for content in answers {
        let answer = claude_answer(content.clone(), "tool_use", u(10, 10));
        let converse = claude_to_converse(&answer, &hi(), 1).unwrap();
        let history = conv(json!([user(json!([{"text": "Hi"}])), converse["output"]["message"].clone()]));
        let back = converse_to_claude(&history, SONNET).unwrap();
        let expected = json!({"role": "assistant", "content": content});
        assert!(same(&back["messages"][1], &expected), "original {expected}\nback     {}", back["messages"][1]);
    }
}

#[test]
fn openai_answer_round_trips_through_converse_history() {
    let messages = [
        json!({"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\",\"n\":[1,2]}"}},
            {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
        ]}),
        json!({"role": "assistant", "content": "Plain."}),
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":true}"}}]}),
    ];
    for message in messages {
        let converse = openai_to_converse(&completion(message.clone(), "tool_calls", ou(1, 1)), &hi(), 1).unwrap();
        let history = conv(json!([user(json!([{"text": "Hi"}])), converse["output"]["message"].clone()]));
        let back = converse_to_openai(&history, &full()).unwrap();
        assert!(same(&back["messages"][1], &message), "original {message}\nback     {}", back["messages"][1]);
    }
}

#[test]
fn nova_answer_round_trips_through_converse_history() {
    let content = json!([{"reasoningContent": {"reasoningText": {"text": "[REDACTED]"}}}, {"text": "Let me check."}, {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Oslo"}}}]);
    let answer = nova_answer(content, "tool_use", json!({"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}));
    let converse = nova_to_converse(&answer, &hi(), 1).unwrap();
    let history = conv(json!([user(json!([{"text": "Hi"}])), converse["output"]["message"].clone()]));
    let back = converse_to_nova(&history).unwrap();
    // Same members (Converse puts `role` first, Nova `content`).
    assert_eq!(back["messages"][1], answer["output"]["message"]);
    assert!(same(&back["messages"][1]["content"], &answer["output"]["message"]["content"]));
}

#[test]
fn claude_response_through_openai_matches_direct() {
    // The OpenAI path goes through the Claude shape: the same answer both ways gives the same Converse response.
    let resp = completion(
        json!({"content": "x", "tool_calls": [{"id": "k", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}),
        "tool_calls",
        ou(3, 3),
    );
    let via_claude = claude_to_converse(&openai_to_claude(&resp).unwrap(), &hi(), 7).unwrap();
    assert_eq!(openai_to_converse(&resp, &hi(), 7).unwrap(), via_claude);
}

#[test]
fn convert_errors_are_validation_exceptions() {
    let e = converse_to_claude(&json!({"messages": [user(json!([{"video": {}}]))]}), SONNET).unwrap_err();
    let engine: bedrock_batch_core::EngineError = e.clone().into();
    assert_eq!(engine.name, bedrock_batch_core::ErrorName::ValidationException);
    assert_eq!(engine.message, e.message);
}
