//! The engine's one error type. The binding turns it into a JS error in one place.

use std::fmt;

/// AWS-style exception names the engine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorName {
    ValidationException,
    AccessDeniedException,
    ResourceNotFoundException,
    ModelTimeoutException,
    ModelErrorException,
    ModelNotReadyException,
    ThrottlingException,
    ServiceQuotaExceededException,
    InternalServerException,
    ServiceUnavailableException,
    ConflictException,
    /// A Failed or Stopped job (or one that never ended).
    BatchJobFailedException,
    /// No output line for the record after its last try.
    RecordMissingException,
    /// The client was closed or destroyed.
    ClientClosedException,
    /// The credentials could not be loaded (as the JS SDK names it).
    CredentialsProviderError,
    /// The journal file is in use by another client or process.
    JournalLockedException,
    /// The journal file is not a journal, or cannot be read.
    JournalCorruptedException,
    /// Anything the back-end reported that has no better name.
    UnknownError,
}

impl ErrorName {
    /// The name as JS sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::ValidationException => "ValidationException",
            ErrorName::AccessDeniedException => "AccessDeniedException",
            ErrorName::ResourceNotFoundException => "ResourceNotFoundException",
            ErrorName::ModelTimeoutException => "ModelTimeoutException",
            ErrorName::ModelErrorException => "ModelErrorException",
            ErrorName::ModelNotReadyException => "ModelNotReadyException",
            ErrorName::ThrottlingException => "ThrottlingException",
            ErrorName::ServiceQuotaExceededException => "ServiceQuotaExceededException",
            ErrorName::InternalServerException => "InternalServerException",
            ErrorName::ServiceUnavailableException => "ServiceUnavailableException",
            ErrorName::ConflictException => "ConflictException",
            ErrorName::BatchJobFailedException => "BatchJobFailedException",
            ErrorName::RecordMissingException => "RecordMissingException",
            ErrorName::ClientClosedException => "ClientClosedException",
            ErrorName::CredentialsProviderError => "CredentialsProviderError",
            ErrorName::JournalLockedException => "JournalLockedException",
            ErrorName::JournalCorruptedException => "JournalCorruptedException",
            ErrorName::UnknownError => "UnknownError",
        }
    }

    /// The name for an AWS error code string (as in `x-amzn-errortype`).
    pub fn from_code(code: &str) -> ErrorName {
        match code {
            "ValidationException" => ErrorName::ValidationException,
            "AccessDeniedException" => ErrorName::AccessDeniedException,
            "ResourceNotFoundException" => ErrorName::ResourceNotFoundException,
            "ModelTimeoutException" => ErrorName::ModelTimeoutException,
            "ModelErrorException" => ErrorName::ModelErrorException,
            "ModelNotReadyException" => ErrorName::ModelNotReadyException,
            "ThrottlingException" => ErrorName::ThrottlingException,
            "ServiceQuotaExceededException" => ErrorName::ServiceQuotaExceededException,
            "InternalServerException" => ErrorName::InternalServerException,
            "ServiceUnavailableException" => ErrorName::ServiceUnavailableException,
            "ConflictException" => ErrorName::ConflictException,
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
            ErrorName::InternalServerException | ErrorName::ServiceUnavailableException | ErrorName::UnknownError => "server",
            _ => "client",
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request (or an operation) failed.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineError {
    /// The AWS-style name.
    pub name: ErrorName,
    /// What happened.
    pub message: String,
    /// HTTP status, where one is known.
    pub http_status: Option<u16>,
    /// The batch job, where known.
    pub job_arn: Option<String>,
    /// The record, where known.
    pub record_id: Option<String>,
    /// The job's status, for `BatchJobFailedException`.
    pub job_status: Option<String>,
    /// The request id of the failed call, where known.
    pub request_id: Option<String>,
    /// Whether trying again may help (throttling, 5xx, network).
    pub transient: bool,
    /// The tries the request took before this error (0 when not known, which reads as 1).
    pub attempts: u32,
}

impl EngineError {
    /// An error with a name and message.
    pub fn new(name: ErrorName, message: impl Into<String>) -> EngineError {
        EngineError {
            name,
            message: message.into(),
            http_status: None,
            job_arn: None,
            record_id: None,
            job_status: None,
            request_id: None,
            transient: name.is_retryable(),
            attempts: 0,
        }
    }

    /// A `ValidationException`.
    pub fn validation(message: impl Into<String>) -> EngineError {
        EngineError::new(ErrorName::ValidationException, message).with_status(400)
    }

    /// A `ClientClosedException`.
    pub fn closed(message: impl Into<String>) -> EngineError {
        EngineError::new(ErrorName::ClientClosedException, message)
    }

    /// With an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// With the job and record it concerns.
    pub fn with_job(mut self, job_arn: Option<&str>, record_id: Option<&str>) -> Self {
        self.job_arn = job_arn.map(str::to_string).or(self.job_arn);
        self.record_id = record_id.map(str::to_string).or(self.record_id);
        self
    }

    /// Marks it as worth retrying (or not).
    pub fn transient(mut self, yes: bool) -> Self {
        self.transient = yes;
        self
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
            assert_eq!(e.record_id.as_deref(), Some("R1"));
        }
        assert!(record_error(&json!("odd"), "m", "a", "r").message.contains("odd"));
        assert!(record_error(&json!(429), "m", "a", "r").transient);
        assert!(!record_error(&json!(400), "m", "a", "r").transient);
    }
}
