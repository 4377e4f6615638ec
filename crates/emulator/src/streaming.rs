//! The streaming runtime operations' streams, built from the non-streaming answer to the same
//! request, so that a consumer who puts the deltas together gets exactly that answer.
//!
//! - `ConverseStream`: the `ConverseStreamOutput` events `messageStart`, then per content block
//!   (`contentBlockIndex` i) a `contentBlockStart` for a tool use, `contentBlockDelta`s (text in
//!   pieces of a few words, a tool use's input JSON in two pieces, reasoning text in pieces then its
//!   signature) and `contentBlockStop`, then `messageStop` and `metadata` (usage, metrics, the tiers).
//! - `InvokeModelWithResponseStream`: `chunk` events (`PayloadPart`) whose `bytes` (base64 in the
//!   event's JSON) are the model family's own streaming chunks; the last chunk carries Bedrock's
//!   `amazon-bedrock-invocationMetrics`.

use serde_json::{json, Map, Value};

use crate::responders::{Answer, Family};

/// A stream's events: (union member, JSON payload), and where the first content delta is (a
/// fault inside the stream comes right after it).
pub(crate) struct Events {
    pub events: Vec<(&'static str, Value)>,
    pub first_delta: usize,
}

/// The text in pieces of three words (each with the blanks that follow it); joined they are
/// `text` again. An empty text is one empty piece.
pub(crate) fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut words = 0;
    let mut prev_blank = true;
    for (i, c) in text.char_indices() {
        let blank = c.is_whitespace();
        if !blank && prev_blank {
            if words == 3 {
                out.push(&text[start..i]);
                start = i;
                words = 0;
            }
            words += 1;
        }
        prev_blank = blank;
    }
    out.push(&text[start..]);
    out
}

/// A JSON text in two pieces (split at a character boundary near its middle); a short one whole.
fn halves(text: &str) -> Vec<&str> {
    if text.len() < 4 {
        return vec![text];
    }
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid += 1;
    }
    vec![&text[..mid], &text[mid..]]
}

fn index_of_first_delta(events: &[(&'static str, Value)], is_delta: impl Fn(&(&'static str, Value)) -> bool) -> usize {
    events.iter().position(is_delta).unwrap_or(0)
}

// ===== ConverseStream =====

/// The `ConverseStreamOutput` events of a Converse answer.
pub(crate) fn converse(answer: &Value) -> Events {
    let mut events = vec![("messageStart", json!({ "role": "assistant" }))];
    let content = answer.pointer("/output/message/content").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, block) in content.iter().enumerate() {
        let delta = |d: Value| ("contentBlockDelta", json!({ "delta": d, "contentBlockIndex": i }));
        if let Some(text) = block.get("text").and_then(Value::as_str) {
            events.extend(pieces(text).into_iter().map(|p| delta(json!({ "text": p }))));
        } else if let Some(tool) = block.get("toolUse") {
            let start = json!({ "toolUse": { "toolUseId": tool["toolUseId"], "name": tool["name"] } });
            events.push(("contentBlockStart", json!({ "start": start, "contentBlockIndex": i })));
            let input = tool.get("input").map(Value::to_string).unwrap_or_else(|| "{}".to_string());
            events.extend(halves(&input).into_iter().map(|p| delta(json!({ "toolUse": { "input": p } }))));
        } else if let Some(r) = block.pointer("/reasoningContent/reasoningText") {
            let text = r.get("text").and_then(Value::as_str).unwrap_or_default();
            events.extend(pieces(text).into_iter().map(|p| delta(json!({ "reasoningContent": { "text": p } }))));
            if let Some(sig) = r.get("signature") {
                events.push(delta(json!({ "reasoningContent": { "signature": sig } })));
            }
        } else {
            continue;
        }
        events.push(("contentBlockStop", json!({ "contentBlockIndex": i })));
    }
    let mut stop = json!({ "stopReason": answer["stopReason"] });
    if let Some(fields) = answer.get("additionalModelResponseFields") {
        stop["additionalModelResponseFields"] = fields.clone();
    }
    events.push(("messageStop", stop));
    let mut metadata = json!({ "usage": answer["usage"], "metrics": { "latencyMs": answer.pointer("/metrics/latencyMs").cloned().unwrap_or(json!(0)) } });
    for key in ["trace", "performanceConfig", "serviceTier"] {
        if let Some(v) = answer.get(key) {
            metadata[key] = v.clone();
        }
    }
    events.push(("metadata", metadata));
    let first_delta = index_of_first_delta(&events, |(t, _)| *t == "contentBlockDelta");
    Events { events, first_delta }
}

