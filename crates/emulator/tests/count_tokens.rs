//! CountTokens through the real AWS SDK for Rust (aws-sdk-bedrockruntime, on 127.0.0.1): its count
//! is the input usage the same request reports when it runs, on demand (InvokeModel, Converse) and
//! as a batch record (the record's `modelOutput.usage` and the job manifest's total), whichever
//! shape carries the request: a Converse request and the Claude body the engine converts it into
//! (`bedrock_batch_core::convert::converse_to_claude`) count the same.

use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseTokensRequest, CountTokensInput, ImageBlock, ImageFormat, ImageSource,
    InvokeModelTokensRequest, Message, SystemContentBlock, Tool, ToolConfiguration, ToolInputSchema, ToolResultBlock,
    ToolResultContentBlock, ToolSpecification, ToolUseBlock,
};
use aws_sdk_s3::primitives::ByteStream;
use bedrock_batch_core::convert::converse_to_claude;
use bedrock_batch_emulator::{Emulator, EmulatorOptions};
use serde_json::{json, Value};

const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const UNSUPPORTED: &str = "The provided model doesn't support counting tokens.";

/// A one-pixel PNG, base64.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

struct Sdk {
    runtime: aws_sdk_bedrockruntime::Client,
    bedrock: aws_sdk_bedrock::Client,
    s3: aws_sdk_s3::Client,
}

async fn shared(emu: &Emulator, key: &str, secret: &str) -> aws_config::SdkConfig {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let creds = aws_sdk_bedrockruntime::config::Credentials::new(key, secret, None, None, "test");
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(emu.region.clone()))
        .credentials_provider(creds)
        .load()
        .await
}

fn runtime_with(emu: &Emulator, shared: &aws_config::SdkConfig) -> aws_sdk_bedrockruntime::Client {
    aws_sdk_bedrockruntime::Client::from_conf(
        aws_sdk_bedrockruntime::config::Builder::from(shared)
            .endpoint_url(&emu.endpoints.bedrock_runtime)
            .retry_config(aws_sdk_bedrockruntime::config::retry::RetryConfig::disabled())
            .build(),
    )
}

async fn sdk(emu: &Emulator) -> Sdk {
    let shared = shared(emu, &emu.access_key_id, &emu.secret_access_key).await;
    Sdk {
        runtime: runtime_with(emu, &shared),
        bedrock: aws_sdk_bedrock::Client::from_conf(
            aws_sdk_bedrock::config::Builder::from(&shared).endpoint_url(&emu.endpoints.bedrock).build(),
        ),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared).endpoint_url(&emu.endpoints.s3).force_path_style(true).build(),
        ),
    }
}

// ===== Converse requests as JSON (for the engine's converter) and as the SDK's types =====

fn to_document(v: &Value) -> aws_smithy_types::Document {
    use aws_smithy_types::{Document, Number};
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or_default()),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect()),
    }
}

fn bytes(b64: &Value) -> Blob {
    Blob::new(aws_smithy_types::base64::decode(b64.as_str().unwrap()).unwrap())
}

/// A content block of the JSON request as the SDK's type (the kinds these tests use).
fn block(b: &Value) -> ContentBlock {
    if let Some(t) = b.get("text") {
        return ContentBlock::Text(t.as_str().unwrap().to_string());
    }
    if let Some(img) = b.get("image") {
        return ContentBlock::Image(
            ImageBlock::builder()
                .format(ImageFormat::from(img["format"].as_str().unwrap()))
                .source(ImageSource::Bytes(bytes(&img["source"]["bytes"])))
                .build()
                .unwrap(),
        );
    }
    if let Some(u) = b.get("toolUse") {
        return ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id(u["toolUseId"].as_str().unwrap())
                .name(u["name"].as_str().unwrap())
                .input(to_document(&u["input"]))
                .build()
                .unwrap(),
        );
    }
    if let Some(r) = b.get("toolResult") {
        let content = r["content"].as_array().unwrap().iter().map(|c| match c.get("text") {
            Some(t) => ToolResultContentBlock::Text(t.as_str().unwrap().to_string()),
            None => ToolResultContentBlock::Json(to_document(&c["json"])),
        });
        return ContentBlock::ToolResult(
            ToolResultBlock::builder()
                .tool_use_id(r["toolUseId"].as_str().unwrap())
                .set_content(Some(content.collect()))
                .build()
                .unwrap(),
        );
    }
    panic!("no SDK block for {b}")
}

