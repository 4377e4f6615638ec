//! Stream conversions: a whole answer → ConverseStream events / InvokeModelWithResponseStream
//! chunks, and OpenAI chunks → Converse / Claude stream events.
//!
//! Besides exact event lists for small answers, every converter is checked by the property the
//! streaming commands promise: a consumer that concatenates the deltas (the reassemblers below,
//! written from the stream formats, not from the converters) gets exactly the non-streaming answer.

use std::collections::BTreeMap;

use bedrock_batch_core::convert::{
    converse_stream_events, invocation_metrics, native_stream_chunks, openai_to_claude, openai_to_converse,
    split_deltas, ConvertError, OpenAiClaudeStream, OpenAiConverseStream, STREAM_DELTA_CHARS,
};
use serde_json::{json, Map, Value};

fn same(actual: &Value, expected: &Value) -> bool {
    let (a, e) = (actual.to_string(), expected.to_string());
    actual == expected && a == e
}

/// A long text with multi-byte characters, spaces and a long unbroken run.
fn long_text() -> String {
    let mut s = String::new();
    for i in 0..30 {
        s.push_str(&format!("Wörd{i} été 🚀 "));
    }
    s.push_str(&"x".repeat(230));
    s.push_str("\nend.");
    s
}

// ---------------------------------------------------------------------------------------------
// Splitting
// ---------------------------------------------------------------------------------------------

