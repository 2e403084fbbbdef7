//! One call through the pipeline: schema -> the policy's decision -> (a person's approval) ->
//! rate limits -> run. Each step is a value the caller drives: [`Service::decide`] gives a
//! [`Step`]; a [`PendingApproval`] is answered (or deferred) by whoever can ask a person (the
//! MCP layer); an [`AdmittedCall`] runs. Every decision and every run is an audit event.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use super::Service;
use super::admission::Counted;
use super::live::Live;
use super::run::{RunHow, RunWatch};
use crate::audit::{AuditEvent, CodeFields, rfc3339_now};
use crate::contract::{ExecuteArgs, ExecutionResult, Language, Status};
use crate::net::FetchAudit;
use crate::policy::{Caller, Decision, Denial, Question, now_ms};

/// Where a call stands after a step of the pipeline.
pub enum Step<'s> {
    /// It ended before running (invalid arguments or a denial), already audited.
    Done(ExecutionResult),
    /// The policy wants a person to approve it first.
    Approve(PendingApproval<'s>),
    /// Admitted and counted: run it.
    Run(AdmittedCall<'s>),
}

/// What a person said, or why nobody could be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Approved,
    Declined,
    /// Nobody can be asked; says why.
    Unavailable(String),
}

/// Asks the person behind the client, while a run waits, whether a call the code makes to an
/// upstream tool may go ahead (`question` says which tool, arguments and run). The MCP layer
/// implements it where the client can be asked mid-call (elicitation on a session).
pub trait AskPerson: Send + Sync {
    fn ask(&self, question: String) -> Pin<Box<dyn Future<Output = Approval> + Send + '_>>;
}

/// What a person is asked to approve.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalRequest<'a> {
    pub rule: &'a str,
    pub reason: &'a str,
    pub language: Language,
    pub code: &'a str,
}

/// The service a call goes through: borrowed for a call answered within its request, shared
/// for a task, which runs after the request that admitted it was answered.
enum ServiceRef<'s> {
    Borrowed(&'s Service),
    Shared(Arc<Service>),
}

impl std::ops::Deref for ServiceRef<'_> {
    type Target = Service;

    fn deref(&self) -> &Service {
        match self {
            ServiceRef::Borrowed(service) => service,
            ServiceRef::Shared(service) => service,
        }
    }
}

/// A call on its way through the pipeline: who, what, and what its audit events say of it.
struct Call<'s> {
    service: ServiceRef<'s>,
    /// When the call arrived: every event of the call carries this time.
    time: String,
    request_id: String,
    grant: String,
    session: String,
    args: ExecuteArgs,
    code: Option<CodeFields>,
}

pub struct PendingApproval<'s> {
    call: Call<'s>,
    question: Question,
}

pub struct AdmittedCall<'s> {
    call: Call<'s>,
    counted: Counted,
    /// Runs under the policy's `[tasks]` wall clock and fuel instead of `[limits]`'.
    as_task: bool,
    /// See [`AdmittedCall::on_this_thread`] (`run.rs`).
    pub(super) here: bool,
}

