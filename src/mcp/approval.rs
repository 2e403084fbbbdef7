//! Asking the person behind an MCP client to approve a call, in whichever way the client can
//! be asked:
//!
//! - a session client (2025-11-25) with elicitation gets an `elicitation/create` request while
//!   the call waits for the answer ([`elicit`]);
//! - a 2026-07-28 client gets an `InputRequiredResult` carrying the same form and a sealed
//!   `requestState`, and calls again with the answer ([`ask_or_answer`]).
//!
//! The service's pipeline hands over a `PendingApproval`; this module owns everything about
//! asking, and gives the pipeline back an `Approval` (or defers the call).
//!
//! The sealed state binds an answer to the grant and the exact arguments of the call it was
//! asked for, expires with [`APPROVAL_TIMEOUT`], and can be redeemed once: an approval cannot
//! be moved to other code, replayed, or forged by a client that edits the state.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
    InputRequest, InputRequiredResult, InputResponses, RequestStateError, SealOptions,
};
use rmcp::{Peer, RoleServer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::state_keys::{Keyring, StateKeys};
use super::tasks::TaskContext;
use crate::policy::{CounterStore, FailMode};
use crate::service::{Approval, ApprovalRequest, AskPerson};

/// How long a person has to answer an approval request.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

/// The key of the approval form in `inputRequests` / `inputResponses`.
const INPUT_KEY: &str = "approval";

/// The form a person fills in to approve a call.
#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct ApprovalForm {
    /// Run this code?
    approve: bool,
}

rmcp::elicit_safe!(ApprovalForm);

fn question(request: &ApprovalRequest<'_>) -> String {
    format!(
        "Warden policy rule `{}` asks for your approval: {}\n\nRun this {} code?\n\n{}",
        request.rule, request.reason, request.language, request.code
    )
}

/// What the person answered, as the contract's approval outcome.
fn approval_from(answer: &ElicitResult) -> Approval {
    let approved = answer.action == ElicitationAction::Accept
        && answer
            .content
            .as_ref()
            .and_then(|c| c.get("approve"))
            .and_then(Value::as_bool)
            == Some(true);
    if approved {
        Approval::Approved
    } else {
        Approval::Declined
    }
}

/// Asks through `elicitation/create` on the session and waits for the answer.
pub async fn elicit(peer: &Peer<RoleServer>, request: ApprovalRequest<'_>) -> Approval {
    elicit_text(peer, question(&request)).await
}

/// Asks the session's person about the calls a run's code makes to upstream tools, while the
/// run waits (elicitation: the only way to ask in the middle of a call).
pub struct ElicitingAsker(pub Peer<RoleServer>);

impl AskPerson for ElicitingAsker {
    fn ask(
        &self,
        question: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + Send + '_>> {
        Box::pin(elicit_text(&self.0, question))
    }
}

/// Asks the client of a task about the calls its run's code makes: the task turns
/// `input_required` with the form until a `tasks/update` answers it (or the task is cancelled).
pub struct TaskAsker {
    task: TaskContext,
    asked: std::sync::atomic::AtomicU64,
}

impl TaskAsker {
    pub fn new(task: TaskContext) -> TaskAsker {
        TaskAsker {
            task,
            asked: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl AskPerson for TaskAsker {
    fn ask(
        &self,
        question: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + Send + '_>> {
        Box::pin(async move {
            let request = match approval_input(question) {
                Ok(request) => request,
                Err(why) => return Approval::Unavailable(why),
            };
            // Keys are unique over a task's life: each question gets its own.
            let n = self
                .asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let key = format!("{INPUT_KEY}-{}", n + 1);
            let answer = tokio::time::timeout(APPROVAL_TIMEOUT, self.task.ask(&key, request));
            match answer.await {
                Ok(Some(answer)) => match serde_json::from_value::<ElicitResult>(answer) {
                    Ok(answer) => approval_from(&answer),
                    Err(e) => Approval::Unavailable(format!(
                        "the answer is not an elicitation result ({e})"
                    )),
                },
                Ok(None) => Approval::Unavailable("the task was cancelled".into()),
                Err(_) => Approval::Unavailable("nobody answered in time".into()),
            }
        })
    }
}

/// The approval form asking `message`, as an input request.
fn approval_input(message: String) -> Result<InputRequest, String> {
    let schema = ElicitationSchema::from_type::<ApprovalForm>()
        .map_err(|e| format!("the approval form is invalid ({e})"))?;
    Ok(InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message,
            requested_schema: schema,
        },
    )))
}

