//! Signature Version 4 checks of Bedrock requests (the control plane and the runtime, signing name
//! `bedrock`; another service's, such as Service Quotas', with its own signing name through
//! [`Verifier::verify_for`]) with AWS's answers: an unknown access key is
//! `UnrecognizedClientException`, a wrong signature or a clock more than five minutes off is
//! `InvalidSignatureException`, both 403.
//!
//! The canonical request is rebuilt from the wire over exactly the headers the request says it
//! signed (`host`, or `:authority` as the AWS SDK for JavaScript signs for the runtime), with the
//! path normalised and encoded twice as every AWS service but S3 expects; the signing key and the
//! HMAC come from the `aws-sigv4` crate (the AWS SDK for Rust's signer), the hash from `sha2`.
//! Tests check the result against `aws-sigv4`'s own complete signer.
//!
//! Two callers: the emulator checks its own callers with it, and `serve` (a local server that takes
//! Bedrock runtime calls from other programs) checks its callers against the keys it accepts.
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime};

use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The signing name of the control plane and of the runtime.
pub const SIGNING_NAME: &str = "bedrock";

/// How far a request's time may be from the verifier's clock, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why a request is refused: AWS's HTTP status, error type (`InvalidSignatureException`, ...) and
/// message, as the service would answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} ({status}): {message}")]
pub struct SignatureError {
    /// HTTP status (403 for every refusal).
    pub status: u16,
    /// AWS's error type.
    pub name: &'static str,
    /// AWS's message.
    pub message: String,
}

/// A key pair requests may be signed with.
#[derive(Clone)]
pub struct Key {
    /// The access key id a request names in its `Credential`.
    pub access_key_id: String,
    /// Its secret, from which the signing key is derived.
    pub secret_access_key: String,
}

/// What requests must be signed for.
pub struct Verifier {
    /// The keys a request may be signed with.
    pub keys: Vec<Key>,
    /// The region requests must be scoped to.
    pub region: String,
}

/// `Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=a;b, Signature=hex`.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn denied(name: &'static str, message: &str) -> SignatureError {
    SignatureError { status: 403, name, message: message.to_string() }
}

fn incomplete(message: &str) -> SignatureError {
    denied("IncompleteSignatureException", message)
}

fn invalid(message: &str) -> SignatureError {
    denied("InvalidSignatureException", message)
}

