//! When the emulated model calls a tool, which one, and with what input.
//!
//! The emulator's model calls a tool only when tools are offered and the request asks for one:
//! - the tool choice forces it (Claude `tool_choice` `{type: "any"}` or `{type: "tool", name}`;
//!   Converse and Nova `toolChoice` `{any: {}}` or `{tool: {name}}`), or
//! - with the default choice (`auto`), the text of the last user message carries the trigger: a
//!   marker `[[tool:NAME]]` (that tool) or `[[tool]]` (the first tool offered), the name of an
//!   offered tool as a whole word (the first one named, in the order offered), or the words
//!   "use the tool" (the first tool).
//!
//! A last user message that carries a tool result (Claude `tool_result`, Converse and Nova
//! `toolResult`) is always answered with text, whatever the choice, so that a tool turn ends.
//! A named tool that is not offered, and the choice `none`, call no tool.

use serde_json::{json, Map, Value};

/// A tool the request offers: its name and its input's JSON schema.
#[derive(Debug, Clone, Copy)]
pub struct Offered<'a> {
    /// The tool's name, as the request gives it.
    pub name: &'a str,
    /// Its input's JSON schema, if the request gives one.
    pub schema: Option<&'a Value>,
}

/// How the request lets the model choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The model decides (the default): only a trigger in the prompt calls a tool.
    Auto,
    /// Some tool must be called.
    Any,
    /// This tool must be called.
    Tool(String),
    /// No tool may be called.
    None,
}

/// The tool call the emulated model makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The tool called.
    pub name: String,
    /// The input the model passes it.
    pub input: Value,
    /// The choice forced the call (the model then writes no text before it).
    pub forced: bool,
}

/// Claude's `tools` (custom tools with `name` and `input_schema`) and `tool_choice`.
pub fn claude_tools(body: &Value) -> (Vec<Offered<'_>>, Choice) {
    let tools = body.get("tools").and_then(Value::as_array).into_iter().flatten();
    let offered =
        tools.filter_map(|t| Some(Offered { name: t.get("name")?.as_str()?, schema: t.get("input_schema") })).collect();
    let choice = body.get("tool_choice");
    let choice = match choice.and_then(|c| c.get("type")).and_then(Value::as_str) {
        Some("any") => Choice::Any,
        Some("tool") => {
            Choice::Tool(choice.and_then(|c| c.get("name")).and_then(Value::as_str).unwrap_or_default().to_string())
        }
        Some("none") => Choice::None,
        _ => Choice::Auto,
    };
    (offered, choice)
}

/// Converse's (and Nova's native) `toolConfig`: `tools[].toolSpec` with `inputSchema.json`, and
/// `toolChoice` `{auto}` / `{any}` / `{tool: {name}}`.
pub fn converse_tools(body: &Value) -> (Vec<Offered<'_>>, Choice) {
    let config = body.get("toolConfig");
    let tools = config.and_then(|c| c.get("tools")).and_then(Value::as_array).into_iter().flatten();
    let offered = tools
        .filter_map(|t| {
            let spec = t.get("toolSpec")?;
            Some(Offered { name: spec.get("name")?.as_str()?, schema: spec.pointer("/inputSchema/json") })
        })
        .collect();
    let choice = config.and_then(|c| c.get("toolChoice"));
    let choice = if choice.and_then(|c| c.get("any")).is_some() {
        Choice::Any
    } else if let Some(tool) = choice.and_then(|c| c.get("tool")) {
        Choice::Tool(tool.get("name").and_then(Value::as_str).unwrap_or_default().to_string())
    } else {
        Choice::Auto
    };
    (offered, choice)
}

/// The call the model makes for a last user message with text `user` (`answered`: it carries a
/// tool result), or none.
pub fn call(offered: &[Offered<'_>], choice: &Choice, user: &str, answered: bool) -> Option<Call> {
    if offered.is_empty() || answered {
        return None;
    }
    let make = |tool: &Offered<'_>, forced: bool| Call {
        name: tool.name.to_string(),
        input: input_for_schema(tool.schema, &without_markers(user)),
        forced,
    };
    match choice {
        Choice::None => None,
        Choice::Tool(name) => offered.iter().find(|t| t.name == name).map(|t| make(t, true)),
        Choice::Any => Some(make(triggered(offered, user).unwrap_or(&offered[0]), true)),
        Choice::Auto => triggered(offered, user).map(|t| make(t, false)),
    }
}

/// The tool the prompt asks for, if it asks for one.
fn triggered<'t, 'a>(offered: &'t [Offered<'a>], user: &str) -> Option<&'t Offered<'a>> {
    if let Some(at) = user.find("[[tool:") {
        let rest = &user[at + "[[tool:".len()..];
        let name = rest[..rest.find("]]")?].trim();
        return offered.iter().find(|t| t.name == name);
    }
    if user.contains("[[tool]]") || user.to_ascii_lowercase().contains("use the tool") {
        return offered.first();
    }
    let words: Vec<&str> =
        user.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).filter(|w| !w.is_empty()).collect();
    offered.iter().find(|t| words.contains(&t.name))
}