async fn elicit_text(peer: &Peer<RoleServer>, question: String) -> Approval {
    use rmcp::service::ElicitationError;
    match peer
        .elicit_with_timeout::<ApprovalForm>(question, Some(APPROVAL_TIMEOUT))
        .await
    {
        Ok(Some(form)) if form.approve => Approval::Approved,
        Ok(_) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
            Approval::Declined
        }
        Err(ElicitationError::CapabilityNotSupported) => {
            Approval::Unavailable("the client does not support elicitation".into())
        }
        Err(e) => Approval::Unavailable(format!("the client could not be asked ({e})")),
    }
}

/// Seals and redeems the `requestState` of approval rounds, with the keys of
/// [`StateKeys`] (shared by replicas, or this process's own). Each answer is redeemed once:
/// its nonce is claimed in the counter store, which replicas share too.
pub struct ApprovalStates {
    keys: Keyring,
    claims: Arc<dyn CounterStore>,
}

/// The sealed payload. Signed, not encrypted: it holds nothing secret.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedQuestion {
    nonce: String,
    rule: String,
    expires_ms: u64,
}

/// A client's answer whose state checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The rule the question was asked for.
    pub rule: String,
    pub approval: Approval,
}

/// Why a retried call's answer is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    /// The client broke the protocol (edited or invented the state, or sent half a retry):
    /// a protocol error.
    #[error("{0}")]
    Malformed(String),
    /// A genuine answer that can no longer be used: the call is denied with this reason.
    #[error("{0}")]
    Stale(String),
}

impl ApprovalStates {
    pub fn new(keys: StateKeys, claims: Arc<dyn CounterStore>) -> anyhow::Result<ApprovalStates> {
        Ok(ApprovalStates {
            keys: Keyring::new(keys)?,
            claims,
        })
    }

    /// Seals a question about `rule` for the call identified by `binding`.
    fn seal(&self, binding: &[u8], rule: &str) -> String {
        let mut nonce = [0u8; 16];
        // Without randomness the nonce is still unique enough per process with the time in it;
        // integrity rests on the key, not on the nonce.
        let _ = getrandom::fill(&mut nonce);
        let sealed = SealedQuestion {
            nonce: format!("{}-{}", hex(&nonce), now_ms()),
            rule: rule.to_string(),
            expires_ms: now_ms() + APPROVAL_TIMEOUT.as_millis() as u64,
        };
        let payload = serde_json::to_vec(&sealed).unwrap_or_default();
        self.keys.codec().seal_with(
            &payload,
            &SealOptions::new()
                .associated_data(binding)
                .ttl(APPROVAL_TIMEOUT),
        )
    }

    /// Checks a retried call's state and answer, and uses the answer up.
    pub fn redeem(
        &self,
        binding: &[u8],
        state: Option<&str>,
        responses: Option<&InputResponses>,
    ) -> Result<Option<Answer>, AnswerError> {
        let (state, responses) = match (state, responses) {
            (None, None) => return Ok(None),
            (Some(state), Some(responses)) => (state, responses),
            (None, Some(_)) => {
                return Err(AnswerError::Malformed(
                    "inputResponses came without the requestState they answer".into(),
                ));
            }
            (Some(_), None) => {
                return Err(AnswerError::Malformed(
                    "requestState came back without inputResponses".into(),
                ));
            }
        };
        let payload = match self.keys.codec().open_with(state, binding) {
            Ok(payload) => payload,
            Err(RequestStateError::Expired) => {
                return Err(AnswerError::Stale(format!(
                    "the approval was answered after it expired ({} s); call again to be asked anew",
                    APPROVAL_TIMEOUT.as_secs()
                )));
            }
            Err(e) => {
                return Err(AnswerError::Malformed(format!(
                    "requestState does not belong to this call ({e}): it must be echoed unchanged, \
                     with the same arguments, by the caller it was issued to"
                )));
            }
        };
        let question: SealedQuestion = serde_json::from_slice(&payload)
            .map_err(|e| AnswerError::Malformed(format!("requestState is not readable: {e}")))?;
        let answer = responses.get(INPUT_KEY).ok_or_else(|| {
            AnswerError::Malformed(format!("inputResponses has no `{INPUT_KEY}` answer"))
        })?;
        let answer: ElicitResult = serde_json::from_value(answer.clone()).map_err(|e| {
            AnswerError::Malformed(format!(
                "inputResponses.{INPUT_KEY} is not an elicitation result: {e}"
            ))
        })?;
        match self.claims.claim_once(
            &format!("approval|{}", question.nonce),
            now_ms(),
            question.expires_ms,
        ) {
            Ok(true) => {}
            Ok(false) => {
                return Err(AnswerError::Stale(
                    "this approval was already used; each approval runs the code once".into(),
                ));
            }
            Err(why) if self.claims.fail_mode() == FailMode::Open => {
                tracing::warn!(
                    "{why}: an approval is accepted without checking it was not used before (state fail mode open)"
                );
            }
            Err(why) => {
                return Err(AnswerError::Stale(format!(
                    "{why}: whether this approval was already used cannot be checked; call again later"
                )));
            }
        }
        Ok(Some(Answer {
            rule: question.rule,
            approval: approval_from(&answer),
        }))
    }
}

