//! The engine of bedrock-batch-bridge. It knows nothing of napi or JavaScript.
//!
//! Principal types:
//! - [`EngineConfig`]: the one configuration, built from the application's options, with every
//!   default and check.
//! - [`Engine`]: the handle. [`Engine::submit_batch`] hands requests over; each settles through
//!   the [`Sink`] as a [`Settlement`], by the id it was submitted with.
//! - The worker (`worker.rs`, private): one task that owns the queues (one per model), the
//!   counters, the job slots, the running batches and their callers.
//! - Job tasks (`job.rs`): one per batch; upload the JSONL, create the job, wait for the shared
//!   poller (`poller.rs`), read the output, and report verdicts to the worker.
//! - [`store::Store`]: what the engine records (the SQLite journal is one); its I/O runs off
//!   the async threads, through the store writer.
//! - [`backend::BatchBackend`] / [`backend::DirectBackend`]: what the engine needs from AWS (or
//!   an OpenAI-compatible server); the real ones use the AWS SDK for Rust, tests use fakes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod adopt;
pub mod backend;
mod backoff;
pub mod config;
pub mod converse;
pub mod convert;
pub mod engine;
pub mod error;
pub mod event_frames;
pub mod filler;
#[doc(hidden)]
pub mod fuzzing;
mod job;
pub mod jsonl;
mod leader;
pub mod plan;
mod poller;
pub mod pricing;
mod queue;
pub mod quotas;
pub mod request;
mod settle;
pub mod stats;
pub mod status;
pub mod store;
mod stream_events;
pub mod tokens;
mod worker;

pub use config::{BatchConfig, BelowMinimum, EngineConfig, Mode};
pub use engine::{Backends, Engine};
pub use error::{EngineError, ErrorName};
pub use queue::Caller;
pub use request::{InvocationType, InvokeOptions, Operation, Request, Submission};
pub use settle::{EventStream, Settlement, Sink, StreamItem, StreamPart, Success};
pub use stats::Stats;
pub use status::JobStatus;
pub use worker::Holding;
