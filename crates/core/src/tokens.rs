//! What a request may cost in tokens, read from its body without a model's tokenizer: a local
//! estimate of its input tokens, and its output tokens' upper bound (the maximum it asks for).
//!
//! The estimate counts the text a model reads: the UTF-8 bytes of every string value in the body
//! (prompts, system prompts, tool names, descriptions and schemas; images and documents count by
//! their base64 text), one token per 4 bytes, rounded up, and at least 1. It is an estimate, for
//! requests whose model has no token-counting API (a dry run says so) and for the cost cap's
//! commitments; a dry run counts Claude requests with Bedrock's CountTokens instead.

use serde_json::Value;

/// Bytes of text per estimated token.
const BYTES_PER_TOKEN: u64 = 4;

/// The members that hold a request's maximum output tokens, in the request formats Bedrock takes:
/// Claude, Mistral and OpenAI-style bodies (`max_tokens`, `max_completion_tokens`), Converse
/// (`inferenceConfig.maxTokens`), Nova (`inferenceConfig.max_new_tokens`), Llama (`max_gen_len`),
/// Titan text (`textGenerationConfig.maxTokenCount`), Cohere (`max_tokens`).
const MAX_TOKENS_PATHS: &[&[&str]] = &[
    &["max_tokens"],
    &["max_completion_tokens"],
    &["inferenceConfig", "maxTokens"],
    &["inferenceConfig", "max_new_tokens"],
    &["max_gen_len"],
    &["textGenerationConfig", "maxTokenCount"],
];

/// What a request may cost in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenBounds {
    /// The local estimate of its input tokens.
    pub input: u32,
    /// Its output tokens' upper bound: the maximum it asks for (`None`: it sets none; an embedding
    /// model's request has 0).
    pub max_output: Option<u32>,
}

/// The bounds of a request to `model_id` with this body (JSON).
pub fn bounds(model_id: &str, body: &[u8]) -> TokenBounds {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return TokenBounds { input: estimate_bytes(body.len() as u64), max_output: None };
    };
    let max_output = if is_embedding(model_id) { Some(0) } else { max_output_tokens(&v) };
    TokenBounds { input: estimate_bytes(text_bytes(&v)), max_output }
}

/// The local estimate of the input tokens of a body (JSON).
pub fn estimate_input(body: &[u8]) -> u32 {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => estimate_bytes(text_bytes(&v)),
        Err(_) => estimate_bytes(body.len() as u64),
    }
}

fn estimate_bytes(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(BYTES_PER_TOKEN).max(1)).unwrap_or(u32::MAX)
}

/// The UTF-8 bytes of every string value in `v`.
fn text_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o.values().map(text_bytes).sum(),
        _ => 0,
    }
}

/// The maximum output tokens a request asks for, if it sets one.
pub fn max_output_tokens(v: &Value) -> Option<u32> {
    MAX_TOKENS_PATHS.iter().find_map(|path| {
        let n = path.iter().try_fold(v, |at, k| at.get(k))?.as_u64()?;
        Some(u32::try_from(n).unwrap_or(u32::MAX))
    })
}

/// The members an answer reports its tokens in, input and output, in the response formats of the
/// runtime: Claude (`usage.input_tokens`), Converse and Nova (`usage.inputTokens`), OpenAI-style
/// (`usage.prompt_tokens`), Llama (`prompt_token_count`), Titan embeddings (`inputTextTokenCount`).
const USAGE_PATHS: &[(&[&str], &[&str])] = &[
    (&["usage", "input_tokens"], &["usage", "output_tokens"]),
    (&["usage", "inputTokens"], &["usage", "outputTokens"]),
    (&["usage", "prompt_tokens"], &["usage", "completion_tokens"]),
    (&["prompt_token_count"], &["generation_token_count"]),
    (&["inputTextTokenCount"], &["results", "0", "tokenCount"]),
];

/// The input and output tokens an answer reports (`None`: it reports none, or is not JSON).
pub fn usage(answer: &[u8]) -> Option<(u64, u64)> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(&v, |at, k| match k.parse::<usize>() {
                Ok(i) => at.get(i),
                Err(_) => at.get(k),
            })
            .and_then(Value::as_u64)
    };
    USAGE_PATHS.iter().find_map(|(i, o)| Some((at(i)?, at(o).unwrap_or(0))))
}

/// Whether a model produces embeddings (no output tokens are billed).
fn is_embedding(model_id: &str) -> bool {
    let m = model_id.rsplit('/').next().unwrap_or(model_id).to_ascii_lowercase();
    m.contains("embed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_from_each_answer_shape() {
        assert_eq!(usage(br#"{"usage":{"input_tokens":12,"output_tokens":5}}"#), Some((12, 5)));
        assert_eq!(
            usage(br#"{"output":{},"usage":{"inputTokens":7,"outputTokens":3,"totalTokens":10}}"#),
            Some((7, 3))
        );
        assert_eq!(usage(br#"{"usage":{"prompt_tokens":4,"completion_tokens":2}}"#), Some((4, 2)));
        assert_eq!(usage(br#"{"generation":"x","prompt_token_count":9,"generation_token_count":1}"#), Some((9, 1)));
        assert_eq!(usage(br#"{"embedding":[0.1],"inputTextTokenCount":6}"#), Some((6, 0)));
        assert_eq!(usage(br#"{"no":"usage"}"#), None);
        assert_eq!(usage(b"not json"), None);
    }

    #[test]
    fn the_estimate_counts_text_not_structure() {
        let claude = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[{"role":"user","content":"abcdefgh"}]}"#;
        let converse =
            br#"{"messages":[{"role":"user","content":[{"text":"abcdefgh"}]}],"inferenceConfig":{"maxTokens":16}}"#;
        // "bedrock-2023-05-31" (18) + "user" (4) + "abcdefgh" (8) = 30 bytes: 8 tokens; Converse: 12 bytes: 3.
        assert_eq!(
            bounds("anthropic.claude-3-haiku-20240307-v1:0", claude),
            TokenBounds { input: 8, max_output: Some(16) }
        );
        assert_eq!(
            bounds("anthropic.claude-3-haiku-20240307-v1:0", converse),
            TokenBounds { input: 3, max_output: Some(16) }
        );
        assert_eq!(estimate_input(b"{}"), 1, "at least one token");
        assert_eq!(estimate_input(b"not json at all!"), 4, "bytes of what is not JSON");
    }

    #[test]
    fn max_output_tokens_are_read_from_every_family_s_member() {
        let read = |s: &str| max_output_tokens(&serde_json::from_str(s).unwrap());
        assert_eq!(read(r#"{"max_tokens":5}"#), Some(5));
        assert_eq!(read(r#"{"max_completion_tokens":6}"#), Some(6));
        assert_eq!(read(r#"{"inferenceConfig":{"maxTokens":7}}"#), Some(7));
        assert_eq!(read(r#"{"inferenceConfig":{"max_new_tokens":8}}"#), Some(8));
        assert_eq!(read(r#"{"max_gen_len":9}"#), Some(9));
        assert_eq!(read(r#"{"textGenerationConfig":{"maxTokenCount":10}}"#), Some(10));
        assert_eq!(read(r#"{"messages":[]}"#), None);
        assert_eq!(bounds("amazon.titan-embed-text-v2:0", br#"{"inputText":"hi"}"#).max_output, Some(0));
    }
}
