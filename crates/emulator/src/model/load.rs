//! Reads the data file `botocore.json` (written by `scripts/gen-botocore.py` from botocore's
//! service models, in botocore's own words) into the typed view of [`super::shape`]: shape names
//! become indices, bounds take their shape's number type, patterns are compiled.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Number;

use super::shape::{Kind, Location, Member, Operation, Pattern, Service, Shape};

/// Every service model of the data file, with the botocore release it comes from.
#[derive(Debug)]
pub struct Models {
    /// The botocore release (`1.44.8`).
    pub botocore: Box<str>,
    /// The services, in the file's order.
    pub services: Vec<Service>,
}

impl Models {
    /// Reads the data file; `Err` says what does not hold together.
    pub fn from_json(text: &str) -> Result<Models, String> {
        let file: File = serde_json::from_str(text).map_err(|e| format!("botocore.json: {e}"))?;
        let mut patterns = HashMap::new();
        let services = file.services.into_iter().map(|s| service(s, &mut patterns)).collect::<Result<Vec<_>, _>>()?;
        Ok(Models { botocore: file.botocore, services })
    }

    /// A service by its model name; panics for one the file does not hold (a bug).
    pub fn service(&self, name: &str) -> &Service {
        self.services.iter().find(|s| &*s.name == name).unwrap_or_else(|| panic!("botocore.json has no service {name}"))
    }
}

#[derive(Deserialize)]
struct File {
    botocore: Box<str>,
    services: Vec<RawService>,
}

#[derive(Deserialize)]
struct RawService {
    name: Box<str>,
    version: Box<str>,
    operations: Vec<RawOperation>,
    shapes: Vec<RawShape>,
}

#[derive(Deserialize)]
struct RawOperation {
    name: Box<str>,
    method: Box<str>,
    uri: Box<str>,
    input: Box<str>,
    errors: Vec<(Box<str>, u16)>,
}

#[derive(Deserialize)]
struct RawShape {
    name: Box<str>,
    #[serde(default)]
    sensitive: bool,
    #[serde(flatten)]
    kind: RawKind,
    min: Option<Number>,
    max: Option<Number>,
}

/// A shape by its botocore `type`, with that type's fields.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum RawKind {
    Structure {
        #[serde(default)]
        document: bool,
        #[serde(default)]
        members: Vec<RawMember>,
        #[serde(default)]
        required: Vec<Box<str>>,
        #[serde(default)]
        union: bool,
        payload: Option<Box<str>>,
    },
    List {
        member: Box<str>,
    },
    Map {
        key: Box<str>,
        value: Box<str>,
    },
    String {
        pattern: Option<Box<str>>,
        #[serde(rename = "enum", default)]
        values: Vec<Box<str>>,
    },
    Integer,
    Long,
    Float,
    Double,
    Boolean,
    Blob,
    Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMember {
    name: Box<str>,
    shape: Box<str>,
    location: Option<Box<str>>,
    location_name: Option<Box<str>>,
}

fn service(raw: RawService, patterns: &mut HashMap<Box<str>, Pattern>) -> Result<Service, String> {
    let where_ = |what: &str| format!("{} {}: {what}", raw.name, raw.version);
    let mut index = HashMap::with_capacity(raw.shapes.len());
    for (i, s) in raw.shapes.iter().enumerate() {
        let i = u16::try_from(i).map_err(|_| where_("more shapes than a u16 counts"))?;
        if index.insert(s.name.clone(), i).is_some() {
            return Err(where_(&format!("shape {} twice", s.name)));
        }
    }
    let at = |name: &str| index.get(name).copied().ok_or_else(|| where_(&format!("no shape {name}")));
    let mut shapes = Vec::with_capacity(raw.shapes.len());
    for s in &raw.shapes {
        let kind = kind(s, &at, patterns).map_err(|e| where_(&format!("{}: {e}", s.name)))?;
        shapes.push(Shape { name: s.name.clone(), sensitive: s.sensitive, kind });
    }
    let mut operations = Vec::with_capacity(raw.operations.len());
    for o in raw.operations {
        let input = at(&o.input)?;
        if !matches!(shapes[usize::from(input)].kind, Kind::Structure { .. }) {
            return Err(where_(&format!("the input of {} is not a structure", o.name)));
        }
        operations.push(Operation { name: o.name, method: o.method, uri: o.uri, input, errors: o.errors });
    }
    Ok(Service { name: raw.name, version: raw.version, shapes, operations, index })
}

fn kind(
    s: &RawShape,
    at: &dyn Fn(&str) -> Result<u16, String>,
    patterns: &mut HashMap<Box<str>, Pattern>,
) -> Result<Kind, String> {
    let length =
        |n: &Option<Number>| n.as_ref().map(|n| n.as_u64().ok_or(format!("bound {n} is not a length"))).transpose();
    let whole =
        |n: &Option<Number>| n.as_ref().map(|n| n.as_i64().ok_or(format!("bound {n} is not whole"))).transpose();
    let real =
        |n: &Option<Number>| n.as_ref().map(|n| n.as_f64().ok_or(format!("bound {n} is not a number"))).transpose();
    Ok(match &s.kind {
        RawKind::Structure { document: true, .. } => Kind::Document,
        RawKind::Structure { members, required, union, payload, .. } => {
            let members = members
                .iter()
                .map(|m| {
                    Ok(Member {
                        name: m.name.clone(),
                        target: at(&m.shape)?,
                        required: required.contains(&m.name),
                        location: location(m)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            if let Some(p) = payload {
                if !members.iter().any(|m| m.name == *p) {
                    return Err(format!("the payload {p} is not a member"));
                }
            }
            Kind::Structure { members, union: *union, payload: payload.clone() }
        }
        RawKind::List { member } => Kind::List { member: at(member)?, min: length(&s.min)?, max: length(&s.max)? },
        RawKind::Map { key, value } => {
            Kind::Map { key: at(key)?, value: at(value)?, min: length(&s.min)?, max: length(&s.max)? }
        }
        RawKind::String { pattern, values } => {
            let pattern = match pattern {
                None => None,
                Some(p) => Some(match patterns.get(p) {
                    Some(compiled) => compiled.clone(),
                    None => {
                        let compiled = Pattern::new(p)?;
                        patterns.insert(p.clone(), compiled.clone());
                        compiled
                    }
                }),
            };
            Kind::String { min: length(&s.min)?, max: length(&s.max)?, pattern, values: values.clone() }
        }
        RawKind::Integer => Kind::Integer { bits: 32, min: whole(&s.min)?, max: whole(&s.max)? },
        RawKind::Long => Kind::Integer { bits: 64, min: whole(&s.min)?, max: whole(&s.max)? },
        RawKind::Float | RawKind::Double => Kind::Float { min: real(&s.min)?, max: real(&s.max)? },
        RawKind::Boolean => Kind::Boolean,
        RawKind::Blob => Kind::Blob { min: length(&s.min)?, max: length(&s.max)? },
        RawKind::Timestamp => Kind::Timestamp,
    })
}

fn location(m: &RawMember) -> Result<Location, String> {
    let name = || m.location_name.clone().ok_or_else(|| format!("member {} has a location but no name", m.name));
    Ok(match m.location.as_deref() {
        None => Location::Body,
        Some("uri") => Location::Uri(name()?),
        Some("header") => Location::Header(name()?),
        Some("querystring") => Location::Query(name()?),
        Some(other) => return Err(format!("member {} travels in an unknown place: {other}", m.name)),
    })
}
