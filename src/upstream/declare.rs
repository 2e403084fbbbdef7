//! What the model reads about a tool: a TypeScript declaration and a Python signature made
//! from its input and output schemas (a readable subset of JSON Schema: types, properties,
//! required, enums, arrays, unions; anything else is `unknown` / `Any`).

use rmcp::model::Tool;
use serde_json::{Map, Value};

/// Nesting beyond this is written as `unknown`: declarations stay short.
const MAX_DEPTH: usize = 3;
/// Descriptions longer than this are cut (the whole one is in `describe`).
const MAX_SUMMARY_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Declaration {
    /// `tools.<server>.<name>(args: {...}): Promise<...>`, with a doc comment.
    pub typescript: String,
    /// `tools.<server>.<name>(*, a: str, b: int = None) -> dict`, with a docstring line.
    pub python: String,
}

/// A tool's name as Python code writes it (an identifier); JavaScript can write either.
pub fn python_name(tool: &str) -> String {
    let mut name: String = tool
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.as_bytes().first().is_none_or(u8::is_ascii_digit) {
        name.insert(0, '_');
    }
    name
}

pub fn declare(server: &str, tool: &Tool) -> Declaration {
    let summary = summary(tool.description.as_deref().unwrap_or(""));
    let input = Value::Object((*tool.input_schema).clone());
    let output = tool
        .output_schema
        .as_ref()
        .map_or("unknown".to_string(), |s| {
            ts_type(&Value::Object((**s).clone()), 0)
        });
    let js_name = if is_js_identifier(&tool.name) {
        format!(".{}", tool.name)
    } else {
        format!("[{}]", Value::String(tool.name.to_string()))
    };
    let typescript = format!(
        "/** {summary} */\ntools.{server}{js_name}(args: {}): Promise<{output}>",
        ts_type(&input, 0)
    );
    let python = format!(
        "tools.{server}.{}({}) -> {}\n    \"\"\"{}\"\"\"",
        python_name(&tool.name),
        python_params(&input),
        tool.output_schema
            .as_ref()
            .map_or("Any", |s| py_type(&Value::Object((**s).clone()))),
        summary.replace("\"\"\"", "'''"),
    );
    Declaration { typescript, python }
}

/// [`declare`] for a tool as `tools/list` describes it in JSON (`None`: not a tool).
pub fn declare_listed(server: &str, listed: &Value) -> Option<Declaration> {
    let tool: Tool = serde_json::from_value(listed.clone()).ok()?;
    Some(declare(server, &tool))
}

fn summary(description: &str) -> String {
    let line = description
        .split("\n\n")
        .next()
        .unwrap_or("")
        .replace('\n', " ");
    let line = line.replace("*/", "* /");
    match line.char_indices().nth(MAX_SUMMARY_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

fn is_js_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn properties(schema: &Value) -> (Option<&Map<String, Value>>, Vec<&str>) {
    let props = schema.get("properties").and_then(Value::as_object);
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    (props, required)
}

fn ts_type(schema: &Value, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return "unknown".into();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let parts: Vec<String> = values.iter().map(Value::to_string).collect();
        return if parts.is_empty() {
            "never".into()
        } else {
            parts.join(" | ")
        };
    }
    if let Some(value) = schema.get("const") {
        return value.to_string();
    }
    for union in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(union).and_then(Value::as_array) {
            let parts: Vec<String> = options.iter().map(|o| ts_type(o, depth + 1)).collect();
            return parts.join(" | ");
        }
    }
    match schema.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| ts_type(&serde_json::json!({ "type": t }), depth + 1))
            .collect::<Vec<_>>()
            .join(" | "),
        Some(Value::String(t)) => match t.as_str() {
            "string" => "string".into(),
            "number" | "integer" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => match schema.get("items") {
                Some(items) => format!("Array<{}>", ts_type(items, depth + 1)),
                None => "unknown[]".into(),
            },
            "object" => ts_object(schema, depth),
            _ => "unknown".into(),
        },
        _ if schema.get("properties").is_some() => ts_object(schema, depth),
        _ => "unknown".into(),
    }
}

