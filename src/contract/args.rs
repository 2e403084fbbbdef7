//! The tool's arguments, defined once: [`ExecuteArgs`] derives the input schema (through
//! schemars, narrowed per caller by [`input_schema`]) and the list of argument names that
//! [`parse_args`] accepts. The policy looks at the same value.
//!
//! Parsing checks each argument itself rather than through serde so that every message says,
//! in the contract's words, what to fix.

use std::sync::OnceLock;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Language;
use super::call_scope::{FileInput, SessionAction, parse_files, parse_session};

/// The arguments of one call, validated.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteArgs {
    /// The language of `code`.
    pub language: Language,
    /// The program (at most {max_code_bytes} bytes of UTF-8). The value of its last expression is the result.
    pub code: String,
    /// Wall-clock limit in milliseconds (default {default_timeout_ms}, at most {max_timeout_ms}).
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u64>,
    /// Any JSON value, visible to the code as the global `input`.
    pub input: Option<Value>,
    /// Files to put in `/workspace` before the code runs: a path (relative to `/workspace`) -> its text, or `{"base64": ...}` for bytes; at most {max_files_bytes} bytes in all. Files the code writes there come back in the result.
    pub files: Option<BTreeMap<String, FileInput>>,
    /// Keep state between calls: "new" opens a session (its id comes back as `session.id`); pass that id to run in the same interpreter, globals and `/workspace` as before. Leave out for a fresh sandbox.
    pub session: Option<String>,
    /// With `session`: "reset" starts a fresh interpreter before the code runs (the workspace stays); "close" ends the session after the code ran. Default "continue".
    pub session_action: Option<SessionAction>,
}

/// The bounds a caller's arguments are checked against (its limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgumentLimits {
    pub max_code_bytes: u64,
    pub max_input_bytes: u64,
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    /// Decoded bytes of `files` in all; 0: the server gives runs no workspace.
    pub max_files_bytes: u64,
    /// Whether the policy turns sessions on.
    pub sessions: bool,
}

/// The schema derived from [`ExecuteArgs`], in the form the contract publishes: JSON Schema
/// 2020-12 without the generator's annotations (`$schema`, `title`, integer `format`s).
fn derived_schema() -> &'static Map<String, Value> {
    static SCHEMA: OnceLock<Map<String, Value>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // Inline: a model reads the enum and the file shapes where they are used.
        let mut settings = schemars::generate::SchemaSettings::draft2020_12();
        settings.inline_subschemas = true;
        let schema = settings
            .into_generator()
            .into_root_schema_for::<ExecuteArgs>();
        let mut value = schema.to_value();
        strip_annotations(&mut value);
        // The type's own doc comment is for Rust readers; the tool has its own description.
        if let Some(root) = value.as_object_mut() {
            root.remove("description");
        }
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    })
}

/// Also: an optional argument may be left out (or be `null`), but the schema advertises its
/// type alone, as it always has.
fn strip_annotations(value: &mut Value) {
    if let Value::Object(map) = value {
        map.remove("$schema");
        map.remove("title");
        map.remove("format");
        if let Some(Value::Array(values)) = map.get_mut("enum") {
            values.retain(|v| !v.is_null());
        }
        if let Some(Value::Array(types)) = map.get("type")
            && let [single] = types
                .iter()
                .filter(|t| t.as_str() != Some("null"))
                .collect::<Vec<_>>()
                .as_slice()
        {
            let single = (*single).clone();
            map.insert("type".into(), single);
        }
        map.values_mut().for_each(strip_annotations);
    }
}

/// The argument names, in the order the type declares them (serde's own list of the fields).
pub fn argument_names() -> &'static [&'static str] {
    static NAMES: OnceLock<&'static [&'static str]> = OnceLock::new();
    NAMES.get_or_init(serde_field_names::<ExecuteArgs>)
}

