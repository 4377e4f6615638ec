//! The embedded S3 server: `s3s` + `s3s-fs` (a real S3 implementation that checks SigV4), behind a
//! thin layer that injects the configured faults, plus the client the emulator itself uses.

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use s3s::auth::{S3Auth, SecretKey, SimpleAuth};
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::options::S3Faults;
use crate::storms::Storms;

/// Access key the emulator hands to users (and tests).
pub const PUBLIC_ACCESS_KEY: &str = "BEDROCKEMULATORKEY01";
/// Its secret.
pub const PUBLIC_SECRET_KEY: &str = "bedrock-emulator-secret-key-not-a-real-secret";
/// Access key of the emulator's own S3 client; its requests are exempt from fault injection.
const INTERNAL_ACCESS_KEY: &str = "BEDROCKEMULATORINTERNAL";
const INTERNAL_SECRET_KEY: &str = "bedrock-emulator-internal-secret";

/// The S3 service with its fault state.
#[derive(Clone)]
pub struct FaultyS3 {
    inner: S3Service,
    storms: Arc<Storms>,
    latency: Duration,
}

impl FaultyS3 {
    /// Builds the S3 service over a folder; `storms` says which client requests fail.
    pub(crate) fn new(root: &std::path::Path, faults: &S3Faults, storms: Arc<Storms>) -> std::io::Result<Self> {
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut auth = SimpleAuth::new();
        auth.register(PUBLIC_ACCESS_KEY.to_string(), PUBLIC_SECRET_KEY.into());
        auth.register(INTERNAL_ACCESS_KEY.to_string(), INTERNAL_SECRET_KEY.into());
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(Keys(auth));
        Ok(FaultyS3 { inner: b.build(), storms, latency: Duration::from_millis(faults.latency_ms) })
    }

    /// Handles one HTTP request.
    pub async fn handle(&self, req: http::Request<hyper::body::Incoming>) -> Result<s3s::HttpResponse, s3s::HttpError> {
        if !is_internal(&req) {
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            if self.storms.s3_fails() {
                return Ok(slow_down());
            }
        }
        self.inner.call(req.map(s3s::Body::from)).await
    }
}

/// The emulator's two key pairs; an unknown key is refused as AWS S3 refuses it.
struct Keys(SimpleAuth);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<SecretKey> {
        match self.0.lookup(access_key) {
            Some(s) => Ok(s.clone()),
            None => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

fn is_internal(req: &http::Request<hyper::body::Incoming>) -> bool {
    let needle = format!("Credential={INTERNAL_ACCESS_KEY}/");
    req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains(&needle))
}

fn slow_down() -> s3s::HttpResponse {
    let rid = crate::ids::request_id();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>{rid}</RequestId></Error>"
    );
    http::Response::builder()
        .status(503)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", rid)
        .body(s3s::Body::from(body))
        .expect("static response")
}

/// The S3 client the emulator uses to read inputs and write outputs.
pub fn internal_client(endpoint: &str, region: &str) -> aws_sdk_s3::Client {
    let creds = Credentials::new(INTERNAL_ACCESS_KEY, INTERNAL_SECRET_KEY, None, None, "bedrock-batch-emulator");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Splits `s3://bucket/key/prefix` into bucket and key.
pub fn split_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), key.to_string()))
}

/// Every object under a prefix, with sizes (follows pagination).
pub async fn list_all(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<(String, i64)>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| describe_sdk_error(&e))?;
        for o in resp.contents() {
            if let Some(k) = o.key() {
                out.push((k.to_string(), o.size().unwrap_or(0)));
            }
        }
        match resp.next_continuation_token() {
            Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// Reads a whole object.
pub async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<bytes::Bytes, String> {
    let resp = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| describe_sdk_error(&e))?;
    let data = resp.body.collect().await.map_err(|e| e.to_string())?;
    Ok(data.into_bytes())
}

/// Writes a whole object.
pub async fn put_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: Vec<u8>) -> Result<(), String> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(data))
        .send()
        .await
        .map_err(|e| describe_sdk_error(&e))?;
    Ok(())
}

fn describe_sdk_error<E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    match e.as_service_error() {
        Some(se) => format!("{}: {}", se.code().unwrap_or("S3Error"), se.message().unwrap_or("")),
        None => format!("{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_split_into_bucket_and_key() {
        assert_eq!(split_uri("s3://b/in/x.jsonl"), Some(("b".into(), "in/x.jsonl".into())));
        assert_eq!(split_uri("s3://b"), Some(("b".into(), "".into())));
        assert_eq!(split_uri("http://b"), None);
    }
}
