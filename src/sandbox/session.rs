//! Interpreters kept between calls (a session's cells). A kept instance keeps its store and
//! its memory; each call gets its own fuel, deadline, output caps and doors
//! (`run::begin_call`). A call that traps (deadline, fuel, exit, crash) or runs out of
//! memory leaves the interpreter in a state nobody can vouch for, so the instance is dropped
//! and the next call starts a fresh one.

use std::time::Instant;

use wasmtime::Store;

use super::component::{self, ComponentSession};
use super::core_module::{self, CoreSession};
use super::ending::finish;
use super::run::{HasRunCore, begin_call};
use super::spares::Spare;
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

/// An instance kept between calls, in its store.
pub(super) struct Kept<S: 'static, I> {
    pub store: Store<S>,
    pub instance: I,
}

/// How a guest form starts, continues and calls a kept instance.
pub(super) struct KeptForm<Start, Refresh, Call, Diagnose> {
    /// A new store, and the instance made in it (or why it could not be made).
    pub start: Start,
    /// Gives a kept store the next request (beyond `run::begin_call`'s part).
    pub refresh: Refresh,
    /// Runs the request in the instance.
    pub call: Call,
    /// What the guest runtime itself printed, to explain a crash.
    pub diagnose: Diagnose,
}

/// Runs `request` in `kept` (starting one first when there is none). An instance whose call
/// trapped or ran out of memory is in an unknown state: the result says `discarded`, and the
/// caller must not run anything in it again (it stays in `kept` only to be torn down off the
/// call's path).
pub(super) fn run_kept<S, I, Start, Refresh, Call, Diagnose>(
    kept: &mut Option<Kept<S, I>>,
    request: &RunRequest,
    form: KeptForm<Start, Refresh, Call, Diagnose>,
) -> SessionRun
where
    S: HasRunCore,
    Start: FnOnce() -> wasmtime::Result<(Store<S>, wasmtime::Result<I>)>,
    Refresh: FnOnce(&mut S),
    Call: FnOnce(&mut Store<S>, &I) -> wasmtime::Result<()>,
    Diagnose: Fn(&S) -> String,
{
    let started = Instant::now();
    let fuel = request.limits.fuel;
    let fresh = kept.is_none();
    let mut session = match kept.take() {
        Some(mut session) => {
            (form.refresh)(session.store.data_mut());
            if let Err(e) = begin_call(&mut session.store, request) {
                return SessionRun::failed(format!("continuing the session failed: {e:#}"), fresh);
            }
            session
        }
        None => match (form.start)() {
            Err(e) => {
                return SessionRun::failed(format!("setting up the run failed: {e:#}"), fresh);
            }
            Ok((store, Ok(instance))) => Kept { store, instance },
            Ok((mut store, Err(e))) => {
                let detail = (form.diagnose)(store.data());
                return SessionRun::ended(finish(&mut store, Err(e), &detail, started, fuel));
            }
        },
    };
    let outcome = (form.call)(&mut session.store, &session.instance);
    let discarded = outcome.is_err() || session.store.data_mut().run_core().limiter.exhausted();
    let detail = (form.diagnose)(session.store.data());
    let result = finish(&mut session.store, outcome, &detail, started, fuel);
    *kept = Some(session);
    SessionRun {
        result,
        fresh,
        discarded,
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
        let spare = if kept.is_live() {
            None
        } else {
            self.spares.take(guest.name)
        };
        match self.guests.get(guest.name) {
            Some(PreparedGuest::CoreModule(pre)) => {
                let spare = spare.and_then(Spare::into_core);
                let run = core_module::execute_in_session(
                    &self.engine,
                    pre,
                    &mut kept.core,
                    spare,
                    request,
                );
                if run.discarded
                    && let Some(spent) = kept.core.take()
                {
                    self.spares.retire(Spare::Core(spent));
                }
                run
            }
            Some(PreparedGuest::Component(pre)) => {
                let spare = spare.and_then(Spare::into_component);
                let run = component::execute_in_session(
                    &self.engine,
                    pre,
                    &mut kept.component,
                    spare,
                    request,
                );
                if run.discarded
                    && let Some(spent) = kept.component.take()
                {
                    self.spares.retire(Spare::Component(spent));
                }
                run
            }
            None => SessionRun::failed(
                format!("the {} guest is not loaded in this sandbox", guest.name),
                true,
            ),
        }
    }
}
