//! The AWS service models the emulator speaks, reduced to what validating a request needs: shapes
//! with their constraints, the operations and their modelled errors. The tables themselves are
//! generated from botocore ([`botocore`]); [`shape`] gives them types, this module the lookups that
//! span both services.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

pub mod botocore;
pub mod shape;

pub use botocore::{BEDROCK, BEDROCK_RUNTIME, BOTOCORE_VERSION};
pub use shape::{Kind, Location, Member, Operation, Service, Shape};

/// Every pattern of both services, compiled once to match whole values.
static PATTERNS: LazyLock<HashMap<&'static str, Regex>> = LazyLock::new(|| {
    let mut out = HashMap::new();
    for service in [&BEDROCK, &BEDROCK_RUNTIME] {
        for shape in service.shapes {
            if let Kind::String { pattern: Some(p), .. } = shape.kind {
                out.entry(p).or_insert_with(|| whole(p));
            }
        }
    }
    out
});

/// A model pattern as a regex that must match the whole value.
fn whole(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$"))
        .unwrap_or_else(|e| panic!("the model pattern {pattern} does not compile: {e}"))
}

/// Whether `value` matches the model pattern `pattern` as a whole.
pub fn matches(pattern: &'static str, value: &str) -> bool {
    match PATTERNS.get(pattern) {
        Some(re) => re.is_match(value),
        None => whole(pattern).is_match(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_of_the_models_compiles() {
        assert!(PATTERNS.len() > 10, "{} patterns", PATTERNS.len());
    }

    #[test]
    fn member_targets_and_operation_inputs_point_at_shapes_of_their_service() {
        for service in [&BEDROCK, &BEDROCK_RUNTIME] {
            let n = service.shapes.len();
            for shape in service.shapes {
                let targets: Vec<u16> = match &shape.kind {
                    Kind::Structure { members, .. } => members.iter().map(|m| m.target).collect(),
                    Kind::List { member, .. } => vec![*member],
                    Kind::Map { key, value, .. } => vec![*key, *value],
                    _ => vec![],
                };
                assert!(targets.iter().all(|&t| usize::from(t) < n), "{}", shape.name);
            }
            for op in service.operations {
                assert!(matches!(service.shape(op.input).kind, Kind::Structure { .. }), "{}", op.name);
            }
        }
        assert_eq!(BEDROCK.operation("CreateModelInvocationJob").uri, "/model-invocation-job");
        assert_eq!(BEDROCK_RUNTIME.operation("InvokeModel").method, "POST");
    }

    #[test]
    fn patterns_match_whole_values_only() {
        let job_name = r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}";
        assert!(matches(job_name, "batch-inference-abc.1+2"));
        assert!(!matches(job_name, "bad_name"), "a prefix that matches is not enough");
        assert!(!matches(job_name, "-starts-with-dash"));
    }

    #[test]
    fn statuses_map_to_the_operations_modelled_errors() {
        let invoke = BEDROCK_RUNTIME.operation("InvokeModel");
        assert_eq!(invoke.error_for_status(429), ("ThrottlingException", 429));
        assert_eq!(invoke.error_for_status(400), ("ValidationException", 400));
        assert_eq!(invoke.error_for_status(424), ("ModelErrorException", 424));
        assert_eq!(invoke.error_for_status(409), ("ValidationException", 400));
        assert_eq!(invoke.error_for_status(401), ("ValidationException", 400));
        assert_eq!(invoke.error_for_status(502), ("InternalServerException", 500));
        assert_eq!(invoke.error_for_status(503), ("ServiceUnavailableException", 503));
        let create = BEDROCK.operation("CreateModelInvocationJob");
        assert_eq!(create.error_for_status(503), ("InternalServerException", 500));
        assert_eq!(create.error_for_status(409), ("ValidationException", 400));
    }
}