#[test]
fn split_deltas_rule() {
    assert_eq!(split_deltas(""), vec![""]);
    assert_eq!(split_deltas("short text"), vec!["short text"]);
    let exact = "a".repeat(STREAM_DELTA_CHARS);
    assert_eq!(split_deltas(&exact), vec![exact.as_str()]);
    let run = "b".repeat(250);
    assert_eq!(split_deltas(&run).iter().map(|p| p.len()).collect::<Vec<_>>(), vec![100, 100, 50]);
    // Words stay whole: the cut is after the last space in the window's second half.
    let words = "word ".repeat(30);
    let pieces = split_deltas(&words);
    assert!(pieces.iter().all(|p| p.ends_with(' ')), "{pieces:?}");
    assert_eq!(pieces[0].len(), 100);
    // A space only in the window's first half does not count: a hard cut.
    let early = format!("{} {}", "a".repeat(40), "c".repeat(150));
    assert_eq!(split_deltas(&early)[0].chars().count(), 100);
    // A space in the second half does: the cut is just after it.
    let late = format!("{} {}", "a".repeat(60), "c".repeat(150));
    assert_eq!(split_deltas(&late)[0], format!("{} ", "a".repeat(60)));
    // Multi-byte characters are never cut, and the pieces give the text back.
    for text in [long_text(), "é".repeat(301), "🚀 ".repeat(77)] {
        let pieces = split_deltas(&text);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.chars().count() <= STREAM_DELTA_CHARS && !p.is_empty()));
        assert!(pieces.len() > 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Reassemblers (the consumer's side)
// ---------------------------------------------------------------------------------------------

/// ConverseStream events (or Nova's native chunks) → the whole answer: the message, stop reason,
/// additional fields, and the metadata event's members.
fn converse_reassemble(events: &[Value]) -> Value {
    let mut role = Value::Null;
    let mut blocks: BTreeMap<u64, Value> = BTreeMap::new();
    let mut inputs: BTreeMap<u64, String> = BTreeMap::new();
    let mut open: Option<u64> = None;
    let mut out = Map::new();
    let mut stop = Map::new();
    let mut meta = Map::new();
    for e in events {
        let o = e.as_object().unwrap();
        let (name, body) = o.iter().find(|(k, _)| k.as_str() != "amazon-bedrock-invocationMetrics").unwrap();
        assert_eq!(
            o.len() - o.contains_key("amazon-bedrock-invocationMetrics") as usize,
            1,
            "one event per payload: {e}"
        );
        let index = body.get("contentBlockIndex").and_then(Value::as_u64);
        match name.as_str() {
            "messageStart" => role = body["role"].clone(),
            "contentBlockStart" => {
                let i = index.unwrap();
                assert!(open.is_none() && !blocks.contains_key(&i), "start of {i} while a block is open");
                open = Some(i);
                let start = body["start"].as_object().unwrap();
                let (kind, s) = start.iter().next().unwrap();
                let block = match kind.as_str() {
                    "toolUse" => {
                        inputs.insert(i, String::new());
                        json!({"toolUse": s})
                    }
                    "toolResult" => json!({"toolResult": s}),
                    "image" => json!({"image": s}),
                    k => panic!("start {k}"),
                };
                blocks.insert(i, block);
            }
            "contentBlockDelta" => {
                let i = index.unwrap();
                assert!(open.is_none() || open == Some(i), "delta for {i} while {open:?} is open");
                open = Some(i);
                let d = body["delta"].as_object().unwrap();
                assert_eq!(d.len(), 1, "a delta is a union: {e}");
                let (kind, v) = d.iter().next().unwrap();
                let block = blocks.entry(i).or_insert(Value::Null);
                match kind.as_str() {
                    "text" => {
                        if let Some(c) = block.get_mut("citationsContent") {
                            let t = c["content"][0]["text"].as_str().unwrap().to_string();
                            c["content"][0]["text"] = json!(t + v.as_str().unwrap());
                        } else if block.is_null() {
                            *block = json!({"text": v});
                        } else {
                            let t = block["text"].as_str().unwrap().to_string();
                            block["text"] = json!(t + v.as_str().unwrap());
                        }
                    }
                    "citation" => {
                        if block.get("citationsContent").is_none() {
                            let t = block.get("text").cloned().unwrap_or(json!(""));
                            *block = json!({"citationsContent": {"content": [{"text": t}], "citations": []}});
                        }
                        block["citationsContent"]["citations"].as_array_mut().unwrap().push(v.clone());
                    }
                    "toolUse" => inputs.get_mut(&i).unwrap().push_str(v["input"].as_str().unwrap()),
                    "reasoningContent" => {
                        if block.is_null() {
                            *block = json!({"reasoningContent": {}});
                        }
                        let rc = block["reasoningContent"].as_object_mut().unwrap();
                        if let Some(t) = v.get("text") {
                            let rt = rc.entry("reasoningText").or_insert(json!({"text": ""}));
                            rt["text"] = json!(rt["text"].as_str().unwrap().to_string() + t.as_str().unwrap());
                        }
                        if let Some(s) = v.get("signature") {
                            rc.entry("reasoningText").or_insert(json!({"text": ""}))["signature"] = s.clone();
                        }
                        if let Some(r) = v.get("redactedContent") {
                            rc.insert("redactedContent".into(), r.clone());
                        }
                    }
                    "image" => block["image"]["source"] = v["source"].clone(),
                    "toolResult" => block["toolResult"]["content"] = v.clone(),
                    k => panic!("delta {k}"),
                }
            }
            "contentBlockStop" => {
                let i = index.unwrap();
                assert_eq!(open, Some(i), "stop of {i} while {open:?} is open");
                open = None;
                if let Some(input) = inputs.get(&i) {
                    blocks.get_mut(&i).unwrap()["toolUse"]["input"] = serde_json::from_str(input).unwrap();
                }
            }
            "messageStop" => stop = body.as_object().unwrap().clone(),
            "metadata" => meta = body.as_object().unwrap().clone(),
            other => panic!("event {other}"),
        }
    }
    assert!(open.is_none());
    let content: Vec<Value> = blocks.into_values().collect();
    out.insert("output".into(), json!({"message": {"role": role, "content": content}}));
    out.insert("stopReason".into(), stop["stopReason"].clone());
    for (k, v) in meta {
        out.insert(k, v);
    }
    if let Some(f) = stop.get("additionalModelResponseFields") {
        out.insert("additionalModelResponseFields".into(), f.clone());
    }
    Value::Object(out)
}

/// Claude Messages stream events → (the whole message, the invocation metrics of the last event).
fn claude_reassemble(events: &[Value]) -> (Value, Value) {
    assert_eq!(events[0]["type"], "message_start");
    let mut message = events[0]["message"].clone();
    let mut content: Vec<Value> = Vec::new();
    let mut partial: BTreeMap<usize, String> = BTreeMap::new();
    let mut metrics = Value::Null;
    for (n, e) in events.iter().enumerate().skip(1) {
        assert!(metrics.is_null(), "an event after message_stop");
        match e["type"].as_str().unwrap() {
            "content_block_start" => {
                let i = e["index"].as_u64().unwrap() as usize;
                assert_eq!(i, content.len());
                content.push(e["content_block"].clone());
                if e["content_block"]["type"] == "tool_use" {
                    partial.insert(i, String::new());
                }
            }
            "content_block_delta" => {
                let i = e["index"].as_u64().unwrap() as usize;
                let b = &mut content[i];
                let d = &e["delta"];
                let append = |b: &mut Value, key: &str, more: &Value| {
                    let t = b[key].as_str().unwrap().to_string();
                    b[key] = json!(t + more.as_str().unwrap());
                };
                match d["type"].as_str().unwrap() {
                    "text_delta" => append(b, "text", &d["text"]),
                    "thinking_delta" => append(b, "thinking", &d["thinking"]),
                    "signature_delta" => b["signature"] = d["signature"].clone(),
                    "input_json_delta" => partial.get_mut(&i).unwrap().push_str(d["partial_json"].as_str().unwrap()),
                    t => panic!("delta {t}"),
                }
            }
            "content_block_stop" => {
                let i = e["index"].as_u64().unwrap() as usize;
                if let Some(p) = partial.remove(&i) {
                    content[i]["input"] = if p.is_empty() { json!({}) } else { serde_json::from_str(&p).unwrap() };
                }
            }
            "message_delta" => {
                for (k, v) in e["delta"].as_object().unwrap() {
                    message[k] = v.clone();
                }
                // The usage counts are cumulative: what message_delta has replaces message_start's.
                for (k, v) in e["usage"].as_object().unwrap() {
                    message["usage"][k] = v.clone();
                }
            }
            "message_stop" => {
                assert_eq!(n, events.len() - 1, "message_stop is last");
                metrics = e.get("amazon-bedrock-invocationMetrics").cloned().unwrap_or(json!("none"));
            }
            t => panic!("event {t}"),
        }
    }
    message["content"] = Value::Array(content);
    (message, metrics)
}

// ---------------------------------------------------------------------------------------------
// Converse response → ConverseStream events
// ---------------------------------------------------------------------------------------------

fn converse_answer(content: Value, stop: &str) -> Value {
    json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
           "usage": {"inputTokens": 12, "outputTokens": 30, "totalTokens": 42}, "metrics": {"latencyMs": 640}})
}

