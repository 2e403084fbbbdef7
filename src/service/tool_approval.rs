//! Approval from inside a run: a call the code makes that the policy wants a person to approve
//! pauses the run at that call while the person is asked (elicitation), then goes ahead or
//! raises in the guest. The wait moves the run's deadline (it is not the code's time) and uses
//! no fuel; cancelling the run stops it at once.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;

use super::pipeline::Approval;
use super::tools::{Refused, RunTools};
use crate::policy::Question;

/// The arguments shown in an approval question are cut after this many bytes.
const MAX_SHOWN_ARGUMENTS: usize = 2000;

impl RunTools {
    /// Asks the person whether the call may go ahead, while the run waits: the wait counts
    /// against neither the run's wall clock nor its fuel (only the approval's own timeout,
    /// the client's), and cancelling the run stops it at once.
    pub(super) fn ask(
        &self,
        server: &str,
        tool: &str,
        arguments: &Value,
        question: &Question,
    ) -> Result<(), Refused> {
        let refused = |kind, message: String| Refused {
            rule: Some(question.rule.clone()),
            ..Refused::new(kind, message)
        };
        let Some(asker) = &self.asker else {
            return Err(refused(
                "approval_required",
                format!(
                    "{server}.{tool} needs a person's approval ({}), and this client cannot be asked during a run",
                    question.reason
                ),
            ));
        };
        let mut shown = arguments.clone();
        self.live.credentials.redactor().redact_json(&mut shown);
        let shown = serde_json::to_string_pretty(&shown).unwrap_or_default();
        let end = shown.floor_char_boundary(MAX_SHOWN_ARGUMENTS);
        let text = format!(
            "Warden policy rule `{rule}` asks for your approval: {reason}\n\n\
             The code of run {run} (grant `{grant}`) wants to call the tool `{server}.{tool}` \
             with these arguments:\n\n{args}{cut}\n\nAllow this call?",
            rule = question.rule,
            reason = question.reason,
            run = self.request_id,
            grant = self.grant,
            args = &shown[..end],
            cut = if end < shown.len() { "\n(cut)" } else { "" },
        );
        let started = Instant::now();
        let cancelled = self.cancelled();
        let approval = crate::sandbox::wait_on(&self.runtime, async {
            tokio::select! {
                approval = asker.ask(text) => Some(approval),
                _ = cancelled => None,
            }
        });
        let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.paused_ns.fetch_add(waited, Ordering::AcqRel);
        match approval {
            None => Err(Refused::new("cancelled", "the run was cancelled")),
            Some(Approval::Approved) => Ok(()),
            Some(Approval::Declined) => Err(refused(
                "approval_declined",
                format!("the person declined the call to {server}.{tool}"),
            )),
            Some(Approval::Unavailable(why)) => Err(refused(
                "approval_required",
                format!(
                    "{server}.{tool} needs a person's approval, and nobody could be asked: {why}"
                ),
            )),
        }
    }
}
