//! The real Bedrock back-end (AWS SDK for Rust) against the emulator and its S3 server on 127.0.0.1.

use std::sync::{Arc, Mutex};

use bedrock_batch_core::backend::bedrock::{AwsClients, AwsSettings, BedrockBatch};
use bedrock_batch_core::backend::{BatchBackend, JobSpec};
use bedrock_batch_core::jsonl;
use bedrock_batch_core::BatchConfig;
use bedrock_batch_emulator::{Emulator, EmulatorOptions};

async fn backend(emu: &Emulator, threshold: usize, part: usize) -> (BedrockBatch, BatchConfig) {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let settings = AwsSettings {
        region: Some(emu.region.clone()),
        credentials: Some((emu.access_key_id.clone(), emu.secret_access_key.clone(), None)),
        bedrock_endpoint: Some(emu.endpoints.bedrock.clone()),
        bedrock_runtime_endpoint: Some(emu.endpoints.bedrock_runtime.clone()),
        s3_endpoint: Some(emu.endpoints.s3.clone()),
        service_quotas_endpoint: None,
        force_path_style: None,
        credential_source: None,
    };
    let config = BatchConfig {
        s3_input_uri: format!("s3://{}/in/", emu.bucket),
        s3_output_uri: format!("s3://{}/out/", emu.bucket),
        role_arn: "arn:aws:iam::123456789012:role/BedrockBatch".into(),
        ..Default::default()
    };
    let clients = AwsClients::new(&settings).await;
    (BedrockBatch::new(clients, config.clone()).with_multipart(threshold, part), config)
}

fn claude(i: usize, pad: usize) -> Vec<u8> {
    serde_json::json!({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
        "messages": [{ "role": "user", "content": format!("question {i} {}", "x".repeat(pad)) }]
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_large_input_is_uploaded_in_parts_and_reads_back_line_for_line() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let (b, _) = backend(&emu, 5 * 1024 * 1024, 5 * 1024 * 1024).await;
    let mut data = Vec::new();
    for i in 0..12_000 {
        jsonl::push_input_line(&mut data, &jsonl::record_id(i), &claude(i as usize, 1000));
    }
    assert!(data.len() > 2 * 5 * 1024 * 1024, "three parts at least: {} bytes", data.len());
    let uri = b.upload("batch-1", "records.jsonl", bytes::Bytes::from(data.clone())).await.unwrap();
    assert_eq!(uri, format!("s3://{}/in/batch-1/", emu.bucket));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    b.read_input(&uri, "records.jsonl", &mut |l: &bytes::Bytes| sink.lock().unwrap().push(l.to_vec())).await.unwrap();
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    assert_eq!(lines.len(), 12_000);
    let mut expected = Vec::new();
    for l in lines.iter() {
        expected.extend_from_slice(l);
        expected.push(b'\n');
    }
    assert_eq!(expected, data, "the object is the file, byte for byte");
    emu.stop().await;
}

#[tokio::test]
async fn a_job_runs_through_the_sdk_and_its_output_streams_back() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let (b, config) = backend(&emu, usize::MAX, 1).await;
    let mut data = Vec::new();
    for i in 0..150 {
        jsonl::push_input_line(&mut data, &jsonl::record_id(i), &claude(i as usize, 0));
    }
    let uri = b.upload("batch-2", "records.jsonl", bytes::Bytes::from(data)).await.unwrap();
    let spec = JobSpec {
        job_name: "sdk-round-trip".into(),
        client_request_token: "sdk-round-trip-token".into(),
        model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        invocation_type: bedrock_batch_core::InvocationType::InvokeModel,
        input_uri: uri,
        output_uri: config.s3_output_uri.clone(),
    };
    let arn = b.create_job(&spec).await.unwrap();
    assert_eq!(b.create_job(&spec).await.unwrap(), arn, "the same token gives the same job");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let info = loop {
        let info = b.get_job(&arn).await.unwrap();
        if info.is_terminal() {
            break info;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(info.status.as_str(), "Completed");
    assert_eq!(info.total_record_count, Some(150));
    let mut answered = 0;
    let tokens = b
        .read_output(&config.s3_output_uri, &arn, &mut |l: &bytes::Bytes| {
            if let Some(jsonl::OutputLine::Success { record_id, output }) = jsonl::parse_output_line(l) {
                let i = jsonl::parse_record_id(&record_id).unwrap();
                let v: serde_json::Value = serde_json::from_slice(output).unwrap();
                assert!(v["content"][0]["text"].as_str().unwrap().contains(&format!("question {i} ")));
                answered += 1;
            }
        })
        .await
        .unwrap()
        .expect("manifest tokens");
    assert_eq!(answered, 150);
    assert!(tokens.input > 0 && tokens.output > 0);
    // Stopping a finished job is a ConflictException, mapped by name.
    let e = b.stop_job(&arn).await.unwrap_err();
    assert_eq!(e.name.as_str(), "ConflictException");
    assert!(!e.transient);
    emu.stop().await;
}

#[tokio::test]
async fn an_object_read_in_ranges_gives_every_line_once_even_lines_longer_than_a_range() {
    use bedrock_batch_core::backend::lines::{read_lines, RangeReads};
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let settings = AwsSettings {
        region: Some(emu.region.clone()),
        credentials: Some((emu.access_key_id.clone(), emu.secret_access_key.clone(), None)),
        s3_endpoint: Some(emu.endpoints.s3.clone()),
        ..Default::default()
    };
    let clients = AwsClients::new(&settings).await;
    // Lines of every length around the range size (64), one far longer than a range, one ending
    // in \r\n, and no newline after the last.
    let mut want: Vec<String> = (0..300).map(|i| format!("line {i} {}", "y".repeat((i * 7) % 150))).collect();
    want.push(format!("long {}", "z".repeat(1000)));
    let mut text = String::new();
    for (i, l) in want.iter().enumerate() {
        text.push_str(l);
        text.push_str(if i == 17 { "\r\n" } else { "\n" });
    }
    want.push("last without newline".into());
    text.push_str("last without newline");
    clients
        .s3
        .put_object()
        .bucket(&emu.bucket)
        .key("ranges/a.out")
        .body(text.clone().into_bytes().into())
        .send()
        .await
        .unwrap();
    for (range_bytes, readers) in [(64, 3), (64, 64), (1000, 2), (1 << 20, 4)] {
        let mut got: Vec<String> = Vec::new();
        read_lines(
            &clients.s3,
            &emu.bucket,
            "ranges/a.out",
            Some(text.len() as u64),
            RangeReads { range_bytes, readers },
            &mut |l: &bytes::Bytes| got.push(String::from_utf8(l.to_vec()).unwrap()),
        )
        .await
        .unwrap();
        got.sort();
        let mut expected = want.clone();
        expected.sort();
        assert_eq!(got, expected, "ranges of {range_bytes} bytes, {readers} at once");
    }
    emu.stop().await;
}
