//! Warden's JavaScript guest: QuickJS (rquickjs) compiled to wasm32-wasip1.
//!
//! The host pre-initializes this module with Wizer (export `wizer-initialize`), so that a run
//! starts with the runtime, the context and the prelude already built; `_start` then evaluates
//! one program and reports its outcome. The guest ABI (module `warden`) is documented in
//! `guest-runtimes/ABI.md`; the host side lives in `src/sandbox/`.
//!
//! Nothing here is trusted by the host: every pointer and length crossing the boundary is
//! checked on the host side, and every limit (fuel, memory, wall clock, output) is enforced
//! there too.

use std::cell::{Cell, RefCell};

use rquickjs::context::EvalOptions;
use rquickjs::function::Opt;
use rquickjs::{
    Array, ArrayBuffer, Context, Ctx, Function, JsLifetime, Object, Persistent, Promise, Runtime,
    TypedArray, Value,
};

#[link(wasm_import_module = "warden")]
unsafe extern "C" {
    /// Length in bytes of a request field (0 = code, 1 = input as JSON, 2 = file name).
    fn request_len(field: u32) -> u32;
    /// Copies a request field into guest memory at `dst`.
    fn request_read(field: u32, dst: *mut u8);
    /// Appends UTF-8 text to stdout (1) or stderr (2); returns 0 once that stream is full.
    fn output(stream: u32, ptr: *const u8, len: usize) -> u32;
    /// Reports the outcome (JSON, see ABI.md). Called once, at the end of `_start`.
    fn set_result(ptr: *const u8, len: usize);
    /// Sends a request frame; returns the length of the response frame to read.
    fn fetch(ptr: *const u8, len: usize) -> u32;
    /// Copies the response frame of the last `fetch` to `dst`.
    fn fetch_read(dst: *mut u8);
    /// A file call on the workspace (request frame in); returns the answer frame's length.
    fn workspace(ptr: *const u8, len: usize) -> u32;
    /// Copies the answer frame of the last `workspace` call to `dst`.
    fn workspace_read(dst: *mut u8);
    /// A call to an upstream tool, or discovery (JSON in); returns the JSON answer's length.
    fn tools(ptr: *const u8, len: usize) -> u32;
    /// Copies the answer of the last `tools` call to `dst`.
    fn tools_read(dst: *mut u8);
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
}

const FIELD_CODE: u32 = 0;
const FIELD_INPUT: u32 = 1;
const FIELD_FILENAME: u32 = 2;

/// QuickJS's own stack check measures the shadow stack in linear memory (1 MiB by default for
/// Rust on wasm32). Keeping it below that turns deep recursion into a catchable RangeError.
const JS_MAX_STACK_BYTES: usize = 768 * 1024;

const PRELUDE: &str = include_str!("prelude.js");
/// The workspace's Node-style `fs`, as an expression evaluating to its `makeFs(call)`.
const FS_MODULE: &str = concat!("(function () {\n", include_str!("fs.js"), "\nreturn makeFs;\n})()");

struct Engine {
    runtime: Runtime,
    context: Context,
    /// The prelude's private helpers, kept out of the global object so that user code cannot
    /// reach or replace them.
    helpers: Persistent<Helpers<'static>>,
}

/// The prelude's functions a run calls, found once before the snapshot rather than by name in
/// every run.
#[derive(Clone)]
struct Helpers<'js> {
    begin_run: Function<'js>,
    describe_error: Function<'js>,
    serialize_result: Function<'js>,
    run_next_timer: Function<'js>,
}

// SAFETY: only the lifetime changes, and every field is a `Function`, which is `JsLifetime` with
// `Changed<'to> = Function<'to>` (what `Persistent` needs to keep them across `Context::with`).
unsafe impl<'js> JsLifetime<'js> for Helpers<'js> {
    type Changed<'to> = Helpers<'to>;
}

impl<'js> Helpers<'js> {
    fn from_prelude(internals: &Object<'js>) -> rquickjs::Result<Self> {
        Ok(Helpers {
            begin_run: internals.get("beginRun")?,
            describe_error: internals.get("describeError")?,
            serialize_result: internals.get("serializeResult")?,
            run_next_timer: internals.get("runNextTimer")?,
        })
    }
}

