//! The real Rust SDKs (aws-sdk-s3, aws-sdk-bedrock) against the emulator over HTTP on 127.0.0.1.

use std::time::{Duration, Instant};

mod common;

use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig as InputDataConfig, ModelInvocationJobOutputDataConfig as OutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig, ModelInvocationJobStatus,
};
use aws_sdk_s3::primitives::ByteStream;
use bedrock_batch_emulator::{Emulator, EmulatorOptions};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn clients(emu: &Emulator) -> (aws_sdk_s3::Client, aws_sdk_bedrock::Client) {
    common::clients(emu, aws_config::retry::RetryConfig::standard()).await
}

fn record(i: usize, extra: &str) -> String {
    serde_json::json!({
        "recordId": format!("REC{i:08}"),
        "modelInput": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 64,
            "messages": [{ "role": "user", "content": format!("Question number {i}?{extra}") }]
        }
    })
    .to_string()
}

async fn create(
    br: &aws_sdk_bedrock::Client,
    bucket: &str,
    name: &str,
    input: &str,
    token: Option<&str>,
) -> Result<String, aws_sdk_bedrock::Error> {
    let out = br
        .create_model_invocation_job()
        .job_name(name)
        .role_arn("arn:aws:iam::123456789012:role/BedrockBatch")
        .model_id(MODEL)
        .set_client_request_token(token.map(str::to_string))
        .input_data_config(InputDataConfig::S3InputDataConfig(
            ModelInvocationJobS3InputDataConfig::builder().s3_uri(format!("s3://{bucket}/{input}")).build().unwrap(),
        ))
        .output_data_config(OutputDataConfig::S3OutputDataConfig(
            ModelInvocationJobS3OutputDataConfig::builder().s3_uri(format!("s3://{bucket}/out/")).build().unwrap(),
        ))
        .send()
        .await?;
    Ok(out.job_arn().to_string())
}

async fn wait_terminal(
    br: &aws_sdk_bedrock::Client,
    arn: &str,
) -> aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = br.get_model_invocation_job().job_identifier(arn).send().await.expect("get job");
        if matches!(
            j.status(),
            Some(
                ModelInvocationJobStatus::Completed
                    | ModelInvocationJobStatus::PartiallyCompleted
                    | ModelInvocationJobStatus::Failed
                    | ModelInvocationJobStatus::Stopped
                    | ModelInvocationJobStatus::Expired
            )
        ) {
            return j;
        }
        assert!(Instant::now() < deadline, "job did not end: {:?}", j.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_job_created_with_the_rust_sdk_answers_every_record_from_s3() {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let (s3, br) = clients(&emu).await;
    let body: String = (0..120).map(|i| record(i, if i == 7 { " [[error:500]]" } else { "" }) + "\n").collect();
    s3.put_object()
        .bucket(&emu.bucket)
        .key("in/rt/records.jsonl")
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await
        .unwrap();

    let arn = create(&br, &emu.bucket, "rust-round-trip", "in/rt/", Some("token-1")).await.unwrap();
    assert!(arn.starts_with("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/"), "{arn}");
    let id = arn.rsplit('/').next().unwrap();
    assert_eq!(id.len(), 12);

    // The same token gives the same job.
    assert_eq!(create(&br, &emu.bucket, "rust-round-trip", "in/rt/", Some("token-1")).await.unwrap(), arn);

    let job = wait_terminal(&br, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Completed));
    assert_eq!(job.total_record_count(), Some(120));
    assert_eq!(job.success_record_count(), Some(119));
    assert_eq!(job.error_record_count(), Some(1));

    let listed = s3.list_objects_v2().bucket(&emu.bucket).prefix(format!("out/{id}/")).send().await.unwrap();
    let mut keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort();
    assert_eq!(keys, [format!("out/{id}/manifest.json.out"), format!("out/{id}/records.jsonl.out")]);

    let out = s3.get_object().bucket(&emu.bucket).key(format!("out/{id}/records.jsonl.out")).send().await.unwrap();
    let text = String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 120);
    let ids: Vec<&str> = lines.iter().map(|l| l["recordId"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_ne!(ids, sorted, "output order should differ from input order");
    for l in &lines {
        let n: usize = l["recordId"].as_str().unwrap()[3..].parse().unwrap();
        if n == 7 {
            assert_eq!(l["error"]["errorCode"], 500);
        } else {
            let text = l["modelOutput"]["content"][0]["text"].as_str().unwrap();
            assert!(text.contains(&format!("Question number {n}?")), "{text}");
        }
    }
    let manifest = s3.get_object().bucket(&emu.bucket).key(format!("out/{id}/manifest.json.out")).send().await.unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.body.collect().await.unwrap().to_vec()).unwrap();
    assert_eq!(manifest["totalRecordCount"], 120);
    assert_eq!(manifest["errorRecordCount"], 1);
    assert!(manifest["inputTokenCount"].as_u64().unwrap() > 0);
    emu.stop().await;
}

#[tokio::test]
async fn a_bad_job_name_is_a_validation_exception_and_too_few_records_fail_the_job() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let (s3, br) = clients(&emu).await;
    let err = create(&br, &emu.bucket, "bad_name", "in/x/", None).await.unwrap_err();
    assert!(matches!(err, aws_sdk_bedrock::Error::ValidationException(_)), "{err:?}");

    let body: String = (0..5).map(|i| record(i, "") + "\n").collect();
    s3.put_object()
        .bucket(&emu.bucket)
        .key("in/few/r.jsonl")
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await
        .unwrap();
    let arn = create(&br, &emu.bucket, "too-few", "in/few/r.jsonl", None).await.unwrap();
    let job = wait_terminal(&br, &arn).await;
    assert_eq!(job.status(), Some(&ModelInvocationJobStatus::Failed));
    assert!(job.message().unwrap().contains("minimum of 100"), "{:?}", job.message());
    emu.stop().await;
}