#[test]
fn converse_events_exact() {
    let answer = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "sig"}}},
            {"text": "Hi!"},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Oslo"}}},
            {"reasoningContent": {"redactedContent": "cmVk"}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 12, "outputTokens": 30, "totalTokens": 42, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 4},
        "metrics": {"latencyMs": 640},
        "additionalModelResponseFields": {"stop_sequence": null},
        "trace": {"promptRouter": {"invokedModelId": "x"}},
        "performanceConfig": {"latency": "standard"},
        "serviceTier": {"type": "default"}
    });
    let expected = json!([
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"reasoningContent": {"text": "Think."}}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"reasoningContent": {"signature": "sig"}}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": "Hi!"}, "contentBlockIndex": 1}},
        {"contentBlockStop": {"contentBlockIndex": 1}},
        {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "tooluse_1", "name": "weather"}}, "contentBlockIndex": 2}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": "{\"city\":\"Oslo\"}"}}, "contentBlockIndex": 2}},
        {"contentBlockStop": {"contentBlockIndex": 2}},
        {"contentBlockDelta": {"delta": {"reasoningContent": {"redactedContent": "cmVk"}}, "contentBlockIndex": 3}},
        {"contentBlockStop": {"contentBlockIndex": 3}},
        {"messageStop": {"stopReason": "tool_use", "additionalModelResponseFields": {"stop_sequence": null}}},
        {"metadata": {"usage": {"inputTokens": 12, "outputTokens": 30, "totalTokens": 42, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 4},
                      "metrics": {"latencyMs": 640}, "trace": {"promptRouter": {"invokedModelId": "x"}},
                      "performanceConfig": {"latency": "standard"}, "serviceTier": {"type": "default"}}}
    ]);
    let events = Value::Array(converse_stream_events(&answer).unwrap());
    assert!(same(&events, &expected), "expected {expected}\nactual   {events}");
}

