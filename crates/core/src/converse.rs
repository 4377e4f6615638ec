//! How a Converse request is batched. A Converse-type batch record's `modelInput` is the Converse
//! request as on the wire (without `modelId`); this module decides, member by member, what such a
//! record may carry, what is left out, and when the request cannot be a Converse record at all:
//! it then goes as the model's native InvokeModel record (tool use: Converse-type jobs refuse
//! `toolConfig`), or on-demand.
//!
//! | member | in batch |
//! |---|---|
//! | `messages`, `system`, `inferenceConfig`, `additionalModelRequestFields`, `additionalModelResponseFieldPaths`, `outputConfig` | carried in the record |
//! | `toolConfig` | the record is the model's native body (Claude, Nova), its answer converted back; other families: on-demand |
//! | `guardrailConfig` | on-demand (batch jobs apply no guardrail) |
//! | `promptVariables` | on-demand (prompt management runs on-demand only) |
//! | `performanceConfig`, `serviceTier` | left out: they choose an on-demand tier, and batch has its own |
//! | `requestMetadata`, `projectIdentifier` | left out: invocation-log filters and on-demand cost attribution, neither changes the answer |
//! | any other member | left out, as the SDK's serializer leaves out members its model does not define |

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::convert::{ModelFamily, Native};
use crate::error::EngineError;

/// Members a Converse-type record carries as they are, in the service model's order (the order the
/// SDK's serializer writes them in).
const CARRIED: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "outputConfig",
];
/// Members that only matter on-demand (or for logs and billing) and are left out of a record.
const LEFT_OUT: &[&str] = &["performanceConfig", "serviceTier", "requestMetadata", "projectIdentifier", "modelId"];

/// Where a Converse request goes.
#[derive(Debug, Clone, PartialEq)]
pub enum ConverseRoute {
    /// A Converse-type record with this `modelInput`.
    Record(Bytes),
    /// An InvokeModel-type record in the model family's native format; its answer is converted
    /// back to a Converse response.
    Native {
        /// The family whose format the record is in, and how its answer is converted back.
        native: Native,
        /// The record's `modelInput` in that format.
        body: Bytes,
    },
    /// On-demand, for this reason.
    OnDemand(&'static str),
}

/// Decides where a Converse request (its body as JSON) goes in batch mode.
pub fn route(model_id: &str, body: &[u8]) -> Result<ConverseRoute, EngineError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        EngineError::validation(format!("Malformed input request: the Converse request is not valid JSON ({e})."))
    })?;
    let Value::Object(members) = value else {
        return Err(EngineError::validation("Malformed input request: the Converse request must be a JSON object."));
    };
    if members.contains_key("guardrailConfig") {
        return Ok(ConverseRoute::OnDemand("guardrailConfig"));
    }
    if members.contains_key("promptVariables") {
        return Ok(ConverseRoute::OnDemand("promptVariables"));
    }
    let record: Map<String, Value> =
        CARRIED.iter().filter_map(|k| Some((k.to_string(), members.get(*k)?.clone()))).collect();
    if let Some(tools) = members.get("toolConfig") {
        let Some(family) = crate::convert::converse_family(model_id) else {
            return Ok(ConverseRoute::OnDemand("toolConfig"));
        };
        // The answer is translated back without the request, which holds the paths: only the AI
        // SDK's path for Claude (`/delta/stop_sequence`) has a known place in the native answer.
        let answer = match members.get("additionalModelResponseFieldPaths") {
            None | Some(Value::Null) => Native::of(family),
            Some(paths) if family == ModelFamily::Claude && is_delta_stop_sequence(paths) => {
                Native { family, delta_stop_sequence: true }
            }
            Some(_) => return Ok(ConverseRoute::OnDemand("additionalModelResponseFieldPaths")),
        };
        let mut full = record;
        full.remove("additionalModelResponseFieldPaths");
        full.insert("toolConfig".into(), tools.clone());
        let native = crate::convert::converse_to_native(&Value::Object(full), model_id).map_err(EngineError::from)?;
        let body = serde_json::to_vec(&native).map_err(|e| EngineError::validation(e.to_string()))?;
        return Ok(ConverseRoute::Native { native: answer, body: Bytes::from(body) });
    }
    let _ = LEFT_OUT;
    let body = serde_json::to_vec(&Value::Object(record)).map_err(|e| EngineError::validation(e.to_string()))?;
    Ok(ConverseRoute::Record(Bytes::from(body)))
}