impl Service {
    /// The first steps of a call: the schema check's outcome (`parsed`), then the policy's
    /// decision for `caller`. A call already cancelled is never admitted.
    pub fn decide(
        &self,
        parsed: Result<ExecuteArgs, String>,
        caller: &Caller<'_>,
        cancel: &CancellationToken,
    ) -> Step<'_> {
        static REQUESTS: AtomicU64 = AtomicU64::new(1);
        // Read once: glibc does not cache the pid, so each call would be a system call.
        static PID: OnceLock<u32> = OnceLock::new();
        let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("r-{}-{n}", PID.get_or_init(std::process::id));
        let time = rfc3339_now();
        let args = match parsed {
            Ok(args) => args,
            Err(message) => {
                let result = ExecutionResult::invalid_arguments(message);
                let mut event =
                    AuditEvent::at(time, "decision", &request_id, caller.grant, caller.session);
                event.decision = "invalid_arguments";
                event.reason = result.error.as_ref().map(|e| e.message.as_str());
                self.record(&event);
                return Step::Done(result);
            }
        };
        let call = Call {
            service: ServiceRef::Borrowed(self),
            time,
            request_id,
            grant: caller.grant.to_string(),
            session: caller.session.to_string(),
            code: self.audit.as_ref().map(|log| log.code_fields(&args.code)),
            args,
        };
        if cancel.is_cancelled() {
            return Step::Done(call.cancelled());
        }
        let live = self.policy.current();
        let decision = live.engine.decide(&call.args, caller);
        match decision {
            Decision::Deny(denial) => Step::Done(call.stop(denial)),
            Decision::NeedsApproval(question) => Step::Approve(PendingApproval { call, question }),
            Decision::Admit => call.admit(live),
        }
    }

    /// A call through the whole pipeline where nobody can be asked for approval (the command
    /// line, in-process callers): a call that needs approval is denied, saying `why`.
    pub async fn call(
        &self,
        parsed: Result<ExecuteArgs, String>,
        caller: &Caller<'_>,
        no_approver: &str,
        cancel: &CancellationToken,
    ) -> ExecutionResult {
        let step = match self.decide(parsed, caller, cancel) {
            Step::Approve(pending) => pending.answer(Approval::Unavailable(no_approver.into())),
            step => step,
        };
        match step {
            Step::Done(result) => result,
            Step::Run(call) => call.run(cancel).await,
            Step::Approve(_) => ExecutionResult::internal("approval was asked twice"),
        }
    }
}

impl<'s> PendingApproval<'s> {
    pub fn request(&self) -> ApprovalRequest<'_> {
        ApprovalRequest {
            rule: &self.question.rule,
            reason: &self.question.reason,
            language: self.call.args.language,
            code: &self.call.args.code,
        }
    }

    /// Continues with a person's answer.
    pub fn answer(self, approval: Approval) -> Step<'s> {
        let PendingApproval { call, question } = self;
        let Question { rule, reason } = question;
        match approval {
            Approval::Approved => {
                // The policy may have been reloaded while a person was deciding: the call
                // must still pass the one in force now (approval is not asked twice).
                let live = call.service.policy.current();
                let caller = Caller {
                    grant: &call.grant,
                    session: &call.session,
                };
                match live.engine.check(&call.args, &caller) {
                    Decision::Deny(denial) => Step::Done(call.stop(denial)),
                    _ => call.admit(live),
                }
            }
            Approval::Declined => Step::Done(call.stop(Denial::new(
                Status::ApprovalDeclined,
                rule,
                format!("approval was declined ({reason})"),
            ))),
            Approval::Unavailable(why) => Step::Done(call.stop(Denial::new(
                Status::Denied,
                rule,
                format!("this call needs a person's approval ({reason}), but {why}"),
            ))),
        }
    }

    /// The client gave up while a person was being asked.
    pub fn cancelled(self) -> ExecutionResult {
        self.call.cancelled()
    }

    /// The question went out with the call's answer (the 2026-07-28 input-required flow): the
    /// call ends here, and the client calls again with the person's answer.
    pub fn defer(self) {
        let call = self.call;
        let mut event = call.event("approval_requested");
        event.rule = Some(&self.question.rule);
        event.reason = Some(&self.question.reason);
        call.service.record(&event);
    }
}