fn ts_object(schema: &Value, depth: usize) -> String {
    let (Some(props), required) = properties(schema) else {
        return "Record<string, unknown>".into();
    };
    if props.is_empty() {
        return "{}".into();
    }
    let fields: Vec<String> = props
        .iter()
        .map(|(name, s)| {
            let key = if is_js_identifier(name) {
                name.clone()
            } else {
                Value::String(name.clone()).to_string()
            };
            let optional = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            format!("{key}{optional}: {}", ts_type(s, depth + 1))
        })
        .collect();
    format!("{{ {} }}", fields.join("; "))
}

/// Python's type for a schema, in one word.
fn py_type(schema: &Value) -> &'static str {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => "str",
        Some("integer") => "int",
        Some("number") => "float",
        Some("boolean") => "bool",
        Some("array") => "list",
        Some("object") => "dict",
        Some("null") => "None",
        _ if schema.get("properties").is_some() => "dict",
        _ => "Any",
    }
}

fn python_params(schema: &Value) -> String {
    let (Some(props), required) = properties(schema) else {
        return "**arguments".into();
    };
    if props.is_empty() {
        return String::new();
    }
    let mut params = vec!["*".to_string()];
    // Required first, so that the signature reads as Python would write it.
    let (must, may): (Vec<_>, Vec<_>) = props
        .iter()
        .partition(|(name, _)| required.contains(&name.as_str()));
    for (name, s) in must {
        params.push(format!("{}: {}", python_name(name), py_type(s)));
    }
    for (name, s) in may {
        params.push(format!("{}: {} = None", python_name(name), py_type(s)));
    }
    params.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(input: Value, output: Option<Value>) -> Tool {
        let mut tool = Tool::new(
            "create_issue",
            "Creates an issue.\n\nMore detail.",
            input.as_object().unwrap().clone(),
        );
        tool.output_schema = output.map(|o| std::sync::Arc::new(o.as_object().unwrap().clone()));
        tool
    }

    #[test]
    fn declarations_read_like_the_code_that_calls_the_tool() {
        let t = tool(
            json!({"type": "object", "properties": {
                "title": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "state": {"enum": ["open", "closed"]},
                "weird-key": {"type": "integer"}
            }, "required": ["title"]}),
            Some(json!({"type": "object", "properties": {"number": {"type": "integer"}}})),
        );
        let d = declare("github", &t);
        assert_eq!(
            d.typescript,
            "/** Creates an issue. */\ntools.github.create_issue(args: { labels?: Array<string>; \
             state?: \"open\" | \"closed\"; title: string; \"weird-key\"?: number }): \
             Promise<{ number?: number }>"
        );
        assert_eq!(
            d.python,
            "tools.github.create_issue(*, title: str, labels: list = None, state: Any = None, \
             weird_key: int = None) -> dict\n    \"\"\"Creates an issue.\"\"\""
        );
    }

    #[test]
    fn names_that_are_not_identifiers_are_written_so_that_they_still_work() {
        let mut t = tool(json!({"type": "object"}), None);
        t.name = "get-file.contents".into();
        let d = declare("fs", &t);
        assert!(
            d.typescript.contains(
                "tools.fs[\"get-file.contents\"](args: Record<string, unknown>): Promise<unknown>"
            ),
            "{}",
            d.typescript
        );
        assert!(
            d.python
                .starts_with("tools.fs.get_file_contents(**arguments) -> Any"),
            "{}",
            d.python
        );
        assert_eq!(python_name("3d"), "_3d");
    }

    #[test]
    fn deep_schemas_and_comment_ends_cannot_break_the_declaration() {
        let mut deep = json!({"type": "string"});
        for _ in 0..50 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        let mut t = tool(deep, None);
        t.description = Some("ends */ here".into());
        let d = declare("x", &t);
        assert!(d.typescript.contains("unknown"));
        assert!(!d.typescript[3..].contains("*/ here"));
    }
}
