//! Routes requests of the Bedrock-side server to the control plane, the runtime, Service Quotas
//! (`POST /` with its `X-Amz-Target`) or OpenAI.

use std::sync::Arc;

use hyper::body::Incoming;

use crate::http::{aws_error, decode_segment, read_body, Resp, MAX_BODY, MAX_COUNT_TOKENS_BODY};
use crate::state::Ctx;

/// Handles one request to the control-plane / runtime / OpenAI server.
pub(crate) async fn route(ctx: Arc<Ctx>, req: http::Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let limit = match segments.as_slice() {
        ["model", _, "count-tokens"] => MAX_COUNT_TOKENS_BODY,
        _ => MAX_BODY,
    };
    let body = match read_body(body, limit).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    // Every AWS API here is signed; the OpenAI-compatible API and the emulator's own pages are not AWS's.
    let aws_api = !matches!(segments.first(), Some(&"v1" | &"_emulator"));
    let quotas = crate::quotas::operation(&parts);
    if let (true, Some(verifier)) = (aws_api, &ctx.verifier) {
        let signing_name =
            if quotas.is_some() { crate::quotas::SIGNING_NAME } else { bedrock_batch_sigv4::SIGNING_NAME };
        if let Err(denied) = verifier.verify_for(signing_name, &parts, &body, std::time::SystemTime::now()) {
            return match quotas {
                Some(_) => crate::quotas::error(denied.status, denied.name, &denied.message),
                None => aws_error(denied.status, denied.name, &denied.message),
            };
        }
    }
    if let Some(operation) = quotas {
        return crate::quotas::handle(&ctx, &operation, &parts.headers, &body);
    }
    use http::Method as M;
    match (&method, segments.as_slice()) {
        (&M::POST, ["model-invocation-job"]) => crate::control::create(&ctx, &body).await,
        (&M::GET, ["model-invocation-job", id]) => crate::control::get(&ctx, id),
        (&M::POST, ["model-invocation-job", id, "stop"]) => crate::control::stop(&ctx, id),
        (&M::GET, ["model-invocation-jobs"]) => crate::control::list(&ctx, &parts.uri),
        (&M::POST, ["model", id, "count-tokens"]) => {
            crate::count_tokens::handle(&ctx, &decode_segment(id), &parts, &body)
        }
        (&M::POST, ["model", id, op]) if crate::runtime::Op::from_segment(op).is_some() => {
            let op = crate::runtime::Op::from_segment(op).expect("matched above");
            let _call = ctx.runtime_call();
            if ctx.opts.runtime_latency_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(ctx.opts.runtime_latency_ms)).await;
            }
            crate::runtime::handle(&ctx, &decode_segment(id), op, &parts, &body)
        }
        (&M::POST, ["v1", "chat", "completions"]) => crate::openai::chat(&ctx, &body),
        (&M::GET, ["v1", "models"]) => crate::openai::models(),
        (&M::POST, ["_emulator", "flex"]) => {
            match serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["throttled"].as_bool()) {
                Some(on) => {
                    ctx.flex_throttled.store(on, std::sync::atomic::Ordering::SeqCst);
                    crate::http::json(200, &serde_json::json!({ "throttled": on }))
                }
                None => aws_error(400, "ValidationException", "Send { \"throttled\": true | false }."),
            }
        }
        (&M::POST, ["_emulator", "faults"]) => match ctx.storms.arm(&body) {
            Ok(()) => crate::http::json(200, &ctx.storms.report()),
            Err(message) => aws_error(400, "ValidationException", &message),
        },
        (&M::GET, ["_emulator", "faults"]) => crate::http::json(200, &ctx.storms.report()),
        (&M::GET, ["_emulator", "runtime-stats"]) => crate::http::json(200, &ctx.runtime_stats()),
        (&M::GET, ["_emulator", "runtime-requests"]) => {
            let log: Vec<_> = ctx.runtime_log.lock().expect("log lock").iter().cloned().collect();
            crate::http::json(200, &serde_json::Value::Array(log))
        }
        (_, ["v1", ..]) => crate::openai::error(404, &format!("Unknown request URL: {method} {path}.")),
        _ => aws_error(404, "UnknownOperationException", &format!("No operation matches {method} {path}.")),
    }
}
