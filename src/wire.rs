//! What the front doors (`batchFetch`, `serve`) need from Rust: AWS event-stream frames for the
//! streaming answers (the core's `event_frames`) and SigV4 checks of their callers
//! (`bedrock-batch-sigv4`, the verifier the emulator uses too).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use bedrock_batch_core::event_frames;
use bedrock_batch_sigv4::{Key, Verifier};

use crate::error::throw;

/// The event-stream frames of a JSON array of wire events (`[{"<eventType>": payload}, ...]`).
#[napi]
pub fn encode_event_frames(env: Env, events: Buffer) -> Result<Buffer> {
    event_frames::encode_events(&events).map(Buffer::from).map_err(|e| throw(&env, &e))
}

/// The event-stream frame of an exception that ends a stream.
#[napi]
pub fn encode_exception_frame(env: Env, name: String, message: String) -> Result<Buffer> {
    event_frames::encode_exception(&name, &message).map(Buffer::from).map_err(|e| throw(&env, &e))
}

/// A key pair `serve` accepts.
#[napi(object)]
pub struct NativeKeyPair {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Why a request's signature is refused: AWS's status, error type and message.
#[napi(object)]
pub struct NativeRefusal {
    pub status: u32,
    pub name: String,
    pub message: String,
}

/// Checks a Bedrock request's SigV4 signature against `keys`, scoped to `region`; `null`
/// when it is valid. `headers` are `[name, value]` pairs, names in lower case.
#[napi]
pub fn verify_signature(
    keys: Vec<NativeKeyPair>,
    region: String,
    method: String,
    uri: String,
    headers: Vec<Vec<String>>,
    body: Buffer,
) -> Option<NativeRefusal> {
    let keys = keys
        .into_iter()
        .map(|k| Key { access_key_id: k.access_key_id, secret_access_key: k.secret_access_key })
        .collect();
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .filter_map(|mut h| (h.len() == 2).then(|| (std::mem::take(&mut h[0]), std::mem::take(&mut h[1]))))
        .collect();
    Verifier { keys, region }
        .verify_request(&method, &uri, &headers, &body, std::time::SystemTime::now())
        .err()
        .map(|e| NativeRefusal { status: u32::from(e.status), name: e.name.to_string(), message: e.message })
}