// ===== InvokeModelWithResponseStream =====

/// Bedrock's `amazon-bedrock-invocationMetrics`, which ends every InvokeModel stream.
fn invocation_metrics(a: &Answer) -> Value {
    let latency = a.latency_ms();
    json!({ "inputTokenCount": a.input_tokens, "outputTokenCount": a.output_tokens, "invocationLatency": latency, "firstByteLatency": (latency / 3).max(1) })
}

/// The `chunk` events of an InvokeModel answer of `model_id`'s family.
pub(crate) fn invoke(model_id: &str, a: &Answer) -> Events {
    let chunks = match Family::of(model_id) {
        Family::Claude => claude_chunks(a),
        Family::Nova => nova_chunks(a),
        Family::Llama => llama_chunks(a),
        Family::Mistral if a.body.get("choices").is_some() => mistral_chat_chunks(a),
        Family::Mistral => mistral_chunks(a),
        Family::TitanText => titan_chunks(a),
        // Embeddings do not stream; the runtime refuses them before a stream starts.
        Family::TitanEmbed => vec![(a.body.clone(), false)],
    };
    let first_delta = chunks.iter().position(|(_, delta)| *delta).unwrap_or(0);
    let events = chunks
        .into_iter()
        .map(|(c, _)| ("chunk", json!({ "bytes": aws_smithy_types::base64::encode(c.to_string()) })))
        .collect();
    Events { events, first_delta }
}

/// Anthropic's Messages stream events: `message_start`, per block `content_block_start`,
/// `content_block_delta`s (`text_delta`, `input_json_delta`, `thinking_delta` + `signature_delta`),
/// `content_block_stop`, then `message_delta` (stop reason, output tokens) and `message_stop`.
/// Each chunk comes with whether it is a content delta.
fn claude_chunks(a: &Answer) -> Vec<(Value, bool)> {
    let b = &a.body;
    let mut message = json!({
        "id": b["id"], "type": "message", "role": "assistant", "model": b["model"], "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": { "input_tokens": a.input_tokens, "output_tokens": a.output_tokens.min(1) },
    });
    if let Some(usage) = b.get("usage").and_then(Value::as_object) {
        for (k, v) in usage.iter().filter(|(k, _)| k.starts_with("cache_")) {
            message["usage"][k] = v.clone();
        }
    }
    let mut out = vec![(json!({ "type": "message_start", "message": message }), false)];
    for (i, block) in b.get("content").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let delta = |d: Value| (json!({ "type": "content_block_delta", "index": i, "delta": d }), true);
        let (start, deltas): (Value, Vec<(Value, bool)>) = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = block["text"].as_str().unwrap_or_default();
                (
                    json!({ "type": "text", "text": "" }),
                    pieces(text).into_iter().map(|p| delta(json!({ "type": "text_delta", "text": p }))).collect(),
                )
            }
            Some("tool_use") => {
                let input = block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".to_string());
                (
                    json!({ "type": "tool_use", "id": block["id"], "name": block["name"], "input": {} }),
                    halves(&input)
                        .into_iter()
                        .map(|p| delta(json!({ "type": "input_json_delta", "partial_json": p })))
                        .collect(),
                )
            }
            Some("thinking") => {
                let text = block["thinking"].as_str().unwrap_or_default();
                let mut d: Vec<_> = pieces(text)
                    .into_iter()
                    .map(|p| delta(json!({ "type": "thinking_delta", "thinking": p })))
                    .collect();
                d.push(delta(json!({ "type": "signature_delta", "signature": block["signature"] })));
                (json!({ "type": "thinking", "thinking": "" }), d)
            }
            _ => continue,
        };
        out.push((json!({ "type": "content_block_start", "index": i, "content_block": start }), false));
        out.extend(deltas);
        out.push((json!({ "type": "content_block_stop", "index": i }), false));
    }
    out.push((
        json!({ "type": "message_delta", "delta": { "stop_reason": b["stop_reason"], "stop_sequence": b["stop_sequence"] }, "usage": { "output_tokens": a.output_tokens } }),
        false,
    ));
    out.push((json!({ "type": "message_stop", "amazon-bedrock-invocationMetrics": invocation_metrics(a) }), false));
    out
}