/// The engine lives in a plain static, never dropped: a `thread_local!` would register a
/// destructor (in the Wizer snapshot) that frees the whole QuickJS heap at the end of every run,
/// touching every page of it for nothing, since the instance is thrown away anyway.
struct EngineSlot(RefCell<Option<Engine>>);

// SAFETY: wasm32-wasip1 has a single thread; the slot is never shared across threads.
unsafe impl Sync for EngineSlot {}

static ENGINE: EngineSlot = EngineSlot(RefCell::new(None));

thread_local! {
    static RNG_STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
    /// Rejected promises nobody has handled yet, with their reasons (oldest first).
    static UNHANDLED: RefCell<Vec<(Persistent<Value<'static>>, Persistent<Value<'static>>)>> =
        const { RefCell::new(Vec::new()) };
}

/// QuickJS calls this when a promise is rejected with no handler (`handled == false`) and when
/// such a promise gets one later (`handled == true`).
fn track_rejection<'js>(ctx: Ctx<'js>, promise: Value<'js>, reason: Value<'js>, handled: bool) {
    UNHANDLED.with(|list| {
        let mut list = list.borrow_mut();
        if handled {
            list.retain(|(p, _)| p.clone().restore(&ctx).map_or(true, |p| p != promise));
        } else {
            list.push((Persistent::save(&ctx, promise), Persistent::save(&ctx, reason)));
        }
    });
}

/// The oldest rejection still unhandled once the program is done, if any.
fn first_unhandled_rejection<'js>(ctx: &Ctx<'js>) -> Option<Value<'js>> {
    UNHANDLED.with(|list| {
        list.borrow()
            .first()
            .and_then(|(_, reason)| reason.clone().restore(ctx).ok())
    })
}

fn host_random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: `bytes` is a valid, writable buffer of the given length.
    unsafe { random_get(bytes.as_mut_ptr(), bytes.len()) };
    u64::from_le_bytes(bytes)
}

/// xorshift64*: Math.random needs speed, not cryptographic strength (crypto.* uses the host).
fn next_math_random() -> f64 {
    RNG_STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn write_output(stream: u32, text: &str) -> bool {
    // SAFETY: the pointer and length describe a live, initialized byte slice.
    unsafe { output(stream, text.as_ptr(), text.len()) != 0 }
}

fn read_request(field: u32) -> Vec<u8> {
    // SAFETY: the host writes exactly `request_len(field)` bytes into the buffer we allocate.
    unsafe {
        let len = request_len(field) as usize;
        let mut buf = vec![0u8; len];
        request_read(field, buf.as_mut_ptr());
        buf
    }
}

/// URL parsing for the prelude's `URL` class, done by the WHATWG-conformant `url` crate.
/// Returns [href, protocol, username, password, host, hostname, port, pathname, search, hash,
/// origin], or None when the input is not a valid URL.
fn url_components(url: &url::Url) -> Vec<String> {
    let search = match url.query() {
        Some(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    };
    let hash = match url.fragment() {
        Some(f) if !f.is_empty() => format!("#{f}"),
        _ => String::new(),
    };
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    };
    vec![
        url.as_str().to_string(),
        format!("{}:", url.scheme()),
        url.username().to_string(),
        url.password().unwrap_or_default().to_string(),
        host,
        url.host_str().unwrap_or_default().to_string(),
        url.port().map(|p| p.to_string()).unwrap_or_default(),
        url.path().to_string(),
        search,
        hash,
        url.origin().ascii_serialization(),
    ]
}

fn url_op(op: String, a: String, b: Opt<String>) -> Option<Vec<String>> {
    if op == "parse" {
        let parsed = match b.0 {
            Some(base) => url::Url::parse(&base).ok()?.join(&a).ok()?,
            None => url::Url::parse(&a).ok()?,
        };
        return Some(url_components(&parsed));
    }
    let mut url = url::Url::parse(&a).ok()?;
    let value = b.0.unwrap_or_default();
    // Setters follow the WHATWG rule: an invalid new value leaves the URL unchanged.
    match op.as_str() {
        "protocol" => {
            let _ = url.set_scheme(value.trim_end_matches(':'));
        }
        "username" => {
            let _ = url.set_username(&value);
        }
        "password" => {
            let _ = url.set_password(Some(&value));
        }
        "host" => {
            let (host, port) = match value.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse().ok()),
                _ => (value.as_str(), None),
            };
            if url.set_host(Some(host)).is_ok() && port.is_some() {
                let _ = url.set_port(port);
            }
        }
        "hostname" => {
            let _ = url.set_host(Some(&value));
        }
        "port" => {
            let _ = url.set_port(if value.is_empty() { None } else { value.parse().ok() });
        }
        "pathname" => url.set_path(&value),
        "search" => {
            let q = value.strip_prefix('?').unwrap_or(&value);
            url.set_query(if q.is_empty() { None } else { Some(q) });
        }
        "hash" => {
            let f = value.strip_prefix('#').unwrap_or(&value);
            url.set_fragment(if f.is_empty() { None } else { Some(f) });
        }
        "href" => url = url::Url::parse(&value).ok()?,
        _ => return None,
    }
    Some(url_components(&url))
}

