//! The Bedrock control plane (restJson1): Create, Get, List and Stop ModelInvocationJob.

use std::sync::{Arc, LazyLock};

use regex::Regex;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::http::{aws_error, json, query, Resp};
use crate::state::{Ctx, ACCOUNT_ID};
use crate::store::{Job, Status};

const JOB_NAME_PATTERN: &str = r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}";
const ROLE_ARN_PATTERN: &str = r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+";
const TOKEN_PATTERN: &str = r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}";
const S3_URI_PATTERN: &str = r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?";
const ACCOUNT_PATTERN: &str = r"[0-9]{12}";
const JOB_ID_PATTERN: &str = r"((arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/)?[a-z0-9]{12})";

fn full(p: &str) -> Regex {
    Regex::new(&format!("^(?:{p})$")).expect("valid pattern")
}

static JOB_NAME: LazyLock<Regex> = LazyLock::new(|| full(JOB_NAME_PATTERN));
static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| full(ROLE_ARN_PATTERN));
static TOKEN: LazyLock<Regex> = LazyLock::new(|| full(TOKEN_PATTERN));
static S3_URI: LazyLock<Regex> = LazyLock::new(|| full(S3_URI_PATTERN));
static ACCOUNT: LazyLock<Regex> = LazyLock::new(|| full(ACCOUNT_PATTERN));
static JOB_ID: LazyLock<Regex> = LazyLock::new(|| full(JOB_ID_PATTERN));

/// Collects constraint violations the way AWS words them.
#[derive(Default)]
struct Violations(Vec<String>);

