//! AWS Service Quotas (`service-quotas` 2019-06-24, AWS JSON 1.1): ListServiceQuotas and
//! GetServiceQuota for `ServiceCode` `bedrock`, reporting the emulator's own batch inference limits
//! under the names AWS gives Bedrock's quotas, four per model.
//!
//! A request is `POST /` with `X-Amz-Target: ServiceQuotasV20190624.<Operation>` and the input as a
//! JSON body, signed for `servicequotas`; an answer is JSON (`application/x-amz-json-1.1`), an error
//! a JSON body `{"__type", "Message"}` with the type in `x-amzn-ErrorType` too, at the status the
//! model gives the error (400 for every client error of this service).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::http::{Body, Resp};
use crate::model::SERVICE_QUOTAS;
use crate::options::{EmulatorOptions, MinRecords};
use crate::request::{input, Parts};
use crate::state::{Ctx, ACCOUNT_ID};

/// The `X-Amz-Target` prefix of the service's operations.
const TARGET_PREFIX: &str = "ServiceQuotasV20190624.";

/// The signing name of Service Quotas requests.
pub(crate) const SIGNING_NAME: &str = "servicequotas";

/// The content type of AWS JSON 1.1 requests and answers.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The only service whose quotas the emulator reports.
const SERVICE_CODE: &str = "bedrock";

/// Its display name.
const SERVICE_NAME: &str = "Amazon Bedrock";

/// The records per input file and per job a batch inference job may have.
const MAX_RECORDS: u64 = 50_000;

/// A page's length when `MaxResults` is not given (the model's maximum).
const DEFAULT_MAX_RESULTS: usize = 100;

/// The models whose quotas are listed, in list order: model id, then the name AWS's quota names give
/// the model. A model id of a per-model `minRecords` map that is not here follows them, named by its id.
const MODELS: &[(&str, &str)] = &[
    ("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku"),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", "Claude 3.5 Haiku"),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "Claude 3.5 Sonnet v2"),
    ("anthropic.claude-sonnet-4-20250514-v1:0", "Claude Sonnet 4"),
    ("amazon.nova-micro-v1:0", "Nova Micro"),
    ("amazon.nova-lite-v1:0", "Nova Lite"),
    ("amazon.nova-pro-v1:0", "Nova Pro"),
    ("amazon.titan-embed-text-v2:0", "Titan Text Embeddings V2"),
    ("meta.llama3-1-8b-instruct-v1:0", "Llama 3.1 8B Instruct"),
    ("meta.llama4-scout-17b-instruct-v1:0", "Llama 4 Scout"),
    ("mistral.mistral-large-2407-v1:0", "Mistral Large 2 (24.07)"),
    ("openai.gpt-oss-120b-1:0", "gpt-oss-120b"),
];

/// One quota of the list.
#[derive(Debug, Clone, PartialEq)]
struct Quota {
    code: String,
    name: String,
    value: u64,
    adjustable: bool,
}

impl Quota {
    fn new(name: String, value: u64, adjustable: bool) -> Quota {
        Quota { code: quota_code(&name), name, value, adjustable }
    }

    /// The quota as the model's `ServiceQuota` structure.
    fn to_json(&self, region: &str) -> Value {
        json!({
            "ServiceCode": SERVICE_CODE,
            "ServiceName": SERVICE_NAME,
            "QuotaArn": format!("arn:aws:servicequotas:{region}:{ACCOUNT_ID}:{SERVICE_CODE}/{}", self.code),
            "QuotaCode": self.code,
            "QuotaName": self.name,
            // QuotaValue is a double.
            "Value": self.value as f64,
            "Unit": "None",
            "Adjustable": self.adjustable,
            "GlobalQuota": false,
            "QuotaAppliedAtLevel": "ACCOUNT",
        })
    }
}

/// `L-` and 8 uppercase hex digits: the first four bytes of the SHA-256 of the quota's name, so the
/// same name has the same code in every run.
fn quota_code(name: &str) -> String {
    format!("L-{}", hex::encode_upper(&Sha256::digest(name.as_bytes())[..4]))
}

