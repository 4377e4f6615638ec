//! The streaming runtime operations through the real AWS SDK for Rust (aws-sdk-bedrockruntime, over
//! HTTP/1.1 on 127.0.0.1): its event-stream decoder checks every frame's CRCs and reads each event
//! into the model's types, and the streamed answer equals the non-streaming one.

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseStreamOutput, Message,
    ResponseStream, StopReason,
};
use bedrock_batch_emulator::{Emulator, EmulatorOptions};
use serde_json::{json, Value};

const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn runtime(emu: &Emulator) -> aws_sdk_bedrockruntime::Client {
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let creds = aws_sdk_bedrockruntime::config::Credentials::new(
        &emu.access_key_id,
        &emu.secret_access_key,
        None,
        None,
        "test",
    );
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(emu.region.clone()))
        .credentials_provider(creds)
        .load()
        .await;
    aws_sdk_bedrockruntime::Client::from_conf(
        aws_sdk_bedrockruntime::config::Builder::from(&shared).endpoint_url(&emu.endpoints.bedrock_runtime).build(),
    )
}

fn user(text: &str) -> Message {
    Message::builder().role(ConversationRole::User).content(ContentBlock::Text(text.to_string())).build().unwrap()
}

#[tokio::test]
async fn converse_stream_deltas_make_the_converse_answer() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let rt = runtime(&emu).await;
    let question = "Stream me the answer to question number 42, please.";
    let whole = rt.converse().model_id(CLAUDE).messages(user(question)).send().await.unwrap();
    let expected = match &whole.output().unwrap().as_message().unwrap().content()[0] {
        ContentBlock::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    let mut out = rt.converse_stream().model_id(CLAUDE).messages(user(question)).send().await.unwrap();
    let mut kinds = Vec::new();
    let mut text = String::new();
    let mut stop = None;
    let mut usage = None;
    while let Some(event) = out.stream.recv().await.unwrap() {
        match &event {
            ConverseStreamOutput::MessageStart(m) => assert_eq!(m.role(), &ConversationRole::Assistant),
            ConverseStreamOutput::ContentBlockDelta(d) => {
                assert_eq!(d.content_block_index(), 0);
                if let Some(ContentBlockDelta::Text(t)) = d.delta() {
                    text.push_str(t);
                }
            }
            ConverseStreamOutput::MessageStop(s) => stop = Some(s.stop_reason().clone()),
            ConverseStreamOutput::Metadata(m) => usage = m.usage().cloned(),
            _ => {}
        }
        kinds.push(format!("{event:?}").split('(').next().unwrap().to_string());
    }
    assert_eq!(text, expected);
    assert!(
        kinds.iter().filter(|k| *k == "ContentBlockDelta").count() > 1,
        "the text comes in several deltas: {kinds:?}"
    );
    assert_eq!(kinds.first().map(String::as_str), Some("MessageStart"));
    assert_eq!(kinds.last().map(String::as_str), Some("Metadata"));
    assert_eq!(stop, Some(whole.stop_reason().clone()));
    assert_eq!(usage.as_ref(), whole.usage());
    emu.stop().await;
}

#[tokio::test]
async fn a_tool_use_streams_its_start_and_input() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let rt = runtime(&emu).await;
    let schema = json!({ "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] });
    let spec = aws_sdk_bedrockruntime::types::ToolSpecification::builder()
        .name("get_weather")
        .input_schema(aws_sdk_bedrockruntime::types::ToolInputSchema::Json(to_document(&schema)))
        .build()
        .unwrap();
    let config = aws_sdk_bedrockruntime::types::ToolConfiguration::builder()
        .tools(aws_sdk_bedrockruntime::types::Tool::ToolSpec(spec))
        .build()
        .unwrap();
    let mut out = rt
        .converse_stream()
        .model_id(CLAUDE)
        .messages(user("Weather in Oslo? [[tool:get_weather]]"))
        .tool_config(config)
        .send()
        .await
        .unwrap();
    let mut started = None;
    let mut input = String::new();
    let mut stop = None;
    while let Some(event) = out.stream.recv().await.unwrap() {
        match event {
            ConverseStreamOutput::ContentBlockStart(s) => {
                if let Some(ContentBlockStart::ToolUse(t)) = s.start() {
                    started = Some((s.content_block_index(), t.name().to_string(), t.tool_use_id().to_string()));
                }
            }
            ConverseStreamOutput::ContentBlockDelta(d) => {
                if let Some(ContentBlockDelta::ToolUse(t)) = d.delta() {
                    input.push_str(t.input());
                }
            }
            ConverseStreamOutput::MessageStop(s) => stop = Some(s.stop_reason().clone()),
            _ => {}
        }
    }
    let (index, name, id) = started.expect("a contentBlockStart for the tool use");
    assert_eq!((index, name.as_str()), (1, "get_weather"));
    assert!(id.starts_with("tooluse_"), "{id}");
    assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({ "city": "Weather in Oslo?" }));
    assert_eq!(stop, Some(StopReason::ToolUse));
    emu.stop().await;
}