/// One exchange with the host through a pair of imports (`fetch`/`fetch_read` or
/// `workspace`/`workspace_read`): a frame of a JSON head and bytes out, a frame back. Returns
/// [answer head JSON, body ArrayBuffer] (see ABI.md).
fn exchange<'js>(
    ctx: Ctx<'js>,
    send: unsafe extern "C" fn(*const u8, usize) -> u32,
    read: unsafe extern "C" fn(*mut u8),
    head: String,
    body: TypedArray<'js, u8>,
) -> rquickjs::Result<Array<'js>> {
    let mut frame = Vec::with_capacity(4 + head.len());
    frame.extend_from_slice(&(head.len() as u32).to_le_bytes());
    frame.extend_from_slice(head.as_bytes());
    // SAFETY: no JavaScript runs while the slice is borrowed (it is copied at once), so the
    // buffer cannot be detached or resized under it.
    frame.extend_from_slice(unsafe { body.as_bytes() }.unwrap_or(&[]));
    // SAFETY: the host reads `frame` and then writes exactly the returned number of bytes
    // into the buffer we allocate for it.
    let response = unsafe {
        let len = send(frame.as_ptr(), frame.len()) as usize;
        drop(frame);
        let mut response = vec![0u8; len];
        read(response.as_mut_ptr());
        response
    };
    let head_len = response
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let rest = response.get(4..).unwrap_or(&[]);
    let (head, body) = rest.split_at(head_len.min(rest.len()));
    let answer = Array::new(ctx.clone())?;
    answer.set(0, String::from_utf8_lossy(head).into_owned())?;
    answer.set(1, ArrayBuffer::new(ctx, body.to_vec())?)?;
    Ok(answer)
}

/// The host's fetch: `head` is the request as JSON, `body` its bytes.
fn host_fetch<'js>(
    ctx: Ctx<'js>,
    head: String,
    body: TypedArray<'js, u8>,
) -> rquickjs::Result<Array<'js>> {
    exchange(ctx, fetch, fetch_read, head, body)
}

/// A file call: `request` is the JSON request, `data` the bytes of a write.
fn host_workspace<'js>(
    ctx: Ctx<'js>,
    request: String,
    data: TypedArray<'js, u8>,
) -> rquickjs::Result<Array<'js>> {
    exchange(ctx, workspace, workspace_read, request, data)
}

/// A tools request (JSON) to the host; its JSON answer.
fn host_tools(request: String) -> String {
    // SAFETY: the host reads `request` and then writes exactly the returned number of bytes
    // into the buffer we allocate for it.
    let answer = unsafe {
        let len = tools(request.as_ptr(), request.len()) as usize;
        let mut answer = vec![0u8; len];
        tools_read(answer.as_mut_ptr());
        answer
    };
    String::from_utf8_lossy(&answer).into_owned()
}

