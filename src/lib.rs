//! The napi binding: thin classes over `bedrock-batch-core` and `bedrock-batch-emulator`.
//! No logic lives here beyond converting values; errors become JS values in `error.rs`.
#![deny(clippy::all)]
// Built as a test target (clippy --all-targets), the exported functions have no caller in Rust.
#![cfg_attr(test, allow(dead_code))]

mod admin;
mod emulator;
mod engine;
mod error;
mod job_status;
mod operation;
mod settle;
mod store_access;
mod store_reader;
mod wire;