/// Identifies a call for its approval: the grant, and the exact arguments (keys sorted, so
/// that a client re-encoding the same object still matches).
pub fn call_binding(grant: &str, arguments: Option<&Map<String, Value>>) -> Vec<u8> {
    let arguments = arguments.map_or(Value::Null, |a| canonical(&Value::Object(a.clone())));
    let mut digest = Sha256::new();
    digest.update(grant.as_bytes());
    digest.update([0]);
    digest.update(arguments.to_string().as_bytes());
    digest.finalize().to_vec()
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The 2026-07-28 way: the answer the call brought back, or the question to return.
#[derive(Debug)]
pub enum Asked {
    Answered(Approval),
    /// Return this to the client; it calls again with the person's answer.
    Question(InputRequiredResult),
}

/// Uses the answer this call brought back (`answer`; an error says why it cannot be used), or
/// asks: a question sealed to the call's `binding`, when the client declared it can be asked.
pub fn ask_or_answer(
    states: &ApprovalStates,
    binding: &[u8],
    answer: Option<Result<Answer, String>>,
    can_elicit: bool,
    request: &ApprovalRequest<'_>,
) -> Asked {
    match answer {
        // An answer given for another rule (the policy changed in between) does not count.
        Some(Ok(answer)) if answer.rule == request.rule => Asked::Answered(answer.approval),
        Some(Err(why)) => Asked::Answered(Approval::Unavailable(why)),
        _ if !can_elicit => Asked::Answered(Approval::Unavailable(
            "the client does not support elicitation".into(),
        )),
        _ => match states.question(binding, request) {
            Ok(question) => Asked::Question(question),
            Err(why) => Asked::Answered(Approval::Unavailable(why)),
        },
    }
}

impl ApprovalStates {
    /// The approval form for `request`, with a state sealed to `binding`.
    fn question(
        &self,
        binding: &[u8],
        request: &ApprovalRequest<'_>,
    ) -> Result<InputRequiredResult, String> {
        let mut requests = std::collections::BTreeMap::new();
        requests.insert(INPUT_KEY.to_string(), approval_input(question(request))?);
        Ok(InputRequiredResult::new(
            Some(requests),
            Some(self.seal(binding, request.rule)),
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Language;
    use serde_json::json;

    fn states() -> ApprovalStates {
        ApprovalStates::new(
            StateKeys::Random,
            Arc::new(crate::policy::MemoryCounterStore::default()),
        )
        .unwrap()
    }

    fn request() -> ApprovalRequest<'static> {
        ApprovalRequest {
            rule: "py-approval",
            reason: "Python needs a person",
            language: Language::Python,
            code: "1",
        }
    }

    fn responses(answer: Value) -> InputResponses {
        let mut map = InputResponses::new();
        map.insert(INPUT_KEY.into(), answer);
        map
    }

    fn asked_state(states: &ApprovalStates, binding: &[u8]) -> String {
        let Asked::Question(asked) = ask_or_answer(states, binding, None, true, &request()) else {
            panic!("expected a question");
        };
        assert!(asked.input_requests.unwrap().contains_key(INPUT_KEY));
        asked.request_state.expect("a state")
    }

    fn accept() -> Value {
        json!({"action": "accept", "content": {"approve": true}})
    }

    #[test]
    fn an_answer_redeems_once() {
        let states = states();
        let binding = call_binding("local", json!({"code": "1"}).as_object());
        let state = asked_state(&states, &binding);
        let answer = states
            .redeem(&binding, Some(&state), Some(&responses(accept())))
            .unwrap()
            .unwrap();
        assert_eq!(answer.rule, "py-approval");
        assert_eq!(answer.approval, Approval::Approved);
        let again = states.redeem(&binding, Some(&state), Some(&responses(accept())));
        assert!(matches!(again, Err(AnswerError::Stale(m)) if m.contains("already used")));
    }

    #[test]
    fn declines_and_refusals_are_declined() {
        let states = states();
        let binding = call_binding("local", None);
        for answer in [
            json!({"action": "decline"}),
            json!({"action": "cancel"}),
            json!({"action": "accept", "content": {"approve": false}}),
            json!({"action": "accept", "content": {"approve": "yes"}}),
        ] {
            let state = asked_state(&states, &binding);
            let got = states
                .redeem(&binding, Some(&state), Some(&responses(answer.clone())))
                .unwrap()
                .unwrap();
            assert_eq!(got.approval, Approval::Declined, "{answer}");
        }
    }

    #[test]
    fn an_approval_does_not_move_to_other_code_or_callers() {
        let states = states();
        let binding = call_binding(
            "local",
            json!({"code": "1", "language": "python"}).as_object(),
        );
        let state = asked_state(&states, &binding);
        let other_code = call_binding(
            "local",
            json!({"code": "2", "language": "python"}).as_object(),
        );
        let other_grant =
            call_binding("ci", json!({"code": "1", "language": "python"}).as_object());
        for binding in [other_code, other_grant] {
            let r = states.redeem(&binding, Some(&state), Some(&responses(accept())));
            assert!(matches!(r, Err(AnswerError::Malformed(_))), "{r:?}");
        }
    }

    #[test]
    fn key_order_does_not_change_the_binding() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"code":"1","input":{"b":1,"a":2},"language":"python"}"#)
                .unwrap();
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"language":"python","input":{"a":2,"b":1},"code":"1"}"#)
                .unwrap();
        assert_eq!(call_binding("g", Some(&a)), call_binding("g", Some(&b)));
    }

    #[test]
    fn tampered_or_half_retries_are_protocol_errors() {
        let states = states();
        let binding = call_binding("local", None);
        let state = asked_state(&states, &binding);
        let mut tampered = state.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for (state, answer) in [
            (Some(tampered.as_str()), Some(responses(accept()))),
            (Some("rs1.forged"), Some(responses(accept()))),
            (Some(state.as_str()), None),
            (None, Some(responses(accept()))),
            (Some(state.as_str()), Some(InputResponses::new())),
            (
                Some(state.as_str()),
                Some(responses(json!({"approve": true}))),
            ),
        ] {
            let r = states.redeem(&binding, state, answer.as_ref());
            assert!(matches!(r, Err(AnswerError::Malformed(_))), "{r:?}");
        }
        // Nothing above used the genuine state up.
        let r = states.redeem(&binding, Some(&state), Some(&responses(accept())));
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
    }

    #[test]
    fn a_state_from_another_server_process_is_refused() {
        let binding = call_binding("local", None);
        let state = asked_state(&states(), &binding);
        let r = states().redeem(&binding, Some(&state), Some(&responses(accept())));
        assert!(matches!(r, Err(AnswerError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn an_answer_for_another_rule_asks_again_and_no_elicitation_is_unavailable() {
        let states = states();
        let answer = Answer {
            rule: "other-rule".into(),
            approval: Approval::Approved,
        };
        let got = ask_or_answer(&states, &[1], Some(Ok(answer)), true, &request());
        assert!(matches!(got, Asked::Question(_)), "{got:?}");
        let mute = ask_or_answer(&states, &[1], None, false, &request());
        assert!(matches!(
            mute,
            Asked::Answered(Approval::Unavailable(why)) if why.contains("elicitation")
        ));
        let stale = ask_or_answer(&states, &[1], Some(Err("used".into())), true, &request());
        assert!(matches!(stale, Asked::Answered(Approval::Unavailable(why)) if why == "used"));
        let same_rule = Answer {
            rule: "py-approval".into(),
            approval: Approval::Approved,
        };
        let answered = ask_or_answer(&states, &[1], Some(Ok(same_rule)), true, &request());
        assert!(matches!(answered, Asked::Answered(Approval::Approved)));
    }
}