#[test]
fn converse_events_reassemble_to_the_answer() {
    let long = long_text();
    let big_input = json!({"query": long, "filters": [{"k": "a", "v": [1, 2, 3]}, {"k": "é", "v": null}], "deep": {"x": {"y": {"z": true}}}});
    let answers = vec![
        converse_answer(json!([{"text": long}]), "end_turn"),
        converse_answer(json!([{"text": ""}]), "max_tokens"),
        converse_answer(json!([]), "content_filtered"),
        converse_answer(json!([{"reasoningContent": {"reasoningText": {"text": long}}}, {"text": "ok"}]), "end_turn"),
        converse_answer(
            json!([{"text": "a"}, {"toolUse": {"toolUseId": "t1", "name": "search", "input": big_input}}, {"toolUse": {"toolUseId": "t2", "name": "now", "input": {}}}]),
            "tool_use",
        ),
        converse_answer(
            json!([{"toolUse": {"toolUseId": "t3", "name": "web", "input": {"q": "x"}, "type": "server_tool_use"}}]),
            "tool_use",
        ),
        converse_answer(json!([{"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]), "end_turn"),
        converse_answer(
            json!([{"toolResult": {"toolUseId": "t3", "content": [{"text": "found"}, {"json": {"n": 1}}], "status": "success", "type": "web"}}]),
            "end_turn",
        ),
        converse_answer(
            json!([{"citationsContent": {"content": [{"text": long}], "citations": [
                {"title": "Doc", "sourceContent": [{"text": "cited"}], "location": {"documentChar": {"documentIndex": 0, "start": 1, "end": 9}}},
                {"source": "https://x.test", "location": {"web": {"url": "https://x.test"}}}
            ]}}]),
            "end_turn",
        ),
        {
            let mut a = converse_answer(json!([{"text": "x"}]), "stop_sequence");
            a["additionalModelResponseFields"] = json!({"stop_sequence": "END"});
            a
        },
    ];
    for answer in answers {
        let events = converse_stream_events(&answer).unwrap();
        let back = converse_reassemble(&events);
        assert_eq!(back, answer, "events {}", Value::Array(events.clone()));
        // Text deltas are at most STREAM_DELTA_CHARS long.
        for e in &events {
            if let Some(t) = e.pointer("/contentBlockDelta/delta/text").and_then(Value::as_str) {
                assert!(t.chars().count() <= STREAM_DELTA_CHARS);
            }
        }
    }
}

#[test]
fn converse_event_errors() {
    let rows: Vec<(Result<Vec<Value>, ConvertError>, &str)> = vec![
        (converse_stream_events(&json!(1)), "not a JSON object"),
        (converse_stream_events(&json!({"stopReason": "end_turn"})), "no `output.message`"),
        (
            converse_stream_events(
                &json!({"output": {"message": {"role": "assistant", "content": []}}, "usage": {}, "metrics": {}}),
            ),
            "no `stopReason`",
        ),
        (
            converse_stream_events(
                &json!({"output": {"message": {"role": "assistant", "content": []}}, "stopReason": "end_turn", "metrics": {}}),
            ),
            "no `usage` object",
        ),
        (
            converse_stream_events(&converse_answer(json!([{"video": {}}]), "end_turn")),
            "a `video` block has no ConverseStream form",
        ),
        (converse_stream_events(&converse_answer(json!([{"text": 1}]), "end_turn")), "must be a string"),
    ];
    for (r, fragment) in rows {
        match r {
            Err(e) => assert!(e.message.contains(fragment), "{:?} lacks {fragment:?}", e.message),
            Ok(v) => panic!("expected an error with {fragment:?}, got {v:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Native answer → InvokeModelWithResponseStream chunks
// ---------------------------------------------------------------------------------------------

fn metrics() -> Value {
    json!({"inputTokenCount": 25, "outputTokenCount": 40, "invocationLatency": 1200, "firstByteLatency": 300})
}

fn claude_answer(content: Value, stop: &str) -> Value {
    json!({"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": content,
           "stop_reason": stop, "stop_sequence": null,
           "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 40}})
}

#[test]
fn claude_chunks_exact() {
    let answer = claude_answer(
        json!([
            {"type": "thinking", "thinking": "Hmm.", "signature": "SIG"},
            {"type": "redacted_thinking", "data": "REDACTED"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}
        ]),
        "tool_use",
    );
    let expected = json!([
        {"type": "message_start", "message": {"id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "REDACTED"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_stop", "index": 2},
        {"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}},
        {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":\"Oslo\"}"}},
        {"type": "content_block_stop", "index": 3},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 40}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics()}
    ]);
    let chunks =
        Value::Array(native_stream_chunks("anthropic.claude-3-haiku-20240307-v1:0", &answer, &metrics()).unwrap());
    assert!(same(&chunks, &expected), "expected {expected}\nactual   {chunks}");
}

#[test]
fn claude_chunks_reassemble_to_the_answer() {
    let long = long_text();
    let mut stopped = claude_answer(json!([{"type": "text", "text": long}]), "stop_sequence");
    stopped["stop_sequence"] = json!("END");
    let mut refused = claude_answer(json!([{"type": "text", "text": "Hel"}]), "refusal");
    refused["stop_details"] = json!({"type": "refusal", "category": "cyber"});
    let answers = vec![
        claude_answer(json!([{"type": "text", "text": long}]), "end_turn"),
        claude_answer(
            json!([{"type": "thinking", "thinking": long, "signature": "S".repeat(300)}, {"type": "text", "text": ""}]),
            "max_tokens",
        ),
        claude_answer(
            json!([{"type": "tool_use", "id": "toolu_2", "name": "search", "input": {"q": long, "n": [1, 2.5, null, {"deep": "é"}]}},
                   {"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}}]),
            "tool_use",
        ),
        claude_answer(json!([]), "end_turn"),
        stopped,
        refused,
    ];
    for answer in answers {
        let chunks = native_stream_chunks("claude", &answer, &metrics()).unwrap();
        let (back, m) = claude_reassemble(&chunks);
        assert_eq!(back, answer);
        assert_eq!(m, metrics());
    }
    // Without metrics, message_stop carries none.
    let chunks = native_stream_chunks("claude", &claude_answer(json!([]), "end_turn"), &Value::Null).unwrap();
    assert_eq!(chunks.last().unwrap(), &json!({"type": "message_stop"}));
}

fn nova_answer(content: Value, stop: &str) -> Value {
    json!({"output": {"message": {"content": content, "role": "assistant"}}, "stopReason": stop,
           "usage": {"inputTokens": 9, "outputTokens": 20, "totalTokens": 29, "cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0}})
}

#[test]
fn nova_chunks() {
    let answer = nova_answer(
        json!([{"text": "Hi"}, {"toolUse": {"toolUseId": "tooluse_1", "name": "f", "input": {"a": 1}}}]),
        "tool_use",
    );
    let expected = json!([
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "tooluse_1", "name": "f"}}, "contentBlockIndex": 1}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": "{\"a\":1}"}}, "contentBlockIndex": 1}},
        {"contentBlockStop": {"contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "tool_use"}},
        {"metadata": {"usage": {"inputTokens": 9, "outputTokens": 20, "totalTokens": 29, "cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0},
                      "metrics": {}, "trace": {}},
         "amazon-bedrock-invocationMetrics": metrics()}
    ]);
    let chunks = Value::Array(native_stream_chunks("us.amazon.nova-lite-v1:0", &answer, &metrics()).unwrap());
    assert!(same(&chunks, &expected), "expected {expected}\nactual   {chunks}");

    for answer in [
        nova_answer(
            json!([{"reasoningContent": {"reasoningText": {"text": long_text()}}}, {"text": long_text()}]),
            "end_turn",
        ),
        nova_answer(json!([{"toolUse": {"toolUseId": "t", "name": "g", "input": {"q": long_text()}}}]), "tool_use"),
    ] {
        let chunks = native_stream_chunks("nova", &answer, &metrics()).unwrap();
        let back = converse_reassemble(&chunks);
        assert_eq!(back["output"], answer["output"]);
        assert_eq!(back["stopReason"], answer["stopReason"]);
        assert_eq!(back["usage"], answer["usage"]);
        assert_eq!(chunks.last().unwrap()["amazon-bedrock-invocationMetrics"], metrics());
    }
}

/// Every chunk but the last has no invocation metrics; the last has them.
fn metrics_on_last_only(chunks: &[Value]) {
    let (last, rest) = chunks.split_last().unwrap();
    assert!(rest.iter().all(|c| c.get("amazon-bedrock-invocationMetrics").is_none()));
    assert_eq!(last["amazon-bedrock-invocationMetrics"], metrics());
}

#[test]
fn llama_chunks() {
    let text = long_text();
    let answer =
        json!({"generation": text, "prompt_token_count": 18, "generation_token_count": 99, "stop_reason": "stop"});
    let chunks = native_stream_chunks("meta.llama3-70b-instruct-v1:0", &answer, &metrics()).unwrap();
    assert!(chunks.len() > 3);
    metrics_on_last_only(&chunks);
    let joined: String = chunks.iter().map(|c| c["generation"].as_str().unwrap()).collect();
    assert_eq!(joined, text);
    assert_eq!(chunks[0]["prompt_token_count"], 18);
    assert!(chunks[1..].iter().all(|c| c["prompt_token_count"].is_null()));
    let last = chunks.last().unwrap();
    assert_eq!((last["generation_token_count"].clone(), last["stop_reason"].clone()), (json!(99), json!("stop")));
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["stop_reason"].is_null() && c["generation_token_count"].is_null()));
    // One short answer: one chunk with everything.
    let one = native_stream_chunks(
        "llama",
        &json!({"generation": "Hi", "prompt_token_count": 3, "generation_token_count": 1, "stop_reason": "length"}),
        &Value::Null,
    )
    .unwrap();
    assert_eq!(
        Value::Array(one),
        json!([{"generation": "Hi", "prompt_token_count": 3, "generation_token_count": 1, "stop_reason": "length"}])
    );
}

#[test]
fn titan_chunks() {
    let text = long_text();
    let answer = json!({"inputTextTokenCount": 7, "results": [{"tokenCount": 88, "outputText": text, "completionReason": "FINISH"}]});
    let chunks = native_stream_chunks("amazon.titan-text-express-v1", &answer, &metrics()).unwrap();
    metrics_on_last_only(&chunks);
    let joined: String = chunks.iter().map(|c| c["outputText"].as_str().unwrap()).collect();
    assert_eq!(joined, text);
    for (k, c) in chunks.iter().enumerate() {
        assert_eq!(c["index"], k);
    }
    assert_eq!(chunks[0]["inputTextTokenCount"], 7);
    let last = chunks.last().unwrap();
    assert_eq!(
        (last["totalOutputTextTokenCount"].clone(), last["completionReason"].clone()),
        (json!(88), json!("FINISH"))
    );
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["completionReason"].is_null()));
    let one = native_stream_chunks(
        "titan",
        &json!({"inputTextTokenCount": 2, "results": [{"tokenCount": 1, "outputText": "ok", "completionReason": "LENGTH"}]}),
        &Value::Null,
    )
    .unwrap();
    assert_eq!(
        Value::Array(one),
        json!([{"outputText": "ok", "index": 0, "totalOutputTextTokenCount": 1, "completionReason": "LENGTH", "inputTextTokenCount": 2}])
    );
}

#[test]
fn mistral_chunks() {
    let text = long_text();
    let answer = json!({"outputs": [{"text": text, "stop_reason": "stop"}]});
    let chunks = native_stream_chunks("mistral.mistral-7b-instruct-v0:2", &answer, &metrics()).unwrap();
    metrics_on_last_only(&chunks);
    let joined: String = chunks.iter().map(|c| c["outputs"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(joined, text);
    assert_eq!(chunks.last().unwrap()["outputs"][0]["stop_reason"], "stop");
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["outputs"][0]["stop_reason"].is_null()));

    // The chat format: pieces of the message, tool calls with the last chunk.
    let calls = json!([{"id": "abc123xyz", "function": {"name": "f", "arguments": "{\"a\":1}"}}]);
    let chat = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": calls}, "stop_reason": "tool_calls"}]});
    let chunks = native_stream_chunks("mistral", &chat, &metrics()).unwrap();
    metrics_on_last_only(&chunks);
    let joined: String = chunks.iter().map(|c| c["choices"][0]["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(joined, text);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["message"]["tool_calls"], calls);
    assert_eq!(last["choices"][0]["stop_reason"], "tool_calls");
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["choices"][0]["message"].get("tool_calls").is_none()));
    let null_content = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "stop_reason": "tool_calls"}]});
    let chunks = native_stream_chunks("mistral", &null_content, &Value::Null).unwrap();
    assert_eq!(Value::Array(chunks), json!([null_content]));
}

#[test]
fn native_chunk_errors() {
    let rows: Vec<(Result<Vec<Value>, ConvertError>, &str)> = vec![
        (
            native_stream_chunks("cohere.command-r-v1:0", &json!({}), &Value::Null),
            "no stream format is known for model `cohere.command-r-v1:0`",
        ),
        (native_stream_chunks("claude", &json!("x"), &Value::Null), "not a JSON object"),
        (
            native_stream_chunks("claude", &json!({"content": [{"type": "server_tool_use"}]}), &Value::Null),
            "a `server_tool_use` block has no stream form",
        ),
        (
            native_stream_chunks(
                "claude",
                &json!({"content": [{"type": "text", "text": "a", "citations": [{}]}]}),
                &Value::Null,
            ),
            "citations",
        ),
        (
            native_stream_chunks("nova", &json!({"output": {"message": {"content": []}}}), &Value::Null),
            "no `stopReason`",
        ),
        (native_stream_chunks("titan", &json!({"results": [{}, {}]}), &Value::Null), "2 results"),
        (native_stream_chunks("llama", &json!({"prompt_token_count": 1}), &Value::Null), "generation is missing"),
        (native_stream_chunks("mistral", &json!({"outputs": []}), &Value::Null), "0 outputs"),
    ];
    for (r, fragment) in rows {
        match r {
            Err(e) => assert!(e.message.contains(fragment), "{:?} lacks {fragment:?}", e.message),
            Ok(v) => panic!("expected an error with {fragment:?}, got {v:?}"),
        }
    }
}

#[test]
fn invocation_metrics_per_family() {
    let claude = json!({"usage": {"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 7}});
    let rows: Vec<(&str, Value, Value)> = vec![
        (
            "claude",
            claude,
            json!({"inputTokenCount": 10, "outputTokenCount": 7, "invocationLatency": 900, "firstByteLatency": 200, "cacheReadInputTokenCount": 100, "cacheWriteInputTokenCount": 5}),
        ),
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            json!({"usage": {"input_tokens": 1, "output_tokens": 2}}),
            json!({"inputTokenCount": 1, "outputTokenCount": 2, "invocationLatency": 900, "firstByteLatency": 200}),
        ),
        (
            "amazon.nova-micro-v1:0",
            json!({"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7, "cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0}}),
            json!({"inputTokenCount": 3, "outputTokenCount": 4, "invocationLatency": 900, "firstByteLatency": 200}),
        ),
        (
            "llama",
            json!({"prompt_token_count": 11, "generation_token_count": 12}),
            json!({"inputTokenCount": 11, "outputTokenCount": 12, "invocationLatency": 900, "firstByteLatency": 200}),
        ),
        (
            "titan",
            json!({"inputTextTokenCount": 5, "results": [{"tokenCount": 6}]}),
            json!({"inputTokenCount": 5, "outputTokenCount": 6, "invocationLatency": 900, "firstByteLatency": 200}),
        ),
        (
            "mistral",
            json!({"outputs": []}),
            json!({"inputTokenCount": 0, "outputTokenCount": 0, "invocationLatency": 900, "firstByteLatency": 200}),
        ),
    ];
    for (family, body, expected) in rows {
        let m = invocation_metrics(family, &body, 900, 200).unwrap();
        assert!(same(&m, &expected), "{family}: expected {expected}\nactual   {m}");
    }
    assert!(invocation_metrics("gpt-4o", &json!({}), 0, 0).is_err());
}

// ---------------------------------------------------------------------------------------------
// OpenAI chunks → Converse / Claude stream events
// ---------------------------------------------------------------------------------------------

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn usage_chunk(usage: Value) -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": usage})
}

fn whole(message: Value, finish: &str, usage: Value) -> Value {
    json!({"id": "chatcmpl-9", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage})
}

/// (name, chunks, the same answer as one chat.completion).
fn openai_stream_cases() -> Vec<(&'static str, Vec<Value>, Value)> {
    let u = json!({"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28});
    let long = long_text();
    let (a, b) = long.split_at(long.char_indices().nth(150).unwrap().0);
    vec![
        (
            "text in pieces, usage after the finish",
            vec![
                chunk(json!({"role": "assistant", "content": ""}), None),
                chunk(json!({"content": a}), None),
                chunk(json!({"content": b}), None),
                chunk(json!({}), Some("stop")),
                usage_chunk(u.clone()),
            ],
            whole(json!({"role": "assistant", "content": long}), "stop", u.clone()),
        ),
        (
            "reasoning then text",
            vec![
                chunk(json!({"role": "assistant", "reasoning_content": "Let me "}), None),
                chunk(json!({"reasoning_content": "think."}), None),
                chunk(json!({"content": "42"}), None),
                chunk(json!({}), Some("stop")),
            ],
            whole(
                json!({"role": "assistant", "content": "42", "reasoning_content": "Let me think."}),
                "stop",
                Value::Null,
            ),
        ),
        (
            "text then two tool calls with split arguments; cached usage",
            vec![
                chunk(json!({"role": "assistant", "content": "Checking."}), None),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
                    None,
                ),
                chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), None),
                chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), None),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}),
                    None,
                ),
                chunk(json!({}), Some("tool_calls")),
                usage_chunk(
                    json!({"prompt_tokens": 1000, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 900}}),
                ),
            ],
            whole(
                json!({"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]}),
                "tool_calls",
                json!({"prompt_tokens": 1000, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 900}}),
            ),
        ),
        (
            "a tool call without id or arguments, reported as stop",
            vec![
                chunk(json!({"tool_calls": [{"index": 0, "function": {"name": "now"}}]}), None),
                chunk(json!({}), Some("stop")),
                usage_chunk(u.clone()),
            ],
            whole(
                json!({"content": null, "tool_calls": [{"type": "function", "function": {"name": "now", "arguments": ""}}]}),
                "stop",
                u.clone(),
            ),
        ),
        (
            "a refusal",
            vec![chunk(json!({"refusal": "I can't "}), None), chunk(json!({"refusal": "help."}), Some("stop"))],
            whole(json!({"content": null, "refusal": "I can't help."}), "stop", Value::Null),
        ),
        (
            "cut at max tokens",
            vec![chunk(json!({"content": "abc"}), Some("length"))],
            whole(json!({"content": "abc"}), "length", Value::Null),
        ),
        (
            "vLLM's matched stop string",
            vec![
                chunk(json!({"content": "abc"}), None),
                json!({"id": "chatcmpl-9", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]}),
            ],
            json!({"id": "chatcmpl-9", "model": "m", "choices": [{"index": 0, "message": {"content": "abc"}, "finish_reason": "stop", "stop_reason": "END"}]}),
        ),
        (
            "LiteLLM thinking blocks with a signature",
            vec![
                chunk(
                    json!({"reasoning_content": "abc", "thinking_blocks": [{"type": "thinking", "thinking": "abc", "signature": ""}]}),
                    None,
                ),
                chunk(json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "SIG"}]}), None),
                chunk(json!({"content": "x"}), Some("stop")),
            ],
            whole(
                json!({"content": "x", "reasoning_content": "abc", "thinking_blocks": [{"type": "thinking", "thinking": "abc", "signature": "SIG"}]}),
                "stop",
                Value::Null,
            ),
        ),
        (
            "redacted thinking",
            vec![
                chunk(json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "REDACTED"}]}), None),
                chunk(json!({"content": "x"}), Some("stop")),
            ],
            whole(
                json!({"content": "x", "thinking_blocks": [{"type": "redacted_thinking", "data": "REDACTED"}]}),
                "stop",
                Value::Null,
            ),
        ),
    ]
}