/// AWS's answer to a signature that does not match.
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl Verifier {
    /// Checks the signature of a Bedrock request (signing name [`SIGNING_NAME`]) whose body is
    /// `body`, at `now`. `Err` is AWS's 403 answer.
    pub fn verify(&self, parts: &http::request::Parts, body: &[u8], now: SystemTime) -> Result<(), SignatureError> {
        self.verify_for(SIGNING_NAME, parts, body, now)
    }

    /// [`Verifier::verify`] for a request to another AWS service, whose credential scope must name
    /// `signing_name` (`servicequotas` for Service Quotas).
    pub fn verify_for(
        &self,
        signing_name: &str,
        parts: &http::request::Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let Some(header) = parts.headers.get(http::header::AUTHORIZATION) else {
            return Err(denied("MissingAuthenticationTokenException", "Missing Authentication Token"));
        };
        let header = header.to_str().map_err(|_| incomplete("The Authorization header is not valid text."))?;
        if header.starts_with("Bearer ") {
            // A Bedrock API key: a verifier holds none, so no key is valid.
            return Err(denied(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        let auth = parse(header)?;
        let Some(key) = self.keys.iter().find(|k| k.access_key_id == auth.access_key_id) else {
            return Err(denied(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        };
        let Some(amz_date) = parts.headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
            return Err(incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            ));
        };
        let format = format_description!("[year][month][day]T[hour][minute][second]Z");
        let signed_at = PrimitiveDateTime::parse(amz_date, &format)
            .map_err(|_| incomplete(&format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601")))?
            .assume_utc();
        let now_utc = OffsetDateTime::from(now);
        let skew = time::Duration::try_from(MAX_SKEW).expect("five minutes");
        let basic = |t: OffsetDateTime| t.format(&format).unwrap_or_default();
        if signed_at < now_utc - skew {
            return Err(invalid(&format!(
                "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
                basic(now_utc - skew),
                basic(now_utc)
            )));
        }
        if signed_at > now_utc + skew {
            return Err(invalid(&format!(
                "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
                basic(now_utc + skew),
                basic(now_utc)
            )));
        }
        if auth.date != &amz_date[..8] {
            return Err(invalid(&format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                auth.date,
                &amz_date[..8]
            )));
        }
        if auth.service != signing_name {
            return Err(invalid(&format!("Credential should be scoped to correct service: '{signing_name}'. ")));
        }
        if auth.region != self.region {
            return Err(invalid("Credential should be scoped to a valid region. "));
        }
        if auth.terminator != "aws4_request" {
            return Err(invalid(&format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
                auth.terminator
            )));
        }
        if !auth.signed_headers.iter().any(|h| *h == "host" || *h == ":authority") {
            return Err(invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."));
        }
        let body_hash = hex::encode(Sha256::digest(body));
        if let Some(claimed) = parts.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
            if claimed != "UNSIGNED-PAYLOAD" && claimed != body_hash {
                return Err(invalid("The provided 'x-amz-content-sha256' header does not match what was computed."));
            }
        }
        let Some(canonical) = canonical_request(parts, &auth.signed_headers, &body_hash) else {
            return Err(invalid(MISMATCH));
        };
        let scope = format!("{}/{}/{}/{}", auth.date, auth.region, auth.service, auth.terminator);
        let string_to_sign =
            format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
        let key =
            v4::generate_signing_key(&key.secret_access_key, SystemTime::from(signed_at), auth.region, auth.service);
        if v4::calculate_signature(key, string_to_sign.as_bytes()) != auth.signature {
            return Err(invalid(MISMATCH));
        }
        Ok(())
    }

    /// [`Verifier::verify`] for a request given as text: `uri` is the request target with the
    /// authority (`http://host:port/path?query`) or without it (then the `host` header names it);
    /// `headers` are `(name, value)` pairs, names in lower case (HTTP/2 pseudo-headers such as
    /// `:authority` are skipped: the authority is the URI's).
    pub fn verify_request(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, String)],
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers.iter().filter(|(n, _)| !n.starts_with(':')) {
            request = request.header(name.as_str(), value.as_str());
        }
        let (parts, ()) =
            request.body(()).map_err(|e| incomplete(&format!("The request cannot be read: {e}")))?.into_parts();
        self.verify(&parts, body, now)
    }
}

/// Splits an `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` header.
fn parse(header: &str) -> Result<Authorization<'_>, SignatureError> {
    let Some(rest) = header.strip_prefix("AWS4-HMAC-SHA256") else {
        let algorithm = header.split_whitespace().next().unwrap_or("");
        return Err(incomplete(&format!("Unsupported AWS 'algorithm': '{algorithm}'")));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else { continue };
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (name, v) in [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed)] {
        if v.is_none() {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if !missing.is_empty() {
        return Err(incomplete(&missing.join(" ")));
    }
    let credential = credential.unwrap_or_default();
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(&format!("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'")));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        terminator,
        signed_headers: signed.unwrap_or_default().split(';').collect(),
        signature: signature.unwrap_or_default(),
    })
}

/// The canonical request of SigV4 for a service other than S3, over the headers `signed` (in the
/// client's order, lower case). `None` when a signed header is missing or not text.
fn canonical_request(parts: &http::request::Parts, signed: &[&str], payload_hash: &str) -> Option<String> {
    let mut out = String::new();
    out.push_str(parts.method.as_str());
    out.push('\n');
    out.push_str(&canonical_path(parts.uri.path()));
    out.push('\n');
    out.push_str(&canonical_query(parts.uri.query().unwrap_or("")));
    out.push('\n');
    for name in signed {
        let value = if *name == ":authority" {
            parts
                .uri
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| parts.headers.get(http::header::HOST)?.to_str().ok().map(str::to_string))?
        } else {
            let values: Vec<&str> =
                parts.headers.get_all(*name).iter().map(|v| v.to_str()).collect::<Result<_, _>>().ok()?;
            if values.is_empty() {
                return None;
            }
            values.iter().map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join(",")
        };
        out.push_str(name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    let claimed = parts.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok());
    out.push_str(claimed.unwrap_or(payload_hash));
    Some(out)
}

