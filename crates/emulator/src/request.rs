//! An operation's input as its model describes it, gathered from the HTTP request (path labels,
//! headers, query string, JSON body or raw payload) and checked against every constraint of the
//! model before the operation runs.

use serde_json::{Map, Value};

use crate::http::Refusal;
use crate::model::{Kind, Location, Service};
use crate::validate::Checker;

/// The parts of an HTTP request an operation's input comes from.
pub(crate) struct Parts<'a> {
    /// Decoded path labels by name (`modelId`, `jobIdentifier`).
    pub labels: &'a [(&'static str, String)],
    pub headers: &'a http::HeaderMap,
    /// Decoded query parameters, in order.
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The checked input of operation `operation`: every member the model defines that the request
/// sets, with nothing else (a blob payload is left out: it is the body). A request that breaks a
/// constraint gets AWS's `ValidationException` (400) listing each one.
pub(crate) fn input(
    service: &'static Service,
    operation: &str,
    parts: &Parts<'_>,
) -> Result<Map<String, Value>, Refusal> {
    let op = service.operation(operation);
    let Kind::Structure { members, payload, .. } = &service.shape(op.input).kind else {
        unreachable!("an operation input is a structure");
    };
    let mut checker = Checker::new(service);
    let body_is_payload = payload.is_some();
    let mut given = Map::new();
    if let Some(name) = payload {
        let member = members.iter().find(|m| m.name == *name).expect("the payload is a member");
        let shape = service.shape(member.target);
        if let Kind::Blob { min, max } = shape.kind {
            let n = parts.body.len() as u64;
            let shown = if shape.sensitive { None } else { std::str::from_utf8(parts.body).ok() };
            if let Some(m) = min.filter(|m| n < *m) {
                checker.fail(shown, name, &format!("Member must have length greater than or equal to {m}"));
            }
            if let Some(m) = max.filter(|m| n > *m) {
                checker.fail(shown, name, &format!("Member must have length less than or equal to {m}"));
            }
        }
    } else {
        match json_object(parts.body) {
            Ok(body) => given = body,
            Err(message) => return Err(Refusal::new(400, "ValidationException", message)),
        }
    }
    // Members outside the body join the body's, by member name, as text (numbers parsed).
    for m in members.iter() {
        let text = match &m.location {
            Location::Body => continue,
            Location::Uri(label) => parts.labels.iter().find(|(n, _)| **n == **label).map(|(_, v)| v.clone()),
            Location::Header(h) => parts.headers.get(&**h).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            Location::Query(q) => parts.query.iter().find(|(k, _)| **k == **q).map(|(_, v)| v.clone()),
        };
        given.remove(&*m.name);
        if let Some(text) = text {
            given.insert(m.name.to_string(), typed(&service.shape(m.target).kind, text));
        }
    }
    let checked = checker.members(op.input, &given, "", |m| !(body_is_payload && payload.as_deref() == Some(&*m.name)));
    match checker.into_message() {
        None => Ok(checked),
        Some(message) => Err(Refusal::new(400, "ValidationException", message)),
    }
}

/// The clauses a JSON object breaks as the body of `operation` (its non-body members are not
/// looked at): how a Converse-type batch record is checked. `Ok` holds the object without
/// unmodelled members.
pub(crate) fn body(service: &'static Service, operation: &str, value: &Value) -> Result<Map<String, Value>, String> {
    let op = service.operation(operation);
    let Value::Object(object) = value else {
        return Err("1 validation error detected: the request body must be a JSON object".to_string());
    };
    let mut checker = Checker::new(service);
    let checked = checker.members(op.input, object, "", |m| m.location == Location::Body);
    match checker.into_message() {
        None => Ok(checked),
        Some(message) => Err(message),
    }
}

/// A JSON body as an object; an empty body is an empty object.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("The request body must be a JSON object."),
        Err(_) => Err("The request body is not valid JSON."),
    }
}

