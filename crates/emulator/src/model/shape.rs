//! The types of the generated tables: services, shapes and their constraints, members and where
//! they travel, operations and their modelled errors.

/// One service model: its shapes (indexed by [`Member::target`] and friends) and operations.
#[derive(Debug)]
pub struct Service {
    /// The model's service name (`bedrock`, `bedrock-runtime`).
    pub name: &'static str,
    /// Every shape reachable from the inputs of [`Service::operations`].
    pub shapes: &'static [Shape],
    /// The operations the emulator serves.
    pub operations: &'static [Operation],
}

/// A named shape.
#[derive(Debug)]
pub struct Shape {
    /// The model's name for it.
    pub name: &'static str,
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
    Structure { members: &'static [Member], union: bool, payload: Option<&'static str> },
    /// Any JSON value.
    Document,
    /// A list of `member`.
    List { member: u16, min: Option<u64>, max: Option<u64> },
    /// A JSON object from `key` to `value`.
    Map { key: u16, value: u16, min: Option<u64>, max: Option<u64> },
    /// A string; `pattern` must match the whole value, `values` is the enum (empty: any).
    String { min: Option<u64>, max: Option<u64>, pattern: Option<&'static str>, values: &'static [&'static str] },
    /// A whole number of `bits` (32: `integer`, 64: `long`).
    Integer { bits: u8, min: Option<i64>, max: Option<i64> },
    /// A `float` or `double`.
    Float { min: Option<f64>, max: Option<f64> },
    /// `true` or `false`.
    Boolean,
    /// Bytes; base64 text in a JSON body.
    Blob { min: Option<u64>, max: Option<u64> },
    /// A point in time (ISO-8601 text or epoch seconds).
    Timestamp,
}

/// A member of a structure.
#[derive(Debug)]
pub struct Member {
    /// The wire name.
    pub name: &'static str,
    /// Index of its shape in [`Service::shapes`].
    pub target: u16,
    /// Whether a request must set it.
    pub required: bool,
    /// Where it travels.
    pub location: Location,
}

/// Where a member of an operation's input travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In the JSON body (or as the whole body, for a payload member).
    Body,
    /// A path label, `{name}` in the operation's URI.
    Uri(&'static str),
    /// A header.
    Header(&'static str),
    /// A query-string parameter.
    Query(&'static str),
}

/// An operation.
#[derive(Debug)]
pub struct Operation {
    /// Its name (`CreateModelInvocationJob`).
    pub name: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// URI template.
    pub uri: &'static str,
    /// Index of its input structure in [`Service::shapes`].
    pub input: u16,
    /// Its modelled errors with their HTTP statuses, in the model's order.
    pub errors: &'static [(&'static str, u16)],
}

impl Service {
    /// A shape by index.
    pub fn shape(&self, i: u16) -> &'static Shape {
        &self.shapes[usize::from(i)]
    }

    /// An operation by name; panics for one the tables do not hold (a bug, not a request error).
    pub fn operation(&self, name: &str) -> &'static Operation {
        self.operations
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("{} has no operation {name} in its tables", self.name))
    }

    /// The index of a shape by name.
    pub fn shape_index(&self, name: &str) -> Option<u16> {
        self.shapes.iter().position(|s| s.name == name).and_then(|i| u16::try_from(i).ok())
    }
}

impl Operation {
    /// The modelled error the operation answers for an HTTP status: the first of its errors with
    /// that status, else its 400 `ValidationException` for a client status (4xx) and its
    /// `InternalServerException` for anything else. Returns the error's name and its status.
    pub fn error_for_status(&self, status: u16) -> (&'static str, u16) {
        if let Some(&(name, s)) = self.errors.iter().find(|(_, s)| *s == status) {
            return (name, s);
        }
        let fallback = if (400..500).contains(&status) { "ValidationException" } else { "InternalServerException" };
        self.errors
            .iter()
            .copied()
            .find(|(name, _)| *name == fallback)
            .unwrap_or((fallback, if fallback == "ValidationException" { 400 } else { 500 }))
    }
}
