//! The typed view of the service models: services, shapes and their constraints, members and where
//! they travel, operations and their modelled errors. [`super::load`] builds them from the data
//! file, once.

use std::collections::HashMap;
use std::fmt;

use regex::Regex;

/// One service model: its shapes (indexed by [`Member::target`] and friends) and operations.
#[derive(Debug)]
pub struct Service {
    /// The model's service name (`bedrock`, `bedrock-runtime`).
    pub name: Box<str>,
    /// The model's API version (`2023-04-20`).
    pub version: Box<str>,
    /// Every shape reachable from the inputs of [`Service::operations`], sorted by name.
    pub shapes: Vec<Shape>,
    /// The operations the emulator serves.
    pub operations: Vec<Operation>,
    /// [`Service::shapes`] indices by name.
    pub(super) index: HashMap<Box<str>, u16>,
}

/// A named shape.
#[derive(Debug)]
pub struct Shape {
    /// The model's name for it.
    pub name: Box<str>,
    /// Values of this shape are never echoed in error messages.
    pub sensitive: bool,
    /// What it is and its constraints.
    pub kind: Kind,
}

/// A shape's type and constraints. Lengths count characters (strings), items (lists), entries
/// (maps) or bytes (blobs).
#[derive(Debug)]
pub enum Kind {
    /// A structure, or a union when `union` is set (exactly one member must be set).
    Structure {
        /// Its members, in the model's order.
        members: Vec<Member>,
        /// Set for a union.
        union: bool,
        /// The name of the member that is the whole HTTP body, if one is.
        payload: Option<Box<str>>,
    },
    /// Any JSON value.
    Document,
    /// A list of `member`.
    List {
        /// The items' shape (an index into [`Service::shapes`]).
        member: u16,
        /// Fewest items.
        min: Option<u64>,
        /// Most items.
        max: Option<u64>,
    },
    /// A JSON object from `key` to `value`.
    Map {
        /// The keys' shape (an index into [`Service::shapes`]).
        key: u16,
        /// The values' shape (an index into [`Service::shapes`]).
        value: u16,
        /// Fewest entries.
        min: Option<u64>,
        /// Most entries.
        max: Option<u64>,
    },
    /// A string; `pattern` must match the whole value, `values` is the enum (empty: any).
    String {
        /// Fewest characters.
        min: Option<u64>,
        /// Most characters.
        max: Option<u64>,
        /// What the whole value must match.
        pattern: Option<Pattern>,
        /// The allowed values (empty: any).
        values: Vec<Box<str>>,
    },
    /// A whole number of `bits` (32: `integer`, 64: `long`).
    Integer {
        /// 32 or 64.
        bits: u8,
        /// Smallest value allowed.
        min: Option<i64>,
        /// Largest value allowed.
        max: Option<i64>,
    },
    /// A `float` or `double`.
    Float {
        /// Smallest value allowed.
        min: Option<f64>,
        /// Largest value allowed.
        max: Option<f64>,
    },
    /// `true` or `false`.
    Boolean,
    /// Bytes; base64 text in a JSON body.
    Blob {
        /// Fewest bytes.
        min: Option<u64>,
        /// Most bytes.
        max: Option<u64>,
    },
    /// A point in time (ISO-8601 text or epoch seconds).
    Timestamp,
}

/// A model pattern (its text, as error messages quote it) compiled to match whole values.
#[derive(Clone)]
pub struct Pattern {
    source: Box<str>,
    regex: Regex,
}

impl Pattern {
    /// Compiles a model pattern; `Err` names it when it does not compile.
    pub fn new(source: &str) -> Result<Pattern, String> {
        let regex = Regex::new(&format!("^(?:{source})$"))
            .map_err(|e| format!("the model pattern {source} does not compile: {e}"))?;
        Ok(Pattern { source: source.into(), regex })
    }

    /// The pattern as the model writes it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `value` matches the pattern as a whole.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

/// A member of a structure.
#[derive(Debug)]
pub struct Member {
    /// The wire name.
    pub name: Box<str>,
    /// Index of its shape in [`Service::shapes`].
    pub target: u16,
    /// Whether a request must set it.
    pub required: bool,
    /// Where it travels.
    pub location: Location,
}

/// Where a member of an operation's input travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In the JSON body (or as the whole body, for a payload member).
    Body,
    /// A path label, `{name}` in the operation's URI.
    Uri(Box<str>),
    /// A header.
    Header(Box<str>),
    /// A query-string parameter.
    Query(Box<str>),
}

/// An operation.
#[derive(Debug)]
pub struct Operation {
    /// Its name (`CreateModelInvocationJob`).
    pub name: Box<str>,
    /// HTTP method.
    pub method: Box<str>,
    /// URI template.
    pub uri: Box<str>,
    /// Index of its input structure in [`Service::shapes`].
    pub input: u16,
    /// Its modelled errors with their HTTP statuses, in the model's order.
    pub errors: Vec<(Box<str>, u16)>,
}

impl Service {
    /// A shape by index.
    pub fn shape(&self, i: u16) -> &Shape {
        &self.shapes[usize::from(i)]
    }

    /// An operation by name; panics for one the tables do not hold (a bug, not a request error).
    pub fn operation(&self, name: &str) -> &Operation {
        self.operations
            .iter()
            .find(|o| &*o.name == name)
            .unwrap_or_else(|| panic!("{} has no operation {name} in its tables", self.name))
    }

    /// The index of a shape by name.
    pub fn shape_index(&self, name: &str) -> Option<u16> {
        self.index.get(name).copied()
    }
}

impl Operation {
    /// The modelled error the operation answers for an HTTP status: the first of its errors with
    /// that status, else its 400 `ValidationException` for a client status (4xx) and its
    /// `InternalServerException` for anything else. Returns the error's name and its status.
    pub fn error_for_status(&self, status: u16) -> (&str, u16) {
        if let Some((name, s)) = self.errors.iter().find(|(_, s)| *s == status) {
            return (name, *s);
        }
        let fallback = if (400..500).contains(&status) { "ValidationException" } else { "InternalServerException" };
        self.errors
            .iter()
            .find(|(name, _)| &**name == fallback)
            .map_or((fallback, if fallback == "ValidationException" { 400 } else { 500 }), |(name, s)| (name, *s))
    }
}