impl Violations {
    fn pattern(&mut self, field: &str, value: &str, pattern: &str, re: &Regex) {
        if !re.is_match(value) {
            self.0.push(format!("Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"));
        }
    }
    fn length(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            self.0.push(format!("Value '{value}' at '{field}' failed to satisfy constraint: Member must have length greater than or equal to {min}"));
        } else if n > max {
            self.0.push(format!("Value at '{field}' failed to satisfy constraint: Member must have length less than or equal to {max}"));
        }
    }
    fn required(&mut self, field: &str) {
        self.0.push(format!("Value null at '{field}' failed to satisfy constraint: Member must not be null"));
    }
    fn other(&mut self, msg: String) {
        self.0.push(msg);
    }
    fn into_error(self) -> Option<Resp> {
        if self.0.is_empty() {
            return None;
        }
        let n = self.0.len();
        let msg = format!("{n} validation error{} detected: {}", if n == 1 { "" } else { "s" }, self.0.join("; "));
        Some(aws_error(400, "ValidationException", &msg))
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// POST /model-invocation-job
pub async fn create(ctx: &Arc<Ctx>, body: &[u8]) -> Resp {
    if ctx.opts.create_latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ctx.opts.create_latency_ms)).await;
    }
    if ctx.throttle_create() {
        return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.");
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return aws_error(400, "ValidationException", "The request body is not valid JSON.");
    };
    if !req.is_object() {
        return aws_error(400, "ValidationException", "The request body must be a JSON object.");
    }
    let mut v = Violations::default();
    let job_name = str_at(&req, "/jobName").unwrap_or_default().to_string();
    match req.get("jobName") {
        Some(Value::String(s)) => {
            v.length("jobName", s, 1, 63);
            v.pattern("jobName", s, JOB_NAME_PATTERN, &JOB_NAME);
        }
        _ => v.required("jobName"),
    }
    let role_arn = str_at(&req, "/roleArn").unwrap_or_default().to_string();
    match req.get("roleArn") {
        Some(Value::String(s)) => {
            v.length("roleArn", s, 0, 2048);
            v.pattern("roleArn", s, ROLE_ARN_PATTERN, &ROLE_ARN);
        }
        _ => v.required("roleArn"),
    }
    let token = str_at(&req, "/clientRequestToken").map(str::to_string);
    if let Some(t) = &token {
        v.length("clientRequestToken", t, 1, 256);
        v.pattern("clientRequestToken", t, TOKEN_PATTERN, &TOKEN);
    }
    let model_id = str_at(&req, "/modelId").unwrap_or_default().to_string();
    match req.get("modelId") {
        Some(Value::String(s)) => v.length("modelId", s, 1, 2048),
        _ => v.required("modelId"),
    }
    match str_at(&req, "/inputDataConfig/s3InputDataConfig/s3Uri") {
        Some(s) => {
            v.length("inputDataConfig.s3InputDataConfig.s3Uri", s, 1, 1024);
            v.pattern("inputDataConfig.s3InputDataConfig.s3Uri", s, S3_URI_PATTERN, &S3_URI);
        }
        None => v.required("inputDataConfig.s3InputDataConfig.s3Uri"),
    }
    if let Some(f) = req.pointer("/inputDataConfig/s3InputDataConfig/s3InputFormat") {
        if f != "JSONL" {
            v.other(format!(
                "Value '{}' at 'inputDataConfig.s3InputDataConfig.s3InputFormat' failed to satisfy constraint: Member must satisfy enum value set: [JSONL]",
                f.as_str().unwrap_or("")
            ));
        }
    }
    match str_at(&req, "/outputDataConfig/s3OutputDataConfig/s3Uri") {
        Some(s) => {
            v.length("outputDataConfig.s3OutputDataConfig.s3Uri", s, 1, 1024);
            v.pattern("outputDataConfig.s3OutputDataConfig.s3Uri", s, S3_URI_PATTERN, &S3_URI);
        }
        None => v.required("outputDataConfig.s3OutputDataConfig.s3Uri"),
    }
    for ptr in ["/inputDataConfig/s3InputDataConfig/s3BucketOwner", "/outputDataConfig/s3OutputDataConfig/s3BucketOwner"] {
        if let Some(o) = str_at(&req, ptr) {
            v.pattern(&ptr[1..].replace('/', "."), o, ACCOUNT_PATTERN, &ACCOUNT);
        }
    }
    let timeout_hours = match req.get("timeoutDurationInHours") {
        None | Some(Value::Null) => 24,
        Some(t) => match t.as_u64() {
            Some(h) if (24..=168).contains(&h) => h,
            _ => {
                v.other(format!("Value '{t}' at 'timeoutDurationInHours' failed to satisfy constraint: Member must have value between 24 and 168"));
                24
            }
        },
    };
    let invocation_type = match str_at(&req, "/modelInvocationType") {
        None => "InvokeModel".to_string(),
        Some(t @ ("InvokeModel" | "Converse")) => t.to_string(),
        Some(t) => {
            v.other(format!("Value '{t}' at 'modelInvocationType' failed to satisfy constraint: Member must satisfy enum value set: [InvokeModel, Converse]"));
            String::new()
        }
    };
    if let Some(vpc) = req.get("vpcConfig") {
        let subnets = vpc.get("subnetIds").and_then(Value::as_array).map_or(0, Vec::len);
        let groups = vpc.get("securityGroupIds").and_then(Value::as_array).map_or(0, Vec::len);
        if !(1..=16).contains(&subnets) {
            v.other("Value at 'vpcConfig.subnetIds' failed to satisfy constraint: Member must have length between 1 and 16".into());
        }
        if !(1..=5).contains(&groups) {
            v.other("Value at 'vpcConfig.securityGroupIds' failed to satisfy constraint: Member must have length between 1 and 5".into());
        }
    }
    if let Some(tags) = req.get("tags").and_then(Value::as_array) {
        if tags.len() > 200 {
            v.other("Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 200".into());
        }
        for (i, t) in tags.iter().enumerate() {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            v.length(&format!("tags.{}.member.key", i + 1), key, 1, 128);
        }
    }
    if let Some(err) = v.into_error() {
        return err;
    }
    // Same token: the same job, nothing new.
    if let Some(t) = &token {
        if let Some(existing) = ctx.store.by_token(t) {
            return json(200, &json!({ "jobArn": existing.arn }));
        }
    }
    if ctx.store.active_for_model(&model_id) >= ctx.opts.max_concurrent_jobs {
        return aws_error(
            400,
            "ServiceQuotaExceededException",
            &format!(
                "The number of submitted and in-progress batch inference jobs for model {model_id} has reached the limit of {}. Wait for a job to finish and try again.",
                ctx.opts.max_concurrent_jobs
            ),
        );
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
    match ctx.store.insert(job) {
        Ok(stop) => {
            tokio::spawn(crate::jobs::run(ctx.clone(), id, stop));
            // The job exists; the answer is late (a caller may give up or die before it arrives).
            if ctx.opts.create_reply_delay_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(ctx.opts.create_reply_delay_ms)).await;
            }
            json(200, &json!({ "jobArn": arn }))
        }
        // A concurrent create with the same token won the race.
        Err(existing_arn) => json(200, &json!({ "jobArn": existing_arn })),
    }
}

