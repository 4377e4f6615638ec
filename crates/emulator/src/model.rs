//! The AWS service models the emulator speaks, reduced to what validating a request needs: shapes
//! with their constraints, the operations and their modelled errors. They are data,
//! `model/botocore.json`, written by `scripts/gen-botocore.py` from the pinned botocore and read
//! once ([`load`]); [`shape`] is their typed view.

use std::sync::LazyLock;

pub mod load;
pub mod shape;

pub use load::Models;
pub use shape::{Kind, Location, Member, Operation, Pattern, Service, Shape};

/// Every service model the emulator speaks, read from the data file on first use.
pub static MODELS: LazyLock<Models> = LazyLock::new(|| {
    Models::from_json(include_str!("model/botocore.json")).unwrap_or_else(|e| panic!("the service models: {e}"))
});

/// `bedrock`, the control plane (batch inference jobs).
pub static BEDROCK: LazyLock<&'static Service> = LazyLock::new(|| MODELS.service("bedrock"));

/// `bedrock-runtime`, the runtime (InvokeModel, Converse, their streaming twins and CountTokens).
pub static BEDROCK_RUNTIME: LazyLock<&'static Service> = LazyLock::new(|| MODELS.service("bedrock-runtime"));

/// `service-quotas`, AWS Service Quotas (ListServiceQuotas and GetServiceQuota, AWS JSON 1.1).
pub static SERVICE_QUOTAS: LazyLock<&'static Service> = LazyLock::new(|| MODELS.service("service-quotas"));

/// The botocore release the models come from.
pub static BOTOCORE_VERSION: LazyLock<&'static str> = LazyLock::new(|| &MODELS.botocore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_of_the_models_compiles() {
        let patterns = [&BEDROCK, &BEDROCK_RUNTIME, &SERVICE_QUOTAS]
            .iter()
            .flat_map(|s| &s.shapes)
            .filter(|s| matches!(s.kind, Kind::String { pattern: Some(_), .. }))
            .count();
        assert!(patterns > 10, "{patterns} patterns");
    }

    #[test]
    fn the_data_file_records_its_botocore_release_and_model_versions() {
        assert!(BOTOCORE_VERSION.split('.').count() == 3, "{}", *BOTOCORE_VERSION);
        assert_eq!((&*BEDROCK.name, &*BEDROCK.version), ("bedrock", "2023-04-20"));
        assert_eq!((&*BEDROCK_RUNTIME.name, &*BEDROCK_RUNTIME.version), ("bedrock-runtime", "2023-09-30"));
        assert_eq!((&*SERVICE_QUOTAS.name, &*SERVICE_QUOTAS.version), ("service-quotas", "2019-06-24"));
        assert_eq!(BEDROCK.shape_index("AccountId"), Some(0));
        assert_eq!(BEDROCK.shape_index("NoSuchShape"), None);
    }

    #[test]
    fn member_targets_and_operation_inputs_point_at_shapes_of_their_service() {
        for service in [&BEDROCK, &BEDROCK_RUNTIME, &SERVICE_QUOTAS] {
            let n = service.shapes.len();
            for shape in &service.shapes {
                let targets: Vec<u16> = match &shape.kind {
                    Kind::Structure { members, .. } => members.iter().map(|m| m.target).collect(),
                    Kind::List { member, .. } => vec![*member],
                    Kind::Map { key, value, .. } => vec![*key, *value],
                    _ => vec![],
                };
                assert!(targets.iter().all(|&t| usize::from(t) < n), "{}", shape.name);
            }
            for op in &service.operations {
                assert!(matches!(service.shape(op.input).kind, Kind::Structure { .. }), "{}", op.name);
            }
        }
        assert_eq!(&*BEDROCK.operation("CreateModelInvocationJob").uri, "/model-invocation-job");
        assert_eq!(&*BEDROCK_RUNTIME.operation("InvokeModel").method, "POST");
        assert_eq!(&*SERVICE_QUOTAS.operation("ListServiceQuotas").uri, "/");
    }

    #[test]
    fn patterns_match_whole_values_only() {
        let job_name = Pattern::new(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}").unwrap();
        assert!(job_name.is_match("batch-inference-abc.1+2"));
        assert!(!job_name.is_match("bad_name"), "a prefix that matches is not enough");
        assert!(!job_name.is_match("-starts-with-dash"));
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
