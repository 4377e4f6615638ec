//! One translation of an AWS SDK error into the engine's error (name, status, message, request id,
//! whether to retry), for every call the real back-ends and the `jobs` commands make.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{EngineError, ErrorName};

/// Translates an SDK error into the engine's error: name, status, and whether to retry.
pub fn map_sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> EngineError {
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or("");
            let message = ctx.err().message().unwrap_or("").to_string();
            let request_id = ctx
                .raw()
                .headers()
                .get("x-amzn-requestid")
                .or_else(|| ctx.raw().headers().get("x-amz-request-id"))
                .map(str::to_string);
            let mut name = ErrorName::from_code(code);
            if name == ErrorName::UnknownError {
                name = match (code, status) {
                    ("SlowDown", _) | (_, 503) => ErrorName::ServiceUnavailableException,
                    ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch", _) | (_, 403) => {
                        ErrorName::AccessDeniedException
                    }
                    ("NoSuchBucket" | "NoSuchKey", _) | (_, 404) => ErrorName::ResourceNotFoundException,
                    (_, 429) => ErrorName::ThrottlingException,
                    (_, s) if s >= 500 => ErrorName::InternalServerException,
                    _ => ErrorName::ValidationException,
                };
            }
            let message = if message.is_empty() { format!("{code} (HTTP {status})") } else { message };
            let transient = name.is_retryable()
                || status >= 500
                || status == 429
                || name == ErrorName::ServiceQuotaExceededException;
            EngineError::new(name, message).with_status(status).transient(transient).with_request_id(request_id)
        }
        // The credentials could not be loaded: trying again at once would not help.
        SdkError::DispatchFailure(_) if caused_by_credentials(err) => EngineError::new(
            ErrorName::CredentialsProviderError,
            format!("Could not load AWS credentials: {}", describe(err)),
        )
        .transient(false),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => EngineError::new(
            ErrorName::ServiceUnavailableException,
            format!("the request did not complete: {}", describe(err)),
        )
        .transient(true),
        _ => EngineError::new(ErrorName::UnknownError, describe(err)).transient(false),
    }
}

/// Whether a credentials provider's error is in the error's source chain.
fn caused_by_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn describe<E: std::error::Error + Send + Sync + 'static>(err: &SdkError<E, HttpResponse>) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}