#[test]
fn openai_stream_to_converse_reassembles_to_the_answer() {
    let req = json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]});
    for (name, chunks, answer) in openai_stream_cases() {
        let mut s = OpenAiConverseStream::new();
        let mut events = Vec::new();
        for c in &chunks {
            events.extend(s.push(c).unwrap_or_else(|e| panic!("{name}: {}", e.message)));
        }
        events.extend(s.finish(55).unwrap_or_else(|e| panic!("{name}: {}", e.message)));
        let expected = openai_to_converse(&answer, &req, 55).unwrap();
        let back = converse_reassemble(&events);
        assert_eq!(back, expected, "`{name}`\n  events {}", Value::Array(events.clone()));
        assert_eq!(events[0], json!({"messageStart": {"role": "assistant"}}), "{name}");
    }
}

#[test]
fn openai_stream_to_claude_reassembles_to_the_answer() {
    for (name, chunks, answer) in openai_stream_cases() {
        let mut s = OpenAiClaudeStream::new();
        let mut events = Vec::new();
        for c in &chunks {
            events.extend(s.push(c).unwrap_or_else(|e| panic!("{name}: {}", e.message)));
        }
        events.extend(s.finish(700, 90).unwrap_or_else(|e| panic!("{name}: {}", e.message)));
        let expected = openai_to_claude(&answer).unwrap();
        let (back, m) = claude_reassemble(&events);
        assert!(
            same(&back, &expected),
            "`{name}`\n  expected {expected}\n  back     {back}\n  events {}",
            Value::Array(events.clone())
        );
        let u = &expected["usage"];
        assert_eq!(m["inputTokenCount"], u["input_tokens"], "{name}");
        assert_eq!(m["outputTokenCount"], u["output_tokens"], "{name}");
        assert_eq!((m["invocationLatency"].clone(), m["firstByteLatency"].clone()), (json!(700), json!(90)));
    }
}