/// The models reported, in list order, with the names their quotas use.
fn models(min_records: &MinRecords) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = MODELS.iter().map(|(id, name)| (id.to_string(), name.to_string())).collect();
    if let MinRecords::PerModel(map) = min_records {
        let mut extra: Vec<&String> = map.keys().filter(|id| !MODELS.iter().any(|(m, _)| m == id)).collect();
        extra.sort();
        out.extend(extra.into_iter().map(|id| (id.clone(), id.clone())));
    }
    out
}

/// Every quota the emulator reports, in list order: per model, its minimum records per job, its
/// concurrent jobs, its records per input file and its records per job.
fn quotas(opts: &EmulatorOptions) -> Vec<Quota> {
    models(&opts.min_records)
        .into_iter()
        .flat_map(|(id, name)| {
            [
                Quota::new(
                    format!("Minimum number of records per batch inference job for {name}"),
                    opts.min_records.for_model(&id),
                    false,
                ),
                Quota::new(
                    format!("Sum of in-progress and submitted batch inference jobs using a base model for {name}"),
                    opts.max_concurrent_jobs,
                    true,
                ),
                Quota::new(format!("Records per input file per batch inference job for {name}"), MAX_RECORDS, true),
                Quota::new(format!("Records per batch inference job for {name}"), MAX_RECORDS, true),
            ]
        })
        .collect()
}

/// The operation a request names when it is a Service Quotas request (`POST /` with this service's
/// `X-Amz-Target`), known or not.
pub(crate) fn operation(parts: &http::request::Parts) -> Option<String> {
    if parts.method != http::Method::POST || parts.uri.path() != "/" {
        return None;
    }
    let target = parts.headers.get("x-amz-target")?.to_str().ok()?;
    target.strip_prefix(TARGET_PREFIX).map(str::to_string)
}

/// An AWS JSON 1.1 answer.
fn answer(value: &Value) -> Resp {
    crate::http::bytes_response(200, CONTENT_TYPE, serde_json::to_vec(value).unwrap_or_default())
}

/// An AWS JSON 1.1 error: `{"__type", "Message"}` (the member the model's errors have; an error the
/// model does not define, such as a signature's, has AWS's usual `message`), the type in
/// `x-amzn-ErrorType` too.
pub(crate) fn error(status: u16, error_type: &str, message: &str) -> Resp {
    let modelled = SERVICE_QUOTAS.operations.iter().flat_map(|o| &o.errors).any(|(name, _)| &**name == error_type);
    let key = if modelled { "Message" } else { "message" };
    http::Response::builder()
        .status(status)
        .header("content-type", CONTENT_TYPE)
        .header("x-amzn-requestid", crate::ids::request_id())
        .header("x-amzn-errortype", error_type)
        .body(Body::full(serde_json::to_vec(&json!({ "__type": error_type, key: message })).unwrap_or_default()))
        .expect("valid response")
}

/// Why an operation refuses a request: the error's type and message, answered at its status.
struct Refused(&'static str, String);

/// Answers one Service Quotas request for `operation` (the `X-Amz-Target` without its prefix).
pub(crate) fn handle(ctx: &Ctx, operation: &str, headers: &http::HeaderMap, body: &[u8]) -> Resp {
    if !matches!(operation, "ListServiceQuotas" | "GetServiceQuota") {
        return error(400, "UnknownOperationException", &format!("Operation {operation} is not supported."));
    }
    if ctx.opts.service_quotas.denied {
        let action = format!("{SIGNING_NAME}:{operation}");
        let message = format!(
            "User: arn:aws:iam::{ACCOUNT_ID}:user/emulator is not authorized to perform: {action} because no identity-based policy allows the {action} action"
        );
        return modelled(operation, Refused("AccessDeniedException", message));
    }
    let req = match input(&SERVICE_QUOTAS, operation, &Parts { labels: &[], headers, query: &[], body }) {
        Ok(r) => r,
        Err(e) => return error(e.status, e.error, &e.message),
    };
    // The job quota as `POST /_emulator/faults` may have changed it.
    let all = quotas(&EmulatorOptions { max_concurrent_jobs: ctx.storms.max_concurrent_jobs(), ..ctx.opts.clone() });
    let region = &ctx.opts.region;
    let result = match operation {
        "ListServiceQuotas" => list(&all, &req, region),
        _ => get(&all, &req, region),
    };
    match result {
        Ok(v) => answer(&v),
        Err(refused) => modelled(operation, refused),
    }
}

/// A modelled error of `operation`, at the status its model gives it.
fn modelled(operation: &str, Refused(error_type, message): Refused) -> Resp {
    let op = SERVICE_QUOTAS.operation(operation);
    let status = op.errors.iter().find(|(name, _)| &**name == error_type).map_or(400, |(_, s)| *s);
    error(status, error_type, &message)
}

fn str_of<'a>(req: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    req.get(key).and_then(Value::as_str)
}