/// Amazon Nova's native stream: `messageStart`, per block (`contentBlockStart` for a tool use,)
/// `contentBlockDelta`s and `contentBlockStop`, `messageStop`, then `metadata` with the usage,
/// sharing its chunk with the invocation metrics.
fn nova_chunks(a: &Answer) -> Vec<(Value, bool)> {
    let b = &a.body;
    let mut out = vec![(json!({ "messageStart": { "role": "assistant" } }), false)];
    for (i, block) in b.pointer("/output/message/content").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let delta = |d: Value| (json!({ "contentBlockDelta": { "delta": d, "contentBlockIndex": i } }), true);
        if let Some(text) = block.get("text").and_then(Value::as_str) {
            out.extend(pieces(text).into_iter().map(|p| delta(json!({ "text": p }))));
        } else if let Some(tool) = block.get("toolUse") {
            let start = json!({ "toolUse": { "toolUseId": tool["toolUseId"], "name": tool["name"] } });
            out.push((json!({ "contentBlockStart": { "start": start, "contentBlockIndex": i } }), false));
            let input = tool.get("input").map(Value::to_string).unwrap_or_else(|| "{}".to_string());
            out.extend(halves(&input).into_iter().map(|p| delta(json!({ "toolUse": { "input": p } }))));
        } else {
            continue;
        }
        out.push((json!({ "contentBlockStop": { "contentBlockIndex": i } }), false));
    }
    out.push((json!({ "messageStop": { "stopReason": b["stopReason"] } }), false));
    out.push((json!({ "metadata": { "usage": b["usage"], "metrics": {}, "trace": {} }, "amazon-bedrock-invocationMetrics": invocation_metrics(a) }), false));
    out
}

/// The pieces of a generated text as chunks made by `make(piece, index, words so far, last)`.
fn text_chunks(
    a: &Answer,
    text: &str,
    make: impl Fn(&str, usize, usize, bool) -> Map<String, Value>,
) -> Vec<(Value, bool)> {
    let parts = pieces(text);
    let n = parts.len();
    let mut so_far = String::new();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            so_far.push_str(p);
            let last = i + 1 == n;
            let mut chunk = make(p, i, so_far.split_whitespace().count(), last);
            if last {
                chunk.insert("amazon-bedrock-invocationMetrics".into(), invocation_metrics(a));
            }
            (Value::Object(chunk), true)
        })
        .collect()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Meta Llama: `{generation, prompt_token_count (first chunk), generation_token_count (so far),
/// stop_reason (last chunk)}`.
fn llama_chunks(a: &Answer) -> Vec<(Value, bool)> {
    let b = &a.body;
    text_chunks(a, b["generation"].as_str().unwrap_or_default(), |p, i, words, last| {
        object(json!({
            "generation": p,
            "prompt_token_count": if i == 0 { b["prompt_token_count"].clone() } else { Value::Null },
            "generation_token_count": if last { b["generation_token_count"].clone() } else { json!(words) },
            "stop_reason": if last { b["stop_reason"].clone() } else { Value::Null },
        }))
    })
}

