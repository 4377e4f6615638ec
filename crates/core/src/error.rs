//! The engine's one error type, and the one list of the exception names the package throws.
//! The binding turns an [`EngineError`] into a JS value in one place; the JS layer builds its
//! exception classes from [`ErrorName::ALL`].

use std::fmt;

/// Declares the exception names once: each with the HTTP status the service answers it with and
/// whether it is one of the package's own (not a Bedrock runtime exception of the AWS SDK).
macro_rules! error_names {
    ($($(#[$doc:meta])* $name:ident = $status:literal, $kind:ident;)*) => {
        /// AWS-style exception names the package reports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorName {
            $($(#[$doc])* $name,)*
        }

        impl ErrorName {
            /// Every name, in declaration order.
            pub const ALL: &'static [ErrorName] = &[$(ErrorName::$name,)*];

            /// The name as JS sees it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorName::$name => stringify!($name),)*
                }
            }

            /// The HTTP status the service answers this error with (0: not an HTTP error).
            pub fn http_status(self) -> u16 {
                match self {
                    $(ErrorName::$name => $status,)*
                }
            }

            /// Where its class comes from: the AWS SDK's Bedrock runtime client (when the
            /// application has it), or this package.
            pub fn origin(self) -> Origin {
                match self {
                    $(ErrorName::$name => Origin::$kind,)*
                }
            }

            /// The name for an AWS error code string (as in `x-amzn-errortype`), if it is one of ours.
            pub fn parse(code: &str) -> Option<ErrorName> {
                match code {
                    $(stringify!($name) => Some(ErrorName::$name),)*
                    _ => None,
                }
            }
        }
    };
}

/// Where an exception class comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A Bedrock runtime exception: the AWS SDK's class when installed, else ours.
    Sdk,
    /// One of this package's own.
    Own,
}

error_names! {
    /// A request the service (or the engine, before sending it) refuses.
    ValidationException = 400, Sdk;
    /// The credentials may not do what was asked.
    AccessDeniedException = 403, Sdk;
    /// The model, job or other resource named does not exist.
    ResourceNotFoundException = 404, Sdk;
    /// The model took too long to answer.
    ModelTimeoutException = 408, Sdk;
    /// The model failed to process the request.
    ModelErrorException = 424, Sdk;
    /// A model's stream failed part way (an exception event of a streaming call).
    ModelStreamErrorException = 424, Sdk;
    /// The model is not ready to serve requests yet.
    ModelNotReadyException = 429, Sdk;
    /// Too many requests: the service refused this one for now.
    ThrottlingException = 429, Sdk;
    /// A quota of the account was exceeded.
    ServiceQuotaExceededException = 400, Sdk;
    /// The service failed internally.
    InternalServerException = 500, Sdk;
    /// The service is unavailable for now.
    ServiceUnavailableException = 503, Sdk;
    /// The request conflicts with the current state of a resource.
    ConflictException = 400, Sdk;
    /// A Failed or Stopped job (or one that never ended).
    BatchJobFailedException = 0, Own;
    /// No output line for the record after its last try.
    RecordMissingException = 0, Own;
    /// The client was closed or destroyed (or its engine stopped).
    ClientClosedException = 0, Own;
    /// The credentials could not be loaded (as the JS SDK names it).
    CredentialsProviderError = 0, Own;
    /// The journal file is in use by another client or process.
    JournalLockedException = 0, Own;
    /// The journal file is not a journal, or cannot be read.
    JournalCorruptedException = 0, Own;
    /// The shared store (PostgreSQL) could not be reached or opened: wrong host, closed port,
    /// refused credentials, missing database, or no answer within `store.connectTimeout`.
    StoreUnavailableException = 503, Own;
    /// The emulator could not start.
    EmulatorStartException = 0, Own;
    /// Sending the request would have let the run's committed spend cross `maxCostUsd`: it was not
    /// sent, nothing was paid.
    CostLimitExceededException = 402, Own;
    /// The client is a dry run (`dryRun: true`): nothing was sent; `plan()` says what would have been.
    DryRunException = 0, Own;
    /// Anything a back-end reported that has no better name.
    UnknownError = 500, Own;
}

impl ErrorName {
    /// The name for an AWS error code string; unknown codes are [`ErrorName::UnknownError`].
    pub fn from_code(code: &str) -> ErrorName {
        match ErrorName::parse(code) {
            Some(n) if n.origin() == Origin::Sdk => n,
            _ => ErrorName::UnknownError,
        }
    }