/// Resolves a path's job identifier (id or URL-encoded ARN) to a job.
fn find(ctx: &Ctx, raw: &str) -> Result<Job, Resp> {
    let ident = crate::http::decode_segment(raw);
    if !JOB_ID.is_match(&ident) {
        return Err(aws_error(
            400,
            "ValidationException",
            &format!("1 validation error detected: Value '{ident}' at 'jobIdentifier' failed to satisfy constraint: Member must satisfy regular expression pattern: {JOB_ID_PATTERN}"),
        ));
    }
    let id = &ident[ident.len() - 12..];
    ctx.store
        .get(id)
        .filter(|j| ident.len() == 12 || j.arn == ident)
        .ok_or_else(|| aws_error(404, "ResourceNotFoundException", &format!("The specified batch inference job {ident} could not be found.")))
}

/// GET /model-invocation-job/{jobIdentifier}
pub fn get(ctx: &Ctx, ident: &str) -> Resp {
    if ctx.throttle_get() {
        return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.");
    }
    match find(ctx, ident) {
        Ok(job) => json(200, &job.to_json()),
        Err(e) => e,
    }
}

/// POST /model-invocation-job/{jobIdentifier}/stop
pub fn stop(ctx: &Ctx, ident: &str) -> Resp {
    let job = match find(ctx, ident) {
        Ok(j) => j,
        Err(e) => return e,
    };
    match ctx.store.request_stop(&job.id) {
        Some(s) if s.is_terminal() => aws_error(
            400,
            "ConflictException",
            &format!("The batch inference job {} is already in the terminal status {} and cannot be stopped.", job.arn, s.as_str()),
        ),
        _ => json(200, &json!({})),
    }
}

/// GET /model-invocation-jobs
pub fn list(ctx: &Ctx, uri: &http::Uri) -> Resp {
    let mut v = Violations::default();
    let (mut status, mut name, mut after, mut before, mut descending, mut max, mut start) = (None, None, None, None, true, 1000usize, 0usize);
    for (k, val) in query(uri) {
        match k.as_str() {
            "statusEquals" => match Status::parse(&val) {
                Some(s) => status = Some(s),
                None => v.other(format!("Value '{val}' at 'statusEquals' failed to satisfy constraint: Member must satisfy enum value set: [Submitted, InProgress, Completed, Failed, Stopping, Stopped, PartiallyCompleted, Expired, Validating, Scheduled]")),
            },
            "nameContains" => name = Some(val),
            "submitTimeAfter" | "submitTimeBefore" => match crate::ids::parse_iso8601(&val) {
                Some(t) if k == "submitTimeAfter" => after = Some(t),
                Some(t) => before = Some(t),
                None => v.other(format!("Value '{val}' at '{k}' is not a valid timestamp")),
            },
            "sortOrder" => match val.as_str() {
                "Ascending" => descending = false,
                "Descending" => descending = true,
                _ => v.other(format!("Value '{val}' at 'sortOrder' failed to satisfy constraint: Member must satisfy enum value set: [Ascending, Descending]")),
            },
            "sortBy" if val != "CreationTime" => {
                v.other(format!("Value '{val}' at 'sortBy' failed to satisfy constraint: Member must satisfy enum value set: [CreationTime]"))
            }
            "maxResults" => match val.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => max = n,
                _ => v.other(format!("Value '{val}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000")),
            },
            "nextToken" => match decode_token(&val) {
                Some(n) => start = n,
                None => v.other("The nextToken is not valid.".to_string()),
            },
            _ => {}
        }
    }
    if let Some(err) = v.into_error() {
        return err;
    }
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
    fn aws_patterns_accept_and_refuse_what_the_service_model_says() {
        assert!(JOB_NAME.is_match("batch-inference-abc.1+2"));
        assert!(!JOB_NAME.is_match("bad_name"));
        assert!(!JOB_NAME.is_match("-starts-with-dash"));
        assert!(ROLE_ARN.is_match("arn:aws:iam::123456789012:role/BedrockBatch"));
        assert!(!ROLE_ARN.is_match("arn:aws:iam::123:role/x"));
        assert!(S3_URI.is_match("s3://my-bucket/in/batch-1/"));
        assert!(!S3_URI.is_match("s3://my-bucket/in/a:b"));
        assert!(!S3_URI.is_match("s3://B/in"));
        assert!(TOKEN.is_match("abc-123"));
        assert!(!TOKEN.is_match("abc_123"));
        assert!(JOB_ID.is_match("abcdef123456"));
        assert!(JOB_ID.is_match("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456"));
        assert!(!JOB_ID.is_match("ABCDEF123456"));
    }
}