fn build_engine() -> Result<Engine, String> {
    let runtime = Runtime::new().map_err(|e| format!("QuickJS runtime: {e}"))?;
    runtime.set_host_promise_rejection_tracker(Some(Box::new(track_rejection)));
    let context = Context::full(&runtime).map_err(|e| format!("QuickJS context: {e}"))?;
    let helpers = context
        .with(|ctx| {
            let natives = Object::new(ctx.clone())?;
            natives.set(
                "print",
                Function::new(ctx.clone(), |stream: u32, text: String| {
                    write_output(stream, &text)
                })?,
            )?;
            natives.set("mathRandom", Function::new(ctx.clone(), next_math_random)?)?;
            natives.set(
                "randomU32",
                Function::new(ctx.clone(), || (host_random_u64() >> 32) as u32)?,
            )?;
            natives.set("url", Function::new(ctx.clone(), url_op)?)?;
            natives.set("fetch", Function::new(ctx.clone(), host_fetch)?)?;
            natives.set("workspace", Function::new(ctx.clone(), host_workspace)?)?;
            natives.set("tools", Function::new(ctx.clone(), host_tools)?)?;
            let make_fs: Function = ctx.eval(FS_MODULE)?;
            natives.set("makeFs", make_fs)?;
            let setup: Function = ctx.eval(PRELUDE)?;
            let internals: Object = setup.call((natives,))?;
            let helpers = Helpers::from_prelude(&internals)?;
            Ok::<_, rquickjs::Error>(Persistent::save(&ctx, helpers))
        })
        .map_err(|e| format!("prelude: {e}"))?;
    // The prelude's call-site patch leaves its `new Error()`'s call sites in the context's
    // last-backtrace slot, which QuickJS frees at the next top-level eval: in every run, where
    // it was ~8 µs of a fresh `1+1` (docs/benchmarks.md). A top-level eval here frees it before
    // the snapshot, so that every run starts with the slot empty, as a new context does.
    context
        .with(|ctx| ctx.eval::<(), _>("undefined"))
        .map_err(|e| format!("prelude: {e}"))?;
    Ok(Engine {
        runtime,
        context,
        helpers,
    })
}

/// Wizer entry point: everything a run needs that does not depend on the run.
#[unsafe(export_name = "wizer-initialize")]
pub extern "C" fn wizer_initialize() {
    if let Ok(engine) = build_engine() {
        *ENGINE.0.borrow_mut() = Some(engine);
    }
}

/// An outcome for failures of the guest itself (not of the user's program).
fn internal_error(message: &str) -> String {
    let mut escaped = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    format!(r#"{{"ok":false,"error":{{"type":"InternalError","message":"{escaped}"}}}}"#)
}

fn report(outcome: &str) {
    // SAFETY: pointer and length describe a live byte slice.
    unsafe { set_result(outcome.as_ptr(), outcome.len()) }
}

/// Takes the pending exception and asks the prelude to describe it as `{type, message,
/// traceback}` JSON.
fn describe_exception<'js>(ctx: &Ctx<'js>, helpers: &Helpers<'js>) -> String {
    let exception = ctx.catch();
    describe_value(ctx, helpers, exception)
}

fn describe_value<'js>(ctx: &Ctx<'js>, helpers: &Helpers<'js>, value: Value<'js>) -> String {
    let described = helpers.describe_error.call::<_, String>((value,));
    match described {
        Ok(json) => json,
        Err(_) => {
            // The describer itself failed (e.g. out of memory): fall back to a fixed shape.
            let _ = ctx.catch();
            r#"{"type":"InternalError","message":"the error could not be described"}"#.to_string()
        }
    }
}

enum Settled<'js> {
    Value(Value<'js>),
    /// JSON of `{type, message, traceback}`.
    Error(String),
}

/// Drives microtasks and (virtual) timers until `promise` settles or nothing is left to run.
fn settle<'js>(ctx: &Ctx<'js>, helpers: &Helpers<'js>, promise: &Promise<'js>) -> Settled<'js> {
    loop {
        while ctx.execute_pending_job() {}
        match promise.result::<Value>() {
            Some(Ok(v)) => return Settled::Value(v),
            Some(Err(_)) => return Settled::Error(describe_exception(ctx, helpers)),
            None => {}
        }
        match fire_next_timer(ctx, helpers, false) {
            Ok(true) => {}
            Ok(false) => {
                return Settled::Error(
                    r#"{"type":"Error","message":"top-level await never settled: the program is waiting for a promise that nothing will resolve"}"#
                        .to_string(),
                );
            }
            Err(e) => return Settled::Error(e),
        }
    }
}

/// Fires the earliest due timer (only one-shot timers when `one_shot_only`). An exception
/// thrown by its callback ends the run, as an uncaught exception in a Node timer does.
fn fire_next_timer<'js>(
    ctx: &Ctx<'js>,
    helpers: &Helpers<'js>,
    one_shot_only: bool,
) -> Result<bool, String> {
    let fired = helpers.run_next_timer.call::<_, bool>((one_shot_only,));
    fired.map_err(|_| describe_exception(ctx, helpers))
}