/// The SDK's messages, system blocks and tool configuration of a JSON Converse request.
fn sdk_parts(request: &Value) -> (Vec<Message>, Option<Vec<SystemContentBlock>>, Option<ToolConfiguration>) {
    let messages = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = ConversationRole::from(m["role"].as_str().unwrap());
            let content = m["content"].as_array().unwrap().iter().map(block).collect();
            Message::builder().role(role).set_content(Some(content)).build().unwrap()
        })
        .collect();
    let system = request.get("system").map(|s| {
        s.as_array()
            .unwrap()
            .iter()
            .map(|b| SystemContentBlock::Text(b["text"].as_str().unwrap().to_string()))
            .collect()
    });
    let tools = request.get("toolConfig").map(|c| {
        let tools = c["tools"].as_array().unwrap().iter().map(|t| {
            let spec = &t["toolSpec"];
            Tool::ToolSpec(
                ToolSpecification::builder()
                    .name(spec["name"].as_str().unwrap())
                    .set_description(spec["description"].as_str().map(str::to_string))
                    .input_schema(ToolInputSchema::Json(to_document(&spec["inputSchema"]["json"])))
                    .build()
                    .unwrap(),
            )
        });
        ToolConfiguration::builder().set_tools(Some(tools.collect())).build().unwrap()
    });
    (messages, system, tools)
}

fn user(blocks: Value) -> Value {
    json!({ "role": "user", "content": blocks })
}

/// Converse requests: plain text, a system prompt, several turns, a tool call with its result, an
/// image.
fn cases() -> Vec<(&'static str, Value)> {
    let tools = json!({ "tools": [{ "toolSpec": { "name": "get_weather", "description": "The weather in a city",
        "inputSchema": { "json": { "type": "object", "properties": { "city": { "type": "string" }, "unit": { "type": "string", "enum": ["C", "F"] } }, "required": ["city"] } } } }] });
    vec![
        ("plain text", json!({ "messages": [user(json!([{ "text": "What is the capital of Norway?" }]))] })),
        (
            "a system prompt",
            json!({ "system": [{ "text": "You are a terse geographer." }], "messages": [user(json!([{ "text": "Capital of Peru?" }]))] }),
        ),
        (
            "several turns",
            json!({ "messages": [
                user(json!([{ "text": "My name is Ada." }])),
                { "role": "assistant", "content": [{ "text": "Nice to meet you, Ada." }] },
                user(json!([{ "text": "What is my name?" }])),
            ] }),
        ),
        (
            "a tool call and its result",
            json!({ "messages": [
                user(json!([{ "text": "What is the weather in Oslo? [[tool:get_weather]]" }])),
                { "role": "assistant", "content": [{ "text": "Checking." },
                    { "toolUse": { "toolUseId": "tooluse_kVcGnVmdR3uY0bW1kCHqLw", "name": "get_weather", "input": { "city": "Oslo", "unit": "C", "days": 3 } } }] },
                user(json!([{ "toolResult": { "toolUseId": "tooluse_kVcGnVmdR3uY0bW1kCHqLw",
                    "content": [{ "json": { "temperature": 21, "sky": "sunny", "wind": { "speed": 4.5, "from": "NW" } } }, { "text": "Updated hourly." }] } }])),
            ], "toolConfig": tools }),
        ),
        (
            "an image",
            json!({ "messages": [user(json!([{ "image": { "format": "png", "source": { "bytes": PNG } } }, { "text": "What is in this picture?" }]))] }),
        ),
    ]
}

async fn count(runtime: &aws_sdk_bedrockruntime::Client, model: &str, input: CountTokensInput) -> i32 {
    let out = runtime.count_tokens().model_id(model).input(input).send().await.expect("count tokens");
    out.input_tokens()
}

fn converse_input(request: &Value) -> CountTokensInput {
    let (messages, system, tools) = sdk_parts(request);
    CountTokensInput::Converse(
        ConverseTokensRequest::builder().set_messages(Some(messages)).set_system(system).set_tool_config(tools).build(),
    )
}

fn invoke_input(body: &Value) -> CountTokensInput {
    CountTokensInput::InvokeModel(
        InvokeModelTokensRequest::builder().body(Blob::new(body.to_string().into_bytes())).build().unwrap(),
    )
}

