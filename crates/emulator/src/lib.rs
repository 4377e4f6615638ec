//! A local Amazon Bedrock batch inference emulator.
//!
//! [`Emulator::start`] serves, on 127.0.0.1:
//! - the Bedrock control plane (Create/Get/List/Stop ModelInvocationJob, restJson1 as AWS speaks it),
//!   whose jobs really run: they read JSONL input from S3, walk the statuses, answer every record
//!   with a deterministic responder per model family and write `.out` files and a manifest;
//! - the Bedrock runtime (`/model/{id}/invoke`, `/model/{id}/converse`, and their streaming twins
//!   `/invoke-with-response-stream` and `/converse-stream` in AWS's event-stream framing,
//!   [`eventstream`]), over HTTP/1.1 and cleartext HTTP/2, and `/model/{id}/count-tokens`
//!   (CountTokens, counting as the responders count their input usage, [`tokens`]);
//! - AWS Service Quotas' ListServiceQuotas and GetServiceQuota (AWS JSON 1.1, `POST /` on the control
//!   plane's port), reporting the emulator's own limits as Bedrock's batch inference quotas;
//! - an OpenAI-compatible `/v1/chat/completions`;
//! - S3, from the `s3s` + `s3s-fs` crates (a real S3 implementation that checks SigV4).
//!
//! The control plane, the runtime and Service Quotas check every request as AWS does: its SigV4
//! signature against the emulator's credentials (the `bedrock-batch-sigv4` crate), then every
//! constraint of the operation's service model ([`model`], generated from botocore; `request.rs`
//! and `validate.rs`).
//!
//! Markers in a record body (`[[error:429]]`, `[[missing]]`, `[[job:failed]]`, ...) inject faults;
//! see [`faults`]. `POST /_emulator/faults` arms fault storms while it runs (the next N S3 requests
//! fail with 503 `SlowDown`, the next N creates or gets with 429 `ThrottlingException`, a new job
//! quota); `GET /_emulator/faults` shows what is armed and what was served.

mod control;
mod count_tokens;
pub mod eventstream;
pub mod faults;
mod http;
pub mod ids;
mod jobs;
pub mod model;
mod openai;
pub mod options;
mod quotas;
mod request;
pub mod responders;
mod router;
mod runtime;
pub mod s3;
mod state;
mod store;
mod storms;
mod streaming;
pub mod tokens;
pub mod tools;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use options::{EmulatorOptions, Profile};

/// Base URLs of a running emulator.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Bedrock control plane.
    pub bedrock: String,
    /// Bedrock runtime.
    pub bedrock_runtime: String,
    /// S3 (path-style).
    pub s3: String,
    /// OpenAI-compatible API (ends in `/v1`).
    pub openai: String,
    /// AWS Service Quotas (the control plane's base URL).
    pub service_quotas: String,
}

/// A running emulator. Dropping it does not stop it; call [`Emulator::stop`].
pub struct Emulator {
    /// Where it listens.
    pub endpoints: Endpoints,
    /// The region it claims to be.
    pub region: String,
    /// Access key its S3, control plane and runtime accept.
    pub access_key_id: String,
    /// Secret key of that access key.
    pub secret_access_key: String,
    /// The bucket created at start.
    pub bucket: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _data_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("endpoints", &self.endpoints)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port it tried.
        port: u16,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The S3 storage folder could not be prepared.
    #[error("cannot prepare S3 storage: {0}")]
    Storage(String),
}

async fn bind(port: u16) -> Result<(TcpListener, SocketAddr), StartError> {
    let l = TcpListener::bind(("127.0.0.1", port)).await.map_err(|source| StartError::Bind { port, source })?;
    let addr = l.local_addr().map_err(|source| StartError::Bind { port, source })?;
    Ok((l, addr))
}

impl Emulator {
    /// Starts every server on 127.0.0.1 and creates the bucket.
    pub async fn start(opts: EmulatorOptions) -> Result<Emulator, StartError> {
        let (data_dir, root) = match &opts.data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| StartError::Storage(e.to_string()))?;
                (None, std::path::PathBuf::from(d))
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("bedrock-emulator-")
                    .tempdir()
                    .map_err(|e| StartError::Storage(e.to_string()))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let (api_listener, api_addr) = bind(opts.port).await?;
        let (s3_listener, s3_addr) = bind(if opts.port == 0 { 0 } else { opts.port + 1 }).await?;
        let storms = Arc::new(storms::Storms::new(&opts));
        let s3_service =
            s3::FaultyS3::new(&root, &opts.s3, storms.clone()).map_err(|e| StartError::Storage(e.to_string()))?;

        let api = format!("http://{api_addr}");
        let s3_url = format!("http://{s3_addr}");
        let region = opts.region.clone();
        let bucket = opts.bucket.clone();
        let client = s3::internal_client(&s3_url, &region);
        let ctx = Arc::new(state::Ctx::new(opts, client.clone(), storms));

        let (tx, rx) = watch::channel(false);
        let s3_handler = Arc::new(move |req| {
            let svc = s3_service.clone();
            async move { svc.handle(req).await }
        });
        let route_ctx = ctx.clone();
        let api_handler = Arc::new(move |req| {
            let ctx = route_ctx.clone();
            async move { http::ok(router::route(ctx, req).await) }
        });
        let tasks = vec![
            tokio::spawn(http::serve(s3_listener, rx.clone(), s3_handler)),
            tokio::spawn(http::serve(api_listener, rx, api_handler)),
        ];
        let emu = Emulator {
            endpoints: Endpoints {
                bedrock: api.clone(),
                bedrock_runtime: api.clone(),
                s3: s3_url,
                openai: format!("{api}/v1"),
                service_quotas: api.clone(),
            },
            region,
            access_key_id: s3::PUBLIC_ACCESS_KEY.to_string(),
            secret_access_key: s3::PUBLIC_SECRET_KEY.to_string(),
            bucket: bucket.clone(),
            shutdown: tx,
            tasks,
            _data_dir: data_dir,
        };
        match client.create_bucket().bucket(&bucket).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()) => {}
            Err(e) => {
                emu.stop().await;
                return Err(StartError::Storage(format!("cannot create bucket: {e:?}")));
            }
        }
        Ok(emu)
    }

    /// Stops every server and removes the temporary storage.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}
