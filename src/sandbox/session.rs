//! Interpreters kept between calls (a session's cells). A kept instance keeps its store and
//! its memory; each call gets its own fuel, deadline, output caps and doors
//! (`run::begin_call`). A call that traps (deadline, fuel, exit, crash) or runs out of
//! memory leaves the interpreter in a state nobody can vouch for, so the instance is dropped
//! and the next call starts a fresh one.

use super::component::{self, ComponentSession};
use super::core_module::{self, CoreSession};
use super::{GuestProgram, PreparedGuest, RunRequest, Sandbox};
use crate::contract::ExecutionResult;

/// How one call on a kept interpreter went.
#[derive(Debug)]
pub struct SessionRun {
    pub result: ExecutionResult,
    /// The call ran in a new interpreter (the session's first, or the first after a discard).
    pub fresh: bool,
    /// The interpreter was dropped after this call: its state is gone.
    pub discarded: bool,
}

impl SessionRun {
    pub(super) fn failed(message: String, fresh: bool) -> SessionRun {
        SessionRun {
            result: ExecutionResult::internal(message),
            fresh,
            discarded: true,
        }
    }

    /// A fresh interpreter that could not even start.
    pub(super) fn ended(result: ExecutionResult) -> SessionRun {
        SessionRun {
            result,
            fresh: true,
            discarded: true,
        }
    }
}

/// One guest's interpreter, kept between calls; empty until the first call.
#[derive(Default)]
pub struct KeptGuest {
    guest: Option<&'static str>,
    core: Option<CoreSession>,
    component: Option<ComponentSession>,
}

impl KeptGuest {
    /// Whether an interpreter is alive (its globals would carry over to the next call).
    pub fn is_live(&self) -> bool {
        self.core.is_some() || self.component.is_some()
    }

    /// Drops the interpreter (a reset): the next call starts fresh.
    pub fn discard(&mut self) {
        self.core = None;
        self.component = None;
    }
}

impl Sandbox {
    /// Runs one program in `kept`'s interpreter, starting one if there is none. Blocking, like
    /// [`Sandbox::run`].
    pub fn run_kept(
        &self,
        guest: &GuestProgram,
        kept: &mut KeptGuest,
        request: RunRequest,
    ) -> SessionRun {
        if kept.guest.is_some_and(|name| name != guest.name) {
            kept.discard();
        }
        kept.guest = Some(guest.name);
        match self.guests.get(guest.name) {
            Some(PreparedGuest::CoreModule(pre)) => {
                core_module::execute_in_session(&self.engine, pre, &mut kept.core, request)
            }
            Some(PreparedGuest::Component(pre)) => {
                component::execute_in_session(&self.engine, pre, &mut kept.component, request)
            }
            None => SessionRun::failed(
                format!("the {} guest is not loaded in this sandbox", guest.name),
                true,
            ),
        }
    }
}
