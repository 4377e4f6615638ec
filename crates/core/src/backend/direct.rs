//! The on-demand back-end: one Bedrock runtime call per request, through the AWS SDK for Rust
//! (signing, retries, endpoints and errors are the SDK's). InvokeModel takes the body as it is. A
//! Converse request arrives as JSON (as on the wire): the SDK builds the call from its model id
//! and sends that JSON as the body, and the answer is the response body the SDK read, so every
//! member crosses as AWS defines it without a mapping of each type here. The streaming calls
//! (ConverseStream, InvokeModelWithResponseStream) settle when the stream opens; its event
//! messages are then read off the response body as they arrive (see `event_stream`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;

use super::bedrock::AwsClients;
use super::sdk_error::map_sdk_error;
use super::DirectBackend;
use crate::error::{EngineError, ErrorName};
use crate::request::{Operation, Request};
use crate::settle::{EventStream, Success};

/// Event arrays waiting for the caller, per stream, before the reader waits.
const STREAM_BUFFER: usize = 16;

/// The on-demand back-end.
#[derive(Debug, Clone)]
pub struct BedrockDirect {
    clients: AwsClients,
}

impl BedrockDirect {
    /// A back-end over built clients.
    pub fn new(clients: AwsClients) -> Self {
        BedrockDirect { clients }
    }

    async fn invoke_model(&self, r: &Request) -> Result<Success, EngineError> {
        use aws_sdk_bedrockruntime::types::{PerformanceConfigLatency, ServiceTierType, Trace};
        let o = r.options();
        let out = self
            .clients
            .runtime
            .invoke_model()
            .model_id(&*r.model_id)
            .body(aws_smithy_types::Blob::new(r.body.to_vec()))
            .content_type(o.content_type.clone().unwrap_or_else(|| "application/json".into()))
            .set_accept(o.accept.clone())
            .set_trace(o.trace.as_deref().map(Trace::from))
            .set_guardrail_identifier(o.guardrail_identifier.clone())
            .set_guardrail_version(o.guardrail_version.clone())
            .set_performance_config_latency(o.performance_config_latency.as_deref().map(PerformanceConfigLatency::from))
            .set_service_tier(o.service_tier.as_deref().map(ServiceTierType::from))
            .set_request_metadata(o.request_metadata.clone())
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        Ok(Success {
            content_type: out.content_type().to_string(),
            request_id: aws_sdk_bedrockruntime::operation::RequestId::request_id(&out).map(str::to_string),
            performance_config_latency: out.performance_config_latency().map(|p| p.as_str().to_string()),
            service_tier: out.service_tier().map(|s| s.as_str().to_string()),
            job_arn: None,
            body: out.body.into_inner().into(),
            attempts: 0,
            stream: None,
        })
    }

    async fn converse(&self, r: &Request) -> Result<Success, EngineError> {
        let body = r.body.clone();
        let raw = RawBody::default();
        let out = self
            .clients
            .runtime
            .converse()
            .model_id(&*r.model_id)
            .customize()
            .mutate_request(wire_body(body))
            .interceptor(raw.clone())
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        let body = raw.take().ok_or_else(|| {
            EngineError::new(ErrorName::InternalServerException, "the Converse response body was not read")
                .with_status(500)
        })?;
        Ok(Success {
            content_type: "application/json".into(),
            request_id: aws_sdk_bedrockruntime::operation::RequestId::request_id(&out).map(str::to_string),
            body,
            ..Default::default()
        })
    }

    async fn converse_stream(&self, r: &Request) -> Result<Success, EngineError> {
        let body = r.body.clone();
        let raw = StreamBody::default();
        let out = self
            .clients
            .runtime
            .converse_stream()
            .model_id(&*r.model_id)
            .customize()
            .mutate_request(wire_body(body))
            .interceptor(raw.clone())
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        let request_id = aws_sdk_bedrockruntime::operation::RequestId::request_id(&out).map(str::to_string);
        Ok(Success { content_type: "application/json".into(), request_id, ..raw.open()? })
    }

