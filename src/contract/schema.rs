//! The output schema: the shape of `structuredContent`, declared to clients as the tool's
//! `outputSchema`. Written out so that its wording is the contract's; a test checks it against
//! what [`ExecutionResult`](super::ExecutionResult) serializes.

use serde_json::{Value, json};

use super::Status;

pub fn output_schema() -> Value {
    let error = json!({
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "message": {"type": "string"},
            "traceback": {"type": "string"}
        },
        "required": ["type", "message"]
    });
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": Status::ALL.map(Status::as_str)},
            "stdout": {"type": "string"},
            "stderr": {"type": "string"},
            "truncated": {
                "type": "object",
                "properties": {"stdout": {"type": "boolean"}, "stderr": {"type": "boolean"}},
                "required": ["stdout", "stderr"]
            },
            "result": {"description": "JSON value of the last expression, or null."},
            "error": {"anyOf": [{"type": "null"}, error]},
            "usage": {
                "type": "object",
                "properties": {
                    "wall_ms": {"type": "integer", "minimum": 0},
                    "fuel": {"type": "integer", "minimum": 0},
                    "memory_peak_bytes": {"type": "integer", "minimum": 0},
                    "fetches": {"type": "integer", "minimum": 0}
                },
                "required": ["wall_ms", "fuel", "memory_peak_bytes", "fetches"]
            },
            "policy": {
                "type": "object",
                "description": "Only on denials.",
                "properties": {
                    "rule": {"type": "string"},
                    "reason": {"type": "string"},
                    "retry_after_ms": {"type": "integer", "minimum": 0}
                },
                "required": ["rule", "reason"]
            }
        },
        "required": ["status", "stdout", "stderr", "truncated", "result", "error", "usage"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{ErrorInfo, ErrorKind, ExecutionResult, PolicyDecision};

    #[test]
    fn every_result_field_is_in_the_output_schema() {
        let schema = output_schema();
        let mut r =
            ExecutionResult::without_run(Status::Denied, ErrorInfo::new(ErrorKind::Denied, "b"));
        r.policy = Some(PolicyDecision {
            rule: "r".into(),
            reason: "x".into(),
            retry_after_ms: Some(1),
        });
        let v = serde_json::to_value(&r).unwrap();
        for key in v.as_object().unwrap().keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{key} missing from the schema"
            );
        }
        for key in schema["required"].as_array().unwrap() {
            assert!(
                v.get(key.as_str().unwrap()).is_some(),
                "{key} missing from the result"
            );
        }
    }
}
