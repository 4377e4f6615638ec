//! The batch file formats: input lines we write, output lines Bedrock writes.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Splits `s3://bucket/prefix` into bucket and key prefix.
pub fn split_s3_uri(uri: &str) -> Option<(String, String)> {
    if s3_uri_problem(uri).is_some() {
        return None;
    }
    let rest = &uri["s3://".len()..];
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket.to_string(), key.to_string()))
}

/// What is wrong with an `s3://bucket/prefix` URI, in words, or `None` when it is usable.
pub fn s3_uri_problem(uri: &str) -> Option<String> {
    let Some(rest) = uri.strip_prefix("s3://") else { return Some("it must start with s3://".into()) };
    let bucket = rest.split_once('/').map_or(rest, |(b, _)| b);
    if bucket.is_empty() {
        return Some("the bucket name is missing".into());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Some(format!(
            "the bucket name {bucket:?} has {} characters; S3 bucket names have 3 to 63",
            bucket.len()
        ));
    }
    if !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
        return Some(format!("the bucket name {bucket:?} may hold only lowercase letters, digits, '-' and '.'"));
    }
    let prefix = rest.get(bucket.len() + 1..).unwrap_or("");
    if prefix.chars().any(char::is_control) {
        return Some("the key prefix holds a control character".into());
    }
    if prefix.split('/').any(|segment| segment == "." || segment == "..") {
        return Some("the key prefix holds a '.' or '..' segment".into());
    }
    if prefix.len() > MAX_KEY_PREFIX_BYTES {
        return Some(format!(
            "the key prefix has {} bytes; at most {MAX_KEY_PREFIX_BYTES} leave room for the names under it (S3 keys have at most 1,024)",
            prefix.len()
        ));
    }
    None
}

/// The longest key prefix an `s3://` URI may give: S3 keys have at most 1,024 bytes, and the
/// engine adds a batch's folder and file name (or a job's id and output file name) under it.
pub const MAX_KEY_PREFIX_BYTES: usize = 800;

/// Joins a key prefix and a name with exactly one `/`.
pub fn join_key(prefix: &str, name: &str) -> String {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        name.to_string()
    } else {
        format!("{p}/{name}")
    }
}

/// Appends one input line: `{"recordId":"...","modelInput":<body>}\n`.
pub fn push_input_line(out: &mut Vec<u8>, record_id: &str, body: &[u8]) {
    out.extend_from_slice(b"{\"recordId\":\"");
    out.extend_from_slice(record_id.as_bytes());
    out.extend_from_slice(b"\",\"modelInput\":");
    out.extend_from_slice(body);
    out.extend_from_slice(b"}\n");
}

/// The first character of a request's record id.
pub const RECORD_ID_PREFIX: char = 'R';
/// The digits of a record id's number, at least (zero-padded).
pub const RECORD_ID_DIGITS: usize = 10;
/// What joins a job's ARN and a record id in a batch answer's request id.
pub const REQUEST_ID_SEPARATOR: char = '#';

/// A record id: `R` and ten digits (or more), alphanumeric as Bedrock's documentation asks.
pub fn record_id(request_id: u64) -> String {
    format!("{RECORD_ID_PREFIX}{request_id:0width$}", width = RECORD_ID_DIGITS)
}

/// The request id of a batch answer: `<jobArn>#<recordId>`.
pub fn request_id(job_arn: &str, record: u64) -> String {
    record_request_id(job_arn, &record_id(record))
}

/// [`request_id`] from a record id already written out.
pub fn record_request_id(job_arn: &str, record_id: &str) -> String {
    format!("{job_arn}{REQUEST_ID_SEPARATOR}{record_id}")
}

/// A filler record id, never mistaken for a request's.
pub fn filler_record_id(batch: u64, n: usize) -> String {
    format!("P{batch:06}{n:05}")
}

/// Whether a record id is a filler's ([`filler_record_id`]).
pub fn is_filler_record_id(record_id: &str) -> bool {
    record_id.strip_prefix('P').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The request id a record id stands for.
pub fn parse_record_id(record_id: &str) -> Option<u64> {
    record_id.strip_prefix(RECORD_ID_PREFIX)?.parse().ok()
}

#[derive(Deserialize)]
struct RawInputLine<'a> {
    #[serde(rename = "recordId")]
    record_id: std::borrow::Cow<'a, str>,
    #[serde(rename = "modelInput", borrow)]
    model_input: &'a RawValue,
}

/// Parses one input line back into its record id and body bytes.
pub fn parse_input_line(line: &[u8]) -> Option<(std::borrow::Cow<'_, str>, &[u8])> {
    let raw: RawInputLine = serde_json::from_slice(line).ok()?;
    Some((raw.record_id, raw.model_input.get().as_bytes()))
}

#[derive(Deserialize)]
struct RawLine<'a> {
    #[serde(rename = "recordId")]
    record_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "modelOutput", borrow)]
    model_output: Option<&'a RawValue>,
    error: Option<RawError>,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(rename = "errorCode", default)]
    error_code: serde_json::Value,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<String>,
}