    async fn invoke_model_stream(&self, r: &Request) -> Result<Success, EngineError> {
        use aws_sdk_bedrockruntime::types::{PerformanceConfigLatency, ServiceTierType, Trace};
        let o = r.options();
        let raw = StreamBody::default();
        let out = self
            .clients
            .runtime
            .invoke_model_with_response_stream()
            .model_id(&*r.model_id)
            .body(aws_smithy_types::Blob::new(r.body.to_vec()))
            .content_type(o.content_type.clone().unwrap_or_else(|| "application/json".into()))
            .set_accept(o.accept.clone())
            .set_trace(o.trace.as_deref().map(Trace::from))
            .set_guardrail_identifier(o.guardrail_identifier.clone())
            .set_guardrail_version(o.guardrail_version.clone())
            .set_performance_config_latency(o.performance_config_latency.as_deref().map(PerformanceConfigLatency::from))
            .set_service_tier(o.service_tier.as_deref().map(ServiceTierType::from))
            .set_request_metadata(o.request_metadata.clone())
            .customize()
            .interceptor(raw.clone())
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        Ok(Success {
            content_type: out.content_type().to_string(),
            request_id: aws_sdk_bedrockruntime::operation::RequestId::request_id(&out).map(str::to_string),
            performance_config_latency: out.performance_config_latency().map(|p| p.as_str().to_string()),
            service_tier: out.service_tier().map(|s| s.as_str().to_string()),
            ..raw.open()?
        })
    }
}

/// Sends the Converse request's body as it is (the wire JSON the JS layer serialized), in place of
/// what the SDK's serializer would write from an empty input.
fn wire_body(body: Bytes) -> impl Fn(&mut aws_smithy_runtime_api::http::Request) + Send + Sync + 'static {
    move |req| {
        *req.body_mut() = SdkBody::from(body.clone());
        req.headers_mut().insert("content-length", body.len().to_string());
    }
}

#[async_trait]
impl DirectBackend for BedrockDirect {
    async fn count_tokens(&self, model_id: &str, body: Bytes) -> Result<u64, EngineError> {
        use aws_sdk_bedrockruntime::types::{CountTokensInput, InvokeModelTokensRequest};
        let request = InvokeModelTokensRequest::builder()
            .body(aws_smithy_types::Blob::new(body.to_vec()))
            .build()
            .map_err(|e| EngineError::validation(e.to_string()))?;
        let out = self
            .clients
            .runtime
            .count_tokens()
            .model_id(model_id)
            .input(CountTokensInput::InvokeModel(request))
            .send()
            .await
            .map_err(|e| map_sdk_error(&e))?;
        Ok(u64::try_from(out.input_tokens()).unwrap_or(0))
    }

    async fn invoke(&self, r: &Request) -> Result<Success, EngineError> {
        match r.operation {
            Operation::InvokeModel => self.invoke_model(r).await,
            Operation::InvokeModelWithResponseStream => self.invoke_model_stream(r).await,
            Operation::Converse => self.converse(r).await,
            Operation::ConverseStream => self.converse_stream(r).await,
        }
    }
}

/// Takes a streaming call's response body from the SDK once the stream opened (a successful
/// status), so its event messages are read here, as they are on the wire.
#[derive(Debug, Clone, Default)]
struct StreamBody(Arc<Mutex<Option<SdkBody>>>);

impl StreamBody {
    /// The answer of an opened stream: no events yet, the rest read from the body as it comes.
    fn open(&self) -> Result<Success, EngineError> {
        let body = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let body = body.ok_or_else(|| {
            EngineError::new(ErrorName::InternalServerException, "the stream's response body was not read")
                .with_status(500)
        })?;
        let (tx, stream) = EventStream::channel(STREAM_BUFFER);
        tokio::spawn(super::event_stream::read_events(body, tx));
        Ok(Success { body: Bytes::from_static(b"[]"), stream: Some(stream), ..Default::default() })
    }
}

impl Intercept for StreamBody {
    fn name(&self) -> &'static str {
        "StreamBody"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.response().status().is_success() {
            let body = context.response_mut().take_body();
            *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(body);
        }
        Ok(())
    }
}

/// Keeps the response body the SDK read (a non-streaming operation's body is in memory when it
/// is deserialized).
#[derive(Debug, Clone, Default)]
struct RawBody(Arc<Mutex<Option<Bytes>>>);

impl RawBody {
    fn take(&self) -> Option<Bytes> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl Intercept for RawBody {
    fn name(&self) -> &'static str {
        "RawBody"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Bytes::copy_from_slice(bytes));
        }
        Ok(())
    }
}
