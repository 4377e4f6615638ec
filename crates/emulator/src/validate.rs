//! Checks a request value against a shape of a service model the way AWS validates requests, and
//! keeps only what the model defines.
//!
//! Every failed constraint becomes one clause in AWS's words (`Value 'x' at 'jobName' failed to
//! satisfy constraint: Member must satisfy regular expression pattern: ...`); the clauses of a
//! request are joined into one `ValidationException` message by [`message`]. Paths name members
//! as AWS does: `inputDataConfig.s3InputDataConfig.s3Uri`, list items as `tags.1.member.key`.
//! Values of sensitive shapes (and of everything inside them) are never echoed.

use serde_json::{Map, Value};

use crate::model::{Kind, Member, Service};

/// Collects the clauses of one request while its values are checked.
pub(crate) struct Checker {
    service: &'static Service,
    clauses: Vec<String>,
}

impl Checker {
    /// A checker for requests of `service`.
    pub(crate) fn new(service: &'static Service) -> Checker {
        Checker { service, clauses: Vec::new() }
    }

    /// The whole `N validation errors detected: ...` message, or `None` when nothing failed.
    pub(crate) fn into_message(self) -> Option<String> {
        message(&self.clauses)
    }

    /// Adds a clause for a value the caller checked itself (a payload, say).
    pub(crate) fn fail(&mut self, shown: Option<&str>, path: &str, constraint: &str) {
        self.clauses.push(clause(shown, path, constraint));
    }

    /// Checks the members of structure `shape` that `keep` selects, in `value` (a JSON object), and
    /// returns those members without anything the model does not define.
    pub(crate) fn members(
        &mut self,
        shape: u16,
        value: &Map<String, Value>,
        prefix: &str,
        keep: impl Fn(&Member) -> bool,
    ) -> Map<String, Value> {
        self.members_at(shape, value, prefix, &keep, false)
    }

    fn members_at(
        &mut self,
        shape: u16,
        value: &Map<String, Value>,
        prefix: &str,
        keep: &dyn Fn(&Member) -> bool,
        inside_sensitive: bool,
    ) -> Map<String, Value> {
        let s = self.service.shape(shape);
        let sensitive = inside_sensitive || s.sensitive;
        let Kind::Structure { members, union, .. } = &s.kind else {
            panic!("{} is not a structure", s.name);
        };
        let mut out = Map::new();
        let mut set = 0;
        for m in members.iter().filter(|m| keep(m)) {
            let path = join(prefix, &m.name);
            match value.get(&*m.name) {
                Some(v) if !v.is_null() => {
                    set += 1;
                    if let Some(checked) = self.check(m.target, v, &path, sensitive) {
                        out.insert(m.name.to_string(), checked);
                    }
                }
                _ if m.required => self
                    .clauses
                    .push(format!("Value null at '{path}' failed to satisfy constraint: Member must not be null")),
                _ => {}
            }
        }
        if *union && set != 1 {
            self.fail(None, prefix, "Member must have exactly one member set");
        }
        out
    }

