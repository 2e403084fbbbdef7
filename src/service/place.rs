//! Where a call runs: a fresh sandbox (with a scratch workspace made on first use), or a code
//! session (found, or opened for `session: "new"`), and what is done to the session after
//! the run (a restart after a trap, a close, the call budget).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

use super::Service;
use super::files::{LazyWorkspace, Returned, RunFiles};
use super::sessions::{CodeSession, Interpreter, OpenRefused};
use crate::audit::SessionEvent;
use crate::contract::{
    ErrorInfo, ErrorKind, ExecuteArgs, ExecutionResult, PolicyDecision, SessionAction, SessionInfo,
    Status,
};
use crate::net::FetchAudit;
use crate::policy::Policy;

/// What `session` says to open rather than continue.
const NEW_SESSION: &str = "new";

/// How a session's call went, for its part of the result.
pub(super) struct Turn {
    /// The call's number in the session.
    pub call: u64,
    /// It ran in a new interpreter.
    pub fresh: bool,
    /// The interpreter was dropped after it (a trap).
    pub restarted: bool,
}

pub(super) enum Place {
    Fresh,
    Session {
        session: Arc<CodeSession>,
        /// Opened by this call.
        opened: bool,
    },
}

impl Place {
    pub fn session(&self) -> Option<&Arc<CodeSession>> {
        match self {
            Place::Fresh => None,
            Place::Session { session, .. } => Some(session),
        }
    }
}

impl Service {
    /// The workspace a call's run gets: its session's, or a scratch one (none when the
    /// policy turns workspaces off).
    pub(super) fn run_files(&self, place: &Place, policy: &Policy) -> Option<Arc<RunFiles>> {
        let workspace = match place {
            Place::Session { session, .. } => session.workspace.clone()?,
            Place::Fresh => Arc::new(self.new_workspace(policy)?),
        };
        Some(Arc::new(RunFiles::new(workspace)))
    }

    /// A workspace under the policy's quota, made on first use (none when the policy turns
    /// workspaces off).
    fn new_workspace(&self, policy: &Policy) -> Option<LazyWorkspace> {
        let root = self
            .workspaces
            .clone()
            .filter(|_| policy.workspace.enabled)?;
        Some(LazyWorkspace::new(root, policy.workspace.quota()))
    }

    /// Finds or opens the call's session; the result says why not.
    pub(super) fn place(
        &self,
        args: &ExecuteArgs,
        policy: &Policy,
        audit: &FetchAudit,
    ) -> Result<Place, Box<ExecutionResult>> {
        self.sweep_sessions(policy);
        let Some(id) = args.session.as_deref() else {
            return Ok(Place::Fresh);
        };
        let Some(settings) = &policy.sessions else {
            return Err(Box::new(ExecutionResult::invalid_arguments(
                "`session`: this server does not keep sessions",
            )));
        };
        if id != NEW_SESSION {
            return match self
                .sessions
                .find(settings, id, &audit.grant, &audit.session)
            {
                Some(session) => Ok(Place::Session {
                    session,
                    opened: false,
                }),
                None => Err(Box::new(no_such_session(id))),
            };
        }
        let workspace = self.new_workspace(policy);
        match self.sessions.open(
            settings,
            self.session_capacity,
            &audit.grant,
            &audit.session,
            workspace,
        ) {
            Ok(session) => {
                let mut event =
                    SessionEvent::new("open", &session.id, &audit.grant, &audit.session);
                event.request_id = Some(&audit.request_id);
                self.record(&event);
                Ok(Place::Session {
                    session,
                    opened: true,
                })
            }
            Err(refused) => {
                let rule = match refused {
                    OpenRefused::PerGrant(_) => "sessions.max_per_grant",
                    OpenRefused::Total(_) => "sessions.max_sessions",
                    OpenRefused::NoRandomness => "sessions",
                };
                Err(Box::new(ExecutionResult::stopped(
                    Status::RateLimited,
                    PolicyDecision {
                        rule: rule.into(),
                        reason: refused.to_string(),
                        retry_after_ms: None,
                    },
                )))
            }
        }
    }