    /// The name for an HTTP status, as a batch record's `errorCode` reports it.
    pub fn from_status(code: u16) -> ErrorName {
        match code {
            400 => ErrorName::ValidationException,
            403 => ErrorName::AccessDeniedException,
            404 => ErrorName::ResourceNotFoundException,
            408 => ErrorName::ModelTimeoutException,
            424 => ErrorName::ModelErrorException,
            429 => ErrorName::ThrottlingException,
            500 => ErrorName::InternalServerException,
            503 => ErrorName::ServiceUnavailableException,
            c if (400..500).contains(&c) => ErrorName::ValidationException,
            c if (500..600).contains(&c) => ErrorName::InternalServerException,
            _ => ErrorName::ModelErrorException,
        }
    }

    /// Whether a request failing with this error may succeed if tried again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorName::ModelTimeoutException
                | ErrorName::ThrottlingException
                | ErrorName::InternalServerException
                | ErrorName::ServiceUnavailableException
                | ErrorName::ModelNotReadyException
        )
    }

    /// `client` or `server`, as the SDK's `$fault`.
    pub fn fault(self) -> &'static str {
        match self {
            ErrorName::InternalServerException
            | ErrorName::ServiceUnavailableException
            | ErrorName::StoreUnavailableException
            | ErrorName::UnknownError => "server",
            _ => "client",
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request (or an operation) failed. Small (its context is boxed), so results carrying it
/// stay small.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineError {
    /// The AWS-style name.
    pub name: ErrorName,
    /// Whether trying again may help (throttling, 5xx, network).
    pub transient: bool,
    /// HTTP status, where one is known.
    pub http_status: Option<u16>,
    /// The tries the request took before this error (0 when not known, which reads as 1).
    pub attempts: u32,
    /// What happened.
    pub message: String,
    context: Option<Box<Context>>,
}

/// Where an error happened, when known.
#[derive(Debug, Clone, PartialEq, Default)]
struct Context {
    job_arn: Option<String>,
    record_id: Option<String>,
    job_status: Option<String>,
    request_id: Option<String>,
    spend: Option<SpendContext>,
}

/// The spend behind a `CostLimitExceededException`, in USD.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpendContext {
    /// The cap (`maxCostUsd`).
    pub cap_usd: f64,
    /// What the run had committed to spend when the work was refused.
    pub committed_usd: f64,
    /// The upper-bound cost of the work refused.
    pub estimate_usd: f64,
}

/// The message of a request refused because its client is closed (the JS layer says the same
/// before a request reaches the engine: the binding exports it).
pub const CLIENT_CLOSED: &str = "The client is closed: send() after close() or destroy() is rejected.";

impl EngineError {
    /// An error with a name and message.
    pub fn new(name: ErrorName, message: impl Into<String>) -> EngineError {
        EngineError {
            name,
            transient: name.is_retryable(),
            http_status: None,
            attempts: 0,
            message: message.into(),
            context: None,
        }
    }

    /// A `ValidationException` (HTTP 400).
    pub fn validation(message: impl Into<String>) -> EngineError {
        EngineError::new(ErrorName::ValidationException, message).with_status(400)
    }

    /// A `ClientClosedException`.
    pub fn closed(message: impl Into<String>) -> EngineError {
        EngineError::new(ErrorName::ClientClosedException, message)
    }

    /// An `InternalServerException` (HTTP 500) for a failure of the engine itself.
    pub fn internal(message: impl Into<String>) -> EngineError {
        EngineError::new(ErrorName::InternalServerException, message).with_status(500)
    }

    /// With an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// The HTTP status: the one recorded, else the name's.
    pub fn status(&self) -> Option<u16> {
        self.http_status.or(Some(self.name.http_status()).filter(|s| *s != 0))
    }

    fn context_mut(&mut self) -> &mut Context {
        self.context.get_or_insert_with(Box::default)
    }

    /// With the job and record it concerns (each kept when not given).
    pub fn with_job(mut self, job_arn: Option<&str>, record_id: Option<&str>) -> Self {
        if job_arn.is_some() || record_id.is_some() {
            let c = self.context_mut();
            c.job_arn = job_arn.map(str::to_string).or(c.job_arn.take());
            c.record_id = record_id.map(str::to_string).or(c.record_id.take());
        }
        self
    }

    /// With the status of the job that failed (for `BatchJobFailedException`).
    pub fn with_job_status(mut self, status: impl Into<String>) -> Self {
        self.context_mut().job_status = Some(status.into());
        self
    }

