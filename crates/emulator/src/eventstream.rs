//! AWS's event-stream framing (`application/vnd.amazon.eventstream`), as the streaming runtime
//! operations send it: each message is a prelude (total and header lengths, their CRC32), string
//! headers, a JSON payload and a CRC32 of the whole message. The encoding itself is the
//! `aws-smithy-eventstream` crate's (the AWS SDK for Rust's own), never written here.
//!
//! An event carries `:event-type` (the member name of the output's event-stream union, such as
//! `contentBlockDelta` or `chunk`), `:content-type: application/json` and `:message-type: event`;
//! a modelled exception inside the stream carries `:exception-type` (the union member, such as
//! `modelStreamErrorException`), `:content-type` and `:message-type: exception`.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde_json::Value;

/// The HTTP `content-type` of an event-stream response.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// One event message: `event_type` is the union member's name, `payload` its JSON structure.
pub fn event(event_type: &str, payload: &Value) -> Bytes {
    frame(&[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")], payload)
}

/// One modelled exception message: `exception_type` is the union member's name (`throttlingException`).
pub fn exception(exception_type: &str, payload: &Value) -> Bytes {
    frame(
        &[(":exception-type", exception_type), (":content-type", "application/json"), (":message-type", "exception")],
        payload,
    )
}

fn frame(headers: &[(&'static str, &str)], payload: &Value) -> Bytes {
    let headers =
        headers.iter().map(|(name, value)| Header::new(*name, HeaderValue::String(value.to_string().into()))).collect();
    let message = Message::new_from_parts(headers, serde_json::to_vec(payload).unwrap_or_default());
    let mut out = Vec::new();
    // Only a header or payload over the format's limits (16 MiB) fails; the emulator's events are small.
    write_message_to(&message, &mut out).expect("an event within the event-stream size limits");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::{read_message_from, DecodedFrame, MessageFrameDecoder};
    use serde_json::json;

    use super::*;

    fn headers(m: &Message) -> Vec<(String, String)> {
        m.headers()
            .iter()
            .map(|h| {
                (h.name().as_str().to_string(), h.value().as_string().expect("a string header").as_str().to_string())
            })
            .collect()
    }

    #[test]
    fn an_event_decodes_to_its_headers_and_json_payload() {
        let payload = json!({ "contentBlockIndex": 0, "delta": { "text": "Hello" } });
        let bytes = event("contentBlockDelta", &payload);
        let m = read_message_from(&bytes[..]).expect("the crate's decoder reads what it encoded");
        assert_eq!(
            headers(&m),
            [(":event-type", "contentBlockDelta"), (":content-type", "application/json"), (":message-type", "event")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(serde_json::from_slice::<Value>(m.payload()).unwrap(), payload);
    }

    #[test]
    fn an_exception_names_its_union_member() {
        let bytes = exception("modelStreamErrorException", &json!({ "message": "boom", "originalStatusCode": 500 }));
        let m = read_message_from(&bytes[..]).unwrap();
        let h = headers(&m);
        assert_eq!(h[0], (":exception-type".to_string(), "modelStreamErrorException".to_string()));
        assert_eq!(h[2], (":message-type".to_string(), "exception".to_string()));
    }

    #[test]
    fn the_prelude_and_message_crcs_are_crc32_of_what_they_cover() {
        let bytes = event("messageStart", &json!({ "role": "assistant" }));
        let total = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        assert_eq!(total, bytes.len(), "the prelude's total length is the frame's");
        let prelude_crc = u32::from_be_bytes(bytes[8..12].try_into().unwrap());
        assert_eq!(prelude_crc, crc32fast::hash(&bytes[0..8]));
        let message_crc = u32::from_be_bytes(bytes[total - 4..].try_into().unwrap());
        assert_eq!(message_crc, crc32fast::hash(&bytes[..total - 4]));
    }

    #[test]
    fn a_changed_byte_fails_the_crc_check() {
        let bytes = event("chunk", &json!({ "bytes": "eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=" }));
        let mut payload_flipped = bytes.to_vec();
        let at = payload_flipped.len() - 6;
        payload_flipped[at] ^= 0x01;
        assert!(read_message_from(&payload_flipped[..]).is_err(), "a payload byte changed");
        let mut prelude_flipped = bytes.to_vec();
        prelude_flipped[5] ^= 0x01;
        assert!(read_message_from(&prelude_flipped[..]).is_err(), "a prelude byte changed");
    }

    #[test]
    fn a_stream_of_frames_decodes_in_order_when_read_a_byte_at_a_time() {
        let frames = [
            event("messageStart", &json!({ "role": "assistant" })),
            event("messageStop", &json!({ "stopReason": "end_turn" })),
        ];
        let all: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let mut decoder = MessageFrameDecoder::new();
        let mut buffered = Vec::new();
        let mut types = Vec::new();
        for b in all {
            buffered.push(b);
            let mut view = &buffered[..];
            if let DecodedFrame::Complete(m) = decoder.decode_frame(&mut view).unwrap() {
                types.push(headers(&m)[0].1.clone());
                buffered.clear();
            } else {
                // The decoder consumed the prelude (it keeps it); keep only what it left.
                let rest = view.to_vec();
                buffered = rest;
            }
        }
        assert_eq!(types, ["messageStart", "messageStop"]);
    }
}
