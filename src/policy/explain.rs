//! `policy explain`: the engine's decision for a call, step by step, counting nothing.

use super::admit::Reader;
use super::engine::{Decision, PolicyEngine, Question, now_ms};
use super::ratelimit::increment_from;
use super::ratelimit::{Caller, CounterKey};
use super::rules::{Counters, Effect, Outcome};
use crate::contract::{ExecuteArgs, TOOL_NAME};

impl PolicyEngine {
    /// The decision for `args`, step by step, without counting anything: whether the tool is
    /// hidden, its action, which rules apply, which counters the call would count in.
    pub fn explain(&self, args: &ExecuteArgs, caller: &Caller<'_>) -> Vec<String> {
        let now = now_ms();
        let mut trace = vec![format!(
            "caller: grant `{}`, session `{}`; language {}, {} bytes of code",
            caller.grant,
            caller.session,
            args.language,
            args.code.len()
        )];
        if self.hides_the_tool() {
            trace.push(format!("hide: the policy hides {TOOL_NAME}"));
        }
        let (action, source) = self.action();
        trace.push(format!("action: {action:?} (from {source})").to_lowercase());
        let reader = Reader::new(self, caller, now);
        for rule in &self.rules {
            let effect = match rule.effect {
                Effect::Deny => "deny",
                Effect::RequireApproval => "require approval",
            };
            let read: Vec<String> = rule
                .counters_read()
                .map(|c| format!("{c} = {}", reader.current(c)))
                .collect();
            let read = if read.is_empty() {
                String::new()
            } else {
                format!(" [counters: {}]", read.join(", "))
            };
            match rule.outcome(args, &reader) {
                Outcome::Passes => trace.push(format!("rule `{}` passes{read}", rule.name)),
                _ => trace.push(format!(
                    "rule `{}` applies: {effect} ({}){read}",
                    rule.name, rule.message
                )),
            }
        }
        let verdict = self.decide(args, caller);
        trace.push(match &verdict {
            Decision::Admit => "verdict: allow".to_string(),
            Decision::NeedsApproval(Question { rule, reason }) => {
                format!("verdict: require approval (rule `{rule}`: {reason})")
            }
            Decision::Deny(d) => format!(
                "verdict: {} (rule `{}`: {})",
                d.status.as_str(),
                d.decision.rule,
                d.decision.reason
            ),
        });
        if matches!(verdict, Decision::Deny(_)) {
            trace.push("decision: deny (nothing is counted)".to_string());
            return trace;
        }
        let mut any = false;
        for spec in self.limit_specs() {
            any = true;
            let key = CounterKey::for_caller(spec, caller);
            let amount = match &spec.increment_from {
                Some(path) => match increment_from(args, path) {
                    Ok(n) => n.to_string(),
                    Err(why) => format!("nothing: {why}"),
                },
                None => spec.increment.to_string(),
            };
            trace.push(format!(
                "rate limit: counter `{}` allows {} per {:?}; it stands at {}, this call adds {amount}",
                key.key,
                spec.max,
                spec.window,
                match self.counters.current(&key.key, key.window_ms, now) {
                    Ok(n) => n.to_string(),
                    Err(why) => format!("unknown ({why})"),
                }
            ));
        }
        if !any {
            trace.push("rate limits: none apply".to_string());
        }
        trace.push(match verdict {
            Decision::Admit => "decision: allow (if the counters have room)".to_string(),
            _ => "decision: ask a person, then count and run".to_string(),
        });
        trace
    }
}