/// `NoSuchResourceException` unless `ServiceCode` is `bedrock`.
fn check_service(req: &Map<String, Value>) -> Result<(), Refused> {
    match str_of(req, "ServiceCode") {
        Some(SERVICE_CODE) => Ok(()),
        other => Err(Refused(
            "NoSuchResourceException",
            format!("The request failed because the specified service {} does not exist.", other.unwrap_or("")),
        )),
    }
}

/// The quota `QuotaCode` names, or `NoSuchResourceException`.
fn find<'a>(all: &'a [Quota], code: &str) -> Result<&'a Quota, Refused> {
    all.iter().find(|q| q.code == code).ok_or_else(|| {
        Refused(
            "NoSuchResourceException",
            format!("The request failed because the specified quota {code} does not exist."),
        )
    })
}

/// ListServiceQuotas: `{ Quotas, NextToken? }`, a page of the list (or only `QuotaCode`'s quota).
fn list(all: &[Quota], req: &Map<String, Value>, region: &str) -> Result<Value, Refused> {
    check_service(req)?;
    let selected: Vec<&Quota> = match str_of(req, "QuotaCode") {
        Some(code) => vec![find(all, code)?],
        None => all.iter().collect(),
    };
    // Every quota is applied at the account level; none at the resource level.
    let selected = if str_of(req, "QuotaAppliedAtLevel") == Some("RESOURCE") { Vec::new() } else { selected };
    let max = req.get("MaxResults").and_then(Value::as_u64).map_or(DEFAULT_MAX_RESULTS, |n| n as usize);
    let start = match str_of(req, "NextToken") {
        None => 0,
        Some(t) => decode_token(t).filter(|n| (1..selected.len()).contains(n)).ok_or_else(|| {
            Refused("InvalidPaginationTokenException", "The pagination token is not valid.".to_string())
        })?,
    };
    let page: Vec<Value> = selected.iter().skip(start).take(max).map(|q| q.to_json(region)).collect();
    let mut out = Map::new();
    out.insert("Quotas".into(), Value::Array(page));
    if start + max < selected.len() {
        out.insert("NextToken".into(), json!(encode_token(start + max)));
    }
    Ok(Value::Object(out))
}

/// GetServiceQuota: `{ Quota }`.
fn get(all: &[Quota], req: &Map<String, Value>, region: &str) -> Result<Value, Refused> {
    check_service(req)?;
    let quota = find(all, str_of(req, "QuotaCode").unwrap_or_default())?;
    Ok(json!({ "Quota": quota.to_json(region) }))
}

/// What a page token says before it is encoded.
const TOKEN_PREFIX: &str = "bedrock-batch-emulator/quotas/";

/// The opaque token of the page that starts at `offset`: base64 text, as the model's `NextToken`
/// pattern wants.
fn encode_token(offset: usize) -> String {
    aws_smithy_types::base64::encode(format!("{TOKEN_PREFIX}{offset}"))
}