/// Whether `additionalModelResponseFieldPaths` asks for `/delta/stop_sequence` alone (the AI SDK
/// asks for it on every Claude call, and reads Claude's stop sequence there).
fn is_delta_stop_sequence(paths: &Value) -> bool {
    matches!(paths.as_array().map(Vec::as_slice), Some([Value::String(p)]) if p == "/delta/stop_sequence")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(body: &str) -> ConverseRoute {
        route("anthropic.claude-3-haiku-20240307-v1:0", body.as_bytes()).unwrap()
    }

    #[test]
    fn tiers_and_log_filters_are_left_out_and_the_rest_carried_in_order() {
        let r = route_of(
            r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"performanceConfig":{"latency":"optimized"},"serviceTier":{"type":"flex"},"inferenceConfig":{"maxTokens":5},"requestMetadata":{"a":"b"},"notAMember":1}"#,
        );
        assert_eq!(
            r,
            ConverseRoute::Record(Bytes::from_static(
                br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":5}}"#
            ))
        );
    }

    #[test]
    fn guardrails_and_prompt_variables_go_on_demand() {
        assert_eq!(
            route_of(r#"{"messages":[],"guardrailConfig":{"guardrailIdentifier":"g","guardrailVersion":"1"}}"#),
            ConverseRoute::OnDemand("guardrailConfig")
        );
        assert_eq!(route_of(r#"{"promptVariables":{"x":{"text":"y"}}}"#), ConverseRoute::OnDemand("promptVariables"));
    }

    #[test]
    fn the_ai_sdks_stop_sequence_path_with_tools_goes_as_claudes_native_record_other_paths_on_demand() {
        let tools = r#""toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object"}}}}]}"#;
        let ai_sdk = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"text":"hi"}}]}}],{tools},"additionalModelResponseFieldPaths":["/delta/stop_sequence"]}}"#
        );
        match route_of(&ai_sdk) {
            ConverseRoute::Native { native, body } => {
                assert_eq!(native, Native { family: ModelFamily::Claude, delta_stop_sequence: true });
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert!(v.get("tools").is_some() && v.get("additionalModelResponseFieldPaths").is_none(), "{v}");
            }
            other => panic!("{other:?}"),
        }
        let nova = route("amazon.nova-lite-v1:0", ai_sdk.as_bytes()).unwrap();
        assert_eq!(nova, ConverseRoute::OnDemand("additionalModelResponseFieldPaths"), "Nova has no stop_sequence");
        for paths in [r#"["/stop_sequence"]"#, r#"["/delta/stop_sequence","/usage"]"#, r#""/delta/stop_sequence""#] {
            let body = format!(r#"{{"messages":[],{tools},"additionalModelResponseFieldPaths":{paths}}}"#);
            assert_eq!(route_of(&body), ConverseRoute::OnDemand("additionalModelResponseFieldPaths"), "{paths}");
        }
    }

    #[test]
    fn tools_for_a_family_without_a_native_translation_go_on_demand() {
        let r = route("meta.llama3-1-8b-instruct-v1:0", br#"{"messages":[],"toolConfig":{"tools":[]}}"#).unwrap();
        assert_eq!(r, ConverseRoute::OnDemand("toolConfig"));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_a_validation_error() {
        for bad in [&b"[1]"[..], b"nope"] {
            let e = route("m", bad).unwrap_err();
            assert_eq!(e.name, crate::ErrorName::ValidationException);
        }
    }
}
