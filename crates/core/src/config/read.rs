//! Reading the user's options (a JSON value, as JavaScript passed them) with errors that name the
//! option: `batch.pollInterval must be a number of seconds, got "soon"`.

use serde_json::{Map, Value};

use crate::error::EngineError;

/// One object of the options, with its dotted path for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section<'a> {
    map: Option<&'a Map<String, Value>>,
    path: &'a str,
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.floor_char_boundary(80)])
    } else {
        s
    }
}

fn invalid(name: &str, what: &str, v: &Value) -> EngineError {
    EngineError::validation(format!("{name} must be {what}, got {}", shown(v)))
}

impl<'a> Section<'a> {
    /// The top level (anything but an object or null is an error).
    pub(crate) fn root(v: &'a Value) -> Result<Section<'a>, EngineError> {
        match v {
            Value::Null => Ok(Section { map: None, path: "" }),
            Value::Object(m) => Ok(Section { map: Some(m), path: "" }),
            other => Err(invalid("the options", "an object", other)),
        }
    }

    /// The full name of `key` in this section.
    pub(crate) fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`; `null` and `undefined` (absent) read as not set.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    /// A sub-object (not set: an empty section).
    pub(crate) fn section(&self, key: &'a str, path: &'a str) -> Result<Section<'a>, EngineError> {
        match self.get(key) {
            None => Ok(Section { map: None, path }),
            Some(Value::Object(m)) => Ok(Section { map: Some(m), path }),
            Some(other) => Err(invalid(&self.name(key), "an object", other)),
        }
    }

    /// Refuses keys other than `known` (in the package's own sections, where a typo would
    /// otherwise be ignored silently).
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), EngineError> {
        let Some(m) = self.map else { return Ok(()) };
        let unknown: Vec<&str> = m.keys().map(String::as_str).filter(|k| !known.contains(k)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(EngineError::validation(format!(
            "unknown option{} {} in {}; the options there are {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.iter().map(|k| self.name(k)).collect::<Vec<_>>().join(", "),
            self.path,
            known.join(", ")
        )))
    }

    /// A string, else the environment variable `env` (when given and set).
    pub(crate) fn string(&self, key: &str, env: Option<&str>) -> Result<Option<String>, EngineError> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(&self.name(key), "a string", other)),
            None => Ok(env.and_then(env_var)),
        }
    }

    /// A finite number, else the environment variable `env`.
    pub(crate) fn number(&self, key: &str, what: &str, env: Option<&str>) -> Result<Option<f64>, EngineError> {
        match self.get(key) {
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(invalid(&self.name(key), what, other)),
            None => match env.and_then(|e| env_var(e).map(|v| (e, v))) {
                None => Ok(None),
                Some((e, v)) => match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Some(n)),
                    _ => Err(EngineError::validation(format!("{e} must be {what}, got {v:?}"))),
                },
            },
        }
    }

    /// A number of seconds ≥ 0.
    pub(crate) fn seconds(&self, key: &str, env: Option<&str>) -> Result<Option<std::time::Duration>, EngineError> {
        const WHAT: &str = "a number of seconds >= 0";
        match self.number(key, WHAT, env)? {
            None => Ok(None),
            Some(s) if (0.0..1e12).contains(&s) => Ok(Some(std::time::Duration::from_secs_f64(s))),
            Some(s) => Err(EngineError::validation(format!("{} must be {WHAT}, got {s}", self.name(key)))),
        }
    }

    /// A whole number in `min..=max`.
    pub(crate) fn integer(&self, key: &str, min: u64, max: u64, env: Option<&str>) -> Result<Option<u64>, EngineError> {
        let what = format!("a whole number from {min} to {max}");
        match self.number(key, &what, env)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => Ok(Some(n as u64)),
            Some(n) => Err(EngineError::validation(format!("{} must be {what}, got {n}", self.name(key)))),
        }
    }

    /// A boolean.
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, EngineError> {
        match self.get(key) {
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(invalid(&self.name(key), "true or false", other)),
            None => Ok(None),
        }
    }

    /// A list of strings.
    pub(crate) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, EngineError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid(&self.name(key), "a list of strings", &Value::Array(items.clone())))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(invalid(&self.name(key), "a list of strings", other)),
        }
    }

    /// The raw value, for the few options with a shape of their own.
    pub(crate) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.get(key)
    }
}

/// An environment variable, when set and not empty.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_name_the_option_and_what_it_must_be() {
        let v = json!({ "batch": { "pollInterval": "soon", "maxBatchSize": 1.5, "cleanup": "yes" } });
        let root = Section::root(&v).unwrap();
        let b = root.section("batch", "batch").unwrap();
        let e = b.seconds("pollInterval", None).unwrap_err();
        assert_eq!(e.message, r#"batch.pollInterval must be a number of seconds >= 0, got "soon""#);
        assert!(b
            .integer("maxBatchSize", 1, 50_000, None)
            .unwrap_err()
            .message
            .contains("batch.maxBatchSize must be a whole number from 1 to 50000"));
        assert!(b.boolean("cleanup").unwrap_err().message.contains("batch.cleanup must be true or false"));
        assert!(Section::root(&json!(3)).is_err());
        assert!(root
            .section("batch", "batch")
            .unwrap()
            .only(&["pollInterval"])
            .unwrap_err()
            .message
            .contains("batch.maxBatchSize"));
    }
}
