//! PolicyLayer's JSON dialect, translated into Warden's policy model.

use super::{Policy, PolicyError, ToolPolicy};
use crate::policy::ratelimit::LimitSpec;

impl Policy {
    /// Translates a PolicyLayer-style JSON document: `version`, `default`,
    /// `tools.<name>.limits[]` (`counter`, `window`, `max`, `scope`) and `all_tools.limits[]`.
    /// Anything else cannot be translated and is an error, never ignored.
    pub fn from_policylayer(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        let root = doc
            .as_object()
            .ok_or_else(|| invalid("a PolicyLayer document is a JSON object".into()))?;
        let mut policy = Policy::parse("", origin)?;
        for (key, value) in root {
            match key.as_str() {
                "version" => {
                    let ok = value == &serde_json::json!(1) || value == &serde_json::json!("1");
                    if !ok {
                        return Err(invalid(format!(
                            "version {value} is not supported (expected 1)"
                        )));
                    }
                }
                "default" => {
                    policy.default = serde_json::from_value(value.clone()).map_err(|_| {
                        invalid(format!(
                            "default: expected \"allow\" or \"deny\", got {value}"
                        ))
                    })?;
                }
                "tools" => {
                    let tools = value
                        .as_object()
                        .ok_or_else(|| invalid("tools: expected an object of tools".into()))?;
                    for (name, tool) in tools {
                        let tool = tool
                            .as_object()
                            .ok_or_else(|| invalid(format!("tools.{name}: expected an object")))?;
                        let mut translated = ToolPolicy::default();
                        for (field, v) in tool {
                            match field.as_str() {
                                "limits" => {
                                    translated.limits =
                                        translate_limits(v, &format!("tools.{name}.limits"))
                                            .map_err(invalid)?
                                }
                                other => {
                                    return Err(invalid(format!(
                                        "tools.{name}.{other}: cannot be translated (only `limits` can)"
                                    )));
                                }
                            }
                        }
                        policy.tools.insert(name.clone(), translated);
                    }
                }
                "all_tools" => {
                    let all = value
                        .as_object()
                        .ok_or_else(|| invalid("all_tools: expected an object".into()))?;
                    for (field, v) in all {
                        match field.as_str() {
                            "limits" => {
                                policy.all_tools.limits =
                                    translate_limits(v, "all_tools.limits").map_err(invalid)?
                            }
                            other => {
                                return Err(invalid(format!(
                                    "all_tools.{other}: cannot be translated (only `limits` can)"
                                )));
                            }
                        }
                    }
                }
                other => return Err(invalid(format!("`{other}`: cannot be translated"))),
            }
        }
        // A JSON document has no line and column here; the path says where.
        policy
            .validate()
            .map_err(|issue| invalid(format!("at {}: {}", issue.path.join("."), issue.message)))?;
        Ok(policy)
    }
}

fn translate_limits(value: &serde_json::Value, at: &str) -> Result<Vec<LimitSpec>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{at}: expected a list of limits"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value::<LimitSpec>(item.clone()).map_err(|e| format!("{at}[{i}]: {e}"))
        })
        .collect()
}
