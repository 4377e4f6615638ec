//! Fault markers: `[[...]]` strings anywhere in a record body drive the emulator's behaviour.

/// What one record body asks the emulator to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Markers {
    /// `[[error:NNN]]`: answer with this error code.
    pub error: Option<u16>,
    /// `[[stream-error:NNN]]`: a streaming runtime call starts its stream, then ends it with the
    /// modelled exception event for this code (ignored everywhere else).
    pub stream_error: Option<u16>,
    /// `[[missing]]`: write no output line.
    pub missing: bool,
    /// `[[malformed]]`: write an output line that is not JSON.
    pub malformed: bool,
    /// `[[job:failed]]`: the whole job fails.
    pub job_failed: bool,
    /// `[[job:expired]]`: the whole job expires.
    pub job_expired: bool,
    /// `[[job:slow]]`: the job stays InProgress until stopped.
    pub job_slow: bool,
    /// `[[retry-after:S]]` (seconds, in milliseconds here): on the OpenAI endpoint, the first
    /// request with this body gets 429 and `Retry-After: S`; the next one is answered.
    pub retry_after_ms: Option<u64>,
}

impl Markers {
    /// Finds the markers in a body's text.
    pub fn scan(text: &[u8]) -> Markers {
        let s = match std::str::from_utf8(text) {
            Ok(s) => s,
            Err(_) => return Markers::default(),
        };
        if !s.contains("[[") {
            return Markers::default();
        }
        Markers {
            error: find_error(s),
            stream_error: marker_value(s, "[[stream-error:").and_then(|v| v.parse().ok()),
            missing: s.contains("[[missing]]"),
            malformed: s.contains("[[malformed]]"),
            job_failed: s.contains("[[job:failed]]"),
            job_expired: s.contains("[[job:expired]]"),
            job_slow: s.contains("[[job:slow]]"),
            retry_after_ms: marker_value(s, "[[retry-after:")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| (v * 1000.0).round() as u64),
        }
    }
}

fn find_error(s: &str) -> Option<u16> {
    marker_value(s, "[[error:")?.parse().ok()
}

/// The text between `opening` (such as `[[error:`) and the next `]]`.
fn marker_value<'a>(s: &'a str, opening: &str) -> Option<&'a str> {
    let rest = &s[s.find(opening)? + opening.len()..];
    Some(rest[..rest.find("]]")?].trim())
}

/// The error a fault marker `[[error:NNN]]` (or an emulated model failure with that HTTP status)
/// produces on `operation`: only an error the operation's model lists, with that error's status
/// (see [`crate::model::Operation::error_for_status`]), and its message. Returns (name, status,
/// message).
pub fn modelled_error(operation: &'static crate::model::Operation, code: u16) -> (&'static str, u16, &'static str) {
    let (name, status) = operation.error_for_status(code);
    (name, status, message_of(name))
}

/// The message Bedrock gives with an error of this name.
pub fn message_of(error: &str) -> &'static str {
    match error {
        "ValidationException" => "Malformed input request, please reformat your input and try again.",
        "AccessDeniedException" => "You don't have access to the model with the specified model ID.",
        "ResourceNotFoundException" => "The requested resource could not be found.",
        "ModelTimeoutException" => "Model has timed out in processing the request. Try your request again.",
        "ModelErrorException" => "The model returned an error while processing the request.",
        "ModelNotReadyException" => "The model is not ready to serve inference requests. Try your request again.",
        "ThrottlingException" => "Too many requests, please wait before trying again.",
        "ServiceUnavailableException" => "Service unavailable. Try your request again.",
        "ServiceQuotaExceededException" => {
            "Your request exceeds the service quota for your account. Try your request again later."
        }
        "ConflictException" => "The request conflicts with the current state of the resource.",
        "ModelStreamErrorException" => "An error occurred while streaming the response. Retry your request.",
        _ => "The server encountered an internal error.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_anywhere_in_the_text() {
        let m = Markers::scan(br#"{"messages":[{"role":"user","content":"hi [[error:429]] and [[missing]]"}]}"#);
        assert_eq!(m.error, Some(429));
        assert_eq!(Markers::scan(b"wait [[retry-after:1.5]]").retry_after_ms, Some(1500));
        assert_eq!(Markers::scan(b"wait [[retry-after:soon]]").retry_after_ms, None);
        assert!(m.missing);
        assert_eq!(m.stream_error, None);
        assert_eq!(Markers::scan(b"x [[stream-error:503]]").stream_error, Some(503));
        assert_eq!(Markers::scan(b"x [[stream-error:503]]").error, None, "a stream error is not an error marker");
        assert!(!m.malformed);
        assert_eq!(Markers::scan(b"{}"), Markers::default());
    }

    #[test]
    fn an_unmodelled_code_becomes_the_modelled_error_of_its_class() {
        let converse = crate::model::BEDROCK_RUNTIME.operation("Converse");
        assert_eq!(modelled_error(converse, 429).0, "ThrottlingException");
        assert_eq!(modelled_error(converse, 409).1, 400, "409 is not modelled: ValidationException, 400");
        assert_eq!(modelled_error(converse, 504).0, "InternalServerException");
        // Converse does not model ServiceQuotaExceededException; 400 is its ValidationException.
        assert_eq!(modelled_error(converse, 400).0, "ValidationException");
    }
}