/// The field names a derived `Deserialize` asks for, read by a deserializer that only listens.
fn serde_field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor};

    #[derive(Debug)]
    struct Listened(&'static [&'static str]);

    impl std::fmt::Display for Listened {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names listened to")
        }
    }

    impl std::error::Error for Listened {}

    impl Error for Listened {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Listened(&[])
        }
    }

    struct Listener;

    impl<'de> serde::Deserializer<'de> for Listener {
        type Error = Listened;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Listened> {
            Err(Listened(&[]))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Listened> {
            Err(Listened(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    match T::deserialize(Listener) {
        Err(Listened(fields)) => fields,
        Ok(_) => &[],
    }
}

/// The input schema a caller sees: the derived one, its `language` enum narrowed to what the
/// caller may use and its descriptions filled in with the caller's limits.
pub fn input_schema(limits: &ArgumentLimits, languages: &[Language]) -> Value {
    let mut schema = Value::Object(derived_schema().clone());
    if let Some(language) = schema.pointer_mut("/properties/language") {
        language["enum"] = languages.iter().map(|l| l.as_str()).collect();
    }
    // What this server does not offer is not advertised.
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        if limits.max_files_bytes == 0 {
            properties.remove("files");
        }
        if !limits.sessions {
            properties.remove("session");
            properties.remove("session_action");
        }
    }
    fill_in(&mut schema, limits);
    schema
}

fn fill_in(value: &mut Value, limits: &ArgumentLimits) {
    match value {
        Value::String(text) if text.contains('{') => {
            *text = text
                .replace("{max_code_bytes}", &limits.max_code_bytes.to_string())
                .replace(
                    "{default_timeout_ms}",
                    &limits.default_timeout_ms.to_string(),
                )
                .replace("{max_timeout_ms}", &limits.max_timeout_ms.to_string())
                .replace("{max_files_bytes}", &limits.max_files_bytes.to_string());
        }
        Value::Object(map) => map.values_mut().for_each(|v| fill_in(v, limits)),
        Value::Array(items) => items.iter_mut().for_each(|v| fill_in(v, limits)),
        _ => {}
    }
}

/// Checks raw tool arguments against the contract and the caller's limits; the error text
/// tells the caller what to fix.
pub fn parse_args(
    raw: Option<&Map<String, Value>>,
    limits: &ArgumentLimits,
    available: &[Language],
) -> Result<ExecuteArgs, String> {
    let raw = raw.ok_or("arguments are missing: expected an object with `language` and `code`")?;
    let known = argument_names();
    if let Some(unknown) = raw.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "unknown argument `{unknown}` (the arguments are: {})",
            known.join(", ")
        ));
    }
    let names = || {
        available
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let language = match raw.get("language") {
        None | Some(Value::Null) => {
            return Err(format!("`language` is required: one of {}", names()));
        }
        Some(Value::String(s)) => match Language::from_contract_name(s) {
            Some(l) if available.contains(&l) => l,
            Some(l) => {
                return Err(format!(
                    "language \"{l}\" is not available on this server (available: {})",
                    names()
                ));
            }
            None => return Err(format!("unknown language \"{s}\": use one of {}", names())),
        },
        Some(other) => {
            return Err(format!(
                "`language` must be a string, not {}",
                kind_of(other)
            ));
        }
    };
    let code = match raw.get("code") {
        None | Some(Value::Null) => {
            return Err("`code` is required: the program to run, as a string".into());
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("`code` must be a string, not {}", kind_of(other))),
    };
    if code.len() as u64 > limits.max_code_bytes {
        return Err(format!(
            "`code` is {} bytes; this server accepts at most {} bytes",
            code.len(),
            limits.max_code_bytes
        ));
    }
    let timeout_ms = match raw.get("timeout_ms") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                return Err(format!(
                    "`timeout_ms` must be a positive whole number of milliseconds, not {n}"
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "`timeout_ms` must be a number, not {}",
                kind_of(other)
            ));
        }
    };
    let input = raw.get("input").cloned();
    if let Some(v) = &input {
        let size = serde_json::to_string(v).map_or(usize::MAX, |s| s.len());
        if size as u64 > limits.max_input_bytes {
            return Err(format!(
                "`input` is {size} bytes of JSON; this server accepts at most {} bytes",
                limits.max_input_bytes
            ));
        }
    }
    let files = parse_files(raw.get("files"), limits)?;
    let (session, session_action) = parse_session(raw, limits)?;
    Ok(ExecuteArgs {
        language,
        code,
        timeout_ms,
        input,
        files,
        session,
        session_action,
    })
}

