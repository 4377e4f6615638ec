//! How a request's result becomes its caller's answer: a native answer turned into a Converse one,
//! the tries counted, a whole answer turned into its stream's events for a streaming caller, the
//! request id of a batch record, and answers to and from the store (a final answer kept for a key;
//! how a request of a group ended, as its leader records it for its member).

use std::sync::Arc;

use bytes::Bytes;

use crate::convert::Native;
use crate::error::{EngineError, ErrorName};
use crate::request::Operation;
use crate::settle::Success;
use crate::store::{Answer, Finished, Outcome};

/// A sent request's result as its caller gets it: the native answer of a Converse request sent as
/// its model family's native record turned into a Converse response (`native`), and the tries it
/// took (`attempts`).
pub(crate) fn final_result(
    native: Option<Native>,
    attempts: u32,
    result: Result<Success, EngineError>,
) -> Result<Success, EngineError> {
    let mut result = match native {
        None => result,
        Some(n) => result.and_then(|ok| from_native(n, ok)),
    };
    match &mut result {
        Ok(ok) => ok.attempts = attempts,
        Err(e) => e.attempts = attempts,
    }
    result
}

/// A whole answer as a streaming caller sees it (its stream's events), when it came whole
/// (`whole` names the model: from a batch record or the store).
pub(crate) fn as_streamed(
    operation: Operation,
    whole: Option<&str>,
    result: Result<Success, EngineError>,
) -> Result<Success, EngineError> {
    match whole {
        Some(model) if operation.streams() => result.and_then(|mut ok| {
            if ok.stream.is_none() {
                ok.body = crate::stream_events::events_of(operation, model, &ok.body)
                    .map_err(|e| e.with_job(ok.job_arn.as_deref(), None))?;
            }
            Ok(ok)
        }),
        _ => result,
    }
}

/// A Converse request's answer that came as the model's native response.
fn from_native(n: Native, mut ok: Success) -> Result<Success, EngineError> {
    let fail = |why: String| {
        EngineError::new(
            ErrorName::ModelErrorException,
            format!("The model's answer could not be read as a Converse response: {why}"),
        )
        .with_status(424)
        .with_job(ok.job_arn.as_deref(), None)
    };
    let native: serde_json::Value = serde_json::from_slice(&ok.body).map_err(|e| fail(e.to_string()))?;
    let mut converse = crate::convert::native_to_converse(n.family.as_str(), &native, &serde_json::Value::Null, 0)
        .map_err(|e| fail(e.message))?;
    // The AI SDK's path: Claude's `stop_sequence` where Converse puts it (null when none stopped it).
    if let (true, Some(o)) = (n.delta_stop_sequence, converse.as_object_mut()) {
        let stop = native.get("stop_sequence").cloned().unwrap_or(serde_json::Value::Null);
        o.insert("additionalModelResponseFields".into(), serde_json::json!({ "delta": { "stop_sequence": stop } }));
    }
    // The tier an on-demand call was served on, as Converse reports it.
    if let (Some(tier), Some(o)) = (ok.service_tier.take(), converse.as_object_mut()) {
        o.insert("serviceTier".into(), serde_json::json!({ "type": tier }));
    }
    ok.body = Bytes::from(serde_json::to_vec(&converse).map_err(|e| fail(e.to_string()))?);
    Ok(ok)
}

/// A copy of an answer for a later send of the same key, with the request id of the record.
pub(crate) fn with_request_id(result: Result<Success, EngineError>, record: u64) -> Result<Success, EngineError> {
    result.map(|mut ok| {
        if ok.request_id.is_none() {
            if let Some(arn) = &ok.job_arn {
                ok.request_id = Some(crate::jsonl::request_id(arn, record));
            }
        }
        ok
    })
}

/// The final answer to keep in the store for a request's key.
pub(crate) fn kept_answer(result: &Result<Success, EngineError>) -> Answer {
    match result {
        Ok(ok) => Answer::Output(ok.body.clone()),
        Err(e) => Answer::Error { name: e.name.as_str().to_string(), message: e.message.clone() },
    }
}

/// A final answer found in the store, as its caller gets it.
pub(crate) fn stored_result(f: Finished) -> Result<Success, EngineError> {
    let record = f.record.map(crate::jsonl::record_id);
    match f.answer {
        Answer::Output(body) => Ok(Success {
            request_id: f.job_arn.as_deref().zip(f.record).map(|(a, r)| crate::jsonl::request_id(a, r)),
            job_arn: f.job_arn.map(Arc::from),
            body,
            content_type: "application/json".into(),
            ..Default::default()
        }),
        Answer::Error { name, message } => {
            Err(EngineError::new(ErrorName::parse(&name).unwrap_or(ErrorName::UnknownError), message)
                .with_job(f.job_arn.as_deref(), record.as_deref()))
        }
    }
}