/// The text without `[[...]]` markers, trimmed.
pub fn without_markers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("[[") {
        match rest[at..].find("]]") {
            Some(end) => {
                out.push_str(&rest[..at]);
                rest = &rest[at + end + 2..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A deterministic value that satisfies a JSON schema's `required` properties (recursively for
/// objects): `const`, else the first `enum` value, else by `type`: strings are `text`, numbers
/// their `minimum` (or 0), booleans `false`, arrays `minItems` items (or none), objects their own
/// required properties.
pub fn input_for_schema(schema: Option<&Value>, text: &str) -> Value {
    value_for(schema.unwrap_or(&json!({ "type": "object" })), text, 0)
}

fn value_for(schema: &Value, text: &str, depth: usize) -> Value {
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // A list of types: the first that is not "null".
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("string"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if depth < 8 {
                let props = schema.get("properties").and_then(Value::as_object);
                let required =
                    schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
                for name in required {
                    let sub = props.and_then(|p| p.get(name)).cloned().unwrap_or_else(|| json!({ "type": "string" }));
                    out.insert(name.to_string(), value_for(&sub, text, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0).min(8) as usize;
            let items = schema.get("items").cloned().unwrap_or_else(|| json!({ "type": "string" }));
            Value::Array((0..n).map(|_| value_for(&items, text, depth + 1)).collect())
        }
        "integer" => json!(schema.get("minimum").and_then(Value::as_f64).map(|m| m.ceil() as i64).unwrap_or(0)),
        "number" => schema.get("minimum").cloned().unwrap_or(json!(0)),
        "boolean" => json!(false),
        "null" => Value::Null,
        _ => json!(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Value {
        json!({ "type": "object", "properties": { "city": { "type": "string" }, "unit": { "type": "string", "enum": ["C", "F"] }, "days": { "type": "integer", "minimum": 1 } }, "required": ["city", "unit", "days"] })
    }

    #[test]
    fn auto_calls_a_tool_only_when_the_prompt_asks() {
        let w = weather();
        let tools = [Offered { name: "get_weather", schema: Some(&w) }, Offered { name: "lookup", schema: None }];
        assert_eq!(call(&tools, &Choice::Auto, "What is the weather in Paris?", false), None);
        let c = call(&tools, &Choice::Auto, "Weather in Paris? [[tool:get_weather]]", false).unwrap();
        assert_eq!((c.name.as_str(), c.forced), ("get_weather", false));
        assert_eq!(c.input, json!({ "city": "Weather in Paris?", "unit": "C", "days": 1 }));
        assert_eq!(call(&tools, &Choice::Auto, "Please use lookup for this", false).unwrap().name, "lookup");
        assert_eq!(call(&tools, &Choice::Auto, "Use the tool, please", false).unwrap().name, "get_weather");
        assert_eq!(call(&tools, &Choice::Auto, "[[tool]] now", false).unwrap().name, "get_weather");
        assert_eq!(call(&tools, &Choice::Auto, "[[tool:unknown]]", false), None);
        assert_eq!(call(&tools, &Choice::Auto, "lookups are not lookup-free", false), None, "whole words only");
    }

    #[test]
    fn a_forced_choice_calls_a_tool_and_a_tool_result_ends_the_turn() {
        let tools = [Offered { name: "a", schema: None }, Offered { name: "b", schema: None }];
        assert_eq!(
            call(&tools, &Choice::Any, "anything", false).unwrap(),
            Call { name: "a".into(), input: json!({}), forced: true }
        );
        assert_eq!(call(&tools, &Choice::Any, "call b", false).unwrap().name, "b");
        assert_eq!(call(&tools, &Choice::Tool("b".into()), "x", false).unwrap().name, "b");
        assert_eq!(call(&tools, &Choice::Tool("c".into()), "x", false), None);
        assert_eq!(call(&tools, &Choice::None, "[[tool:a]]", false), None);
        assert_eq!(call(&tools, &Choice::Any, "[[tool:a]]", true), None, "a tool result is answered with text");
        assert_eq!(call(&[], &Choice::Any, "[[tool]]", false), None);
    }

    #[test]
    fn inputs_follow_nested_schemas_deterministically() {
        let schema = json!({
            "type": "object",
            "properties": {
                "q": { "type": "string" },
                "opts": { "type": "object", "properties": { "n": { "type": "number", "minimum": 2.5 }, "on": { "type": "boolean" }, "x": {} }, "required": ["n", "on"] },
                "tags": { "type": "array", "minItems": 2, "items": { "type": "string", "const": "t" } },
                "kind": { "type": ["null", "integer"] },
                "optional": { "type": "string" }
            },
            "required": ["q", "opts", "tags", "kind"]
        });
        let v = input_for_schema(Some(&schema), "hello");
        assert_eq!(v, json!({ "q": "hello", "opts": { "n": 2.5, "on": false }, "tags": ["t", "t"], "kind": 0 }));
        assert_eq!(input_for_schema(None, "x"), json!({}));
        assert_eq!(without_markers("  a [[tool:x]] b [[error:500]]"), "a b");
    }

    #[test]
    fn requests_name_their_tools_and_choices() {
        let claude = json!({ "tools": [{ "name": "t1", "input_schema": { "type": "object" } }], "tool_choice": { "type": "tool", "name": "t1" } });
        let (offered, choice) = claude_tools(&claude);
        assert_eq!((offered.len(), offered[0].name, choice), (1, "t1", Choice::Tool("t1".into())));
        let converse = json!({ "toolConfig": { "tools": [{ "toolSpec": { "name": "t2", "inputSchema": { "json": { "type": "object" } } } }, { "cachePoint": { "type": "default" } }], "toolChoice": { "any": {} } } });
        let (offered, choice) = converse_tools(&converse);
        assert_eq!((offered.len(), offered[0].name, choice), (1, "t2", Choice::Any));
        assert!(offered[0].schema.is_some());
        assert_eq!(converse_tools(&json!({})).1, Choice::Auto);
    }
}