    /// After the run: the session's part of the result, its audit events, and its end when
    /// the call closed it or used its last call.
    pub(super) fn settle_session(
        &self,
        place: &Place,
        turn: &Turn,
        args: &ExecuteArgs,
        policy: &Policy,
        audit: &FetchAudit,
        result: &mut ExecutionResult,
    ) {
        let (Place::Session { session, .. }, Some(settings)) = (place, &policy.sessions) else {
            return;
        };
        let event = |action: &'static str, reason: Option<&str>| {
            let mut event = SessionEvent::new(action, &session.id, &audit.grant, &audit.session);
            event.request_id = Some(&audit.request_id);
            event.reason = reason;
            self.record(&event);
        };
        if turn.restarted {
            event("restart", Some(result.status.as_str()));
        }
        let closing = if args.session_action == Some(SessionAction::Close) {
            Some("the call asked to close it")
        } else if session.calls() >= settings.max_calls {
            Some("it used its last call (sessions.max_calls)")
        } else {
            None
        };
        if let Some(why) = closing {
            self.sessions.close(&session.id);
            event("close", Some(why));
        }
        result.session = Some(Box::new(SessionInfo {
            id: session.id.clone(),
            call: turn.call,
            fresh: turn.fresh,
            restarted: turn.restarted,
            idle_timeout_s: settings.idle_timeout_s,
            expires_in_s: if closing.is_some() {
                0
            } else {
                session.expires_in_s(settings)
            },
        }));
    }

    /// Ends sessions that are over, audited.
    pub(super) fn sweep_sessions(&self, policy: &Policy) {
        for (session, why) in self.sessions.sweep(policy.sessions.as_ref()) {
            let mut event =
                SessionEvent::new("expire", &session.id, &session.grant, &session.mcp_session);
            event.reason = Some(why);
            self.record(&event);
        }
    }

    /// How the run's files are returned: a session's stay readable as resources (unless the
    /// call closed it).
    pub(super) fn returned<'a>(&self, place: &'a Place, policy: &Policy) -> Returned<'a> {
        Returned {
            session: place
                .session()
                .filter(|s| self.sessions.is_open(&s.id))
                .map(|s| s.id.as_str()),
            max_bytes: policy.workspace.max_returned_bytes,
        }
    }
}

impl Service {
    /// Waits for the session's interpreter (calls on one session take turns, never
    /// interleaved) until the call's deadline, and applies a reset.
    pub(super) async fn turn_on(
        &self,
        session: &Arc<CodeSession>,
        guest: &'static str,
        args: &ExecuteArgs,
        audit: &FetchAudit,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<OwnedMutexGuard<Interpreter>, ExecutionResult> {
        let lock = session.interpreter.clone().lock_owned();
        let mut turn = tokio::select! {
            turn = tokio::time::timeout_at(deadline.into(), lock) => match turn {
                Ok(turn) => turn,
                Err(_) => return Err(ExecutionResult::without_run(
                    Status::Timeout,
                    ErrorInfo::new(
                        ErrorKind::Timeout,
                        "the session was busy with another call until this call's deadline",
                    ),
                )),
            },
            _ = cancel.cancelled() => return Err(ExecutionResult::without_run(
                Status::Error,
                ErrorInfo::new(ErrorKind::Cancelled, "the call was cancelled while waiting for its session"),
            )),
        };
        if let Some(running) = turn.guest
            && running != guest
        {
            return Err(ExecutionResult::invalid_arguments(format!(
                "session {} runs {running} code; open another session for {}",
                session.id, args.language
            )));
        }
        if args.session_action == Some(SessionAction::Reset) {
            turn.kept.discard();
            let mut event = SessionEvent::new("reset", &session.id, &audit.grant, &audit.session);
            event.request_id = Some(&audit.request_id);
            self.record(&event);
        }
        Ok(turn)
    }

    /// A call that will not run: a session it just opened is closed again (nobody has its id).
    pub(super) fn abandon(&self, place: &Place, result: ExecutionResult) -> ExecutionResult {
        if let Place::Session {
            session,
            opened: true,
        } = place
        {
            self.sessions.close(&session.id);
        }
        result
    }
}

/// The one answer for an id that is not the caller's: forged, expired, closed, or another
/// grant's all look the same.
pub(super) fn no_such_session(id: &str) -> ExecutionResult {
    let shown: String = id.chars().take(80).collect();
    ExecutionResult::invalid_arguments(format!(
        "no such session: {shown} (sessions end when closed, idle or too old, and with the \
         server; open a new one with session: \"new\")"
    ))
}
