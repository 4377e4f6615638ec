//! The fuzz targets' bodies: each takes arbitrary bytes, feeds them to a parser or converter that
//! takes outside input, and checks what must hold (no panic; a round trip gives back what went
//! in). `fuzz/` runs them under libFuzzer (`scripts/fuzz.sh`); `tests/fuzz_regressions.rs` replays
//! their corpora and every input a run found in `cargo test`. Not part of the API.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::HeaderValue;
use serde_json::Value;

use crate::convert::{self, OpenAiTarget};
use crate::jsonl;

/// A target's body: it takes any bytes.
pub type Target = fn(&[u8]);

/// Every target, by name (as `fuzz/fuzz_targets/<name>.rs` and the corpus folders name them).
pub const TARGETS: &[(&str, Target)] = &[
    ("output_line", output_line),
    ("manifest", manifest),
    ("input_line", input_line),
    ("s3_uri_and_ids", s3_uri_and_ids),
    ("converse_native", converse_native),
    ("openai", openai),
    ("event_frames", event_frames),
];

/// A batch output line: parsed or refused; an answer's `modelOutput` is JSON, byte for byte.
pub fn output_line(data: &[u8]) {
    if let Some(jsonl::OutputLine::Success { output, .. }) = jsonl::parse_output_line(data) {
        serde_json::from_slice::<serde::de::IgnoredAny>(output).expect("modelOutput is the bytes of a JSON value");
    }
}

/// A job's `manifest.json.out`: its token counts, or none.
pub fn manifest(data: &[u8]) {
    let _ = jsonl::manifest_tokens(data);
}

/// A request body as a caller sends it: checked (and compacted to one line), written as an input
/// line, read back: the same record id and body, one line.
pub fn input_line(data: &[u8]) {
    let (n, body) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (0, data),
    };
    let _ = jsonl::parse_input_line(data);
    let Ok(body) = crate::request::check_body(bytes::Bytes::copy_from_slice(body)) else { return };
    let id = jsonl::record_id(n);
    let mut line = Vec::new();
    jsonl::push_input_line(&mut line, &id, &body);
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line: {:?}", String::from_utf8_lossy(&line));
    let (read_id, read_body) = jsonl::parse_input_line(&line[..line.len() - 1]).expect("the line reads back");
    assert_eq!(read_id, id);
    assert_eq!(jsonl::parse_record_id(&read_id), Some(n));
    assert_eq!(read_body, &body[..], "the body reads back byte for byte");
}

/// S3 URIs, record ids, request ids and model ids built from outside text.
pub fn s3_uri_and_ids(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if jsonl::s3_uri_problem(&text).is_none() {
        let (bucket, prefix) = jsonl::split_s3_uri(&text).expect("a URI without a problem splits");
        assert!(!bucket.is_empty(), "{text:?}");
        assert!(!prefix.chars().any(char::is_control), "no control character reaches S3: {text:?}");
        assert!(!prefix.split('/').any(|s| s == ".."), "no '..' segment reaches S3: {text:?}");
        assert!(prefix.len() <= jsonl::MAX_KEY_PREFIX_BYTES);
        let key = jsonl::join_key(&prefix, "records.jsonl");
        assert!(key.ends_with("records.jsonl"));
    }
    let _ = jsonl::split_s3_uri(&text);
    if let Some(n) = jsonl::parse_record_id(&text) {
        assert_eq!(jsonl::parse_record_id(&jsonl::record_id(n)), Some(n));
    }
    let _ = jsonl::is_filler_record_id(&text);
    let _ = jsonl::record_request_id(&text, &text);
    // The two patterns are AWS's own (InvokeModel's and CreateModelInvocationJob's `modelId`) and
    // do not nest: the batch pattern takes ids the runtime's refuses (fuzzing found
    // `arn:aws:bedrock:-esstua-1::foundation-model/amazon.nova-ls3:-v0:0`). The engine checks the
    // runtime's first, so such an id is refused at the send with ValidationException.
    let _ = crate::request::check_model_id(&text);
    let _ = crate::request::batchable_model(&text);
}

/// Model ids of each family whose requests are converted.
const MODELS: &[&str] = &[
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "amazon.nova-lite-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
];

/// A Converse request turned into each family's native body, and a native answer back.
pub fn converse_native(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    for model in MODELS {
        let _ = convert::converse_to_native(&v, model);
        let _ = convert::native_to_converse(model, &v, &v, 1);
    }
}

/// The OpenAI-compatible converters, both ways.
pub fn openai(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    for (top_k, files) in [(false, false), (true, true)] {
        let target = OpenAiTarget {
            model: "m".into(),
            supports_top_k: top_k,
            supports_file_parts: files,
            ..OpenAiTarget::default()
        };
        let _ = convert::claude_to_openai(&v, &target);
        let _ = convert::converse_to_openai(&v, &target);
    }
    let _ = convert::openai_to_claude(&v);
    let _ = convert::openai_to_converse(&v, &v, 1);
}

/// Wire events framed as AWS event-stream messages, decoded again: one message per event, each
/// with its type and its payload's JSON; an exception frame decodes too.
pub fn event_frames(data: &[u8]) {
    if let Ok(frames) = crate::event_frames::encode_events(data) {
        let events: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(data).expect("encoded: an array");
        let want: Vec<(&String, &Value)> = events.iter().filter_map(|e| e.iter().next()).collect();
        let got = decode_all(&frames);
        assert_eq!(got.len(), want.len(), "one message per event");
        for ((event_type, payload), (kind, body)) in want.iter().zip(&got) {
            assert_eq!(&kind.as_str(), event_type);
            assert_eq!(&serde_json::from_slice::<Value>(body).expect("a JSON payload"), *payload);
        }
    }
    let text = String::from_utf8_lossy(data);
    let (name, message) = text.split_once('\u{0}').unwrap_or((&text, ""));
    if let Ok(frame) = crate::event_frames::encode_exception(name, message) {
        let got = decode_all(&frame);
        assert_eq!(got.len(), 1);
        let body: Value = serde_json::from_slice(&got[0].1).expect("a JSON payload");
        assert_eq!(body["message"].as_str(), Some(message));
    }
}

/// Every message of a byte stream: its `:event-type` (or `:exception-type`) and its payload.
fn decode_all(mut bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut decoder = MessageFrameDecoder::new();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match decoder.decode_frame(&mut bytes).expect("our frames decode") {
            DecodedFrame::Complete(m) => {
                let kind = m
                    .headers()
                    .iter()
                    .find(|h| h.name().as_str() == ":event-type" || h.name().as_str() == ":exception-type")
                    .and_then(|h| match h.value() {
                        HeaderValue::String(s) => Some(s.as_str().to_string()),
                        _ => None,
                    })
                    .expect("a type header");
                out.push((kind, m.payload().to_vec()));
            }
            DecodedFrame::Incomplete => panic!("a frame was cut short"),
        }
    }
    out
}
