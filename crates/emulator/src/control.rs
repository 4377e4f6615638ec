//! The Bedrock control plane (restJson1): Create, Get, List and Stop ModelInvocationJob.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::http::{aws_error, json, Refusal, Resp};
use crate::model::BEDROCK;
use crate::request::{input, Parts};
use crate::state::{Ctx, ACCOUNT_ID};
use crate::store::{Job, NotInserted, Status};

/// The job's duration limit when the request gives none (AWS's documented default is not stated;
/// 24 hours, the model's minimum, is what jobs show).
const DEFAULT_TIMEOUT_HOURS: u64 = 24;

fn str_of(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The checked input of a control-plane operation with a JSON body or path label.
fn checked(
    operation: &str,
    labels: &[(&'static str, String)],
    query: &[(String, String)],
    body: &[u8],
) -> Result<Map<String, Value>, Refusal> {
    let headers = http::HeaderMap::new();
    input(&BEDROCK, operation, &Parts { labels, headers: &headers, query, body })
}

/// POST /model-invocation-job
pub(crate) async fn create(ctx: &Arc<Ctx>, body: &[u8]) -> Resp {
    if ctx.opts.create_latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ctx.opts.create_latency_ms)).await;
    }
    if ctx.storms.create_throttled() {
        return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.");
    }
    let req = match checked("CreateModelInvocationJob", &[], &[], body) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let job_name = str_of(&req, "jobName").unwrap_or_default();
    let role_arn = str_of(&req, "roleArn").unwrap_or_default();
    let token = str_of(&req, "clientRequestToken");
    let model_id = str_of(&req, "modelId").unwrap_or_default();
    let timeout_hours = req.get("timeoutDurationInHours").and_then(Value::as_u64).unwrap_or(DEFAULT_TIMEOUT_HOURS);
    let invocation_type = str_of(&req, "modelInvocationType").unwrap_or_else(|| "InvokeModel".to_string());
    // Same token: the same job, nothing new.
    if let Some(t) = &token {
        if let Some(existing) = ctx.store.by_token(t) {
            return json(200, &json!({ "jobArn": existing.arn }));
        }
    }
    let id = crate::ids::random_lower_alnum(12);
    let now = OffsetDateTime::now_utc();
    let job = Job {
        arn: format!("arn:aws:bedrock:{}:{ACCOUNT_ID}:model-invocation-job/{id}", ctx.opts.region),
        id: id.clone(),
        name: job_name,
        model_id,
        role_arn,
        client_request_token: token,
        status: Status::Submitted,
        message: None,
        submit_time: now,
        last_modified_time: now,
        end_time: None,
        input_config: req.get("inputDataConfig").cloned().unwrap_or(Value::Null),
        output_config: req.get("outputDataConfig").cloned().unwrap_or(Value::Null),
        vpc_config: req.get("vpcConfig").cloned(),
        timeout_hours,
        invocation_type,
        total: None,
        processed: None,
        success: None,
        errors: None,
    };
    let arn = job.arn.clone();
    let model = job.model_id.clone();
    let max_jobs = ctx.storms.max_concurrent_jobs();
    match ctx.store.insert(job, max_jobs) {
        Ok(stop) => {
            tokio::spawn(crate::jobs::run(ctx.clone(), id, stop));
            // The job exists; the answer is late (a caller may give up or die before it arrives).
            if ctx.opts.create_reply_delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(ctx.opts.create_reply_delay_ms)).await;
            }
            json(200, &json!({ "jobArn": arn }))
        }
        // A concurrent create with the same token won the race.
        Err(NotInserted::SameToken(existing_arn)) => json(200, &json!({ "jobArn": existing_arn })),
        Err(NotInserted::Full) => aws_error(
            400,
            "ServiceQuotaExceededException",
            &format!(
                "The number of submitted and in-progress batch inference jobs for model {model} has reached the limit of {max_jobs}. Wait for a job to finish and try again."
            ),
        ),
    }
}