pub(super) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JS_TS: [Language; 2] = [Language::Javascript, Language::Typescript];

    const LIMITS: ArgumentLimits = ArgumentLimits {
        max_code_bytes: 262_144,
        max_input_bytes: 1_048_576,
        default_timeout_ms: 5_000,
        max_timeout_ms: 30_000,
        max_files_bytes: 1_000,
        sessions: false,
    };

    fn parse(v: Value) -> Result<ExecuteArgs, String> {
        parse_args(v.as_object(), &LIMITS, &JS_TS)
    }

    /// The schema clients saw before it was derived: the derivation must keep it.
    #[test]
    fn the_derived_schema_is_the_published_one() {
        let expected = json!({
            "type": "object",
            "properties": {
                "language": {
                    "type": "string",
                    "enum": ["javascript", "typescript"],
                    "description": "The language of `code`."
                },
                "code": {
                    "type": "string",
                    "description": "The program (at most 262144 bytes of UTF-8). The value of its last expression is the result."
                },
                "timeout_ms": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Wall-clock limit in milliseconds (default 5000, at most 30000)."
                },
                "input": {
                    "description": "Any JSON value, visible to the code as the global `input`."
                },
                "files": {
                    "type": "object",
                    "additionalProperties": input_schema(&LIMITS, &JS_TS)["properties"]["files"]["additionalProperties"].clone(),
                    "description": "Files to put in `/workspace` before the code runs: a path (relative to `/workspace`) -> its text, or `{\"base64\": ...}` for bytes; at most 1000 bytes in all. Files the code writes there come back in the result."
                }
            },
            "required": ["language", "code"],
            "additionalProperties": false
        });
        assert_eq!(input_schema(&LIMITS, &JS_TS), expected);
    }

    #[test]
    fn parsing_accepts_exactly_the_schema_arguments() {
        assert_eq!(
            argument_names(),
            [
                "language",
                "code",
                "timeout_ms",
                "input",
                "files",
                "session",
                "session_action"
            ]
        );
        let all = ArgumentLimits {
            sessions: true,
            ..LIMITS
        };
        let properties = input_schema(&all, &JS_TS)["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>();
        let names = argument_names()
            .iter()
            .map(|n| n.to_string())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(
            properties, names,
            "the schema and the parser name the same arguments"
        );
        // What parsing accepts, serde reads into the same type.
        let raw =
            json!({"language": "typescript", "code": "1", "timeout_ms": 50, "input": {"a": [1]}});
        let parsed = parse(raw.clone()).unwrap();
        let via_serde: ExecuteArgs = serde_json::from_value(raw).unwrap();
        assert_eq!(parsed, via_serde);
    }

    #[test]
    fn accepts_the_contract_arguments() {
        let a = parse(
            json!({"language": "typescript", "code": "1", "timeout_ms": 50, "input": {"a": [1]}}),
        )
        .unwrap();
        assert_eq!(a.language, Language::Typescript);
        assert_eq!(a.timeout_ms, Some(50));
        assert_eq!(a.input, Some(json!({"a": [1]})));
    }

    #[test]
    fn missing_arguments_are_named() {
        assert!(
            parse_args(None, &LIMITS, &JS_TS)
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            parse(json!({"code": "1"}))
                .unwrap_err()
                .contains("`language` is required")
        );
        assert!(
            parse(json!({"language": "javascript"}))
                .unwrap_err()
                .contains("`code` is required")
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert!(
            parse(json!({"language": 3, "code": "1"}))
                .unwrap_err()
                .contains("`language` must be a string")
        );
        assert!(
            parse(json!({"language": "javascript", "code": ["x"]}))
                .unwrap_err()
                .contains("not an array")
        );
        assert!(
            parse(json!({"language": "javascript", "code": "1", "timeout_ms": "5"}))
                .unwrap_err()
                .contains("timeout_ms")
        );
        assert!(
            parse(json!({"language": "javascript", "code": "1", "timeout_ms": -5}))
                .unwrap_err()
                .contains("positive")
        );
        assert!(
            parse(json!({"language": "javascript", "code": "1", "timeout_ms": 1.5}))
                .unwrap_err()
                .contains("positive")
        );
    }

    #[test]
    fn unknown_and_unavailable_languages_are_explained() {
        let e = parse(json!({"language": "ruby", "code": "1"})).unwrap_err();
        assert!(
            e.contains("unknown language \"ruby\"") && e.contains("\"javascript\""),
            "{e}"
        );
        let e = parse(json!({"language": "python", "code": "1"})).unwrap_err();
        assert!(e.contains("not available"), "{e}");
    }

    #[test]
    fn unknown_arguments_are_rejected() {
        let e = parse(json!({"language": "javascript", "code": "1", "cwd": "/"})).unwrap_err();
        assert!(e.contains("unknown argument `cwd`"), "{e}");
        assert!(
            e.contains("language, code, timeout_ms, input, files"),
            "{e}"
        );
    }

    #[test]
    fn oversize_code_and_input_are_rejected() {
        let limits = ArgumentLimits {
            max_code_bytes: 10,
            max_input_bytes: 10,
            ..LIMITS
        };
        let e = parse_args(
            json!({"language": "javascript", "code": "x".repeat(11)}).as_object(),
            &limits,
            &JS_TS,
        )
        .unwrap_err();
        assert!(e.contains("11 bytes") && e.contains("at most 10"), "{e}");
        let e = parse_args(
            json!({"language": "javascript", "code": "1", "input": "0123456789"}).as_object(),
            &limits,
            &JS_TS,
        )
        .unwrap_err();
        assert!(e.contains("`input` is 12 bytes"), "{e}");
    }

    #[test]
    fn files_are_text_or_base64_within_the_limit() {
        let a = parse(json!({"language": "javascript", "code": "1",
            "files": {"data.csv": "a,b\n1,2", "img.png": {"base64": "iVBORw=="}}}))
        .unwrap();
        let files = a.files.unwrap();
        assert_eq!(files["data.csv"].bytes().unwrap(), b"a,b\n1,2");
        assert_eq!(files["img.png"].bytes().unwrap(), b"\x89PNG");
        for (files, wanted) in [
            (json!([1]), "must be an object"),
            (json!({"a": 1}), "`files.a` must be a string"),
            (json!({"a": {"base64": "%%%"}}), "not valid base64"),
            (
                json!({"a": {"base64": "AA==", "mode": 7}}),
                "`files.a` must be",
            ),
            (
                json!({"a": "x".repeat(600), "b": "y".repeat(600)}),
                "more than 1000 bytes",
            ),
        ] {
            let e =
                parse(json!({"language": "javascript", "code": "1", "files": files})).unwrap_err();
            assert!(e.contains(wanted), "{e}");
        }
        let no_workspace = ArgumentLimits {
            max_files_bytes: 0,
            ..LIMITS
        };
        let e = parse_args(
            json!({"language": "javascript", "code": "1", "files": {}}).as_object(),
            &no_workspace,
            &JS_TS,
        )
        .unwrap_err();
        assert!(e.contains("no workspace"), "{e}");
        assert!(
            input_schema(&no_workspace, &JS_TS)["properties"]
                .get("files")
                .is_none()
        );
    }

    #[test]
    fn sessions_are_offered_only_when_the_policy_keeps_them() {
        let e =
            parse(json!({"language": "javascript", "code": "1", "session": "new"})).unwrap_err();
        assert!(e.contains("does not keep sessions"), "{e}");
        assert!(
            input_schema(&LIMITS, &JS_TS)["properties"]
                .get("session")
                .is_none()
        );
        let on = ArgumentLimits {
            sessions: true,
            ..LIMITS
        };
        let parse_on = |v: Value| parse_args(v.as_object(), &on, &JS_TS);
        let a = parse_on(
            json!({"language": "javascript", "code": "1", "session": "new",
            "session_action": "reset"}),
        )
        .unwrap();
        assert_eq!(
            (a.session.as_deref(), a.session_action),
            (Some("new"), Some(SessionAction::Reset))
        );
        for (args, wanted) in [
            (json!({"session": 7}), "must be \"new\" or the id"),
            (json!({"session": ""}), "must be \"new\" or the id"),
            (json!({"session_action": "close"}), "needs `session`"),
            (
                json!({"session": "new", "session_action": "drop"}),
                "one of continue, reset, close",
            ),
        ] {
            let mut raw = json!({"language": "javascript", "code": "1"});
            raw.as_object_mut()
                .unwrap()
                .extend(args.as_object().unwrap().clone());
            let e = parse_on(raw).unwrap_err();
            assert!(e.contains(wanted), "{e}");
        }
        let schema = input_schema(&on, &JS_TS);
        assert_eq!(
            schema["properties"]["session_action"]["enum"],
            json!(["continue", "reset", "close"])
        );
        assert_eq!(schema["properties"]["session"]["type"], "string");
        // A file is text or {"base64"}, said where it is used.
        let file = &schema["properties"]["files"]["additionalProperties"]["anyOf"];
        assert_eq!(file[0]["type"], "string");
        assert_eq!(file[1]["required"], json!(["base64"]));
    }
}
