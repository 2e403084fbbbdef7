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
            },
            "files": {
                "type": "array",
                "description": "Files the run created or changed in /workspace; absent when none.",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "size": {"type": "integer", "minimum": 0},
                        "media_type": {"type": "string"},
                        "sha256": {"type": "string"},
                        "uri": {"type": "string", "description": "For resources/read, while the session lives."}
                    },
                    "required": ["path", "size", "media_type", "sha256"]
                }
            },
            "session": {
                "type": "object",
                "description": "Present when the call ran in a session.",
                "properties": {
                    "id": {"type": "string"},
                    "call": {"type": "integer", "minimum": 1},
                    "fresh": {"type": "boolean"},
                    "restarted": {"type": "boolean"},
                    "idle_timeout_s": {"type": "integer", "minimum": 0},
                    "expires_in_s": {"type": "integer", "minimum": 0}
                },
                "required": ["id", "call", "fresh", "restarted", "idle_timeout_s", "expires_in_s"]
            }
        },
        "required": ["status", "stdout", "stderr", "truncated", "result", "error", "usage"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{
        ErrorInfo, ErrorKind, ExecutionResult, FileInfo, PolicyDecision, SessionInfo,
    };

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
        r.files = vec![FileInfo {
            path: "/workspace/a.png".into(),
            size: 1,
            media_type: "image/png".into(),
            sha256: "00".into(),
            uri: Some("warden://sessions/s/files/a.png".into()),
            content: None,
        }];
        r.session = Some(Box::new(SessionInfo {
            id: "s".into(),
            call: 1,
            fresh: true,
            restarted: false,
            idle_timeout_s: 1,
            expires_in_s: 1,
        }));
        let v = serde_json::to_value(&r).unwrap();
        for (field, part) in [("files", &v["files"][0]), ("session", &v["session"])] {
            let properties = &schema["properties"][field];
            let properties = properties["items"]["properties"]
                .as_object()
                .or(properties["properties"].as_object())
                .unwrap();
            for key in part.as_object().unwrap().keys() {
                assert!(properties.contains_key(key), "{field}.{key} missing");
            }
        }
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