/// Resolves a path's job identifier (id or URL-encoded ARN) to a job, for `operation`.
fn find(ctx: &Ctx, operation: &str, raw: &str) -> Result<Job, Refusal> {
    let ident = crate::http::decode_segment(raw);
    checked(operation, &[("jobIdentifier", ident.clone())], &[], &[])?;
    // The pattern ends in the 12-character id, with or without the ARN before it.
    let id = &ident[ident.len().saturating_sub(12)..];
    ctx.store.get(id).filter(|j| ident.len() == 12 || j.arn == ident).ok_or_else(|| {
        Refusal::new(
            404,
            "ResourceNotFoundException",
            format!("The specified batch inference job {ident} could not be found."),
        )
    })
}

/// GET /model-invocation-job/{jobIdentifier}
pub(crate) fn get(ctx: &Ctx, ident: &str) -> Resp {
    if ctx.storms.get_throttled() {
        return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.");
    }
    match find(ctx, "GetModelInvocationJob", ident) {
        Ok(job) => json(200, &job.to_json()),
        Err(e) => e.into(),
    }
}

/// POST /model-invocation-job/{jobIdentifier}/stop
pub(crate) fn stop(ctx: &Ctx, ident: &str) -> Resp {
    let job = match find(ctx, "StopModelInvocationJob", ident) {
        Ok(j) => j,
        Err(e) => return e.into(),
    };
    match ctx.store.request_stop(&job.id) {
        Some(s) if s.is_terminal() => aws_error(
            400,
            "ConflictException",
            &format!(
                "The batch inference job {} is already in the terminal status {} and cannot be stopped.",
                job.arn,
                s.as_str()
            ),
        ),
        _ => json(200, &json!({})),
    }
}

/// GET /model-invocation-jobs
pub(crate) fn list(ctx: &Ctx, uri: &http::Uri) -> Resp {
    let q = match checked("ListModelInvocationJobs", &[], &crate::http::query(uri), &[]) {
        Ok(q) => q,
        Err(e) => return e.into(),
    };
    let status = q.get("statusEquals").and_then(Value::as_str).and_then(Status::parse);
    let name = str_of(&q, "nameContains");
    let time = |k: &str| q.get(k).and_then(Value::as_str).and_then(crate::ids::parse_iso8601);
    let (after, before) = (time("submitTimeAfter"), time("submitTimeBefore"));
    let descending = q.get("sortOrder").and_then(Value::as_str) != Some("Ascending");
    let max = q.get("maxResults").and_then(Value::as_u64).map_or(1000, |n| n as usize);
    let start = match q.get("nextToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => match decode_token(t) {
            Some(n) => n,
            None => return aws_error(400, "ValidationException", "The provided nextToken is not valid."),
        },
    };
    let mut jobs: Vec<Job> = ctx
        .store
        .all()
        .into_iter()
        .filter(|j| status.is_none_or(|s| j.status == s))
        .filter(|j| name.as_deref().is_none_or(|n| j.name.contains(n)))
        .filter(|j| after.is_none_or(|t| j.submit_time > t))
        .filter(|j| before.is_none_or(|t| j.submit_time < t))
        .collect();
    if descending {
        jobs.reverse();
    }
    let page: Vec<Value> = jobs.iter().skip(start).take(max).map(Job::to_json).collect();
    let mut out = serde_json::Map::new();
    if start + max < jobs.len() {
        out.insert("nextToken".into(), json!(encode_token(start + max)));
    }
    out.insert("invocationJobSummaries".into(), Value::Array(page));
    json(200, &Value::Object(out))
}

fn encode_token(offset: usize) -> String {
    format!("emu{offset:08}")
}

fn decode_token(t: &str) -> Option<usize> {
    t.strip_prefix("emu")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_others_are_refused() {
        assert_eq!(decode_token(&encode_token(42)), Some(42));
        assert_eq!(decode_token("not-ours"), None);
    }
}