fn to_document(v: &Value) -> aws_smithy_types::Document {
    use aws_smithy_types::{Document, Number};
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => {
            Document::Number(n.as_u64().map_or(Number::Float(n.as_f64().unwrap_or(0.0)), Number::PosInt))
        }
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect()),
    }
}

#[tokio::test]
async fn invoke_with_response_stream_chunks_make_the_claude_answer() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let rt = runtime(&emu).await;
    let body = json!({ "anthropic_version": "bedrock-2023-05-31", "max_tokens": 100, "messages": [{ "role": "user", "content": "Tell me about streams" }] })
        .to_string();
    let whole = rt
        .invoke_model()
        .model_id(CLAUDE)
        .content_type("application/json")
        .body(Blob::new(body.clone()))
        .send()
        .await
        .unwrap();
    let whole: Value = serde_json::from_slice(whole.body().as_ref()).unwrap();
    let mut out = rt
        .invoke_model_with_response_stream()
        .model_id(CLAUDE)
        .content_type("application/json")
        .body(Blob::new(body))
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), "application/json");
    let mut chunks = Vec::new();
    while let Some(event) = out.body.recv().await.unwrap() {
        match event {
            ResponseStream::Chunk(part) => {
                chunks.push(serde_json::from_slice::<Value>(part.bytes().unwrap().as_ref()).unwrap())
            }
            other => panic!("{other:?}"),
        }
    }
    let text: String = chunks.iter().filter_map(|c| c.pointer("/delta/text").and_then(Value::as_str)).collect();
    assert_eq!(text, whole["content"][0]["text"].as_str().unwrap());
    assert_eq!(chunks[0]["message"]["id"], whole["id"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["type"], "message_stop");
    assert_eq!(last["amazon-bedrock-invocationMetrics"]["outputTokenCount"], whole["usage"]["output_tokens"]);
    emu.stop().await;
}

#[tokio::test]
async fn fault_markers_give_an_http_error_or_an_exception_event() {
    let emu = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let rt = runtime(&emu).await;
    // [[error:429]]: an HTTP 429 before any stream.
    let err = rt.converse_stream().model_id(CLAUDE).messages(user("slow down [[error:429]]")).send().await.unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_throttling_exception()), "{err:?}");
    // [[error:424]]: the stream starts, then ends with modelStreamErrorException.
    let mut out = rt.converse_stream().model_id(CLAUDE).messages(user("break [[error:424]]")).send().await.unwrap();
    let mut seen = 0;
    let err = loop {
        match out.stream.recv().await {
            Ok(Some(_)) => seen += 1,
            Ok(None) => panic!("the stream ended without an exception"),
            Err(e) => break e,
        }
    };
    assert!(seen >= 2, "events came before the exception ({seen})");
    let e = err.as_service_error().expect("a modelled exception");
    match e {
        aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError::ModelStreamErrorException(m) => {
            assert_eq!(m.original_status_code(), Some(424))
        }
        other => panic!("{other:?}"),
    }
    // [[stream-error:503]] on InvokeModelWithResponseStream: serviceUnavailableException in the stream.
    let body = json!({ "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{ "role": "user", "content": "x [[stream-error:503]]" }] })
        .to_string();
    let mut out = rt.invoke_model_with_response_stream().model_id(CLAUDE).body(Blob::new(body)).send().await.unwrap();
    let err = loop {
        match out.body.recv().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without an exception"),
            Err(e) => break e,
        }
    };
    assert!(err.as_service_error().is_some_and(|e| e.is_service_unavailable_exception()), "{err:?}");
    emu.stop().await;
}