/// After the program's value is known, pending `setTimeout`s still run (Node would run them
/// before exiting); intervals still active are dropped, since nothing would ever stop them.
fn drain_timers<'js>(ctx: &Ctx<'js>, helpers: &Helpers<'js>) -> Result<(), String> {
    loop {
        while ctx.execute_pending_job() {}
        if !fire_next_timer(ctx, helpers, true)? {
            return Ok(());
        }
    }
}

fn run_program(engine: &Engine, code: Vec<u8>, input_json: Vec<u8>, filename: String) -> String {
    engine.context.with(|ctx| {
        let helpers = match engine.helpers.clone().restore(&ctx) {
            Ok(h) => h,
            Err(e) => return internal_error(&format!("prelude helpers: {e}")),
        };
        let begin: rquickjs::Result<()> = helpers
            .begin_run
            .call((String::from_utf8_lossy(&input_json).into_owned(),));
        if begin.is_err() {
            return format!(r#"{{"ok":false,"error":{}}}"#, describe_exception(&ctx, &helpers));
        }
        let mut options = EvalOptions::default();
        options.global = true;
        options.strict = false;
        options.promise = true;
        options.backtrace_barrier = true;
        options.filename = Some(filename);
        let evaluated: rquickjs::Result<Promise> = ctx.eval_with_options(code, options);
        let promise = match evaluated {
            Ok(p) => p,
            Err(_) => {
                return format!(r#"{{"ok":false,"error":{}}}"#, describe_exception(&ctx, &helpers));
            }
        };
        // An async global script resolves to `{ value: <completion value> }`.
        let completion = match settle(&ctx, &helpers, &promise) {
            Settled::Value(v) => v
                .as_object()
                .and_then(|o| o.get::<_, Value>("value").ok())
                .unwrap_or(v),
            Settled::Error(e) => return format!(r#"{{"ok":false,"error":{e}}}"#),
        };
        // The completion value itself may be a promise: await it too.
        let value = match completion.clone().into_promise() {
            Some(p) => match settle(&ctx, &helpers, &p) {
                Settled::Value(v) => v,
                Settled::Error(e) => return format!(r#"{{"ok":false,"error":{e}}}"#),
            },
            None => completion,
        };
        if let Err(e) = drain_timers(&ctx, &helpers) {
            return format!(r#"{{"ok":false,"error":{e}}}"#);
        }
        // As in Node, a rejection nobody handled by the end fails the program.
        if let Some(reason) = first_unhandled_rejection(&ctx) {
            return format!(r#"{{"ok":false,"error":{}}}"#, describe_value(&ctx, &helpers, reason));
        }
        let serialized = helpers.serialize_result.call::<_, String>((value,));
        match serialized {
            Ok(json) => format!(r#"{{"ok":true,"result":{json}}}"#),
            Err(_) => format!(r#"{{"ok":false,"error":{}}}"#, describe_exception(&ctx, &helpers)),
        }
    })
}

/// One program, from the request the host holds: the first of a fresh instance (`_start`)
/// or the next cell of a session (`warden-run`, on an instance kept between calls).
fn run_request() {
    let code = read_request(FIELD_CODE);
    let input_json = read_request(FIELD_INPUT);
    let filename = String::from_utf8_lossy(&read_request(FIELD_FILENAME)).into_owned();
    RNG_STATE.with(|s| s.set(host_random_u64() | 1));
    let slot = &ENGINE.0;
    if slot.borrow().is_none() {
        match build_engine() {
            Ok(engine) => *slot.borrow_mut() = Some(engine),
            Err(e) => {
                report(&internal_error(&e));
                return;
            }
        }
    }
    let guard = slot.borrow();
    let Some(engine) = guard.as_ref() else { return };
    // The snapshot was taken at another stack depth: re-anchor QuickJS's stack check here.
    engine.runtime.set_max_stack_size(JS_MAX_STACK_BYTES);
    UNHANDLED.with(|list| list.borrow_mut().clear());
    let outcome = run_program(engine, code, input_json, filename);
    report(&outcome);
}

/// A session's next program, in the globals the previous ones left.
#[unsafe(export_name = "warden-run")]
pub extern "C" fn warden_run() {
    run_request();
}

fn main() {
    run_request();
}
