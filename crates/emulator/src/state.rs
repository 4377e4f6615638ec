//! The shared state of one running emulator.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bedrock_batch_sigv4::{Key, Verifier};

use crate::options::EmulatorOptions;
use crate::store::Store;
use crate::storms::Storms;

/// The account id in every ARN the emulator makes (a dummy, not a real account).
pub(crate) const ACCOUNT_ID: &str = "123456789012";

/// Shared by every handler and job task.
pub(crate) struct Ctx {
    pub opts: EmulatorOptions,
    pub store: Store,
    /// The emulator's own S3 client (exempt from S3 faults).
    pub s3: aws_sdk_s3::Client,
    /// Checks signatures of control-plane and runtime requests (none when `verifySignatures` is off).
    pub verifier: Option<Verifier>,
    /// The faults armed now (at start and by `POST /_emulator/faults`), shared with the S3 server.
    pub storms: Arc<Storms>,
    /// Recent runtime requests: operation, model and headers, never bodies.
    pub runtime_log: Mutex<VecDeque<serde_json::Value>>,
    /// Runtime calls being answered now, and the most at once so far.
    runtime_active: AtomicU64,
    runtime_peak: AtomicU64,
    /// Hashes of the `[[retry-after:S]]` bodies already throttled once.
    throttled_once: Mutex<HashSet<String>>,
    /// Whether Flex calls are throttled now.
    pub flex_throttled: AtomicBool,
}

impl Ctx {
    /// New state for `opts`.
    pub(crate) fn new(opts: EmulatorOptions, s3: aws_sdk_s3::Client, storms: Arc<Storms>) -> Ctx {
        let verifier = opts.verify_signatures.then(|| Verifier {
            keys: vec![Key {
                access_key_id: crate::s3::PUBLIC_ACCESS_KEY.to_string(),
                secret_access_key: crate::s3::PUBLIC_SECRET_KEY.to_string(),
            }],
            region: opts.region.clone(),
        });
        Ctx {
            verifier,
            storms,
            flex_throttled: AtomicBool::new(opts.flex.throttled),
            opts,
            store: Store::default(),
            s3,
            runtime_log: Mutex::new(VecDeque::new()),
            throttled_once: Mutex::new(HashSet::new()),
            runtime_active: AtomicU64::new(0),
            runtime_peak: AtomicU64::new(0),
        }
    }

    /// Counts a runtime call as being answered until the guard drops.
    pub(crate) fn runtime_call(&self) -> RuntimeCall<'_> {
        let now = self.runtime_active.fetch_add(1, Ordering::SeqCst) + 1;
        self.runtime_peak.fetch_max(now, Ordering::SeqCst);
        RuntimeCall(&self.runtime_active)
    }

    /// `{ inFlight, peak }`: runtime calls being answered now, and the most at once so far.
    pub(crate) fn runtime_stats(&self) -> serde_json::Value {
        serde_json::json!({ "inFlight": self.runtime_active.load(Ordering::SeqCst), "peak": self.runtime_peak.load(Ordering::SeqCst) })
    }

    /// Whether this is the first request seen with the body hash `hash` (and remembers it).
    pub(crate) fn first_sight(&self, hash: &str) -> bool {
        self.throttled_once.lock().expect("throttled lock").insert(hash.to_string())
    }

    /// Remembers a runtime request's metadata (at most 1,000 kept).
    pub(crate) fn log_runtime(&self, entry: serde_json::Value) {
        let mut g = self.runtime_log.lock().expect("log lock");
        if g.len() >= 1000 {
            g.pop_front();
        }
        g.push_back(entry);
    }
}

/// A runtime call being answered (see [`Ctx::runtime_call`]).
pub(crate) struct RuntimeCall<'a>(&'a AtomicU64);

impl Drop for RuntimeCall<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
