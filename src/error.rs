//! The one place where Rust errors become JS values. An error crosses as data: a plain object
//! `{ name, message, fault, httpStatusCode, jobArn, recordId, status, requestId, attempts }`
//! (`requestId` as the caller sees it: the call's, else `<jobArn>#<recordId>`, else the job's),
//! thrown by sync calls, carried in settlements and in the results of async calls. The JS layer
//! (lib/errors.js) makes it the exception class of its name, from the list `exceptionNames()`
//! gives: the list exists once, in `bedrock_batch_core::ErrorName`.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use bedrock_batch_core::error::Origin;
use bedrock_batch_core::{EngineError, ErrorName};

/// An engine error as plain data.
#[napi(object)]
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// CostLimitExceededException: the cap, the committed spend and the refused work's estimate (USD).
    pub cap_usd: Option<f64>,
    pub committed_usd: Option<f64>,
    pub estimate_usd: Option<f64>,
    /// Marks the object as an engine error for the JS layer.
    pub bedrock_batch_bridge_error: bool,
}

/// An engine error as data.
pub(crate) fn data(e: &EngineError) -> JsEngineError {
    JsEngineError {
        name: e.name.as_str().to_string(),
        message: e.message.clone(),
        fault: e.name.fault().to_string(),
        http_status_code: e.status().map(u32::from),
        job_arn: e.job_arn().map(str::to_string),
        record_id: e.record_id().map(str::to_string),
        status: e.job_status().map(str::to_string),
        request_id: e.caller_request_id(),
        attempts: e.attempts.max(1),
        cap_usd: e.spend().map(|s| s.cap_usd),
        committed_usd: e.spend().map(|s| s.committed_usd),
        estimate_usd: e.spend().map(|s| s.estimate_usd),
        bedrock_batch_bridge_error: true,
    }
}

/// An engine error, thrown from a sync call as its data: the value is thrown here, and the
/// returned error (a pending exception) tells napi not to throw another.
pub(crate) fn throw(env: &Env, e: &EngineError) -> Error {
    match env.to_js_value(&data(e)).and_then(|value| env.throw(value)) {
        Ok(()) => Error::new(Status::PendingException, e.to_string()),
        Err(_) => Error::new(Status::GenericFailure, e.to_string()),
    }
}

/// The message of a request refused because its client is closed.
#[napi]
pub const CLIENT_CLOSED: &str = bedrock_batch_core::error::CLIENT_CLOSED;

/// One exception name: what the JS layer needs to build its class.
#[napi(object)]
pub struct ExceptionName {
    pub name: String,
    /// `client` or `server`.
    pub fault: String,
    /// The HTTP status the service answers it with (absent for the package's own).
    pub http_status_code: Option<u32>,
    /// Whether it is a Bedrock runtime exception (the AWS SDK's class when the app has the SDK).
    pub sdk: bool,
}

/// Every exception name the package throws.
#[napi]
pub fn exception_names() -> Vec<ExceptionName> {
    ErrorName::ALL
        .iter()
        .map(|n| ExceptionName {
            name: n.as_str().to_string(),
            fault: n.fault().to_string(),
            http_status_code: Some(u32::from(n.http_status())).filter(|s| *s != 0),
            sdk: n.origin() == Origin::Sdk,
        })
        .collect()
}