    /// With the request id of the failed call.
    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        if request_id.is_some() {
            self.context_mut().request_id = request_id;
        }
        self
    }

    /// Marks it as worth retrying (or not).
    pub fn transient(mut self, yes: bool) -> Self {
        self.transient = yes;
        self
    }

    /// The batch job, where known.
    pub fn job_arn(&self) -> Option<&str> {
        self.context.as_ref()?.job_arn.as_deref()
    }

    /// The record, where known.
    pub fn record_id(&self) -> Option<&str> {
        self.context.as_ref()?.record_id.as_deref()
    }

    /// The job's status, for `BatchJobFailedException`.
    pub fn job_status(&self) -> Option<&str> {
        self.context.as_ref()?.job_status.as_deref()
    }

    /// With the spend that refused the work (for `CostLimitExceededException`).
    pub fn with_spend(mut self, spend: SpendContext) -> Self {
        self.context_mut().spend = Some(spend);
        self
    }

    /// The spend that refused the work, for `CostLimitExceededException`.
    pub fn spend(&self) -> Option<SpendContext> {
        self.context.as_ref()?.spend
    }

    /// The request id of the failed call, where known.
    pub fn request_id(&self) -> Option<&str> {
        self.context.as_ref()?.request_id.as_deref()
    }

    /// The request id its caller sees: the failed call's, else the batch record's
    /// (`<jobArn>#<recordId>`), else the job's ARN.
    pub fn caller_request_id(&self) -> Option<String> {
        if let Some(id) = self.request_id() {
            return Some(id.to_string());
        }
        let arn = self.job_arn()?;
        Some(match self.record_id() {
            Some(record) => crate::jsonl::record_request_id(arn, record),
            None => arn.to_string(),
        })
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for EngineError {}

/// The error of a batch record's `error` object, whose `errorCode` may be a number or a string.
pub fn record_error(code: &serde_json::Value, message: &str, job_arn: &str, record_id: &str) -> EngineError {
    let numeric = match code {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse::<u16>().ok(),
        _ => None,
    };
    let err = match numeric {
        Some(status) => EngineError::new(ErrorName::from_status(status), message).with_status(status),
        None => {
            let shown = match code {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            EngineError::new(ErrorName::ModelErrorException, format!("{message} (errorCode {shown})")).with_status(424)
        }
    };
    err.with_job(Some(job_arn), Some(record_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_error_codes_map_to_aws_names_as_numbers_or_strings() {
        let cases = [
            (json!(400), "ValidationException"),
            (json!("403"), "AccessDeniedException"),
            (json!(404), "ResourceNotFoundException"),
            (json!(408), "ModelTimeoutException"),
            (json!(424), "ModelErrorException"),
            (json!(" 429 "), "ThrottlingException"),
            (json!(500), "InternalServerException"),
            (json!(503), "ServiceUnavailableException"),
            (json!(418), "ValidationException"),
            (json!(599), "InternalServerException"),
            (json!("ModelStreamError"), "ModelErrorException"),
        ];
        for (code, name) in cases {
            let e = record_error(&code, "m", "arn", "R1");
            assert_eq!(e.name.as_str(), name, "{code}");
            assert_eq!(e.record_id(), Some("R1"));
        }
        assert!(record_error(&json!("odd"), "m", "a", "r").message.contains("odd"));
        assert!(record_error(&json!(429), "m", "a", "r").transient);
        assert!(!record_error(&json!(400), "m", "a", "r").transient);
    }

    #[test]
    fn the_caller_sees_the_call_s_request_id_else_the_record_s_else_the_job_s() {
        let e = record_error(&json!(400), "m", "arn:job", "R0000000007");
        assert_eq!(e.caller_request_id().as_deref(), Some("arn:job#R0000000007"));
        let job = EngineError::validation("m").with_job(Some("arn:job"), None);
        assert_eq!(job.caller_request_id().as_deref(), Some("arn:job"));
        let call = job.with_request_id(Some("abc".into()));
        assert_eq!(call.caller_request_id().as_deref(), Some("abc"));
        assert_eq!(EngineError::validation("m").caller_request_id(), None);
    }

    #[test]
    fn an_error_stays_small() {
        assert!(std::mem::size_of::<EngineError>() <= 64, "{} bytes", std::mem::size_of::<EngineError>());
        let e = EngineError::closed("x").with_job(Some("arn"), None).with_job(None, Some("R1"));
        assert_eq!((e.job_arn(), e.record_id()), (Some("arn"), Some("R1")));
    }

    #[test]
    fn every_name_parses_back_and_sdk_codes_map_to_themselves() {
        for &n in ErrorName::ALL {
            assert_eq!(ErrorName::parse(n.as_str()), Some(n));
        }
        assert_eq!(ErrorName::from_code("ThrottlingException"), ErrorName::ThrottlingException);
        assert_eq!(
            ErrorName::from_code("BatchJobFailedException"),
            ErrorName::UnknownError,
            "only service codes come from the wire"
        );
        assert_eq!(ErrorName::from_code("Nope"), ErrorName::UnknownError);
        assert_eq!(EngineError::new(ErrorName::ThrottlingException, "x").status(), Some(429));
        assert_eq!(EngineError::closed("x").status(), None);
    }
}
