//! What a client's store keeps for the doors, through the engine's store writer: documents by
//! kind and id (the wires' files and batches), in the journal or the PostgreSQL store; and a
//! group's processes, for the dashboard; and adopting jobs no store knows.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use bedrock_batch_core::adopt::AdoptTarget;

use crate::engine::NativeEngine;
use crate::error::{data, JsEngineError};
use crate::store_reader::{members_js, NativeMembersResult};

/// A document: its id and bytes.
#[napi(object)]
pub struct NativeObject {
    pub id: String,
    pub body: Buffer,
}

/// What a document operation gives (`body` for a get, `items` for a list, `deleted` for a
/// delete), or why not.
#[napi(object)]
#[derive(Default)]
pub struct NativeObjectResult {
    pub body: Option<Buffer>,
    pub items: Option<Vec<NativeObject>>,
    pub deleted: Option<bool>,
    pub error: Option<JsEngineError>,
}

fn failed(e: &bedrock_batch_core::EngineError) -> NativeObjectResult {
    NativeObjectResult { error: Some(data(e)), ..Default::default() }
}

#[napi]
impl NativeEngine {
    /// Whether the client has a journal or a store (where documents can be kept).
    #[napi(getter)]
    pub fn has_store(&self) -> bool {
        self.engine.has_store()
    }

    /// Inserts or replaces a document.
    #[napi(catch_unwind)]
    pub async fn object_put(&self, kind: String, id: String, body: Buffer) -> NativeObjectResult {
        let body = body.to_vec();
        match self.engine.store_call(move |s| s.put_object(&kind, &id, &body)).await {
            Ok(()) => NativeObjectResult::default(),
            Err(e) => failed(&e),
        }
    }

    /// A document (`body` absent when there is none).
    #[napi(catch_unwind)]
    pub async fn object_get(&self, kind: String, id: String) -> NativeObjectResult {
        match self.engine.store_call(move |s| s.get_object(&kind, &id)).await {
            Ok(body) => NativeObjectResult { body: body.map(Buffer::from), ..Default::default() },
            Err(e) => failed(&e),
        }
    }

    /// The documents of a kind, in the order they were first put.
    #[napi(catch_unwind)]
    pub async fn object_list(&self, kind: String) -> NativeObjectResult {
        match self.engine.store_call(move |s| s.list_objects(&kind)).await {
            Ok(rows) => NativeObjectResult {
                items: Some(rows.into_iter().map(|(id, body)| NativeObject { id, body: body.into() }).collect()),
                ..Default::default()
            },
            Err(e) => failed(&e),
        }
    }

    /// Deletes a document (`deleted`: whether there was one).
    #[napi(catch_unwind)]
    pub async fn object_delete(&self, kind: String, id: String) -> NativeObjectResult {
        match self.engine.store_call(move |s| s.delete_object(&kind, &id)).await {
            Ok(deleted) => NativeObjectResult { deleted: Some(deleted), ..Default::default() },
            Err(e) => failed(&e),
        }
    }

    /// The processes of the client's group alive now and which one leads (none without a
    /// shared store).
    #[napi(catch_unwind)]
    pub async fn group_members(&self) -> NativeMembersResult {
        if !self.engine.has_store() {
            return NativeMembersResult { members: Vec::new(), error: None };
        }
        match self.engine.store_call(|s| s.members()).await {
            Ok(m) => NativeMembersResult { members: members_js(m), error: None },
            Err(e) => NativeMembersResult { members: Vec::new(), error: Some(data(&e)) },
        }
    }

    /// Adopts jobs no store knows into the journal (`{ jobArn }` or `{ namePrefix, since }`,
    /// `since` in epoch ms): each found job, adopted or left alone with why.
    #[napi(catch_unwind)]
    pub async fn adopt(&self, target: NativeAdoptTarget) -> NativeAdoptResult {
        let target = match (target.job_arn, target.name_prefix) {
            (Some(arn), None) if !arn.is_empty() => AdoptTarget::Job(arn),
            (None, Some(prefix)) if !prefix.is_empty() => {
                AdoptTarget::Prefix { name_prefix: prefix, since_ms: target.since.map(|s| s.max(0.0) as u64) }
            }
            _ => {
                let e = bedrock_batch_core::EngineError::validation(
                    "adopt() takes { jobArn } or { namePrefix, since? }, one of them, not empty",
                );
                return NativeAdoptResult { jobs: Vec::new(), error: Some(data(&e)) };
            }
        };
        match self.engine.adopt(target).await {
            Ok(jobs) => NativeAdoptResult {
                jobs: jobs
                    .into_iter()
                    .map(|j| NativeAdoptedJob {
                        job_arn: j.job_arn,
                        job_name: j.job_name,
                        model_id: j.model_id,
                        status: j.status.to_string(),
                        records: j.records as f64,
                        keyed: j.keyed as f64,
                        adopted: j.skipped.is_none(),
                        reason: j.skipped,
                    })
                    .collect(),
                error: None,
            },
            Err(e) => NativeAdoptResult { jobs: Vec::new(), error: Some(data(&e)) },
        }
    }

    /// The batches holding requests of these callers (their ids) or whose idempotency key starts
    /// with `keyPrefix` (each one's job, whether it holds only those, how many); `held` absent
    /// for a client of a group.
    #[napi(catch_unwind)]
    pub async fn holding(&self, key_prefix: String, callers: Vec<f64>) -> NativeHoldingResult {
        let callers = callers.into_iter().map(|c| c as u64).collect();
        match self.engine.holding(&key_prefix, callers).await {
            Ok(held) => NativeHoldingResult {
                held: held.map(|list| {
                    list.into_iter()
                        .map(|h| NativeHolding {
                            job_arn: h.job_arn.map(|a| a.to_string()),
                            only_these: h.only_these,
                            requests: h.requests as f64,
                        })
                        .collect()
                }),
                error: None,
            },
            Err(e) => NativeHoldingResult { held: None, error: Some(data(&e)) },
        }
    }
}

/// Which jobs to adopt: `jobArn`, or `namePrefix` (and `since`, epoch ms).
#[napi(object)]
pub struct NativeAdoptTarget {
    pub job_arn: Option<String>,
    pub name_prefix: Option<String>,
    pub since: Option<f64>,
}

/// A job found for adoption: adopted, or left alone with `reason`.
#[napi(object)]
pub struct NativeAdoptedJob {
    pub job_arn: String,
    pub job_name: String,
    pub model_id: String,
    pub status: String,
    pub records: f64,
    pub keyed: f64,
    pub adopted: bool,
    pub reason: Option<String>,
}

/// The jobs found, or why none could be.
#[napi(object)]
pub struct NativeAdoptResult {
    pub jobs: Vec<NativeAdoptedJob>,
    pub error: Option<JsEngineError>,
}

/// A batch holding requests of a key prefix.
#[napi(object)]
pub struct NativeHolding {
    /// Its job, once created.
    pub job_arn: Option<String>,
    /// Whether it holds nothing but those requests.
    pub only_these: bool,
    pub requests: f64,
}

/// The batches holding requests of a key prefix (absent for a client of a group), or why not.
#[napi(object)]
pub struct NativeHoldingResult {
    pub held: Option<Vec<NativeHolding>>,
    pub error: Option<JsEngineError>,
}
