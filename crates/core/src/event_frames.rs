//! Wire events written in AWS's event-stream framing (`application/vnd.amazon.eventstream`), as
//! the Bedrock runtime sends the streaming operations' answers: for the front doors that answer
//! HTTP callers (`batchFetch`, `serve`). The framing is the `aws-smithy-eventstream` crate's.
//!
//! An event `{"<eventType>": payload}` becomes a message with the headers `:event-type`,
//! `:content-type: application/json` and `:message-type: event`, and the payload's JSON as body.
//! An exception becomes `:exception-type` (the member name of the output's union, such as
//! `modelStreamErrorException`; a name outside the union is kept as it is), `:content-type` and
//! `:message-type: exception`, with `{"message": …}` as body.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::{json, Value};

use crate::error::{EngineError, ErrorName};

/// The exceptions the streaming operations' unions carry, by the union member that carries them.
const STREAM_EXCEPTIONS: &[&str] = &[
    "InternalServerException",
    "ModelStreamErrorException",
    "ValidationException",
    "ThrottlingException",
    "ModelTimeoutException",
    "ServiceUnavailableException",
];

/// The frames of a JSON array of wire events, one after the other.
pub fn encode_events(events_json: &[u8]) -> Result<Vec<u8>, EngineError> {
    let events: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(events_json).map_err(|e| {
        EngineError::new(ErrorName::ValidationException, format!("stream events are not a JSON array of events: {e}"))
    })?;
    let mut out = Vec::new();
    for event in &events {
        let Some((event_type, payload)) = event.iter().next() else { continue };
        frame(
            &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
            payload,
            &mut out,
        )?;
    }
    Ok(out)
}

/// The frame of an exception that ends a stream.
pub fn encode_exception(name: &str, message: &str) -> Result<Vec<u8>, EngineError> {
    let member = if STREAM_EXCEPTIONS.contains(&name) {
        let mut c = name.chars();
        c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
    } else {
        name.to_string()
    };
    let mut out = Vec::new();
    frame(
        &[(":exception-type", &member), (":content-type", "application/json"), (":message-type", "exception")],
        &json!({ "message": message }),
        &mut out,
    )?;
    Ok(out)
}

fn frame(headers: &[(&'static str, &str)], payload: &Value, out: &mut Vec<u8>) -> Result<(), EngineError> {
    let headers =
        headers.iter().map(|(name, value)| Header::new(*name, HeaderValue::String(value.to_string().into()))).collect();
    let message = Message::new_from_parts(headers, serde_json::to_vec(payload).unwrap_or_default());
    write_message_to(&message, out)
        .map_err(|e| EngineError::new(ErrorName::ValidationException, format!("a stream event cannot be framed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    use bytes::Buf;

    fn decode(mut bytes: &[u8]) -> Vec<Message> {
        let mut decoder = MessageFrameDecoder::new();
        let mut out = Vec::new();
        while bytes.has_remaining() {
            match decoder.decode_frame(&mut bytes).unwrap() {
                DecodedFrame::Complete(m) => out.push(m),
                DecodedFrame::Incomplete => break,
            }
        }
        out
    }

    fn header<'a>(m: &'a Message, name: &str) -> &'a str {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
            .unwrap_or("")
    }

    #[test]
    fn each_event_is_one_message_with_its_type_and_payload() {
        let frames = encode_events(br#"[{"messageStart":{"role":"assistant"}},{"chunk":{"bytes":"aGk="}}]"#).unwrap();
        let messages = decode(&frames);
        assert_eq!(messages.len(), 2);
        assert_eq!(header(&messages[0], ":event-type"), "messageStart");
        assert_eq!(header(&messages[0], ":message-type"), "event");
        assert_eq!(header(&messages[0], ":content-type"), "application/json");
        assert_eq!(messages[0].payload().as_ref(), br#"{"role":"assistant"}"#);
        assert_eq!(header(&messages[1], ":event-type"), "chunk");
        assert_eq!(messages[1].payload().as_ref(), br#"{"bytes":"aGk="}"#);
        assert!(encode_events(b"{}").is_err());
    }

    #[test]
    fn an_exception_carries_its_union_member_or_its_own_name() {
        let m = &decode(&encode_exception("ModelStreamErrorException", "broke").unwrap())[0];
        assert_eq!(header(m, ":message-type"), "exception");
        assert_eq!(header(m, ":exception-type"), "modelStreamErrorException");
        assert_eq!(m.payload().as_ref(), br#"{"message":"broke"}"#);
        let m = &decode(&encode_exception("BatchJobFailedException", "x").unwrap())[0];
        assert_eq!(header(m, ":exception-type"), "BatchJobFailedException");
    }
}