#[tokio::test]
async fn count_tokens_is_the_usage_of_the_same_request_on_demand_in_either_shape() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let sdk = sdk(&emu).await;
    let mut seen = Vec::new();
    for (name, request) in cases() {
        let counted = count(&sdk.runtime, CLAUDE, converse_input(&request)).await;
        assert!(counted > 0, "{name}");

        // Converse on demand reports it as its input usage.
        let (messages, system, tools) = sdk_parts(&request);
        let conversed = sdk
            .runtime
            .converse()
            .model_id(CLAUDE)
            .set_messages(Some(messages))
            .set_system(system)
            .set_tool_config(tools)
            .send()
            .await
            .unwrap();
        assert_eq!(conversed.usage().unwrap().input_tokens(), counted, "{name}: Converse usage");

        // The Claude body the engine converts the request into: counted as InvokeModel's input,
        // and reported as InvokeModel's usage.
        let native = converse_to_claude(&request, CLAUDE).unwrap();
        assert_eq!(
            count(&sdk.runtime, CLAUDE, invoke_input(&native)).await,
            counted,
            "{name}: CountTokens invokeModel"
        );
        let invoked = sdk
            .runtime
            .invoke_model()
            .model_id(CLAUDE)
            .content_type("application/json")
            .body(Blob::new(native.to_string().into_bytes()))
            .send()
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(invoked.body().as_ref()).unwrap();
        assert_eq!(answer["usage"]["input_tokens"], json!(counted), "{name}: InvokeModel usage");
        seen.push(counted);
    }
    // The cases differ, and so do their counts.
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "{seen:?}");
    emu.stop().await;
}

#[tokio::test]
async fn a_batch_record_reports_the_count_and_the_manifest_totals_it() {
    let emu = Emulator::start(EmulatorOptions {
        min_records: bedrock_batch_emulator::options::MinRecords::All(1),
        ..Default::default()
    })
    .await
    .unwrap();
    let sdk = sdk(&emu).await;
    // Each case as the engine batches it: an InvokeModel record with the Claude body.
    let mut expected = Vec::new();
    let mut lines = String::new();
    for (i, (name, request)) in cases().into_iter().enumerate() {
        let native = converse_to_claude(&request, CLAUDE).unwrap();
        expected.push((name, count(&sdk.runtime, CLAUDE, converse_input(&request)).await));
        lines += &format!("{}\n", json!({ "recordId": format!("REC{i:08}"), "modelInput": native }));
    }
    sdk.s3
        .put_object()
        .bucket(&emu.bucket)
        .key("count/in/records.jsonl")
        .body(ByteStream::from(lines.into_bytes()))
        .send()
        .await
        .unwrap();
    let arn = run_job(&sdk, &emu.bucket).await;
    let id = arn.rsplit('/').next().unwrap();
    let out = read(&sdk, &emu.bucket, &format!("count/out/{id}/records.jsonl.out")).await;
    let mut reported: Vec<(usize, i64)> = out
        .lines()
        .map(|l| {
            let l: Value = serde_json::from_str(l).unwrap();
            let i: usize = l["recordId"].as_str().unwrap()[3..].parse().unwrap();
            (i, l["modelOutput"]["usage"]["input_tokens"].as_i64().unwrap())
        })
        .collect();
    reported.sort();
    assert_eq!(reported.len(), expected.len());
    for ((i, tokens), (name, counted)) in reported.iter().zip(&expected) {
        assert_eq!(*tokens, i64::from(*counted), "record {i} ({name})");
    }
    let manifest: Value =
        serde_json::from_str(&read(&sdk, &emu.bucket, &format!("count/out/{id}/manifest.json.out")).await).unwrap();
    let total: i64 = expected.iter().map(|(_, c)| i64::from(*c)).sum();
    assert_eq!(manifest["inputTokenCount"], json!(total));
    emu.stop().await;
}

