//! The one place where Rust errors become JS values: a thrown `Error` whose message starts with
//! the AWS-style name (sync calls), or a tagged error object in a settlement (async results).
//! index.js turns both into SDK-style exceptions.

use napi::{Error, Status};
use napi_derive::napi;

use bedrock_batch_core::EngineError;

/// A JS error whose message is `Name: message` (index.js reads the name back).
pub(crate) fn js_error(name: &str, message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("{name}: {message}"))
}

/// An engine error thrown from a sync call.
pub(crate) fn engine_error(e: &EngineError) -> Error {
    js_error(e.name.as_str(), &e.message)
}

/// An emulator that could not start.
pub(crate) fn start_error(e: bedrock_batch_emulator::StartError) -> Error {
    js_error("EmulatorStartException", e)
}

/// Options that do not parse.
pub(crate) fn options_error(e: serde_json::Error) -> Error {
    js_error("ValidationException", format!("invalid emulator options: {e}"))
}

/// An engine error as plain data, for a settlement.
#[napi(object)]
pub struct JsEngineError {
    pub name: String,
    pub message: String,
    pub fault: String,
    pub http_status_code: Option<u32>,
    pub job_arn: Option<String>,
    pub record_id: Option<String>,
    pub status: Option<String>,
    pub request_id: Option<String>,
    pub attempts: u32,
}

/// An engine error in a settlement.
pub(crate) fn settlement_error(e: &EngineError) -> JsEngineError {
    JsEngineError {
        name: e.name.as_str().to_string(),
        message: e.message.clone(),
        fault: e.name.fault().to_string(),
        http_status_code: e.http_status.map(u32::from),
        job_arn: e.job_arn.clone(),
        record_id: e.record_id.clone(),
        status: e.job_status.clone(),
        request_id: e.request_id.clone(),
        attempts: e.attempts.max(1),
    }
}
