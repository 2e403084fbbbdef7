//! Where a condition's path leads: `execute_code`'s arguments by name, or any key path into a
//! tool's arguments (the code's calls to upstream tools), or a counter.

use serde_json::Value;

use super::Counters;
use crate::contract::ExecuteArgs;

/// The arguments a rule looks at: `execute_code`'s, or those of a tool the code calls on an
/// upstream server (any JSON object). Conditions in the gateway's form (`path = "args.…"`)
/// read either; Warden's own form (`arg = …`) names `execute_code`'s arguments, which a tool
/// call does not have (absent).
#[derive(Debug, Clone, Copy)]
pub enum Arguments<'a> {
    Execute(&'a ExecuteArgs),
    Tool(&'a Value),
}

impl<'a> From<&'a ExecuteArgs> for Arguments<'a> {
    fn from(args: &'a ExecuteArgs) -> Self {
        Arguments::Execute(args)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum ArgPath {
    Language,
    Code,
    CodeLength,
    TimeoutMs,
    /// `input` (empty) or a path of object keys into it.
    Input(Vec<String>),
    /// `session` ("new" or an id), absent for a call without one.
    Session,
    /// The names of the `files` given (an array), absent without any.
    Files,
    /// An argument `execute_code` does not have: always absent.
    Absent,
    /// A counter's value in its current window.
    Counter(String),
}

/// Where an `args.…` path leads in `execute_code`'s arguments.
pub(super) fn args_path(rest: &str) -> ArgPath {
    let mut keys = rest.split('.');
    match (keys.next(), rest.contains('.')) {
        (Some("language"), false) => ArgPath::Language,
        (Some("code"), false) => ArgPath::Code,
        (Some("timeout_ms"), false) => ArgPath::TimeoutMs,
        (Some("session"), false) => ArgPath::Session,
        (Some("files"), false) => ArgPath::Files,
        (Some("input"), _) => ArgPath::Input(keys.map(str::to_string).collect()),
        _ => ArgPath::Absent,
    }
}

/// The value at an `args.…` path in the call's arguments, if the call has one there.
pub fn argument<'a>(args: impl Into<Arguments<'a>>, path: &str) -> Option<Value> {
    struct NoCounters;
    impl Counters for NoCounters {
        fn current(&self, _: &str) -> u64 {
            0
        }
    }
    let rest = path.strip_prefix("args.")?;
    match args.into() {
        Arguments::Execute(args) => args_path(rest).resolve(args, &NoCounters),
        Arguments::Tool(arguments) => rest
            .split('.')
            .try_fold(arguments, |v, key| v.get(key))
            .cloned(),
    }
}

/// The argument an `args.…` path names, if `execute_code` has no such argument.
pub fn missing_argument(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("args.")?;
    (args_path(rest) == ArgPath::Absent).then_some(rest)
}

impl ArgPath {
    pub(super) fn resolve(&self, args: &ExecuteArgs, counters: &dyn Counters) -> Option<Value> {
        match self {
            ArgPath::Absent => None,
            ArgPath::Counter(name) => Some(Value::from(counters.current(name))),
            ArgPath::Language => Some(Value::from(args.language.as_str())),
            ArgPath::Code => Some(Value::from(args.code.as_str())),
            ArgPath::CodeLength => Some(Value::from(args.code.len())),
            ArgPath::TimeoutMs => args.timeout_ms.map(Value::from),
            ArgPath::Session => args.session.as_deref().map(Value::from),
            ArgPath::Files => args
                .files
                .as_ref()
                .map(|files| files.keys().map(|k| Value::from(k.as_str())).collect()),
            ArgPath::Input(keys) => {
                let mut v = args.input.as_ref()?;
                for key in keys {
                    v = v.get(key)?;
                }
                Some(v.clone())
            }
        }
    }
}