/// A header or query value as the JSON value its shape takes (left as text when it does not parse,
/// so that the check names the member).
fn typed(kind: &Kind, text: String) -> Value {
    match kind {
        Kind::Integer { .. } => text.parse::<i64>().map(Value::from).unwrap_or(Value::String(text)),
        Kind::Float { .. } => text
            .parse::<f64>()
            .ok()
            .and_then(|x| serde_json::Number::from_f64(x).map(Value::Number))
            .unwrap_or(Value::String(text)),
        Kind::Boolean => match text.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text),
        },
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{BEDROCK, BEDROCK_RUNTIME};

    /// The message of a `ValidationException` answer, or the checked input.
    fn run(
        service: &'static Service,
        op: &str,
        labels: &[(&'static str, String)],
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, String> {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap());
        }
        let bytes = serde_json::to_vec(body).unwrap();
        match input(service, op, &Parts { labels, headers: &map, query: &[], body: &bytes }) {
            Ok(m) => Ok(Value::Object(m)),
            Err(refusal) => {
                assert_eq!((refusal.status, refusal.error), (400, "ValidationException"));
                Err(refusal.message)
            }
        }
    }

    fn create(over: Value) -> Result<Value, String> {
        let mut body = json!({
            "jobName": "valid-job",
            "roleArn": "arn:aws:iam::123456789012:role/BatchRole",
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "inputDataConfig": { "s3InputDataConfig": { "s3Uri": "s3://my-bucket/in/" } },
            "outputDataConfig": { "s3OutputDataConfig": { "s3Uri": "s3://my-bucket/out/" } },
        });
        for (k, v) in over.as_object().unwrap() {
            body[k] = v.clone();
        }
        run(&BEDROCK, "CreateModelInvocationJob", &[], &[], &body)
    }

    fn converse(body: Value) -> Result<Value, String> {
        run(&BEDROCK_RUNTIME, "Converse", &[("modelId", "anthropic.claude-3-haiku-20240307-v1:0".into())], &[], &body)
    }

    fn hello() -> Value {
        json!([{ "role": "user", "content": [{ "text": "hello" }] }])
    }

    #[test]
    fn a_bad_job_name_gets_aws_words_with_the_models_pattern() {
        let e = create(json!({ "jobName": "bad_name" })).unwrap_err();
        assert_eq!(
            e,
            r"1 validation error detected: Value 'bad_name' at 'jobName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}"
        );
    }

    #[test]
    fn every_failed_constraint_is_one_clause_counted_in_front() {
        let e =
            create(json!({ "jobName": "", "timeoutDurationInHours": 200, "modelInvocationType": "Chat" })).unwrap_err();
        assert!(e.starts_with("4 validation errors detected: "), "{e}");
        assert!(e.contains("Value '' at 'jobName' failed to satisfy constraint: Member must have length greater than or equal to 1; "), "{e}");
        assert!(e.contains("Value '200' at 'timeoutDurationInHours' failed to satisfy constraint: Member must have value less than or equal to 168"), "{e}");
        assert!(
            e.contains("Value 'Chat' at 'modelInvocationType' failed to satisfy constraint: Member must satisfy enum value set: [InvokeModel, Converse]"),
            "{e}"
        );
    }

    #[test]
    fn create_checks_model_id_kms_key_vpc_and_tags_as_the_model_says() {
        assert!(create(json!({ "modelId": "not a model id!" }))
            .unwrap_err()
            .contains("at 'modelId' failed to satisfy constraint: Member must satisfy regular expression pattern"));
        let out =
            |key: Value| json!({ "s3OutputDataConfig": { "s3Uri": "s3://my-bucket/out/", "s3EncryptionKeyId": key } });
        assert!(create(json!({ "outputDataConfig": out(json!("")) })).unwrap_err().contains(
            "at 'outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId' failed to satisfy constraint: Member must have length greater than or equal to 1"
        ));
        assert!(create(json!({ "outputDataConfig": out(json!("x".repeat(2049))) }))
            .unwrap_err()
            .contains("Member must have length less than or equal to 2048"));
        assert!(create(json!({ "outputDataConfig": out(json!("not/a/key")) })).unwrap_err().contains(
            "s3EncryptionKeyId' failed to satisfy constraint: Member must satisfy regular expression pattern"
        ));
        assert!(create(json!({ "outputDataConfig": out(json!("alias/my-key")) })).is_ok());
        let long = "s".repeat(33);
        let e = create(json!({ "vpcConfig": { "subnetIds": [long], "securityGroupIds": ["sg_1"] } })).unwrap_err();
        assert!(e.contains("at 'vpcConfig.subnetIds.1.member' failed to satisfy constraint: Member must have length less than or equal to 32"), "{e}");
        assert!(e.contains("Value 'sg_1' at 'vpcConfig.securityGroupIds.1.member' failed to satisfy constraint: Member must satisfy regular expression pattern: [-0-9a-zA-Z]+"), "{e}");
        let e = create(json!({ "tags": [{ "key": "team" }, { "key": "a#b", "value": "v".repeat(257) }] })).unwrap_err();
        assert!(
            e.starts_with("3 validation errors detected: Value null at 'tags.1.member.value' failed to satisfy constraint: Member must not be null; "),
            "{e}"
        );
        assert!(e.contains("Value 'a#b' at 'tags.2.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern"), "{e}");
        assert!(e.contains("at 'tags.2.member.value' failed to satisfy constraint: Member must have length less than or equal to 256"), "{e}");
    }

    #[test]
    fn unknown_members_are_dropped_and_unions_need_exactly_one_member() {
        let ok = create(json!({
            "notAMember": 1,
            "inputDataConfig": { "s3InputDataConfig": { "s3Uri": "s3://my-bucket/in/", "notAMember": "x" } },
        }))
        .unwrap();
        assert!(ok.get("notAMember").is_none());
        assert_eq!(ok["inputDataConfig"], json!({ "s3InputDataConfig": { "s3Uri": "s3://my-bucket/in/" } }));
        let e = create(json!({ "inputDataConfig": {} })).unwrap_err();
        assert!(
            e.contains(
                "Value at 'inputDataConfig' failed to satisfy constraint: Member must have exactly one member set"
            ),
            "{e}"
        );
    }

    #[test]
    fn list_checks_name_contains_like_a_job_name() {
        let list = |q: &[(&str, &str)]| {
            let query: Vec<(String, String)> = q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let headers = http::HeaderMap::new();
            input(
                &BEDROCK,
                "ListModelInvocationJobs",
                &Parts { labels: &[], headers: &headers, query: &query, body: b"" },
            )
            .map(Value::Object)
        };
        assert!(list(&[("nameContains", "")]).is_err());
        assert!(list(&[("nameContains", "a_b")]).is_err());
        assert!(list(&[("maxResults", "many")]).is_err());
        assert!(list(&[("submitTimeAfter", "yesterday")]).is_err());
        let ok = list(&[("nameContains", "alpha"), ("maxResults", "5"), ("submitTimeAfter", "2026-01-01T00:00:00Z")])
            .unwrap();
        assert_eq!(ok["maxResults"], 5);
    }

    #[test]
    fn invoke_model_headers_are_checked_by_their_member_names() {
        let invoke = |h: &[(&str, &str)]| {
            let headers: http::HeaderMap = h
                .iter()
                .map(|(k, v)| {
                    (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap())
                })
                .collect();
            input(
                &BEDROCK_RUNTIME,
                "InvokeModel",
                &Parts {
                    labels: &[("modelId", "amazon.nova-lite-v1:0".into())],
                    headers: &headers,
                    query: &[],
                    body: b"{}",
                },
            )
        };
        assert!(invoke(&[
            ("x-amzn-bedrock-performanceconfig-latency", "optimized"),
            ("x-amzn-bedrock-service-tier", "flex")
        ])
        .is_ok());
        for bad in [
            ("x-amzn-bedrock-performanceconfig-latency", "fastest".to_string()),
            ("x-amzn-bedrock-service-tier", "gold".to_string()),
            ("x-amzn-bedrock-request-metadata", "m".repeat(8501)),
            ("x-amzn-bedrock-projectidentifier", "no spaces allowed".to_string()),
            ("x-amzn-bedrock-trace", "ON".to_string()),
        ] {
            assert!(invoke(&[(bad.0, bad.1.as_str())]).is_err(), "{}", bad.0);
        }
        let long = "m".repeat(8501);
        let e = run(
            &BEDROCK_RUNTIME,
            "InvokeModel",
            &[("modelId", "amazon.nova-lite-v1:0".into())],
            &[("x-amzn-bedrock-request-metadata", &long)],
            &json!({}),
        )
        .unwrap_err();
        assert_eq!(
            e, "1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: Member must have length less than or equal to 8500",
            "sensitive values are not echoed"
        );
    }

    #[test]
    fn converse_checks_messages_inference_config_and_the_2026_members() {
        assert!(converse(
            json!({ "messages": hello(), "projectIdentifier": "my-project", "serviceTier": { "type": "flex" } })
        )
        .is_ok());
        let cases = [
            (
                json!({ "messages": [{ "content": [{ "text": "hi" }] }] }),
                "Value null at 'messages.1.member.role' failed to satisfy constraint: Member must not be null",
            ),
            (json!({ "messages": [{ "role": "user" }] }), "Value null at 'messages.1.member.content' failed to satisfy constraint: Member must not be null"),
            (json!({ "messages": [{ "role": "robot", "content": [{ "text": "hi" }] }] }), "Value 'robot' at 'messages.1.member.role'"),
            (
                json!({ "messages": [{ "role": "user", "content": [{}] }] }),
                "Value at 'messages.1.member.content.1.member' failed to satisfy constraint: Member must have exactly one member set",
            ),
            (json!({ "messages": [{ "role": "user", "content": [{ "text": "a", "cachePoint": { "type": "default" } }] }] }), "exactly one member set"),
            (
                json!({ "messages": hello(), "inferenceConfig": { "maxTokens": 0 } }),
                "Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ),
            (
                json!({ "messages": hello(), "inferenceConfig": { "temperature": 1.5 } }),
                "Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1",
            ),
            (
                json!({ "messages": hello(), "inferenceConfig": { "topP": -0.1 } }),
                "at 'inferenceConfig.topP' failed to satisfy constraint: Member must have value greater than or equal to 0",
            ),
            (
                json!({ "messages": hello(), "inferenceConfig": { "stopSequences": vec!["x"; 2501] } }),
                "at 'inferenceConfig.stopSequences' failed to satisfy constraint: Member must have length less than or equal to 2500",
            ),
            (
                json!({ "messages": hello(), "inferenceConfig": { "stopSequences": [""] } }),
                "Value '' at 'inferenceConfig.stopSequences.1.member' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ),
            (json!({ "messages": hello(), "performanceConfig": { "latency": "fastest" } }), "at 'performanceConfig.latency'"),
            (json!({ "messages": hello(), "serviceTier": { "type": "gold" } }), "at 'serviceTier.type'"),
            (
                json!({ "messages": hello(), "projectIdentifier": "a b" }),
                "Value 'a b' at 'projectIdentifier' failed to satisfy constraint: Member must satisfy regular expression pattern",
            ),
            (
                json!({ "messages": hello(), "inferenceConfig": { "maxTokens": "ten" } }),
                "Value 'ten' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must be an integer",
            ),
        ];
        for (body, expected) in cases {
            let e = converse(body.clone()).unwrap_err();
            assert!(e.starts_with("1 validation error detected: "), "{body}: {e}");
            assert!(e.contains(expected), "{body}: {e}");
        }
    }

    #[test]
    fn a_converse_batch_record_is_checked_without_the_path_members() {
        assert!(
            body(&BEDROCK_RUNTIME, "Converse", &json!({ "messages": hello() })).is_ok(),
            "modelId travels in the path, not in a record"
        );
        let e =
            body(&BEDROCK_RUNTIME, "Converse", &json!({ "messages": hello(), "inferenceConfig": { "maxTokens": 0 } }))
                .unwrap_err();
        assert!(e.contains("inferenceConfig.maxTokens"), "{e}");
    }
}
