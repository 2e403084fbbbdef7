//! Warden's JavaScript guest: Bellard's QuickJS (2026-06-04) compiled to wasm32-wasip1, driven
//! through its C API (`quickjs.rs`).
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
use std::ffi::{CString, c_char, c_int, c_void};

mod quickjs;

use quickjs::{JSContext, JSRuntime, RawValue, Value};

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
    fn clock_time_get(clock_id: u32, precision: u64, time: *mut u64) -> u16;
}

const CLOCK_MONOTONIC: u32 = 1;

const FIELD_CODE: u32 = 0;
const FIELD_INPUT: u32 = 1;
const FIELD_FILENAME: u32 = 2;

/// QuickJS's own stack check measures the shadow stack in linear memory (1 MiB by default for
/// Rust on wasm32). Keeping it below that turns deep recursion into a catchable RangeError.
const JS_MAX_STACK_BYTES: usize = 768 * 1024;

const PRELUDE: &str = include_str!("prelude.js");
/// The workspace's Node-style `fs`, as an expression evaluating to its `makeFs(call)`.
const FS_MODULE: &str = concat!(
    "(function () {\n",
    include_str!("fs.js"),
    "\nreturn makeFs;\n})()"
);
/// The file name QuickJS gives the prelude's frames.
const PRELUDE_FILENAME: &std::ffi::CStr = c"eval_script";

struct Engine {
    runtime: *mut JSRuntime,
    context: *mut JSContext,
    /// The prelude's private helpers, kept out of the global object so that user code cannot
    /// reach or replace them.
    helpers: Helpers,
}

/// The prelude's functions a run calls, found once before the snapshot rather than by name in
/// every run.
struct Helpers {
    begin_run: Value,
    describe_error: Value,
    serialize_result: Value,
    run_next_timer: Value,
}