/// One parsed output line.
#[derive(Debug, PartialEq)]
pub enum OutputLine<'a> {
    /// `modelOutput`, byte for byte as it stands in the file.
    Success {
        /// Its `recordId`.
        record_id: std::borrow::Cow<'a, str>,
        /// The `modelOutput` value's bytes.
        output: &'a [u8],
    },
    /// `error: {errorCode, errorMessage}`.
    Error {
        /// Its `recordId`.
        record_id: std::borrow::Cow<'a, str>,
        /// `errorCode` as written (a number or a string; null when absent).
        code: serde_json::Value,
        /// `errorMessage` (a default text when absent).
        message: String,
    },
}

/// The token totals of a job's `manifest.json.out` (`inputTokenCount`, `outputTokenCount`; 0
/// when absent), or `None` when it is not a JSON object.
pub fn manifest_tokens(data: &[u8]) -> Option<(u64, u64)> {
    let m: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(data).ok()?;
    let n = |k: &str| m.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Some((n("inputTokenCount"), n("outputTokenCount")))
}

/// Parses one output line; `None` for a line that is not JSON or has no record id or result.
pub fn parse_output_line(line: &[u8]) -> Option<OutputLine<'_>> {
    let raw: RawLine = serde_json::from_slice(line).ok()?;
    let record_id = raw.record_id?;
    if let Some(out) = raw.model_output {
        return Some(OutputLine::Success { record_id, output: out.get().as_bytes() });
    }
    let err = raw.error?;
    Some(OutputLine::Error {
        record_id,
        code: err.error_code,
        message: err.error_message.unwrap_or_else(|| "The record failed.".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_key_prefixes_without_dot_segments_control_characters_or_too_many_bytes() {
        assert_eq!(s3_uri_problem("s3://my-bucket/batch/in/"), None);
        assert_eq!(s3_uri_problem("s3://my-bucket"), None);
        assert!(s3_uri_problem("s3://my-bucket/a/../b/").unwrap().contains("'..'"));
        assert!(s3_uri_problem("s3://my-bucket/./b/").unwrap().contains("'.'"));
        assert!(s3_uri_problem("s3://my-bucket/a\u{7}b/").unwrap().contains("control character"));
        assert!(s3_uri_problem("s3://my-bucket/a\nb/").unwrap().contains("control character"));
        let long = format!("s3://my-bucket/{}/", "k".repeat(MAX_KEY_PREFIX_BYTES));
        assert!(s3_uri_problem(&long).unwrap().contains("key prefix has"));
        assert_eq!(s3_uri_problem("s3://my-bucket/a..b/.c/"), None, "dots inside a name are fine");
    }

    #[test]
    fn model_output_is_kept_byte_for_byte() {
        let line = br#"{"recordId":"R0000000001","modelInput":{"a":1},"modelOutput":{"b": [1, 2],"c":"x"}}"#;
        match parse_output_line(line).unwrap() {
            OutputLine::Success { record_id, output } => {
                assert_eq!(record_id, "R0000000001");
                assert_eq!(output, br#"{"b": [1, 2],"c":"x"}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_malformed_and_partial_lines() {
        let e = parse_output_line(
            br#"{"recordId":"R1","modelInput":{},"error":{"errorCode":"429","errorMessage":"slow"}}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            OutputLine::Error { record_id: "R1".into(), code: serde_json::json!("429"), message: "slow".into() }
        );
        assert!(parse_output_line(br#"{"recordId":"R1","modelInput":{"tru"#).is_none());
        assert!(parse_output_line(br#"{"modelOutput":{}}"#).is_none());
        assert!(parse_output_line(br#"{"recordId":"R1"}"#).is_none());
    }

    #[test]
    fn record_ids_round_trip_and_fillers_never_parse_as_requests() {
        assert_eq!(record_id(42), "R0000000042");
        assert_eq!(request_id("arn:job/x", 42), "arn:job/x#R0000000042");
        assert_eq!(parse_record_id(&record_id(42)), Some(42));
        assert_eq!(record_id(42).len(), 11);
        assert!(record_id(7).chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(parse_record_id(&filler_record_id(1, 2)), None);
    }

    #[test]
    fn input_lines_are_one_json_object_each() {
        let mut out = Vec::new();
        push_input_line(&mut out, "R0000000001", br#"{"x":1}"#);
        assert_eq!(
            parse_input_line(out.strip_suffix(b"\n").unwrap()),
            Some((std::borrow::Cow::Borrowed("R0000000001"), &br#"{"x":1}"#[..]))
        );
        let v: serde_json::Value = serde_json::from_slice(out.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(v["recordId"], "R0000000001");
        assert_eq!(v["modelInput"]["x"], 1);
        assert_eq!(split_s3_uri("s3://my-bucket/in/"), Some(("my-bucket".into(), "in/".into())));
        assert_eq!(split_s3_uri("s3://B/in/"), None);
        assert_eq!(split_s3_uri("s3://abc"), Some(("abc".into(), "".into())));
        assert!(s3_uri_problem("s3://ab/in/").unwrap().contains("has 2 characters"));
        assert!(s3_uri_problem("s3://My_Bucket/in/").unwrap().contains("lowercase"));
        assert!(s3_uri_problem("https://x/").unwrap().contains("s3://"));
        assert!(s3_uri_problem("s3:///in/").unwrap().contains("missing"));
        assert_eq!(join_key("in/", "a.jsonl"), "in/a.jsonl");
        assert_eq!(join_key("", "a.jsonl"), "a.jsonl");
    }
}