#[test]
fn openai_stream_exact_events() {
    let mut s = OpenAiConverseStream::new();
    let mut events = Vec::new();
    for c in
        [chunk(json!({"role": "assistant", "content": "Hel"}), None), chunk(json!({"content": "lo"}), Some("stop"))]
    {
        events.extend(s.push(&c).unwrap());
    }
    events.extend(s.finish(10).unwrap());
    assert_eq!(
        Value::Array(events),
        json!([
            {"messageStart": {"role": "assistant"}},
            {"contentBlockDelta": {"delta": {"text": "Hel"}, "contentBlockIndex": 0}},
            {"contentBlockDelta": {"delta": {"text": "lo"}, "contentBlockIndex": 0}},
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {"metadata": {"usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}, "metrics": {"latencyMs": 10}}}
        ])
    );

    let mut c = OpenAiClaudeStream::new();
    let mut events = c
        .push(&chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}]}),
            Some("tool_calls"),
        ))
        .unwrap();
    events.extend(c.finish(5, 1).unwrap());
    assert_eq!(
        Value::Array(events),
        json!([
            {"type": "message_start", "message": {"id": "chatcmpl-9", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}},
            {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 0, "outputTokenCount": 0, "invocationLatency": 5, "firstByteLatency": 1}}
        ])
    );
}