async fn run_job(sdk: &Sdk, bucket: &str) -> String {
    use aws_sdk_bedrock::types::{
        ModelInvocationJobInputDataConfig as Input, ModelInvocationJobOutputDataConfig as Output,
        ModelInvocationJobS3InputDataConfig as S3In, ModelInvocationJobS3OutputDataConfig as S3Out,
        ModelInvocationJobStatus as Status,
    };
    let arn = sdk
        .bedrock
        .create_model_invocation_job()
        .job_name("count-tokens")
        .role_arn("arn:aws:iam::123456789012:role/BedrockBatch")
        .model_id(CLAUDE)
        .input_data_config(Input::S3InputDataConfig(
            S3In::builder().s3_uri(format!("s3://{bucket}/count/in/")).build().unwrap(),
        ))
        .output_data_config(Output::S3OutputDataConfig(
            S3Out::builder().s3_uri(format!("s3://{bucket}/count/out/")).build().unwrap(),
        ))
        .send()
        .await
        .unwrap()
        .job_arn()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = sdk.bedrock.get_model_invocation_job().job_identifier(&arn).send().await.unwrap();
        match job.status() {
            Some(Status::Completed) => return arn,
            Some(Status::InProgress | Status::Submitted | Status::Validating | Status::Scheduled) => {}
            other => panic!("the job ended {other:?}: {:?}", job.message()),
        }
        assert!(Instant::now() < deadline, "the job did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn read(sdk: &Sdk, bucket: &str, key: &str) -> String {
    let out = sdk.s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
}

/// (HTTP status, error code, message) of a refused CountTokens.
async fn refusal(
    runtime: &aws_sdk_bedrockruntime::Client,
    model: &str,
    input: CountTokensInput,
) -> (u16, String, String) {
    let err = runtime.count_tokens().model_id(model).input(input).send().await.expect_err("refused");
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
    (status, err.code().unwrap_or_default().to_string(), err.message().unwrap_or_default().to_string())
}

#[tokio::test]
async fn other_models_profiles_and_arns_do_not_count_tokens() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let sdk = sdk(&emu).await;
    let request = &cases()[0].1;
    for model in [
        "amazon.nova-lite-v1:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    ] {
        let refused = refusal(&sdk.runtime, model, converse_input(request)).await;
        assert_eq!(refused, (400, "ValidationException".to_string(), UNSUPPORTED.to_string()), "{model}");
    }
    // Nova answers Converse, but counts no tokens.
    let native = converse_to_claude(request, CLAUDE).unwrap();
    assert_eq!(refusal(&sdk.runtime, "amazon.nova-lite-v1:0", invoke_input(&native)).await.2, UNSUPPORTED);
    emu.stop().await;
}

#[tokio::test]
async fn a_body_the_model_cannot_read_and_an_input_the_model_forbids_are_validation_exceptions() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let sdk = sdk(&emu).await;
    let raw = |b: &[u8]| {
        CountTokensInput::InvokeModel(InvokeModelTokensRequest::builder().body(Blob::new(b.to_vec())).build().unwrap())
    };
    let (status, code, message) = refusal(&sdk.runtime, CLAUDE, raw(b"{not json")).await;
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(message.starts_with("Malformed input request: "), "{message}");
    // JSON, but not a Claude body: InvokeModel's words for it.
    let (status, _, message) =
        refusal(&sdk.runtime, CLAUDE, raw(br#"{"messages":[{"role":"user","content":"hi"}]}"#)).await;
    assert_eq!(status, 400);
    assert_eq!(message, "Malformed input request: #: required key [anthropic_version] not found, please reformat your input and try again.");
    // A model id the service model's pattern refuses.
    let (status, code, message) = refusal(&sdk.runtime, "not a model!", converse_input(&cases()[0].1)).await;
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert_eq!(
        message,
        "1 validation error detected: Value 'not a model!' at 'modelId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z_\\.\\-/0-9:]+"
    );
    // Nothing to count but the request itself: its frame.
    let empty = CountTokensInput::Converse(ConverseTokensRequest::builder().build());
    assert_eq!(count(&sdk.runtime, CLAUDE, empty).await, 3, "nothing but the request's frame");
    emu.stop().await;
}

#[tokio::test]
async fn count_tokens_is_signed_like_every_runtime_call() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let request = &cases()[0].1;
    let wrong_secret = runtime_with(&emu, &shared(&emu, &emu.access_key_id, "not-the-secret").await);
    let refused = refusal(&wrong_secret, CLAUDE, converse_input(request)).await;
    assert_eq!((refused.0, refused.1.as_str()), (403, "InvalidSignatureException"));
    let unknown = runtime_with(&emu, &shared(&emu, "AKIDNOTTHEEMULATORS1", &emu.secret_access_key).await);
    let refused = refusal(&unknown, CLAUDE, converse_input(request)).await;
    assert_eq!((refused.0, refused.1.as_str()), (403, "UnrecognizedClientException"));
    let ok = runtime_with(&emu, &shared(&emu, &emu.access_key_id, &emu.secret_access_key).await);
    assert!(count(&ok, CLAUDE, converse_input(request)).await > 0);
    emu.stop().await;
}