/// Mistral text completion: `{outputs: [{text, stop_reason (last chunk)}]}`.
fn mistral_chunks(a: &Answer) -> Vec<(Value, bool)> {
    let out = &a.body["outputs"][0];
    text_chunks(a, out["text"].as_str().unwrap_or_default(), |p, _, _, last| {
        object(
            json!({ "outputs": [{ "text": p, "stop_reason": if last { out["stop_reason"].clone() } else { Value::Null } }] }),
        )
    })
}

/// Mistral chat completion (AWS documents no stream format for it; the emulator keeps the
/// non-streaming choice's shape): `{choices: [{index, message: {role, content}, stop_reason}]}`.
fn mistral_chat_chunks(a: &Answer) -> Vec<(Value, bool)> {
    let choice = &a.body["choices"][0];
    text_chunks(a, choice.pointer("/message/content").and_then(Value::as_str).unwrap_or_default(), |p, _, _, last| {
        let reason = if last { choice["stop_reason"].clone() } else { Value::Null };
        object(
            json!({ "choices": [{ "index": 0, "message": { "role": "assistant", "content": p }, "stop_reason": reason }] }),
        )
    })
}

/// Amazon Titan Text: `{outputText, index, totalOutputTextTokenCount (so far), completionReason
/// (last chunk), inputTextTokenCount}`.
fn titan_chunks(a: &Answer) -> Vec<(Value, bool)> {
    let b = &a.body;
    let result = &b["results"][0];
    text_chunks(a, result["outputText"].as_str().unwrap_or_default(), |p, i, words, last| {
        object(json!({
            "outputText": p,
            "index": i,
            "totalOutputTextTokenCount": if last { result["tokenCount"].clone() } else { json!(words) },
            "completionReason": if last { result["completionReason"].clone() } else { Value::Null },
            "inputTextTokenCount": b["inputTextTokenCount"],
        }))
    })
}

// ===== exceptions inside a stream =====

/// The exception members of `ConverseStreamOutput` (botocore's bedrock-runtime model) with their
/// HTTP statuses.
const CONVERSE_STREAM_EXCEPTIONS: [(&str, u16); 5] = [
    ("internalServerException", 500),
    ("modelStreamErrorException", 424),
    ("validationException", 400),
    ("throttlingException", 429),
    ("serviceUnavailableException", 503),
];

/// The exception members of `ResponseStream` (InvokeModelWithResponseStream) with their statuses.
const RESPONSE_STREAM_EXCEPTIONS: [(&str, u16); 6] = [
    ("internalServerException", 500),
    ("modelStreamErrorException", 424),
    ("validationException", 400),
    ("throttlingException", 429),
    ("modelTimeoutException", 408),
    ("serviceUnavailableException", 503),
];

