//! How PolicyLayer's gateway (Intercept's engine) compares, for conditions written in its form
//! (`path = "args.…"`): so that a policy written for the gateway decides the same here.
//!
//! Where it differs from Warden's own comparisons: equality is numeric when both sides are
//! numbers and otherwise compares the two values as Go prints them (`5` equals `"5"`, `true`
//! equals `"true"`); an explicit `null` counts as absent for `exists`; `contains` looks into
//! strings and lists only (never an object's keys).

use serde_json::Value;

use super::Test;

/// What follows `prefix` in `path`, if that is one or more non-empty keys joined by dots.
pub(super) fn dotted_after<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    path.strip_prefix(prefix)
        .filter(|rest| !rest.is_empty() && rest.split('.').all(|k| !k.is_empty()))
}

/// Whether `path` is a well-formed gateway path: `args.<key>...` or, unless `args_only`,
/// `state.<counter>`.
pub fn is_gateway_path(path: &str, args_only: bool) -> bool {
    dotted_after(path, "args.").is_some() || (!args_only && dotted_after(path, "state.").is_some())
}

pub(super) fn holds(test: &Test, value: Option<Value>) -> bool {
    let value = match (test, value) {
        // The gateway's `exists` is "present and not null".
        (Test::Exists(want), v) => return v.is_some_and(|v| !v.is_null()) == *want,
        // Every other operator fails on an absent value, `neq` and `not_in` included.
        (_, None) => return false,
        (_, Some(v)) => v,
    };
    match test {
        Test::Exists(_) => false, // answered above
        Test::Eq(x) => equal(&value, x),
        Test::Neq(x) => !equal(&value, x),
        Test::In(xs) => xs.iter().any(|x| equal(&value, x)),
        Test::NotIn(xs) => !xs.iter().any(|x| equal(&value, x)),
        Test::Lt(x) => value.as_f64().is_some_and(|n| n < *x),
        Test::Lte(x) => value.as_f64().is_some_and(|n| n <= *x),
        Test::Gt(x) => value.as_f64().is_some_and(|n| n > *x),
        Test::Gte(x) => value.as_f64().is_some_and(|n| n >= *x),
        Test::Regex(re) => value.as_str().is_some_and(|s| re.is_match(s)),
        Test::Contains(x) => match &value {
            Value::String(s) => x.as_str().is_some_and(|needle| s.contains(needle)),
            Value::Array(items) => items.iter().any(|item| equal(item, x)),
            _ => false,
        },
    }
}

/// Numbers by value; anything else by its printed form.
pub(super) fn equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => printed(a) == printed(b),
    }
}

/// A value as Go's `%v` prints the decoded JSON or YAML value: strings bare, `<nil>` for null,
/// lists as `[a b]`, objects as `map[k:v]` with sorted keys.
fn printed(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(printed).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", printed(v)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_is_numeric_then_printed() {
        assert!(equal(&json!(5), &json!(5.0)));
        assert!(equal(&json!(5), &json!("5")));
        assert!(equal(&json!(true), &json!("true")));
        assert!(equal(&json!([1, "a"]), &json!("[1 a]")));
        assert!(equal(&json!({"b": 2, "a": 1}), &json!("map[a:1 b:2]")));
        assert!(!equal(&json!("usd"), &json!("USD")));
        assert!(!equal(&json!(5), &json!(6)));
    }

    #[test]
    fn absent_values_fail_every_operator_but_exists() {
        assert!(!holds(&Test::Neq(json!("x")), None));
        assert!(!holds(&Test::NotIn(vec![json!("x")]), None));
        assert!(holds(&Test::Exists(false), None));
        assert!(holds(&Test::Exists(false), Some(Value::Null)));
        assert!(!holds(&Test::Exists(true), Some(Value::Null)));
    }

    #[test]
    fn contains_looks_into_strings_and_lists_only() {
        let test = Test::Contains(json!("a"));
        assert!(holds(&test, Some(json!("cat"))));
        assert!(holds(&test, Some(json!(["b", "a"]))));
        assert!(!holds(&test, Some(json!({"a": 1}))));
    }
}
