//! A whole answer as the events a streaming call would have given, for the streaming commands
//! answered from a batch record (or the journal): a Converse response as ConverseStream events, a
//! native InvokeModel body as InvokeModelWithResponseStream chunks in the model family's own
//! streaming format. The result is a JSON array of wire events (`{"<eventType>": payload}`), the
//! form [`Success::stream`](crate::settle::Success) documents.

use aws_smithy_types::base64;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::convert::{converse_stream_events, invocation_metrics, native_stream_chunks};
use crate::error::{EngineError, ErrorName};
use crate::request::Operation;

/// The wire events of `operation`'s stream for the whole answer `body` of model `model_id`.
/// Operations that do not stream keep their body.
pub(crate) fn events_of(operation: Operation, model_id: &str, body: &Bytes) -> Result<Bytes, EngineError> {
    match operation {
        Operation::InvokeModel | Operation::Converse => Ok(body.clone()),
        Operation::ConverseStream => {
            let response: Value = serde_json::from_slice(body)
                .map_err(|e| bad_answer(format!("the answer is not a Converse response: {e}")))?;
            let events = converse_stream_events(&response).map_err(|e| bad_answer(e.to_string()))?;
            Ok(Bytes::from(serde_json::to_vec(&events).unwrap_or_default()))
        }
        Operation::InvokeModelWithResponseStream => {
            let chunks = native_chunks(model_id, body);
            let events: Vec<Value> = chunks.iter().map(|c| json!({"chunk": {"bytes": base64::encode(c)}})).collect();
            Ok(Bytes::from(serde_json::to_vec(&events).unwrap_or_default()))
        }
    }
}

/// The chunk payloads of a native answer: the family's streaming format with Bedrock's invocation
/// metrics on the last chunk (latencies 0: a batch record has none), or, for a family without a
/// known format or a body it cannot read, the whole body as one chunk (its bytes concatenate to
/// the answer either way).
fn native_chunks(model_id: &str, body: &Bytes) -> Vec<Vec<u8>> {
    let chunks = serde_json::from_slice::<Value>(body).ok().and_then(|answer| {
        let metrics = invocation_metrics(model_id, &answer, 0, 0).ok()?;
        native_stream_chunks(model_id, &answer, &metrics).ok()
    });
    match chunks {
        Some(chunks) => chunks.iter().map(|c| serde_json::to_vec(c).unwrap_or_default()).collect(),
        None => vec![body.to_vec()],
    }
}

fn bad_answer(message: String) -> EngineError {
    EngineError::new(ErrorName::ModelErrorException, message).with_status(424)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converse_answers_become_events_that_concatenate_to_the_text() {
        let body = Bytes::from_static(
            br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello there"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":10}}"#,
        );
        let events: Vec<Value> = serde_json::from_slice(
            &events_of(Operation::ConverseStream, "anthropic.claude-3-haiku-20240307-v1:0", &body).unwrap(),
        )
        .unwrap();
        assert_eq!(events[0], json!({"messageStart": {"role": "assistant"}}));
        let text: String =
            events.iter().filter_map(|e| e.pointer("/contentBlockDelta/delta/text").and_then(Value::as_str)).collect();
        assert_eq!(text, "Hello there");
        assert_eq!(events.last().unwrap()["metadata"]["usage"]["totalTokens"], 5);
    }

    #[test]
    fn a_converse_answer_that_is_not_one_is_a_model_error() {
        let e = events_of(Operation::ConverseStream, "m", &Bytes::from_static(b"[1]")).unwrap_err();
        assert_eq!(e.name, ErrorName::ModelErrorException);
    }

    #[test]
    fn native_answers_become_chunks_and_unknown_families_one_chunk() {
        let claude = Bytes::from_static(
            br#"{"id":"m1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":4,"output_tokens":1}}"#,
        );
        let events: Vec<Value> = serde_json::from_slice(
            &events_of(Operation::InvokeModelWithResponseStream, "anthropic.claude-3-haiku-20240307-v1:0", &claude)
                .unwrap(),
        )
        .unwrap();
        let decode = |e: &Value| -> Value {
            serde_json::from_slice(&base64::decode(e["chunk"]["bytes"].as_str().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(decode(&events[0])["type"], "message_start");
        let last = decode(events.last().unwrap());
        assert_eq!(last["amazon-bedrock-invocationMetrics"]["inputTokenCount"], 4);
        let other = Bytes::from_static(br#"{"generations":[{"text":"x"}]}"#);
        let events: Vec<Value> = serde_json::from_slice(
            &events_of(Operation::InvokeModelWithResponseStream, "cohere.command-r-v1:0", &other).unwrap(),
        )
        .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(decode(&events[0]), serde_json::from_slice::<Value>(&other).unwrap());
    }
}