/// The exception event for a fault with HTTP status `code` inside the stream of `operation`: the
/// union's exception member with that status, else `modelStreamErrorException` (which carries
/// the model's original status and message). Returns the member and its payload.
pub(crate) fn exception(operation: &str, code: u16) -> (&'static str, Value) {
    let members: &[(&'static str, u16)] =
        if operation == "ConverseStream" { &CONVERSE_STREAM_EXCEPTIONS } else { &RESPONSE_STREAM_EXCEPTIONS };
    let member = members.iter().find(|(_, s)| *s == code).map_or("modelStreamErrorException", |(m, _)| *m);
    let mut shape = member.to_string();
    shape[..1].make_ascii_uppercase();
    let message = crate::faults::message_of(&shape);
    let mut payload = json!({ "message": message });
    if member == "modelStreamErrorException" {
        payload["originalStatusCode"] = json!(code);
        payload["originalMessage"] =
            json!(format!("The model answered with status {code} while it streamed its response."));
    }
    (member, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Value, input_tokens: u64, output_tokens: u64) -> Answer {
        Answer { body, input_tokens, output_tokens }
    }

    fn chunk_json(e: &(&'static str, Value)) -> Value {
        assert_eq!(e.0, "chunk");
        let bytes = aws_smithy_types::base64::decode(e.1["bytes"].as_str().unwrap()).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn pieces_join_to_the_text() {
        for text in [
            "",
            "one",
            "  lead and trail  ",
            "a b c d e f g",
            "This is the emulator's answer to: what is 6 × 7?\nLine two\tand more",
        ] {
            let p = pieces(text);
            assert_eq!(p.concat(), text);
            assert!(p.iter().all(|x| x.split_whitespace().count() <= 3), "{p:?}");
        }
        assert_eq!(pieces("a b c d e").len(), 2);
        assert_eq!(halves("{\"k\":\"é\"}").concat(), "{\"k\":\"é\"}");
    }

    #[test]
    fn converse_events_rebuild_the_answer() {
        let body = json!({
            "output": { "message": { "role": "assistant", "content": [
                { "reasoningContent": { "reasoningText": { "text": "Think it over now.", "signature": "c2ln" } } },
                { "text": "one two three four five" },
                { "toolUse": { "toolUseId": "tooluse_1", "name": "t", "input": { "q": "x" } } },
            ] } },
            "stopReason": "tool_use",
            "usage": { "inputTokens": 3, "outputTokens": 4, "totalTokens": 7 },
            "metrics": { "latencyMs": 120 },
            "serviceTier": { "type": "flex" },
        });
        let e = converse(&body);
        let types: Vec<&str> = e.events.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            types,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        assert_eq!(e.first_delta, 1);
        let text: String =
            e.events.iter().filter_map(|(_, p)| p.pointer("/delta/text").and_then(Value::as_str)).collect();
        assert_eq!(text, "one two three four five");
        let input: String =
            e.events.iter().filter_map(|(_, p)| p.pointer("/delta/toolUse/input").and_then(Value::as_str)).collect();
        assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({ "q": "x" }));
        assert_eq!(
            e.events[8].1,
            json!({ "start": { "toolUse": { "toolUseId": "tooluse_1", "name": "t" } }, "contentBlockIndex": 2 })
        );
        assert_eq!(e.events[3].1["delta"], json!({ "reasoningContent": { "signature": "c2ln" } }));
        assert_eq!(
            e.events[13].1,
            json!({ "usage": body["usage"], "metrics": { "latencyMs": 120 }, "serviceTier": { "type": "flex" } })
        );
    }

    #[test]
    fn claude_chunks_follow_the_messages_stream_and_end_with_invocation_metrics() {
        let body = json!({
            "id": "msg_bdrk_1", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
            "content": [{ "type": "text", "text": "a b c d" }, { "type": "tool_use", "id": "toolu_1", "name": "t", "input": {} }],
            "stop_reason": "tool_use", "stop_sequence": null, "usage": { "input_tokens": 9, "output_tokens": 14 },
        });
        let e = invoke("anthropic.claude-3-haiku-20240307-v1:0", &answer(body, 9, 14));
        let chunks: Vec<Value> = e.events.iter().map(chunk_json).collect();
        let types: Vec<&str> = chunks.iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(e.first_delta, 2);
        assert_eq!(
            chunks[5]["content_block"],
            json!({ "type": "tool_use", "id": "toolu_1", "name": "t", "input": {} })
        );
        assert_eq!(chunks[6]["delta"], json!({ "type": "input_json_delta", "partial_json": "{}" }));
        assert_eq!(chunks[8]["delta"]["stop_reason"], "tool_use");
        assert_eq!(chunks[8]["usage"]["output_tokens"], 14);
        let m = &chunks[9]["amazon-bedrock-invocationMetrics"];
        assert_eq!((m["inputTokenCount"].as_u64(), m["outputTokenCount"].as_u64()), (Some(9), Some(14)));
        assert!(m["invocationLatency"].as_u64().unwrap() >= m["firstByteLatency"].as_u64().unwrap());
    }

    #[test]
    fn text_families_stream_their_own_chunks() {
        let llama = answer(
            json!({ "generation": "w1 w2 w3 w4 w5", "prompt_token_count": 7, "generation_token_count": 5, "stop_reason": "stop" }),
            7,
            5,
        );
        let c: Vec<Value> = invoke("meta.llama3-1-8b-instruct-v1:0", &llama).events.iter().map(chunk_json).collect();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0]["prompt_token_count"].as_u64(), c[1]["prompt_token_count"].is_null()), (Some(7), true));
        assert_eq!(
            (c[0]["generation_token_count"].as_u64(), c[1]["generation_token_count"].as_u64()),
            (Some(3), Some(5))
        );
        assert_eq!((c[0]["stop_reason"].is_null(), c[1]["stop_reason"].as_str()), (true, Some("stop")));
        assert!(
            c[1]["amazon-bedrock-invocationMetrics"].is_object()
                && c[0].get("amazon-bedrock-invocationMetrics").is_none()
        );

        let titan = answer(
            json!({ "inputTextTokenCount": 4, "results": [{ "tokenCount": 2, "outputText": "x y", "completionReason": "FINISH" }] }),
            4,
            2,
        );
        let c: Vec<Value> = invoke("amazon.titan-text-express-v1", &titan).events.iter().map(chunk_json).collect();
        assert_eq!(c[0]["outputText"], "x y");
        assert_eq!(
            (c[0]["index"].as_u64(), c[0]["completionReason"].as_str(), c[0]["inputTextTokenCount"].as_u64()),
            (Some(0), Some("FINISH"), Some(4))
        );

        let mistral = answer(json!({ "outputs": [{ "text": "m1 m2 m3 m4", "stop_reason": "length" }] }), 3, 4);
        let c: Vec<Value> =
            invoke("mistral.mistral-7b-instruct-v0:2", &mistral).events.iter().map(chunk_json).collect();
        let text: String = c.iter().map(|x| x["outputs"][0]["text"].as_str().unwrap()).collect();
        assert_eq!(text, "m1 m2 m3 m4");
        assert_eq!(c.last().unwrap()["outputs"][0]["stop_reason"], "length");

        let nova = answer(
            json!({ "output": { "message": { "content": [{ "text": "n1" }], "role": "assistant" } }, "stopReason": "end_turn", "usage": { "inputTokens": 1, "outputTokens": 1, "totalTokens": 2 } }),
            1,
            1,
        );
        let c: Vec<Value> = invoke("amazon.nova-lite-v1:0", &nova).events.iter().map(chunk_json).collect();
        let keys: Vec<String> = c.iter().map(|x| x.as_object().unwrap().keys().next().unwrap().clone()).collect();
        assert_eq!(keys, ["messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]);
        assert_eq!(c[4]["metadata"]["usage"]["totalTokens"], 2);
        assert!(c[4]["amazon-bedrock-invocationMetrics"].is_object());
    }

    #[test]
    fn stream_exceptions_are_the_unions_members() {
        assert_eq!(exception("ConverseStream", 429).0, "throttlingException");
        assert_eq!(exception("InvokeModelWithResponseStream", 408).0, "modelTimeoutException");
        let (member, payload) = exception("ConverseStream", 408);
        assert_eq!(member, "modelStreamErrorException", "ConverseStream's stream models no timeout");
        assert_eq!(payload["originalStatusCode"], 408);
        assert!(payload["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(exception("InvokeModelWithResponseStream", 424).0, "modelStreamErrorException");
        assert_eq!(
            exception("ConverseStream", 503).1,
            json!({ "message": crate::faults::message_of("ServiceUnavailableException") })
        );
    }
}