/// The path without empty and dot segments, then encoded once more (it arrives encoded once).
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    uri_encode(&normalized, false)
}

/// Query parameters decoded, encoded the canonical way and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            (uri_encode(&decode(k), true), uri_encode(&decode(v), true))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`, and `/` too unless it is a
/// path separator.
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};

    use super::*;

    const KEY: &str = "AKIDEXAMPLEEMULATOR1";
    const SECRET: &str = "emulator-test-secret";

    fn verifier() -> Verifier {
        Verifier {
            keys: vec![Key { access_key_id: KEY.into(), secret_access_key: SECRET.into() }],
            region: "us-east-1".into(),
        }
    }

    /// A request signed by aws-sigv4 as the AWS SDK for Rust signs one (`path` may hold a query).
    fn signed(path: &str, body: &[u8], key: &str, secret: &str, region: &str, at: SystemTime) -> http::request::Parts {
        signed_as("bedrock", path, body, key, secret, region, at)
    }

    /// [`signed`] for the service whose signing name is `service`.
    fn signed_as(
        service: &str,
        path: &str,
        body: &[u8],
        key: &str,
        secret: &str,
        region: &str,
        at: SystemTime,
    ) -> http::request::Parts {
        let uri = format!("http://127.0.0.1:4000{path}");
        let headers = [("host", "127.0.0.1:4000"), ("content-type", "application/json")];
        let request =
            SignableRequest::new("POST", uri.clone(), headers.into_iter(), SignableBody::Bytes(body)).unwrap();
        let identity = Credentials::new(key, secret, Some("a-session-token".into()), None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut req = http::Request::builder().method("POST").uri(path);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let mut req = req.body(()).unwrap();
        instructions.apply_to_request_http1x(&mut req);
        req.into_parts().0
    }

    fn refusal(r: Result<(), SignatureError>) -> (u16, String) {
        let refused = r.expect_err("refused");
        (refused.status, refused.name.to_string())
    }

    #[test]
    fn a_request_signed_with_the_emulators_key_passes_even_with_an_encoded_colon_in_the_path() {
        let now = SystemTime::now();
        let path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke";
        assert!(verifier().verify(&signed(path, b"{}", KEY, SECRET, "us-east-1", now), b"{}", now).is_ok());
    }

    #[test]
    fn paths_and_queries_are_canonical_as_aws_sigv4_makes_them() {
        let now = SystemTime::now();
        for path in [
            "/model-invocation-job/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Amodel-invocation-job%2Fabcdefghijkl",
            "/model-invocation-job/abcdefghijkl/stop",
            "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
            "/model//invoke",
            "/a/./b/../c/",
            "/model/%E2%9C%93%20%2B/invoke",
            "/model-invocation-jobs?maxResults=2&nameContains=a%2Bb&submitTimeAfter=2026-01-01T00%3A00%3A00Z",
            "/model-invocation-jobs?statusEquals=Failed&nextToken=abc%3D%3D&b=2&b=1&empty=",
            "/model-invocation-jobs?sortOrder=Ascending&x=%7E%2A%27",
        ] {
            let parts = signed(path, b"{}", KEY, SECRET, "us-east-1", now);
            assert!(verifier().verify(&parts, b"{}", now).is_ok(), "{path}");
        }
    }

    #[test]
    fn another_service_is_verified_with_its_own_signing_name_only() {
        let now = SystemTime::now();
        let v = verifier();
        let quotas = signed_as("servicequotas", "/", b"{}", KEY, SECRET, "us-east-1", now);
        assert!(v.verify_for("servicequotas", &quotas, b"{}", now).is_ok());
        let refused = v.verify(&quotas, b"{}", now).expect_err("a Bedrock request must be scoped to bedrock");
        assert_eq!((refused.status, refused.name), (403, "InvalidSignatureException"));
        assert_eq!(refused.message, "Credential should be scoped to correct service: 'bedrock'. ");
        let bedrock = signed("/", b"{}", KEY, SECRET, "us-east-1", now);
        let refused = v.verify_for("servicequotas", &bedrock, b"{}", now).expect_err("scoped to bedrock");
        assert_eq!(refused.message, "Credential should be scoped to correct service: 'servicequotas'. ");
    }

    /// `parts` as `verify_request` takes a request: method, target and headers as text.
    fn as_text(parts: &http::request::Parts) -> (String, Vec<(String, String)>) {
        let headers = parts.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
        (parts.uri.to_string(), headers)
    }

    #[test]
    fn a_request_given_as_text_is_checked_the_same_way() {
        let now = SystemTime::now();
        let v = verifier();
        let parts = signed("/model/amazon.nova-lite-v1%3A0/converse?x=1", b"{}", KEY, SECRET, "us-east-1", now);
        let (target, mut headers) = as_text(&parts);
        assert!(v.verify_request("POST", &target, &headers, b"{}", now).is_ok());
        let absolute = format!("http://127.0.0.1:4000{target}");
        assert!(v.verify_request("POST", &absolute, &headers, b"{}", now).is_ok(), "an absolute target");
        headers.push((":authority".into(), "elsewhere:1".into()));
        assert!(v.verify_request("POST", &target, &headers, b"{}", now).is_ok(), "pseudo-headers are skipped");
        assert_eq!(
            refusal(v.verify_request("POST", &target, &headers, b"{\"changed\":1}", now)),
            (403, "InvalidSignatureException".into())
        );
        let refused = v.verify_request("POST", "/a b", &headers, b"{}", now).expect_err("not a URI");
        assert_eq!((refused.status, refused.name), (403, "IncompleteSignatureException"));
        assert!(refused.message.starts_with("The request cannot be read: "), "{refused}");
    }

    #[test]
    fn wrong_keys_bodies_scopes_and_clocks_get_aws_errors() {
        let now = SystemTime::now();
        let v = verifier();
        let parts = signed("/model-invocation-jobs", b"{}", "AKIDSOMEBODYELSE0001", SECRET, "us-east-1", now);
        assert_eq!(refusal(v.verify(&parts, b"{}", now)), (403, "UnrecognizedClientException".into()));
        let parts = signed("/model-invocation-jobs", b"{}", KEY, "not-the-secret", "us-east-1", now);
        assert_eq!(refusal(v.verify(&parts, b"{}", now)), (403, "InvalidSignatureException".into()));
        let parts = signed("/model-invocation-jobs", b"{}", KEY, SECRET, "us-east-1", now);
        assert_eq!(
            refusal(v.verify(&parts, b"{\"changed\":1}", now)),
            (403, "InvalidSignatureException".into()),
            "the body is signed"
        );
        let parts = signed("/model-invocation-jobs", b"{}", KEY, SECRET, "eu-west-1", now);
        assert_eq!(refusal(v.verify(&parts, b"{}", now)), (403, "InvalidSignatureException".into()), "another region");
        let parts = signed("/model-invocation-jobs", b"{}", KEY, SECRET, "us-east-1", now - Duration::from_secs(301));
        assert_eq!(
            refusal(v.verify(&parts, b"{}", now)),
            (403, "InvalidSignatureException".into()),
            "five minutes late"
        );
        let parts = signed("/model-invocation-jobs", b"{}", KEY, SECRET, "us-east-1", now + Duration::from_secs(301));
        assert_eq!(
            refusal(v.verify(&parts, b"{}", now)),
            (403, "InvalidSignatureException".into()),
            "five minutes early"
        );
        let parts = signed("/model-invocation-jobs", b"{}", KEY, SECRET, "us-east-1", now - Duration::from_secs(240));
        assert!(v.verify(&parts, b"{}", now).is_ok(), "four minutes off is within AWS's limit");
        let (parts, _) = http::Request::builder().uri("/model-invocation-jobs").body(()).unwrap().into_parts();
        assert_eq!(refusal(v.verify(&parts, b"", now)), (403, "MissingAuthenticationTokenException".into()));
    }
}
