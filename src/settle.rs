//! Settlements into JS: the engine's [`Sink`] packs finished requests into chunks (one call
//! into JS per few thousand answers), job events and stream parts come the same way, in order.
//! lib/settle.js reads the chunks back into each caller's answer.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use bedrock_batch_core::jsonl::{RECORD_ID_DIGITS, RECORD_ID_PREFIX, REQUEST_ID_SEPARATOR};
use bedrock_batch_core::stats::JobStats;
use bedrock_batch_core::{Settlement, Sink, StreamPart};

use crate::engine::{job_js, NativeJobStats};
use crate::error::{data, JsEngineError};

/// How the engine writes a batch answer's request id: `<jobArn>` `separator` `<recordId>`, the
/// record id being `recordPrefix` and the request's id in at least `recordDigits` digits
/// (zero-padded). A chunk leaves it out of plain answers, which JS writes the same way.
#[napi(object)]
pub struct RequestIdFormat {
    pub separator: String,
    pub record_prefix: String,
    pub record_digits: u32,
}

/// The request-id format, read once by the JS layer.
#[napi]
pub fn request_id_format() -> RequestIdFormat {
    RequestIdFormat {
        separator: REQUEST_ID_SEPARATOR.to_string(),
        record_prefix: RECORD_ID_PREFIX.to_string(),
        record_digits: RECORD_ID_DIGITS as u32,
    }
}

/// Settled requests, packed so that thousands of them cross into JS in one call: bodies are
/// slices of `data` (`ends[i]` is where body `i` ends), errors and non-default fields come apart.
/// A job's status change comes the same way (`job`, with no requests), so JS sees events and
/// settlements in the order the engine made them.
#[napi(object)]
pub struct NativeSettleChunk {
    /// A job whose status changed.
    pub job: Option<NativeJobStats>,
    /// A warning for the application (never a request body or a credential).
    pub warning: Option<String>,
    /// Request ids, in order.
    pub ids: Float64Array,
    /// End offset of each body in `data` (errors have empty bodies).
    pub ends: Uint32Array,
    /// Every body, one after the other.
    pub data: Buffer,
    /// The batch job that answered the successes, when they share one.
    pub job_arn: Option<String>,
    /// Successes whose metadata differs from a batch answer's.
    pub extras: Vec<NativeExtra>,
    /// Failures.
    pub errors: Vec<NativeSettleError>,
    /// More of streaming answers that settled earlier (a chunk has either settlements or parts).
    pub parts: Vec<NativeStreamPart>,
}

/// More events of a streaming answer (a JSON array of wire events), or its end.
#[napi(object)]
pub struct NativeStreamPart {
    pub id: f64,
    pub events: Buffer,
    /// The stream ended (after these events).
    pub end: bool,
    /// It ended with this exception.
    pub error: Option<JsEngineError>,
}

/// Metadata of one success that differs from a plain batch answer (on-demand answers, and
/// answers that took more than one job).
#[napi(object)]
pub struct NativeExtra {
    pub index: u32,
    pub content_type: String,
    pub request_id: Option<String>,
    pub job_arn: Option<String>,
    pub performance_config_latency: Option<String>,
    pub service_tier: Option<String>,
    pub attempts: u32,
    /// The body holds the first events of a stream whose other events come as `parts`.
    pub open: bool,
}

/// One failure.
#[napi(object)]
pub struct NativeSettleError {
    pub index: u32,
    pub error: JsEngineError,
}

pub(crate) type SettleFn = ThreadsafeFunction<NativeSettleChunk, (), NativeSettleChunk, Status, false, true>;

/// One threadsafe function for settlements and job events, in order.
pub(crate) struct JsSink {
    pub(crate) events: SettleFn,
}

/// Packs settlements into one chunk.
fn pack(settlements: Vec<Settlement>) -> NativeSettleChunk {
    let n = settlements.len();
    let mut ids = Vec::with_capacity(n);
    let mut ends = Vec::with_capacity(n);
    let mut data =
        Vec::with_capacity(settlements.iter().map(|s| s.result.as_ref().map_or(0, |ok| ok.body.len())).sum());
    let mut extras = Vec::new();
    let mut errors = Vec::new();
    let chunk_arn = settlements.iter().find_map(|s| s.result.as_ref().ok().and_then(|ok| ok.job_arn.clone()));
    for (i, s) in settlements.into_iter().enumerate() {
        ids.push(s.id as f64);
        match s.result {
            Ok(ok) => {
                data.extend_from_slice(&ok.body);
                let plain = ok.request_id.is_none()
                    && ok.performance_config_latency.is_none()
                    && ok.service_tier.is_none()
                    && ok.content_type == "application/json"
                    && ok.attempts <= 1
                    && ok.job_arn.is_some()
                    && ok.job_arn == chunk_arn
                    && ok.stream.is_none();
                if !plain {
                    extras.push(NativeExtra {
                        index: i as u32,
                        content_type: ok.content_type,
                        request_id: ok.request_id,
                        job_arn: ok.job_arn.map(|a| a.to_string()),
                        performance_config_latency: ok.performance_config_latency,
                        service_tier: ok.service_tier,
                        attempts: ok.attempts.max(1),
                        open: ok.stream.is_some(),
                    });
                }
            }
            Err(e) => errors.push(NativeSettleError { index: i as u32, error: crate::error::data(&e) }),
        }
        ends.push(data.len() as u32);
    }
    NativeSettleChunk {
        job: None,
        warning: None,
        ids: Float64Array::new(ids),
        ends: Uint32Array::new(ends),
        data: data.into(),
        job_arn: chunk_arn.map(|a| a.to_string()),
        extras,
        errors,
        parts: Vec::new(),
    }
}

/// Most answers handed to JavaScript in one call.
const SETTLE_PIECE: usize = 1024;

impl Sink for JsSink {
    fn settle(&self, mut settlements: Vec<Settlement>) {
        // In pieces: the answers of one piece are alive together until their callers' reactions
        // run, and a smaller piece keeps them in V8's young generation.
        while settlements.len() > SETTLE_PIECE {
            let rest = settlements.split_off(SETTLE_PIECE);
            self.events.call(pack(std::mem::replace(&mut settlements, rest)), ThreadsafeFunctionCallMode::NonBlocking);
        }
        self.events.call(pack(settlements), ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn job_event(&self, job: &JobStats) {
        let mut chunk = pack(Vec::new());
        chunk.job = Some(job_js(job));
        self.events.call(chunk, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn warning(&self, message: &str) {
        let mut chunk = pack(Vec::new());
        chunk.warning = Some(message.to_string());
        self.events.call(chunk, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn stream(&self, parts: Vec<StreamPart>) {
        let mut chunk = pack(Vec::new());
        chunk.parts = parts
            .into_iter()
            .map(|p| NativeStreamPart {
                id: p.id as f64,
                events: p.events.to_vec().into(),
                end: p.end.is_some(),
                error: p.end.and_then(|r| r.err()).map(|e| data(&e)),
            })
            .collect();
        self.events.call(chunk, ThreadsafeFunctionCallMode::NonBlocking);
    }
}
