//! `POST /model/{modelId}/count-tokens`, the runtime's CountTokens: the input tokens a request would
//! be charged, counted exactly as the responders count the input usage they report
//! ([`crate::tokens`]), for the models that support counting (Anthropic Claude on a bare model id).

use serde_json::{json, Value};

use crate::http::{aws_error, Resp};
use crate::model::BEDROCK_RUNTIME;
use crate::request::{input, Parts};
use crate::responders::Rejection;
use crate::state::Ctx;

/// The operation's name in the service model.
const OPERATION: &str = "CountTokens";

/// What Bedrock answers (400 `ValidationException`) for a model that does not count tokens.
pub(crate) const UNSUPPORTED: &str = "The provided model doesn't support counting tokens.";

/// Whether CountTokens serves `model_id`: Anthropic Claude on a bare model id
/// (`anthropic.claude-…`), not an inference profile (`us.anthropic.…`) or an ARN.
pub(crate) fn supported(model_id: &str) -> bool {
    model_id.starts_with("anthropic.claude")
}

/// Answers one CountTokens request for a decoded model id.
pub(crate) fn handle(ctx: &Ctx, model_id: &str, request: &http::request::Parts, body: &[u8]) -> Resp {
    ctx.log_runtime(json!({
        "operation": "count-tokens",
        "modelId": model_id,
        "httpVersion": format!("{:?}", request.version),
    }));
    let labels = [("modelId", model_id.to_string())];
    let parts = Parts { labels: &labels, headers: &request.headers, query: &[], body };
    let checked = match input(&BEDROCK_RUNTIME, OPERATION, &parts) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    if !supported(model_id) {
        return aws_error(400, "ValidationException", UNSUPPORTED);
    }
    let given = checked.get("input").unwrap_or(&Value::Null);
    let counted = if let Some(converse) = given.get("converse") {
        Ok(crate::tokens::converse(converse))
    } else {
        // The model allows exactly one member: this is `invokeModel`, whose `body` is base64.
        invoke_model_tokens(model_id, given.pointer("/invokeModel/body").and_then(Value::as_str).unwrap_or(""))
    };
    match counted {
        Ok(n) => crate::http::json(200, &json!({ "inputTokens": n })),
        Err(Rejection { status, message }) => {
            let (error, status) = BEDROCK_RUNTIME.operation(OPERATION).error_for_status(status);
            aws_error(status, error, &message)
        }
    }
}

/// The input tokens InvokeModel would report for this body (base64 text), or why the model cannot
/// read it (the InvokeModel answer's words).
fn invoke_model_tokens(model_id: &str, base64: &str) -> Result<u64, Rejection> {
    let malformed = || Rejection {
        status: 400,
        message: "Malformed input request: the body is not valid JSON, please reformat your input and try again."
            .to_string(),
    };
    let raw = aws_smithy_types::base64::decode(base64).map_err(|_| malformed())?;
    let parsed: Value = serde_json::from_slice(&raw).map_err(|_| malformed())?;
    crate::responders::invoke(model_id, &raw, &parsed).map(|a| a.input_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_on_bare_model_ids_counts_tokens_and_nothing_else_does() {
        for id in ["anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-sonnet-4-20250514-v1:0"] {
            assert!(supported(id), "{id}");
        }
        for id in [
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-lite-v1:0",
            "meta.llama3-1-8b-instruct-v1:0",
            "my-model",
        ] {
            assert!(!supported(id), "{id}");
        }
    }
}
