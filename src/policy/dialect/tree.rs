//! A YAML or JSON document as a tree whose every node knows its line and column (saphyr's
//! marked loader), with reads that behave as Go's yaml.v3 decoding into Intercept's types.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub(in crate::policy) struct Node {
    /// 1-based; 0 when the position is unknown.
    line: usize,
    /// 1-based.
    column: usize,
    pub value: NodeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub(in crate::policy) enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    /// Keys as text, in document order.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// Parses one YAML document (JSON is YAML 1.2). An empty document is a null node.
    pub fn parse_yaml(text: &str) -> Result<Node, String> {
        let documents = MarkedYaml::load_from_str(text).map_err(|e| {
            let mark = e.marker();
            format!(
                "line {}, column {}: {}",
                mark.line(),
                mark.col() + 1,
                e.info()
            )
        })?;
        match documents.as_slice() {
            [] => Ok(Node::at(1, 1, NodeValue::Null)),
            [document] => Node::from_marked(document),
            _ => Err("a policy is one YAML document (found a `---` separating several)".into()),
        }
    }

    /// A JSON value without positions (when only serde_json could read the text).
    pub fn from_json(value: &Value) -> Node {
        let value = match value {
            Value::Null => NodeValue::Null,
            Value::Bool(b) => NodeValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => NodeValue::Int(i),
                None => NodeValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => NodeValue::Str(s.clone()),
            Value::Array(items) => NodeValue::List(items.iter().map(Node::from_json).collect()),
            Value::Object(map) => NodeValue::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::from_json(v)))
                    .collect(),
            ),
        };
        Node::at(0, 0, value)
    }

    fn at(line: usize, column: usize, value: NodeValue) -> Node {
        Node {
            line,
            column,
            value,
        }
    }

    fn from_marked(node: &MarkedYaml<'_>) -> Result<Node, String> {
        let (line, column) = (node.span.start.line(), node.span.start.col() + 1);
        let value = match &node.data {
            YamlData::Value(scalar) => match scalar {
                Scalar::Null => NodeValue::Null,
                Scalar::Boolean(b) => NodeValue::Bool(*b),
                Scalar::Integer(i) => NodeValue::Int(*i),
                Scalar::FloatingPoint(f) => NodeValue::Float(f.into_inner()),
                Scalar::String(s) => NodeValue::Str(s.to_string()),
            },
            YamlData::Representation(text, _, _) => NodeValue::Str(text.to_string()),
            YamlData::Sequence(items) => NodeValue::List(
                items
                    .iter()
                    .map(Node::from_marked)
                    .collect::<Result<_, _>>()?,
            ),
            YamlData::Mapping(entries) => {
                let mut map = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let key_text = match Node::from_marked(key)?.value {
                        NodeValue::Str(s) => s,
                        NodeValue::Int(i) => i.to_string(),
                        NodeValue::Bool(b) => b.to_string(),
                        NodeValue::Float(f) => f.to_string(),
                        NodeValue::Null => String::new(),
                        _ => {
                            return Err(format!(
                                "line {line}, column {column}: a mapping key must be a scalar"
                            ));
                        }
                    };
                    map.push((key_text, Node::from_marked(value)?));
                }
                NodeValue::Map(map)
            }
            YamlData::Tagged(_, inner) => return Node::from_marked(inner),
            YamlData::Alias(_) => {
                return Err(format!(
                    "line {line}, column {column}: YAML aliases are not supported in a policy"
                ));
            }
            YamlData::BadValue => {
                return Err(format!(
                    "line {line}, column {column}: this value cannot be read"
                ));
            }
        };
        Ok(Node::at(line, column, value))
    }

    /// `line L, column C` (or `at an unknown position`).
    pub fn location(&self) -> String {
        if self.line == 0 {
            "at an unknown position".into()
        } else {
            format!("line {}, column {}", self.line, self.column)
        }
    }

    pub fn is_null(&self) -> bool {
        self.value == NodeValue::Null
    }

    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match &self.value {
            NodeValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// A list; null is an empty list (as in Go).
    pub fn as_list(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::List(items) => Some(items),
            NodeValue::Null => Some(&[]),
            _ => None,
        }
    }

    /// The text yaml.v3 would store in a Go string: any scalar as written, null as "".
    /// A list or mapping is an error recorded in `findings`.
    pub fn go_string(&self, at: &str, findings: &mut super::Findings) -> Option<String> {
        match &self.value {
            NodeValue::Null => Some(String::new()),
            NodeValue::Bool(b) => Some(b.to_string()),
            NodeValue::Int(i) => Some(i.to_string()),
            NodeValue::Float(f) => Some(f.to_string()),
            NodeValue::Str(s) => Some(s.clone()),
            NodeValue::List(_) | NodeValue::Map(_) => {
                findings.error(
                    self,
                    format!("{at}: expected a string, not a {}", self.kind()),
                );
                None
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Int(_) | NodeValue::Float(_) => "number",
            NodeValue::Str(_) => "string",
            NodeValue::List(_) => "list",
            NodeValue::Map(_) => "mapping",
        }
    }

    /// As a JSON value (a condition's operand). NaN and infinities have no JSON form, and
    /// null (anywhere in it) none in TOML, the policy's normalized form.
    pub fn to_json(&self) -> Result<Value, String> {
        Ok(match &self.value {
            NodeValue::Null => {
                return Err(format!(
                    "{}: null cannot be compared (a condition's value has no null)",
                    self.location()
                ));
            }
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| format!("{f} is not a number Warden can compare"))?,
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::List(items) => {
                Value::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?)
            }
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.to_json()?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}
