//! An OpenAI-compatible server's streamed chat completion (server-sent events, parsed by
//! `eventsource-stream`) turned, chunk by chunk, into the events of a Bedrock stream by one of the
//! converters in [`crate::convert`]: ConverseStream events, or Claude stream chunks for
//! InvokeModelWithResponseStream.

use std::time::Instant;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::convert::{ConvertError, OpenAiClaudeStream, OpenAiConverseStream};
use crate::error::{EngineError, ErrorName};
use crate::settle::StreamItem;

/// Turns `chat.completion.chunk`s into wire events.
pub(crate) enum Converter {
    /// ConverseStream events.
    Converse(OpenAiConverseStream),
    /// InvokeModelWithResponseStream chunks of a Claude body.
    Claude(OpenAiClaudeStream),
}

impl Converter {
    fn push(&mut self, chunk: &Value) -> Result<Vec<Value>, ConvertError> {
        match self {
            Converter::Converse(c) => c.push(chunk),
            Converter::Claude(c) => Ok(c.push(chunk)?.iter().map(as_chunk_event).collect()),
        }
    }

    fn finish(&mut self, started: Instant, first_byte_ms: u64) -> Result<Vec<Value>, ConvertError> {
        let latency = started.elapsed().as_millis() as u64;
        match self {
            Converter::Converse(c) => c.finish(latency),
            Converter::Claude(c) => Ok(c.finish(latency, first_byte_ms)?.iter().map(as_chunk_event).collect()),
        }
    }
}

/// A Claude stream payload as the wire event that carries it.
fn as_chunk_event(payload: &Value) -> Value {
    json!({"chunk": {"bytes": aws_smithy_types::base64::encode(serde_json::to_vec(payload).unwrap_or_default())}})
}

/// Reads the server's stream to its end, sending converted events to `tx`; stops early when
/// nobody listens.
pub(crate) async fn read(
    response: reqwest::Response,
    mut converter: Converter,
    started: Instant,
    tx: mpsc::Sender<StreamItem>,
) {
    let mut first_byte_ms = None;
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                let _ = tx.send(Err(broken(format!("the server's stream broke: {e}")))).await;
                return;
            }
        };
        let data = event.data.trim();
        if data == "[DONE]" {
            break;
        }
        if data.is_empty() {
            continue;
        }
        first_byte_ms.get_or_insert(started.elapsed().as_millis() as u64);
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(Err(broken(format!("a chunk of the server's stream is not JSON: {e}")))).await;
                return;
            }
        };
        if let Some(error) = chunk.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("the server reported an error");
            let _ = tx.send(Err(broken(format!("the server's stream failed: {message}")))).await;
            return;
        }
        let out = match converter.push(&chunk) {
            Ok(out) => out,
            Err(e) => {
                let _ = tx.send(Err(broken(e.message))).await;
                return;
            }
        };
        if !out.is_empty() && tx.send(Ok(serde_json::to_vec(&out).unwrap_or_default().into())).await.is_err() {
            return;
        }
    }
    let last = match converter.finish(started, first_byte_ms.unwrap_or(0)) {
        Ok(out) => Ok(serde_json::to_vec(&out).unwrap_or_default().into()),
        Err(e) => Err(broken(e.message)),
    };
    let _ = tx.send(last).await;
}

fn broken(message: String) -> EngineError {
    EngineError::new(ErrorName::ModelStreamErrorException, message).with_status(424)
}
