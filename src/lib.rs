//! The napi binding: thin classes over `bedrock-batch-core` and `bedrock-batch-emulator`.
//! No logic lives here beyond converting values; errors become JS values in `error.rs`.
#![deny(clippy::all)]

mod admin;
mod emulator;
mod engine;
mod error;
