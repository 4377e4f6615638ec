//! The cheapest valid filler records per model family, for padding batches below the minimum.

/// A filler body for a record of `kind` for `model_id`, or `None` when the family is unknown (then
/// a real body is copied). A Converse record's filler is the same for every model.
pub fn filler_body(model_id: &str, kind: crate::request::InvocationType) -> Option<&'static [u8]> {
    if kind == crate::request::InvocationType::Converse {
        return Some(br#"{"messages":[{"role":"user","content":[{"text":"."}]}],"inferenceConfig":{"maxTokens":1}}"#);
    }
    let m = model_id.rsplit('/').next().unwrap_or(model_id).to_ascii_lowercase();
    let body: &'static [u8] = if m.contains("anthropic") || m.contains("claude") {
        br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1,"messages":[{"role":"user","content":"."}]}"#
    } else if m.contains("titan-embed") {
        br#"{"inputText":"."}"#
    } else if m.contains("titan") {
        br#"{"inputText":".","textGenerationConfig":{"maxTokenCount":1}}"#
    } else if m.contains("nova") {
        br#"{"messages":[{"role":"user","content":[{"text":"."}]}],"inferenceConfig":{"maxTokens":1}}"#
    } else if m.contains("llama") {
        br#"{"prompt":".","max_gen_len":1}"#
    } else if m.contains("mistral") || m.contains("mixtral") {
        br#"{"prompt":"<s>[INST] . [/INST]","max_tokens":1}"#
    } else {
        return None;
    };
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fillers_are_json_and_ask_for_one_token() {
        for m in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-lite-v1:0",
            "meta.llama3-1-8b-instruct-v1:0",
            "mistral.mistral-7b-instruct-v0:2",
            "amazon.titan-text-express-v1",
            "amazon.titan-embed-text-v2:0",
        ] {
            let b = filler_body(m, crate::request::InvocationType::InvokeModel).unwrap();
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            assert!(v.is_object(), "{m}");
        }
        assert!(filler_body("some.unknown-model", crate::request::InvocationType::InvokeModel).is_none());
        assert!(filler_body("some.unknown-model", crate::request::InvocationType::Converse).is_some());
    }
}