/// The offset a token of [`encode_token`] holds; `None` for any other text.
fn decode_token(token: &str) -> Option<usize> {
    let bytes = aws_smithy_types::base64::decode(token).ok()?;
    std::str::from_utf8(&bytes).ok()?.strip_prefix(TOKEN_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::Pattern;

    fn opts(min_records: MinRecords, max_concurrent_jobs: u64) -> EmulatorOptions {
        EmulatorOptions { min_records, max_concurrent_jobs, ..EmulatorOptions::default() }
    }

    fn names(all: &[Quota]) -> Vec<&str> {
        all.iter().map(|q| q.name.as_str()).collect()
    }

    #[test]
    fn each_model_has_four_quotas_with_aws_names_and_the_emulators_values() {
        let per_model =
            MinRecords::PerModel(HashMap::from([("anthropic.claude-3-haiku-20240307-v1:0".to_string(), 50)]));
        let all = quotas(&opts(per_model, 7));
        assert_eq!(all.len(), 4 * MODELS.len());
        assert_eq!(
            names(&all[..4]),
            [
                "Minimum number of records per batch inference job for Claude 3 Haiku",
                "Sum of in-progress and submitted batch inference jobs using a base model for Claude 3 Haiku",
                "Records per input file per batch inference job for Claude 3 Haiku",
                "Records per batch inference job for Claude 3 Haiku",
            ]
        );
        let values: Vec<(u64, bool)> = all[..8].iter().map(|q| (q.value, q.adjustable)).collect();
        assert_eq!(
            values,
            [
                (50, false),
                (7, true),
                (50_000, true),
                (50_000, true),
                (100, false),
                (7, true),
                (50_000, true),
                (50_000, true)
            ]
        );
        assert_eq!(all[4].name, "Minimum number of records per batch inference job for Claude 3.5 Haiku");
        assert_eq!(all.last().unwrap().name, "Records per batch inference job for gpt-oss-120b");
    }

    #[test]
    fn a_model_only_in_a_per_model_minimum_follows_the_table_named_by_its_id() {
        let per_model = MinRecords::PerModel(HashMap::from([
            ("zeta.model-v1:0".to_string(), 3),
            ("amazon.nova-lite-v1:0".to_string(), 20),
            ("acme.model-v1:0".to_string(), 9),
        ]));
        let all = quotas(&opts(per_model, 20));
        assert_eq!(all.len(), 4 * (MODELS.len() + 2));
        let tail = &all[4 * MODELS.len()..];
        assert_eq!(tail[0].name, "Minimum number of records per batch inference job for acme.model-v1:0");
        assert_eq!(tail[0].value, 9);
        assert_eq!(tail[4].name, "Minimum number of records per batch inference job for zeta.model-v1:0");
        assert_eq!(tail[4].value, 3);
        let nova = all.iter().find(|q| q.name == "Minimum number of records per batch inference job for Nova Lite");
        assert_eq!(nova.map(|q| q.value), Some(20));
        assert_eq!(quotas(&opts(MinRecords::All(5), 20)).len(), 4 * MODELS.len(), "one minimum adds no model");
    }

    #[test]
    fn codes_are_stable_distinct_and_fit_the_models_pattern() {
        let all = quotas(&EmulatorOptions::default());
        let pattern = Pattern::new("L-[0-9A-F]{8}").unwrap();
        let model_pattern = Pattern::new("[a-zA-Z][a-zA-Z0-9-]{1,128}").unwrap();
        for q in &all {
            assert!(pattern.is_match(&q.code) && model_pattern.is_match(&q.code), "{}", q.code);
            assert_eq!(quota_code(&q.name), q.code);
        }
        let mut codes: Vec<&str> = all.iter().map(|q| q.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len(), "distinct names have distinct codes");
        // The first four bytes of SHA-256("Records per batch inference job for Claude 3 Haiku").
        let name = "Records per batch inference job for Claude 3 Haiku";
        let digest = Sha256::digest(name.as_bytes());
        assert_eq!(quota_code(name), format!("L-{:02X}{:02X}{:02X}{:02X}", digest[0], digest[1], digest[2], digest[3]));
    }

    #[test]
    fn a_quota_is_the_models_service_quota_structure() {
        let q = Quota::new("Records per batch inference job for Nova Pro".into(), 50_000, true);
        let v = q.to_json("eu-west-3");
        assert_eq!(v["QuotaArn"], format!("arn:aws:servicequotas:eu-west-3:123456789012:bedrock/{}", q.code));
        assert_eq!(v["ServiceCode"], "bedrock");
        assert_eq!(v["ServiceName"], "Amazon Bedrock");
        assert_eq!(v["Value"], 50_000.0);
        assert_eq!(
            (v["Unit"].as_str(), v["Adjustable"].as_bool(), v["GlobalQuota"].as_bool()),
            (Some("None"), Some(true), Some(false))
        );
    }

    fn request(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn page(all: &[Quota], max: u64, token: Option<&str>) -> (Vec<String>, Option<String>) {
        let mut req = json!({ "ServiceCode": "bedrock", "MaxResults": max });
        if let Some(t) = token {
            req["NextToken"] = json!(t);
        }
        let out = list(all, &request(req), "us-east-1").unwrap_or_else(|Refused(e, m)| panic!("{e}: {m}"));
        let codes = out["Quotas"].as_array().unwrap().iter().map(|q| q["QuotaCode"].as_str().unwrap().to_string());
        (codes.collect(), out.get("NextToken").and_then(Value::as_str).map(str::to_string))
    }

    #[test]
    fn pages_cover_the_list_once_in_order_and_the_last_has_no_token() {
        let all = quotas(&EmulatorOptions::default());
        let (mut seen, mut token) = page(&all, 5, None);
        let mut pages = 1;
        while let Some(t) = token {
            let token_pattern = Pattern::new("^[a-zA-Z0-9/+]*={0,2}$").unwrap();
            assert!(token_pattern.is_match(&t), "{t}");
            let (codes, next) = page(&all, 5, Some(&t));
            assert!(codes.len() <= 5);
            seen.extend(codes);
            token = next;
            pages += 1;
        }
        assert_eq!(pages, all.len().div_ceil(5));
        assert_eq!(seen, all.iter().map(|q| q.code.clone()).collect::<Vec<_>>());
        let (whole, token) = page(&all, 100, None);
        assert_eq!((whole.len(), token), (all.len(), None));
    }

    #[test]
    fn tokens_not_made_here_or_past_the_list_are_refused() {
        let all = quotas(&EmulatorOptions::default());
        assert_eq!(decode_token(&encode_token(42)), Some(42));
        for bad in ["bm90LW91cnM=", "", "!!", &encode_token(0), &encode_token(all.len())] {
            let req = request(json!({ "ServiceCode": "bedrock", "NextToken": bad }));
            let refused = list(&all, &req, "us-east-1").map(|_| ()).map_err(|Refused(e, _)| e);
            assert_eq!(refused, Err("InvalidPaginationTokenException"), "{bad:?}");
        }
    }

    #[test]
    fn a_quota_code_selects_one_quota_and_other_services_do_not_exist() {
        let all = quotas(&EmulatorOptions::default());
        let code = all[6].code.clone();
        let one =
            list(&all, &request(json!({ "ServiceCode": "bedrock", "QuotaCode": code })), "us-east-1").ok().unwrap();
        assert_eq!(one["Quotas"].as_array().map(Vec::len), Some(1));
        assert_eq!(one["Quotas"][0]["QuotaName"], all[6].name);
        let got =
            get(&all, &request(json!({ "ServiceCode": "bedrock", "QuotaCode": code })), "us-east-1").ok().unwrap();
        assert_eq!(got["Quota"], one["Quotas"][0]);
        for req in [json!({ "ServiceCode": "ec2" }), json!({ "ServiceCode": "bedrock", "QuotaCode": "L-00000000" })] {
            let refused = list(&all, &request(req), "us-east-1").map(|_| ()).map_err(|Refused(e, _)| e);
            assert_eq!(refused, Err("NoSuchResourceException"));
        }
        let resource =
            list(&all, &request(json!({ "ServiceCode": "bedrock", "QuotaAppliedAtLevel": "RESOURCE" })), "r");
        assert_eq!(resource.ok().unwrap()["Quotas"], json!([]));
    }
}
