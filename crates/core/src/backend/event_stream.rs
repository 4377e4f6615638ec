//! A streaming call's response body (`application/vnd.amazon.eventstream`) read as it arrives:
//! each event message becomes a wire event `{"<:event-type>": payload}`, the messages of one read
//! go on as one JSON array, and an exception or error message ends the stream with that error.
//! The framing (prelude, headers, CRCs) is decoded by `aws-smithy-eventstream`.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::error::{EngineError, ErrorName};
use crate::settle::StreamItem;

/// Reads `body` until it ends, sending its events to `tx`; stops early when nobody listens.
pub(crate) async fn read_events(body: SdkBody, tx: mpsc::Sender<StreamItem>) {
    let mut stream = ByteStream::new(body);
    let mut decoder = MessageFrameDecoder::new();
    let mut buffer = BytesMut::new();
    loop {
        let read = match stream.next().await {
            None => {
                if !buffer.is_empty() {
                    let _ = tx.send(Err(broken("the stream ended inside an event message"))).await;
                }
                return;
            }
            Some(Err(e)) => {
                let _ = tx.send(Err(broken(&format!("the stream broke: {e}")))).await;
                return;
            }
            Some(Ok(b)) => b,
        };
        buffer.extend_from_slice(&read);
        let mut events = Vec::new();
        loop {
            match decoder.decode_frame(&mut buffer) {
                Ok(DecodedFrame::Incomplete) => break,
                Ok(DecodedFrame::Complete(message)) => match event_of(&message) {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => {}
                    Err(e) => {
                        send_events(&tx, events).await;
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                },
                Err(e) => {
                    send_events(&tx, events).await;
                    let _ = tx.send(Err(broken(&format!("an event message could not be read: {e}")))).await;
                    return;
                }
            }
        }
        if !events.is_empty() && !send_events(&tx, events).await {
            return;
        }
    }
}

/// Sends events as one JSON array; false when nobody listens any more.
async fn send_events(tx: &mpsc::Sender<StreamItem>, events: Vec<Bytes>) -> bool {
    if events.is_empty() {
        return true;
    }
    let mut out = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.push(b']');
    tx.send(Ok(Bytes::from(out))).await.is_ok()
}

fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// An event message as `{"<type>": payload}`; an exception or error message as its error.
fn event_of(message: &Message) -> Result<Option<Bytes>, EngineError> {
    match header(message, ":message-type") {
        Some("event") => {
            let Some(kind) = header(message, ":event-type") else { return Ok(None) };
            let payload = message.payload();
            let payload: &[u8] = if payload.is_empty() { b"{}" } else { payload };
            if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_err() {
                return Err(broken(&format!("the payload of a `{kind}` event is not JSON")));
            }
            let kind = serde_json::to_string(kind).unwrap_or_default();
            let mut out = Vec::with_capacity(kind.len() + payload.len() + 3);
            out.push(b'{');
            out.extend_from_slice(kind.as_bytes());
            out.push(b':');
            out.extend_from_slice(payload);
            out.push(b'}');
            Ok(Some(Bytes::from(out)))
        }
        Some("exception") => {
            let kind = header(message, ":exception-type").unwrap_or("");
            let text = serde_json::from_slice::<serde_json::Value>(message.payload())
                .ok()
                .and_then(|v| {
                    v.get("message").or_else(|| v.get("Message")).and_then(|m| m.as_str()).map(str::to_string)
                })
                .unwrap_or_default();
            let name = ErrorName::from_code(&pascal(kind));
            let name = if name == ErrorName::UnknownError { ErrorName::ModelStreamErrorException } else { name };
            let text = if text.is_empty() { format!("the stream ended with {kind}") } else { text };
            Err(EngineError::new(name, text).with_status(name.http_status()))
        }
        Some("error") => {
            let code = header(message, ":error-code").unwrap_or("");
            let text = header(message, ":error-message").unwrap_or("").to_string();
            let name = ErrorName::from_code(code);
            let name = if name == ErrorName::UnknownError { ErrorName::ModelStreamErrorException } else { name };
            Err(EngineError::new(
                name,
                if text.is_empty() { format!("the stream ended with error {code}") } else { text },
            )
            .with_status(name.http_status()))
        }
        _ => Ok(None),
    }
}

/// `modelStreamErrorException` → `ModelStreamErrorException` (a stream's union member → the
/// exception's shape name).
fn pascal(member: &str) -> String {
    let mut c = member.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn broken(why: &str) -> EngineError {
    EngineError::new(ErrorName::ModelStreamErrorException, why.to_string()).with_status(424)
}
