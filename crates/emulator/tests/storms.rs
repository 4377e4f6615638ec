//! Fault storms armed while the emulator runs (`POST /_emulator/faults`), through the real Rust SDKs
//! (aws-sdk-s3, aws-sdk-bedrock, retries off) on 127.0.0.1: exactly N calls fail, with the same
//! wire shapes as the start options' faults (S3 503 `SlowDown`, control plane 429
//! `ThrottlingException`), then calls succeed; `GET /_emulator/faults` counts what was served.

mod common;

use aws_sdk_bedrock::error::ProvideErrorMetadata;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig as InputDataConfig, ModelInvocationJobOutputDataConfig as OutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
};
use aws_sdk_s3::primitives::ByteStream;
use bedrock_batch_emulator::{Emulator, EmulatorOptions};
use serde_json::{json, Value};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn clients(emu: &Emulator) -> (aws_sdk_s3::Client, aws_sdk_bedrock::Client) {
    common::clients(emu, aws_config::retry::RetryConfig::disabled()).await
}

/// `POST /_emulator/faults` (unsigned, as the emulator's own routes are): status and JSON answer.
async fn arm(emu: &Emulator, body: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/_emulator/faults", emu.endpoints.bedrock))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, serde_json::from_slice(&res.bytes().await.unwrap()).unwrap())
}

/// `GET /_emulator/faults`.
async fn armed(emu: &Emulator) -> Value {
    let res = reqwest::get(format!("{}/_emulator/faults", emu.endpoints.bedrock)).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
}

async fn create(br: &aws_sdk_bedrock::Client, bucket: &str, name: &str) -> Result<String, (u16, String)> {
    br.create_model_invocation_job()
        .job_name(name)
        .role_arn("arn:aws:iam::123456789012:role/BedrockBatch")
        .model_id(MODEL)
        .input_data_config(InputDataConfig::S3InputDataConfig(
            ModelInvocationJobS3InputDataConfig::builder().s3_uri(format!("s3://{bucket}/in/")).build().unwrap(),
        ))
        .output_data_config(OutputDataConfig::S3OutputDataConfig(
            ModelInvocationJobS3OutputDataConfig::builder().s3_uri(format!("s3://{bucket}/out/")).build().unwrap(),
        ))
        .send()
        .await
        .map(|o| o.job_arn().to_string())
        .map_err(|e| {
            (
                e.raw_response().map(|r| r.status().as_u16()).unwrap_or_default(),
                e.code().unwrap_or_default().to_string(),
            )
        })
}

#[tokio::test]
async fn an_s3_storm_armed_mid_run_fails_exactly_the_next_n_requests_with_slow_down() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let (s3, _) = clients(&emu).await;
    let put = |key: &str| s3.put_object().bucket(&emu.bucket).key(key).body(ByteStream::from_static(b"x")).send();
    put("before").await.expect("no storm yet");
    assert_eq!(armed(&emu).await["s3"], json!({ "failNext": 0, "served": 0 }));

    let (status, answer) = arm(&emu, r#"{ "s3": { "failNext": 3 } }"#).await;
    assert_eq!(status, 200);
    assert_eq!(answer["s3"]["failNext"], 3, "the answer shows what is armed");
    for i in 0..3 {
        let err = put(&format!("storm-{i}")).await.expect_err("in the storm");
        let raw = err.raw_response().expect("an HTTP answer");
        assert_eq!(raw.status().as_u16(), 503);
        assert_eq!(err.code(), Some("SlowDown"), "{err:?}");
    }
    put("after").await.expect("the storm is over");
    let keys = s3.list_objects_v2().bucket(&emu.bucket).send().await.unwrap();
    let names: Vec<_> = keys.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(names, ["after", "before"], "the failed puts stored nothing");
    assert_eq!(armed(&emu).await["s3"], json!({ "failNext": 0, "served": 3 }));
    emu.stop().await;
}

#[tokio::test]
async fn a_control_plane_storm_throttles_exactly_the_next_n_creates_and_gets_and_counts_them() {
    // A start option's fault is counted with the armed ones.
    let opts = EmulatorOptions {
        throttle: bedrock_batch_emulator::options::Throttle { create: 1, get: 0 },
        ..Default::default()
    };
    let emu = Emulator::start(opts).await.unwrap();
    let (_, br) = clients(&emu).await;
    assert_eq!(create(&br, &emu.bucket, "start-option").await, Err((429, "ThrottlingException".into())));
    let arn = create(&br, &emu.bucket, "calm").await.expect("the start option's one fault is served");

    let (status, _) = arm(&emu, r#"{ "throttle": { "createNext": 2, "getNext": 1 } }"#).await;
    assert_eq!(status, 200);
    let report = armed(&emu).await;
    assert_eq!(report["throttle"]["createNext"], 2);
    assert_eq!(report["throttle"]["getNext"], 1);
    for name in ["storm-1", "storm-2"] {
        assert_eq!(create(&br, &emu.bucket, name).await, Err((429, "ThrottlingException".into())));
    }
    create(&br, &emu.bucket, "after").await.expect("the create storm is over");
    let get = || br.get_model_invocation_job().job_identifier(&arn).send();
    let err = get().await.expect_err("one throttled get");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    assert_eq!(err.code(), Some("ThrottlingException"));
    get().await.expect("the get storm is over");
    assert_eq!(
        armed(&emu).await["throttle"],
        json!({ "createNext": 0, "getNext": 0, "createServed": 3, "getServed": 1 })
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_job_quota_lowered_mid_run_refuses_creates_until_raised() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let (_, br) = clients(&emu).await;
    // A quota of 0 refuses every create, whatever runs.
    let (status, answer) = arm(&emu, r#"{ "maxConcurrentJobs": 0 }"#).await;
    assert_eq!((status, &answer["maxConcurrentJobs"]), (200, &json!(0)));
    assert_eq!(create(&br, &emu.bucket, "over-quota").await, Err((400, "ServiceQuotaExceededException".into())));
    arm(&emu, r#"{ "maxConcurrentJobs": 5 }"#).await;
    create(&br, &emu.bucket, "within-quota").await.expect("the quota is back");
    emu.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_an_arming_one_is_refused_and_arms_nothing() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    for body in [r#"{ "s3": { "failFirst": 3 } }"#, r#"{ "throttle": { "createNext": -1 } }"#, "storm"] {
        let (status, answer) = arm(&emu, body).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["message"].as_str().unwrap().contains("failNext"), "the message says what to send: {answer}");
    }
    let report = armed(&emu).await;
    assert_eq!(report["s3"]["failNext"], 0);
    assert_eq!(report["throttle"]["createNext"], 0);
    emu.stop().await;
}