/// How a request ended, as a group's leader records it for its member (`record`: the record that
/// answered).
pub(crate) fn outcome_of(result: &Result<Success, EngineError>, record: Option<u64>, attempts: u32) -> Outcome {
    match result {
        Ok(ok) => Outcome::Output {
            body: ok.body.clone(),
            job_arn: ok.job_arn.as_deref().map(str::to_string),
            record,
            attempts,
            service_tier: ok.service_tier.clone(),
        },
        Err(e) => Outcome::Error {
            name: e.name.as_str().to_string(),
            message: e.message.clone(),
            status: e.http_status,
            job_arn: e.job_arn().map(str::to_string),
            record_id: e.record_id().map(str::to_string),
            job_status: e.job_status().map(str::to_string),
            attempts,
        },
    }
}

/// A request's answer as its group's leader recorded it.
pub(crate) fn outcome_result(o: Outcome) -> Result<Success, EngineError> {
    match o {
        Outcome::Output { body, job_arn, record, attempts, service_tier } => Ok(Success {
            request_id: job_arn.as_deref().zip(record).map(|(a, r)| crate::jsonl::request_id(a, r)),
            job_arn: job_arn.map(Arc::from),
            body,
            content_type: "application/json".into(),
            attempts,
            service_tier,
            ..Default::default()
        }),
        Outcome::Error { name, message, status, job_arn, record_id, job_status, attempts } => {
            let mut e = EngineError::new(ErrorName::parse(&name).unwrap_or(ErrorName::UnknownError), message)
                .with_job(job_arn.as_deref(), record_id.as_deref());
            if let Some(st) = status {
                e = e.with_status(st);
            }
            if let Some(js) = job_status {
                e = e.with_job_status(js);
            }
            e.attempts = attempts;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_recorded_for_a_member_reads_back_the_same() {
        let ok: Result<Success, EngineError> = Ok(Success {
            body: Bytes::from_static(b"{}"),
            job_arn: Some(Arc::from("arn:job")),
            content_type: "application/json".into(),
            attempts: 2,
            ..Default::default()
        });
        let back = outcome_result(outcome_of(&ok, Some(42), 2)).expect("an answer");
        assert_eq!(back.request_id.as_deref(), Some("arn:job#R0000000042"));
        assert_eq!((back.attempts, &back.body[..]), (2, &b"{}"[..]));
        let err: Result<Success, EngineError> = Err(
            EngineError::new(ErrorName::ThrottlingException, "slow").with_job(Some("arn:job"), Some("R0000000001"))
        );
        let back = outcome_result(outcome_of(&err, None, 1)).expect_err("an error");
        assert_eq!((back.name, back.record_id()), (ErrorName::ThrottlingException, Some("R0000000001")));
    }

    #[test]
    fn a_later_send_of_a_key_gets_the_request_id_of_the_record_that_answered() {
        let ok = Ok(Success { job_arn: Some(Arc::from("arn:j")), ..Default::default() });
        assert_eq!(with_request_id(ok, 7).unwrap().request_id.as_deref(), Some("arn:j#R0000000007"));
    }

    #[test]
    fn claudes_stop_sequence_is_answered_where_the_ai_sdk_reads_it_only_when_asked() {
        let claude = |stop: &str| Success {
            body: Bytes::from(format!(
                r#"{{"id":"m","type":"message","role":"assistant","content":[{{"type":"text","text":"hi"}}],"stop_reason":"{}","stop_sequence":{stop},"usage":{{"input_tokens":3,"output_tokens":1}}}}"#,
                if stop == "null" { "end_turn" } else { "stop_sequence" }
            )),
            ..Default::default()
        };
        let read = |n: Native, ok: Success| -> serde_json::Value {
            serde_json::from_slice(&final_result(Some(n), 1, Ok(ok)).unwrap().body).unwrap()
        };
        let asked = Native { family: crate::convert::ModelFamily::Claude, delta_stop_sequence: true };
        let out = read(asked, claude(r#""END""#));
        assert_eq!(out["additionalModelResponseFields"], serde_json::json!({ "delta": { "stop_sequence": "END" } }));
        assert_eq!(out["stopReason"], "stop_sequence");
        let out = read(asked, claude("null"));
        assert_eq!(out["additionalModelResponseFields"], serde_json::json!({ "delta": { "stop_sequence": null } }));
        let out = read(Native::of(crate::convert::ModelFamily::Claude), claude(r#""END""#));
        assert!(out.get("additionalModelResponseFields").is_none(), "not asked: not there");
    }
}