impl AdmittedCall<'_> {
    /// The call as a task: it keeps `service` (the one that admitted it) so that it can run
    /// after its request was answered, under the `[tasks]` limits.
    pub fn into_task(self, service: &Arc<Service>) -> AdmittedCall<'static> {
        debug_assert!(std::ptr::eq(&*self.call.service, &**service));
        let Call {
            service: _,
            time,
            request_id,
            grant,
            session,
            args,
            code,
        } = self.call;
        AdmittedCall {
            call: Call {
                service: ServiceRef::Shared(service.clone()),
                time,
                request_id,
                grant,
                session,
                args,
                code,
            },
            counted: self.counted,
            as_task: true,
            here: false,
        }
    }

    /// Stops an admitted call before it runs (no room for it as a task): audited, and its
    /// rate-limit count given back.
    pub fn refuse(self, denial: Denial) -> ExecutionResult {
        let AdmittedCall { call, counted, .. } = self;
        drop(counted);
        call.stop(denial)
    }

    /// Runs the call and audits how it ended.
    pub async fn run(self, cancel: &CancellationToken) -> ExecutionResult {
        self.run_asking(cancel, None).await
    }

    /// [`Self::run`], with someone to ask when a call the code makes needs approval.
    pub async fn run_asking(
        self,
        cancel: &CancellationToken,
        asker: Option<Arc<dyn AskPerson>>,
    ) -> ExecutionResult {
        self.run_watched(cancel, asker, None).await
    }

    /// [`Self::run_asking`], showing the run's output to `watch` while it runs.
    pub async fn run_watched(
        self,
        cancel: &CancellationToken,
        asker: Option<Arc<dyn AskPerson>>,
        watch: Option<RunWatch>,
    ) -> ExecutionResult {
        let AdmittedCall {
            call,
            counted,
            as_task,
            here,
        } = self;
        let audit = FetchAudit {
            log: call.service.audit.clone(),
            request_id: call.request_id.clone(),
            grant: call.grant.clone(),
            session: call.session.clone(),
        };
        let result = call
            .service
            .run_counted(
                counted,
                call.args.clone(),
                audit,
                RunHow {
                    asker,
                    as_task,
                    watch,
                    here,
                },
                cancel,
            )
            .await;
        let mut event = call.event(result.status.as_str());
        event.event = "run";
        event.status = Some(result.status.as_str());
        event.usage = Some(result.usage);
        call.service.record(&event);
        result
    }
}

impl<'s> Call<'s> {
    fn event(&self, decision: &'s str) -> AuditEvent<'_> {
        let mut event = AuditEvent::at(
            self.time.clone(),
            "decision",
            &self.request_id,
            &self.grant,
            &self.session,
        );
        event.decision = decision;
        event.language = Some(self.args.language.as_str());
        if let Some(code) = &self.code {
            event.describe(code);
        }
        event
    }

    /// Ends the call with `denial`, audited.
    fn stop(self, denial: Denial) -> ExecutionResult {
        self.service.metrics.denied(&denial.decision.rule);
        let result = ExecutionResult::stopped(denial.status, denial.decision);
        let mut event = self.event(match result.status {
            Status::RateLimited => "rate_limited",
            Status::ApprovalDeclined => "approval_declined",
            _ => "deny",
        });
        event.rule = result.policy.as_ref().map(|p| p.rule.as_str());
        event.reason = result.policy.as_ref().map(|p| p.reason.as_str());
        self.service.record(&event);
        result
    }

    fn cancelled(self) -> ExecutionResult {
        self.stop(Denial::new(
            Status::Denied,
            "cancelled",
            "the client cancelled the call before it was decided",
        ))
    }

    /// Counts the call against every rate limit, then records the decision. A decision that
    /// cannot be recorded under `audit.fail_closed` denies the call (and gives the count back).
    fn admit(self, live: Arc<Live>) -> Step<'s> {
        let caller = Caller {
            grant: &self.grant,
            session: &self.session,
        };
        let reservation = match live.engine.admit(&self.args, &caller, now_ms()) {
            Ok(reservation) => reservation,
            Err(denial) => return Step::Done(self.stop(denial)),
        };
        let uncounted = reservation.uncounted().map(str::to_string);
        let counted = Counted::new(live, reservation);
        let mut allowed = self.event("allow");
        if let Some(why) = &uncounted {
            allowed.rule = Some("state.fail_open");
            allowed.reason = Some(why);
        }
        if let Some(log) = &self.service.audit
            && let Err(e) = log.record(&allowed)
        {
            tracing::error!("the audit log cannot be written: {e}");
            if log.fail_closed() {
                drop(counted);
                let denial = Denial::new(
                    Status::Denied,
                    "audit.fail_closed",
                    "the audit log cannot be written, and the policy denies unaudited calls",
                );
                return Step::Done(ExecutionResult::stopped(denial.status, denial.decision));
            }
        }
        Step::Run(AdmittedCall {
            call: self,
            counted,
            as_task: false,
            here: false,
        })
    }
}
