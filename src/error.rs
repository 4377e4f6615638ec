//! The one place where Rust errors become JS errors.

use napi::{Error, Status};

/// A JS error whose `code` is an AWS-style exception name and whose message is `message`.
pub(crate) fn js_error(name: &str, message: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("{name}: {message}"))
}

/// An emulator that could not start.
pub(crate) fn start_error(e: bedrock_batch_emulator::StartError) -> Error {
    js_error("EmulatorStartException", e)
}

/// Options that do not parse.
pub(crate) fn options_error(e: serde_json::Error) -> Error {
    js_error("ValidationException", format!("invalid emulator options: {e}"))
}