#[test]
fn openai_stream_errors() {
    let run = |chunks: Vec<Value>| -> Result<Vec<Value>, ConvertError> {
        let mut s = OpenAiConverseStream::new();
        let mut out = Vec::new();
        for c in &chunks {
            out.extend(s.push(c)?);
        }
        out.extend(s.finish(0)?);
        Ok(out)
    };
    let call = |k: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut f = json!({"arguments": args});
        if let Some(n) = name {
            f["name"] = json!(n);
        }
        let mut c = json!({"index": k, "function": f});
        if let Some(id) = id {
            c["id"] = json!(id);
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    let rows: Vec<(Result<Vec<Value>, ConvertError>, &str)> = vec![
        (
            run(vec![
                call(0, Some("a"), Some("f"), "{"),
                call(1, Some("b"), Some("g"), "{}"),
                call(0, None, None, "}"),
            ]),
            "interleaved tool calls have no Converse or Claude stream form",
        ),
        (run(vec![call(0, Some("a"), None, "{}")]), "has no function name"),
        (run(vec![json!({"choices": [{"index": 0, "delta": {}}, {"index": 1, "delta": {}}]})]), "2 choices"),
        (run(vec![json!({"choices": [{"index": 1, "delta": {"content": "x"}}]})]), "choice index other than 0"),
        (run(vec![json!({"error": {"message": "overloaded"}})]), "overloaded"),
        (run(vec![]), "ended before its first chunk"),
        (run(vec![chunk(json!({"content": "x"}), Some("abort"))]), "finish_reason `abort`"),
        (run(vec![chunk(json!({"content": 5}), None)]), "delta.content is a number"),
        (
            run(vec![chunk(json!({"tool_calls": [{"index": 0, "type": "code", "function": {"name": "x"}}]}), None)]),
            "tool call type `code`",
        ),
    ];
    for (r, fragment) in rows {
        match r {
            Err(e) => assert!(e.message.contains(fragment), "{:?} lacks {fragment:?}", e.message),
            Ok(v) => panic!("expected an error with {fragment:?}, got {v:?}"),
        }
    }
    // Nothing after finish.
    let mut s = OpenAiClaudeStream::new();
    s.push(&chunk(json!({"content": "x"}), Some("stop"))).unwrap();
    s.finish(0, 0).unwrap();
    assert!(s
        .push(&chunk(json!({"content": "y"}), None))
        .unwrap_err()
        .message
        .contains("after the stream was finished"));
    assert!(s.finish(0, 0).unwrap_err().message.contains("already finished"));
}