impl Helpers {
    fn from_prelude(ctx: *mut JSContext, internals: &Value) -> Result<Self, ()> {
        Ok(Helpers {
            begin_run: get_property(ctx, internals, c"beginRun")?,
            describe_error: get_property(ctx, internals, c"describeError")?,
            serialize_result: get_property(ctx, internals, c"serializeResult")?,
            run_next_timer: get_property(ctx, internals, c"runNextTimer")?,
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
    static UNHANDLED: RefCell<Vec<(Value, Value)>> = const { RefCell::new(Vec::new()) };
}

/// QuickJS calls this when a promise is rejected with no handler (`handled != 0` when such a
/// promise gets one later).
unsafe extern "C" fn track_rejection(
    ctx: *mut JSContext,
    promise: RawValue,
    reason: RawValue,
    handled: c_int,
    _opaque: *mut c_void,
) {
    UNHANDLED.with(|list| {
        let mut list = list.borrow_mut();
        if handled != 0 {
            list.retain(|(p, _)| p.raw() != promise);
        } else {
            // SAFETY: QuickJS hands us live values of a live context; we keep references.
            list.push(unsafe { (Value::dup(ctx, promise), Value::dup(ctx, reason)) });
        }
    });
}

/// The oldest rejection still unhandled once the program is done, if any.
fn first_unhandled_rejection() -> Option<Value> {
    UNHANDLED.with(|list| list.borrow().first().map(|(_, reason)| reason.clone()))
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

fn new_string(ctx: *mut JSContext, text: &str) -> Value {
    // SAFETY: the pointer and length describe a live byte slice; `ctx` is live.
    unsafe {
        Value::own(
            ctx,
            quickjs::JS_NewStringLen(ctx, text.as_ptr().cast(), text.len()),
        )
    }
}

/// The value as a string (`String(value)`); `Err` with the exception pending if that threw.
fn to_string(ctx: *mut JSContext, value: RawValue) -> Result<String, ()> {
    let mut len = 0usize;
    // SAFETY: `ctx` and `value` are live; QuickJS returns `len` bytes we free right after.
    unsafe {
        let ptr = quickjs::JS_ToCStringLen2(ctx, &mut len, value, 0);
        if ptr.is_null() {
            return Err(());
        }
        let text =
            String::from_utf8_lossy(std::slice::from_raw_parts(ptr.cast::<u8>(), len)).into_owned();
        quickjs::JS_FreeCString(ctx, ptr);
        Ok(text)
    }
}

fn get_property(ctx: *mut JSContext, object: &Value, name: &std::ffi::CStr) -> Result<Value, ()> {
    // SAFETY: `ctx` and `object` are live; the name is NUL-terminated.
    unsafe {
        Value::own(
            ctx,
            quickjs::JS_GetPropertyStr(ctx, object.raw(), name.as_ptr()),
        )
    }
    .ok()
}

/// Sets `object[name]`, giving `value` to it.
fn set_property(
    ctx: *mut JSContext,
    object: &Value,
    name: &std::ffi::CStr,
    value: Value,
) -> Result<(), ()> {
    // SAFETY: `ctx` and `object` are live; QuickJS takes the reference `value` held.
    let status =
        unsafe { quickjs::JS_SetPropertyStr(ctx, object.raw(), name.as_ptr(), value.into_raw()) };
    if status < 0 { Err(()) } else { Ok(()) }
}

/// `function(...args)` with `this` undefined.
fn call(ctx: *mut JSContext, function: &Value, args: &[RawValue]) -> Result<Value, ()> {
    // SAFETY: `ctx`, the function and the arguments are live; QuickJS only borrows them.
    unsafe {
        Value::own(
            ctx,
            quickjs::JS_Call(
                ctx,
                function.raw(),
                quickjs::UNDEFINED,
                args.len() as c_int,
                args.as_ptr(),
            ),
        )
    }
    .ok()
}

/// A global script (sloppy mode), as the prelude is evaluated.
fn eval_script(ctx: *mut JSContext, source: &str) -> Result<Value, ()> {
    // QuickJS's parser needs the source NUL-terminated.
    let mut terminated = Vec::with_capacity(source.len() + 1);
    terminated.extend_from_slice(source.as_bytes());
    terminated.push(0);
    // SAFETY: `terminated` holds `source.len()` bytes and the NUL after them.
    unsafe {
        Value::own(
            ctx,
            quickjs::JS_Eval(
                ctx,
                terminated.as_ptr().cast::<c_char>(),
                source.len(),
                PRELUDE_FILENAME.as_ptr(),
                quickjs::EVAL_TYPE_GLOBAL,
            ),
        )
    }
    .ok()
}

/// Takes the pending exception as a value.
fn take_exception(ctx: *mut JSContext) -> Value {
    // SAFETY: `ctx` is live; the pending exception becomes ours.
    unsafe { Value::own(ctx, quickjs::JS_GetException(ctx)) }
}

/// The argument at `index`, `undefined` past the ones given.
fn argument(args: &[RawValue], index: usize) -> RawValue {
    args.get(index).copied().unwrap_or(quickjs::UNDEFINED)
}

/// A string argument; `Err` with the exception pending if converting it threw.
fn string_argument(ctx: *mut JSContext, args: &[RawValue], index: usize) -> Result<String, ()> {
    to_string(ctx, argument(args, index))
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

fn url_op(op: &str, a: String, b: Option<String>) -> Option<Vec<String>> {
    if op == "parse" {
        let parsed = match b {
            Some(base) => url::Url::parse(&base).ok()?.join(&a).ok()?,
            None => url::Url::parse(&a).ok()?,
        };
        return Some(url_components(&parsed));
    }
    let mut url = url::Url::parse(&a).ok()?;
    let value = b.unwrap_or_default();
    // Setters follow the WHATWG rule: an invalid new value leaves the URL unchanged.
    match op {
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
            let _ = url.set_port(if value.is_empty() {
                None
            } else {
                value.parse().ok()
            });
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

/// Appends the bytes a typed array views to `out`; `Err` with a TypeError pending if it is not
/// one.
fn append_typed_array_bytes(
    ctx: *mut JSContext,
    value: RawValue,
    out: &mut Vec<u8>,
) -> Result<(), ()> {
    let (mut offset, mut length, mut element) = (0usize, 0usize, 0usize);
    // SAFETY: `ctx` and `value` are live; the buffer is read before any JavaScript runs, so it
    // cannot be detached or resized under the slice.
    unsafe {
        let buffer = Value::own(
            ctx,
            quickjs::JS_GetTypedArrayBuffer(ctx, value, &mut offset, &mut length, &mut element),
        )
        .ok()?;
        let mut size = 0usize;
        let data = quickjs::JS_GetArrayBuffer(ctx, &mut size, buffer.raw());
        if data.is_null() {
            // A detached buffer: QuickJS has thrown.
            return Err(());
        }
        let end = offset.saturating_add(length).min(size);
        out.extend_from_slice(&std::slice::from_raw_parts(data, size)[offset.min(end)..end]);
        Ok(())
    }
}

/// One exchange with the host through a pair of imports (`fetch`/`fetch_read` or
/// `workspace`/`workspace_read`): a native's arguments (a JSON head and a typed array of bytes)
/// out as one frame, a frame back. Returns [answer head JSON, body ArrayBuffer] (see ABI.md).
fn exchange(
    ctx: *mut JSContext,
    args: &[RawValue],
    send: unsafe extern "C" fn(*const u8, usize) -> u32,
    read: unsafe extern "C" fn(*mut u8),
) -> Result<Value, ()> {
    let head = string_argument(ctx, args, 0)?;
    let mut frame = Vec::with_capacity(4 + head.len());
    frame.extend_from_slice(&(head.len() as u32).to_le_bytes());
    frame.extend_from_slice(head.as_bytes());
    drop(head);
    append_typed_array_bytes(ctx, argument(args, 1), &mut frame)?;
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
    // SAFETY: `ctx` is live; the copy is QuickJS's own.
    let body = unsafe {
        Value::own(
            ctx,
            quickjs::JS_NewArrayBufferCopy(ctx, body.as_ptr(), body.len()),
        )
    };
    new_array(ctx, [new_string(ctx, &String::from_utf8_lossy(head)), body])
}

fn returned(value: Result<Value, ()>) -> RawValue {
    value.map_or(quickjs::EXCEPTION, Value::into_raw)
}

/// A function of the bridge the prelude receives as `natives`: the context and the call's
/// arguments in, a new reference (or [`quickjs::EXCEPTION`] with the exception pending) out.
type Native = fn(*mut JSContext, &[RawValue]) -> RawValue;

/// The bridge: name, function and arity. A function's index here is its QuickJS `magic`, which
/// [`call_native`] dispatches on.
const NATIVES: [(&std::ffi::CStr, Native, c_int); 8] = [
    (c"print", native_print, 2),
    (c"mathRandom", native_math_random, 0),
    (c"monotonicMs", native_monotonic_ms, 0),
    (c"randomU32", native_random_u32, 0),
    (c"url", native_url, 3),
    (c"fetch", native_fetch, 2),
    (c"workspace", native_workspace, 2),
    (c"tools", native_tools, 1),
];

/// The one C entry point of every native: QuickJS calls it with the function's `magic`.
unsafe extern "C" fn call_native(
    ctx: *mut JSContext,
    _this: RawValue,
    argc: c_int,
    argv: *const RawValue,
    magic: c_int,
) -> RawValue {
    let args: &[RawValue] = match usize::try_from(argc) {
        // SAFETY: QuickJS passes `argc` live arguments at `argv`.
        Ok(len) if len > 0 && !argv.is_null() => unsafe { std::slice::from_raw_parts(argv, len) },
        _ => &[],
    };
    match usize::try_from(magic)
        .ok()
        .and_then(|index| NATIVES.get(index))
    {
        Some((_, native, _)) => native(ctx, args),
        None => quickjs::UNDEFINED,
    }
}

/// `print(stream, text)`: appends to stdout (1) or stderr (2); false once that stream is full.
fn native_print(ctx: *mut JSContext, args: &[RawValue]) -> RawValue {
    let mut stream = 0i32;
    // SAFETY: `ctx` and the argument are live.
    if unsafe { quickjs::JS_ToInt32(ctx, &mut stream, argument(args, 0)) } < 0 {
        return quickjs::EXCEPTION;
    }
    match string_argument(ctx, args, 1) {
        Ok(text) => quickjs::new_bool(write_output(stream as u32, &text)),
        Err(()) => quickjs::EXCEPTION,
    }
}

fn native_math_random(ctx: *mut JSContext, _args: &[RawValue]) -> RawValue {
    // SAFETY: `ctx` is live.
    unsafe { quickjs::warden_js_new_float64(ctx, next_math_random()) }
}

/// The host's monotonic clock in milliseconds, for `performance.now()`.
fn native_monotonic_ms(ctx: *mut JSContext, _args: &[RawValue]) -> RawValue {
    let mut nanos = 0u64;
    // SAFETY: `nanos` is a valid place for the clock's value; `ctx` is live.
    unsafe {
        clock_time_get(CLOCK_MONOTONIC, 1_000, &mut nanos);
        quickjs::warden_js_new_float64(ctx, nanos as f64 / 1e6)
    }
}

fn native_random_u32(ctx: *mut JSContext, _args: &[RawValue]) -> RawValue {
    // SAFETY: `ctx` is live.
    unsafe { quickjs::warden_js_new_uint32(ctx, (host_random_u64() >> 32) as u32) }
}

/// `url(op, a, b?)`: the URL's components as an array of strings, or null when invalid.
fn native_url(ctx: *mut JSContext, args: &[RawValue]) -> RawValue {
    let (Ok(op), Ok(a)) = (string_argument(ctx, args, 0), string_argument(ctx, args, 1)) else {
        return quickjs::EXCEPTION;
    };
    let b = if quickjs::is_nullish(argument(args, 2)) {
        None
    } else {
        match string_argument(ctx, args, 2) {
            Ok(b) => Some(b),
            Err(()) => return quickjs::EXCEPTION,
        }
    };
    let Some(components) = url_op(&op, a, b) else {
        return quickjs::NULL;
    };
    returned(new_array(
        ctx,
        components.iter().map(|c| new_string(ctx, c)),
    ))
}

/// An array of the given values, each reference going to the array.
fn new_array(ctx: *mut JSContext, items: impl IntoIterator<Item = Value>) -> Result<Value, ()> {
    // SAFETY: `ctx` is live; QuickJS takes each element's reference.
    unsafe {
        let array = Value::own(ctx, quickjs::JS_NewArray(ctx)).ok()?;
        for (index, item) in items.into_iter().enumerate() {
            let item = item.ok()?;
            if quickjs::JS_SetPropertyUint32(ctx, array.raw(), index as u32, item.into_raw()) < 0 {
                return Err(());
            }
        }
        Ok(array)
    }
}

/// The host's fetch: the request as JSON and its body's bytes.
fn native_fetch(ctx: *mut JSContext, args: &[RawValue]) -> RawValue {
    returned(exchange(ctx, args, fetch, fetch_read))
}

/// A file call: the JSON request and the bytes of a write.
fn native_workspace(ctx: *mut JSContext, args: &[RawValue]) -> RawValue {
    returned(exchange(ctx, args, workspace, workspace_read))
}

/// A tools request (JSON) to the host; its JSON answer.
fn native_tools(ctx: *mut JSContext, args: &[RawValue]) -> RawValue {
    let Ok(request) = string_argument(ctx, args, 0) else {
        return quickjs::EXCEPTION;
    };
    // SAFETY: the host reads `request` and then writes exactly the returned number of bytes
    // into the buffer we allocate for it.
    let answer = unsafe {
        let len = tools(request.as_ptr(), request.len()) as usize;
        let mut answer = vec![0u8; len];
        tools_read(answer.as_mut_ptr());
        answer
    };
    returned(new_string(ctx, &String::from_utf8_lossy(&answer)).ok())
}

/// The pending exception as text, for failures while building the engine.
fn exception_text(ctx: *mut JSContext) -> String {
    let exception = take_exception(ctx);
    to_string(ctx, exception.raw()).unwrap_or_else(|()| {
        drop(take_exception(ctx));
        "an exception that cannot be shown".to_string()
    })
}

fn build_engine() -> Result<Engine, String> {
    // SAFETY: a new runtime and context; nothing else holds them.
    let (runtime, ctx) = unsafe {
        let runtime = quickjs::JS_NewRuntime();
        if runtime.is_null() {
            return Err("QuickJS runtime: out of memory".to_string());
        }
        // The default limit (1 MiB) reaches below address 0 of the shadow stack, which would
        // make every call a stack overflow; ours leaves room (see JS_MAX_STACK_BYTES).
        quickjs::JS_SetMaxStackSize(runtime, JS_MAX_STACK_BYTES);
        quickjs::JS_SetHostPromiseRejectionTracker(
            runtime,
            Some(track_rejection),
            std::ptr::null_mut(),
        );
        let ctx = quickjs::JS_NewContext(runtime);
        if ctx.is_null() {
            return Err("QuickJS context: out of memory".to_string());
        }
        (runtime, ctx)
    };
    let helpers = (|| {
        // SAFETY: `ctx` is live.
        let object = unsafe { Value::own(ctx, quickjs::JS_NewObject(ctx)) }.ok()?;
        for (magic, (name, _, length)) in NATIVES.iter().enumerate() {
            // SAFETY: `ctx` is live; `call_native` has QuickJS's magic-function signature.
            let function = unsafe {
                Value::own(
                    ctx,
                    quickjs::new_function(ctx, call_native, *length, magic as c_int),
                )
            };
            set_property(ctx, &object, name, function.ok()?)?;
        }
        let make_fs = eval_script(ctx, FS_MODULE)?;
        set_property(ctx, &object, c"makeFs", make_fs)?;
        let setup = eval_script(ctx, PRELUDE)?;
        let internals = call(ctx, &setup, &[object.raw()])?;
        Helpers::from_prelude(ctx, &internals)
    })()
    .map_err(|()| format!("prelude: {}", exception_text(ctx)))?;
    Ok(Engine {
        runtime,
        context: ctx,
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
fn describe_exception(engine: &Engine) -> String {
    let exception = take_exception(engine.context);
    describe_value(engine, exception)
}

fn describe_value(engine: &Engine, value: Value) -> String {
    let ctx = engine.context;
    match call(ctx, &engine.helpers.describe_error, &[value.raw()])
        .and_then(|json| to_string(ctx, json.raw()))
    {
        Ok(json) => json,
        Err(()) => {
            // The describer itself failed (e.g. out of memory): fall back to a fixed shape.
            drop(take_exception(ctx));
            r#"{"type":"InternalError","message":"the error could not be described"}"#.to_string()
        }
    }
}

enum Settled {
    Value(Value),
    /// JSON of `{type, message, traceback}`.
    Error(String),
}

/// Runs the microtasks queued so far, and the ones they queue.
fn run_jobs(engine: &Engine) {
    loop {
        let mut job_context = std::ptr::null_mut();
        // SAFETY: the runtime is live; QuickJS tells us the job's context.
        let status = unsafe { quickjs::JS_ExecutePendingJob(engine.runtime, &mut job_context) };
        if status == 0 {
            return;
        }
        if status < 0 && !job_context.is_null() {
            // A job that threw outside any promise (out of memory): nothing awaits it.
            drop(take_exception(job_context));
        }
    }
}

/// The promise's state: `Some(Ok(value))` fulfilled, `Some(Err(reason))` rejected, `None`
/// pending or not a promise.
fn promise_outcome(ctx: *mut JSContext, promise: &Value) -> Option<Result<Value, Value>> {
    // SAFETY: `ctx` and `promise` are live; the result is a new reference.
    unsafe {
        let state = quickjs::JS_PromiseState(ctx, promise.raw());
        if state != quickjs::PROMISE_FULFILLED && state != quickjs::PROMISE_REJECTED {
            return None;
        }
        let result = Value::own(ctx, quickjs::JS_PromiseResult(ctx, promise.raw()));
        Some(if state == quickjs::PROMISE_FULFILLED {
            Ok(result)
        } else {
            Err(result)
        })
    }
}

fn is_promise(ctx: *mut JSContext, value: &Value) -> bool {
    // SAFETY: `ctx` and `value` are live; -1 means not a promise.
    unsafe { quickjs::JS_PromiseState(ctx, value.raw()) >= 0 }
}

/// Drives microtasks and (virtual) timers until `promise` settles or nothing is left to run.
fn settle(engine: &Engine, promise: &Value) -> Settled {
    loop {
        run_jobs(engine);
        match promise_outcome(engine.context, promise) {
            Some(Ok(value)) => return Settled::Value(value),
            Some(Err(reason)) => return Settled::Error(describe_value(engine, reason)),
            None => {}
        }
        match fire_next_timer(engine, false) {
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
fn fire_next_timer(engine: &Engine, one_shot_only: bool) -> Result<bool, String> {
    let fired = call(
        engine.context,
        &engine.helpers.run_next_timer,
        &[quickjs::new_bool(one_shot_only)],
    );
    match fired {
        Ok(fired) => Ok(quickjs::as_bool(fired.raw()).unwrap_or(false)),
        Err(()) => Err(describe_exception(engine)),
    }
}

/// After the program's value is known, pending `setTimeout`s still run (Node would run them
/// before exiting); intervals still active are dropped, since nothing would ever stop them.
fn drain_timers(engine: &Engine) -> Result<(), String> {
    loop {
        run_jobs(engine);
        if !fire_next_timer(engine, true)? {
            return Ok(());
        }
    }
}

fn failed(error: &str) -> String {
    format!(r#"{{"ok":false,"error":{error}}}"#)
}

fn run_program(engine: &Engine, code: Vec<u8>, input_json: Vec<u8>, filename: String) -> String {
    let ctx = engine.context;
    let helpers = &engine.helpers;
    let input = new_string(ctx, &String::from_utf8_lossy(&input_json));
    if input.is_exception() || call(ctx, &helpers.begin_run, &[input.raw()]).is_err() {
        return failed(&describe_exception(engine));
    }
    drop(input);
    // QuickJS's parser needs the source NUL-terminated; a file name with a NUL cannot be one.
    let code_len = code.len();
    let mut source = code;
    source.push(0);
    let filename = CString::new(filename).unwrap_or_else(|_| c"main.js".to_owned());
    // An async global script (top-level await), sloppy mode, frames before it hidden.
    let flags =
        quickjs::EVAL_TYPE_GLOBAL | quickjs::EVAL_FLAG_ASYNC | quickjs::EVAL_FLAG_BACKTRACE_BARRIER;
    // SAFETY: `source` holds `code_len` bytes and the NUL after them; both strings outlive the
    // call.
    let evaluated = unsafe {
        Value::own(
            ctx,
            quickjs::JS_Eval(
                ctx,
                source.as_ptr().cast::<c_char>(),
                code_len,
                filename.as_ptr(),
                flags,
            ),
        )
    };
    drop(source);
    let Ok(promise) = evaluated.ok() else {
        return failed(&describe_exception(engine));
    };
    // An async global script resolves to `{ value: <completion value> }`.
    let completion = match settle(engine, &promise) {
        Settled::Value(v) if quickjs::is_object(v.raw()) => get_property(ctx, &v, c"value")
            .unwrap_or_else(|()| {
                drop(take_exception(ctx));
                v
            }),
        Settled::Value(v) => v,
        Settled::Error(e) => return failed(&e),
    };
    drop(promise);
    // The completion value itself may be a promise: await it too.
    let value = if is_promise(ctx, &completion) {
        match settle(engine, &completion) {
            Settled::Value(v) => v,
            Settled::Error(e) => return failed(&e),
        }
    } else {
        completion
    };
    if let Err(e) = drain_timers(engine) {
        return failed(&e);
    }
    // As in Node, a rejection nobody handled by the end fails the program.
    if let Some(reason) = first_unhandled_rejection() {
        return failed(&describe_value(engine, reason));
    }
    match call(ctx, &helpers.serialize_result, &[value.raw()])
        .and_then(|json| to_string(ctx, json.raw()))
    {
        Ok(json) => format!(r#"{{"ok":true,"result":{json}}}"#),
        Err(()) => failed(&describe_exception(engine)),
    }
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
    // The snapshot was taken at another stack depth: re-anchor QuickJS's stack check here (the
    // limit, JS_MAX_STACK_BYTES below this, was set when the runtime was made).
    // SAFETY: the runtime is live and not running.
    unsafe { quickjs::JS_UpdateStackTop(engine.runtime) };
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
