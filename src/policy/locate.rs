//! Where a problem in a policy document is: validation names a path of keys
//! ([`Issue`]), which becomes a line and column in the TOML text.

/// A problem validation found in a parsed document, and where it is: the keys leading to it
/// (array items by their index), which [`Policy::parse`](super::Policy::parse) turns into a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: Vec<String>,
    pub message: String,
}

impl Issue {
    pub fn new<S: AsRef<str>>(path: &[S], message: impl Into<String>) -> Issue {
        Issue {
            path: path.iter().map(|s| s.as_ref().to_string()).collect(),
            message: message.into(),
        }
    }

    /// The message with the line and column of the deepest part of the path the document
    /// spells out (a default that is not written has no place of its own).
    pub fn describe(&self, text: &str) -> String {
        match locate(text, &self.path) {
            Some(offset) => {
                let (line, column) = line_column(text, offset);
                format!("line {line}, column {column}: {}", self.message)
            }
            None => self.message.clone(),
        }
    }
}

/// The byte offset of `path` (or of its longest prefix present) in a TOML document.
fn locate(text: &str, path: &[String]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    let mut found = None;
    for segment in path {
        let value = match array.take() {
            Some(items) => {
                let item = items.get(segment.parse::<usize>().ok()?)?;
                found = Some(item.span().start);
                item
            }
            None => {
                let (key, value) = table.iter().find(|(k, _)| k.get_ref() == segment)?;
                found = Some(key.span().start);
                value
            }
        };
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            DeValue::Array(items) => array = Some(items.as_ref()),
            _ => break,
        }
    }
    found
}

/// toml's message with a 1-based line and column in front, so that a person can jump to it.
pub fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