    /// Checks `value` against shape `shape` at `path`. Returns the value with only the members the
    /// model defines, or `None` when it is not of the shape's type at all.
    pub(crate) fn check(&mut self, shape: u16, value: &Value, path: &str, inside_sensitive: bool) -> Option<Value> {
        let s = self.service.shape(shape);
        let sensitive = inside_sensitive || s.sensitive;
        let shown = if sensitive { None } else { render(value) };
        let shown = shown.as_deref();
        match &s.kind {
            Kind::Document => Some(value.clone()),
            Kind::Structure { .. } => match value {
                Value::Object(o) => Some(Value::Object(self.members_at(shape, o, path, &|_| true, inside_sensitive))),
                _ => self.wrong_type(shown, path, "a structure"),
            },
            Kind::List { member, min, max } => {
                let Value::Array(items) = value else {
                    return self.wrong_type(shown, path, "a list");
                };
                self.length(shown, path, items.len(), *min, *max);
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}.{}.member", i + 1);
                    if item.is_null() {
                        self.clauses
                            .push(format!("Value null at '{p}' failed to satisfy constraint: Member must not be null"));
                    } else if let Some(v) = self.check(*member, item, &p, sensitive) {
                        out.push(v);
                    }
                }
                Some(Value::Array(out))
            }
            Kind::Map { key, value: value_shape, min, max } => {
                let Value::Object(entries) = value else {
                    return self.wrong_type(shown, path, "a map");
                };
                self.length(shown, path, entries.len(), *min, *max);
                let mut out = Map::new();
                for (k, v) in entries {
                    let failures = scalar_failures(&self.service.shape(*key).kind, k);
                    if !failures.is_empty() {
                        self.fail(shown, path, &format!("Map keys must satisfy constraint: [{}]", failures.join(", ")));
                    }
                    let value_kind = &self.service.shape(*value_shape).kind;
                    if let (Kind::String { .. }, Value::String(text)) = (value_kind, v) {
                        let failures = scalar_failures(value_kind, text);
                        if !failures.is_empty() {
                            self.fail(
                                shown,
                                path,
                                &format!("Map value must satisfy constraint: [{}]", failures.join(", ")),
                            );
                        }
                        out.insert(k.clone(), v.clone());
                    } else if let Some(checked) = self.check(*value_shape, v, &format!("{path}.{k}"), sensitive) {
                        out.insert(k.clone(), checked);
                    }
                }
                Some(Value::Object(out))
            }
            Kind::String { .. } => {
                let Value::String(text) = value else {
                    return self.wrong_type(shown, path, "a string");
                };
                for f in scalar_failures(&s.kind, text) {
                    self.fail(shown, path, &f);
                }
                Some(value.clone())
            }
            Kind::Integer { bits, min, max } => {
                let n = value.as_i64().filter(|n| *bits == 64 || i32::try_from(*n).is_ok());
                let Some(n) = n else {
                    return self.wrong_type(shown, path, if *bits == 32 { "an integer" } else { "a long integer" });
                };
                if let Some(m) = min.filter(|m| n < *m) {
                    self.fail(shown, path, &format!("Member must have value greater than or equal to {m}"));
                }
                if let Some(m) = max.filter(|m| n > *m) {
                    self.fail(shown, path, &format!("Member must have value less than or equal to {m}"));
                }
                Some(value.clone())
            }
            Kind::Float { min, max } => {
                let Some(x) = value.as_f64() else {
                    return self.wrong_type(shown, path, "a number");
                };
                if let Some(m) = min.filter(|m| x < *m) {
                    self.fail(shown, path, &format!("Member must have value greater than or equal to {}", number(m)));
                }
                if let Some(m) = max.filter(|m| x > *m) {
                    self.fail(shown, path, &format!("Member must have value less than or equal to {}", number(m)));
                }
                Some(value.clone())
            }
            Kind::Boolean => match value {
                Value::Bool(_) => Some(value.clone()),
                _ => self.wrong_type(shown, path, "a boolean"),
            },
            Kind::Blob { min, max } => {
                let bytes = value.as_str().and_then(|t| aws_smithy_types::base64::decode(t).ok());
                let Some(bytes) = bytes else {
                    return self.wrong_type(shown, path, "base64-encoded binary data");
                };
                self.length(shown, path, bytes.len(), *min, *max);
                Some(value.clone())
            }
            Kind::Timestamp => match value {
                Value::Number(_) => Some(value.clone()),
                Value::String(t) if crate::ids::parse_iso8601(t).is_some() => Some(value.clone()),
                _ => self.wrong_type(shown, path, "a timestamp"),
            },
        }
    }

    /// A length check of a list, map or blob.
    fn length(&mut self, shown: Option<&str>, path: &str, n: usize, min: Option<u64>, max: Option<u64>) {
        let n = n as u64;
        if let Some(m) = min.filter(|m| n < *m) {
            self.fail(shown, path, &format!("Member must have length greater than or equal to {m}"));
        }
        if let Some(m) = max.filter(|m| n > *m) {
            self.fail(shown, path, &format!("Member must have length less than or equal to {m}"));
        }
    }

    fn wrong_type(&mut self, shown: Option<&str>, path: &str, what: &str) -> Option<Value> {
        self.fail(shown, path, &format!("Member must be {what}"));
        None
    }
}

/// The constraints a string breaks, in AWS's words: enum, then length, then pattern.
fn scalar_failures(kind: &Kind, text: &str) -> Vec<String> {
    let Kind::String { min, max, pattern, values } = kind else {
        return vec![];
    };
    let mut out = Vec::new();
    if !values.is_empty() && !values.iter().any(|v| **v == *text) {
        out.push(format!("Member must satisfy enum value set: [{}]", values.join(", ")));
    }
    let n = text.chars().count() as u64;
    if let Some(m) = min.filter(|m| n < *m) {
        out.push(format!("Member must have length greater than or equal to {m}"));
    }
    if let Some(m) = max.filter(|m| n > *m) {
        out.push(format!("Member must have length less than or equal to {m}"));
    }
    if let Some(p) = pattern {
        if !p.is_match(text) {
            out.push(format!("Member must satisfy regular expression pattern: {}", p.as_str()));
        }
    }
    out
}

/// One clause: `Value 'v' at 'path' failed to satisfy constraint: ...` (`Value at` when the value
/// is not shown).
fn clause(shown: Option<&str>, path: &str, constraint: &str) -> String {
    match shown {
        Some(v) => format!("Value '{v}' at '{path}' failed to satisfy constraint: {constraint}"),
        None => format!("Value at '{path}' failed to satisfy constraint: {constraint}"),
    }
}

/// How a value is echoed in a clause: scalars as they are, a list of scalars as `[a, b]`;
/// structures and maps are not echoed.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> =
                items.iter().map(|i| if i.is_array() { None } else { render(i) }).collect();
            parts.map(|p| format!("[{}]", p.join(", ")))
        }
        Value::Null | Value::Object(_) => None,
    }
}

/// A bound as the model writes it (`1`, not `1.0`).
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `1 validation error detected: ...` / `N validation errors detected: a; b`, or `None` for no
/// clauses.
pub(crate) fn message(clauses: &[String]) -> Option<String> {
    match clauses.len() {
        0 => None,
        1 => Some(format!("1 validation error detected: {}", clauses[0])),
        n => Some(format!("{n} validation errors detected: {}", clauses.join("; "))),
    }
}
