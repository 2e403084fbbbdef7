//! The part of QuickJS's C API (Bellard's release, `.tools/quickjs`) this guest uses, declared
//! by hand for wasm32, where a `JSValue` is a NaN-boxed `uint64_t`; the header's inline
//! functions come from `native/shim.c`. [`Value`] owns one reference and frees it on drop.

use std::ffi::{c_char, c_int, c_void};

pub type RawValue = u64;

#[repr(C)]
pub struct JSRuntime {
    _opaque: [u8; 0],
}

#[repr(C)]
pub struct JSContext {
    _opaque: [u8; 0],
}

/// QuickJS's `JSCFunctionMagic`: context, `this`, argument count and values, magic.
pub type CFunctionMagic =
    unsafe extern "C" fn(*mut JSContext, RawValue, c_int, *const RawValue, c_int) -> RawValue;
pub type RejectionTracker =
    unsafe extern "C" fn(*mut JSContext, RawValue, RawValue, c_int, *mut c_void);

pub const EVAL_TYPE_GLOBAL: c_int = 0;
pub const EVAL_FLAG_BACKTRACE_BARRIER: c_int = 1 << 6;
pub const EVAL_FLAG_ASYNC: c_int = 1 << 7;
pub const PROMISE_FULFILLED: c_int = 1;
pub const PROMISE_REJECTED: c_int = 2;
const CFUNC_GENERIC_MAGIC: c_int = 1;

const TAG_OBJECT: i32 = -1;
const TAG_BOOL: i32 = 1;
const TAG_NULL: i32 = 2;
const TAG_UNDEFINED: i32 = 3;
const TAG_EXCEPTION: i32 = 6;

const fn make(tag: i32, payload: u32) -> RawValue {
    ((tag as u32 as u64) << 32) | payload as u64
}

pub const UNDEFINED: RawValue = make(TAG_UNDEFINED, 0);
pub const NULL: RawValue = make(TAG_NULL, 0);
/// What a native function returns once it has thrown (the exception is pending in the context).
pub const EXCEPTION: RawValue = make(TAG_EXCEPTION, 0);

pub const fn new_bool(b: bool) -> RawValue {
    make(TAG_BOOL, b as u32)
}

fn tag(v: RawValue) -> i32 {
    (v >> 32) as i32
}

pub fn is_exception(v: RawValue) -> bool {
    tag(v) == TAG_EXCEPTION
}

pub fn is_object(v: RawValue) -> bool {
    tag(v) == TAG_OBJECT
}

pub fn is_nullish(v: RawValue) -> bool {
    matches!(tag(v), TAG_NULL | TAG_UNDEFINED)
}

pub fn as_bool(v: RawValue) -> Option<bool> {
    (tag(v) == TAG_BOOL).then_some(v as u32 != 0)
}

unsafe extern "C" {
    pub fn JS_NewRuntime() -> *mut JSRuntime;
    pub fn JS_NewContext(rt: *mut JSRuntime) -> *mut JSContext;
    pub fn JS_SetMaxStackSize(rt: *mut JSRuntime, stack_size: usize);
    pub fn JS_UpdateStackTop(rt: *mut JSRuntime);
    pub fn JS_SetHostPromiseRejectionTracker(
        rt: *mut JSRuntime,
        cb: Option<RejectionTracker>,
        opaque: *mut c_void,
    );
    pub fn JS_ExecutePendingJob(rt: *mut JSRuntime, pctx: *mut *mut JSContext) -> c_int;
    pub fn JS_Eval(
        ctx: *mut JSContext,
        input: *const c_char,
        input_len: usize,
        filename: *const c_char,
        eval_flags: c_int,
    ) -> RawValue;
    pub fn JS_Call(
        ctx: *mut JSContext,
        func: RawValue,
        this: RawValue,
        argc: c_int,
        argv: *const RawValue,
    ) -> RawValue;
    pub fn JS_GetException(ctx: *mut JSContext) -> RawValue;
    pub fn JS_NewObject(ctx: *mut JSContext) -> RawValue;
    pub fn JS_NewArray(ctx: *mut JSContext) -> RawValue;
    pub fn JS_GetPropertyStr(ctx: *mut JSContext, obj: RawValue, name: *const c_char) -> RawValue;
    /// Takes ownership of `value`.
    pub fn JS_SetPropertyStr(
        ctx: *mut JSContext,
        obj: RawValue,
        name: *const c_char,
        value: RawValue,
    ) -> c_int;
    /// Takes ownership of `value`.
    pub fn JS_SetPropertyUint32(
        ctx: *mut JSContext,
        obj: RawValue,
        index: u32,
        value: RawValue,
    ) -> c_int;
    pub fn JS_NewStringLen(ctx: *mut JSContext, s: *const c_char, len: usize) -> RawValue;
    pub fn JS_ToCStringLen2(
        ctx: *mut JSContext,
        plen: *mut usize,
        v: RawValue,
        cesu8: c_int,
    ) -> *const c_char;
    pub fn JS_FreeCString(ctx: *mut JSContext, s: *const c_char);
    pub fn JS_ToInt32(ctx: *mut JSContext, out: *mut i32, v: RawValue) -> c_int;
    pub fn JS_NewArrayBufferCopy(ctx: *mut JSContext, buf: *const u8, len: usize) -> RawValue;
    pub fn JS_GetArrayBuffer(ctx: *mut JSContext, psize: *mut usize, obj: RawValue) -> *mut u8;
    pub fn JS_GetTypedArrayBuffer(
        ctx: *mut JSContext,
        obj: RawValue,
        pbyte_offset: *mut usize,
        pbyte_length: *mut usize,
        pbytes_per_element: *mut usize,
    ) -> RawValue;
    pub fn JS_PromiseState(ctx: *mut JSContext, promise: RawValue) -> c_int;
    pub fn JS_PromiseResult(ctx: *mut JSContext, promise: RawValue) -> RawValue;
    fn JS_NewCFunction2(
        ctx: *mut JSContext,
        func: CFunctionMagic,
        name: *const c_char,
        length: c_int,
        cproto: c_int,
        magic: c_int,
    ) -> RawValue;

    pub fn warden_js_free_value(ctx: *mut JSContext, v: RawValue);
    pub fn warden_js_dup_value(ctx: *mut JSContext, v: RawValue) -> RawValue;
    pub fn warden_js_new_float64(ctx: *mut JSContext, d: f64) -> RawValue;
    pub fn warden_js_new_uint32(ctx: *mut JSContext, u: u32) -> RawValue;
}

/// A native function of `length` declared arguments, called as `func(.., magic)`.
///
/// # Safety
/// `ctx` must be a live context.
pub unsafe fn new_function(
    ctx: *mut JSContext,
    func: CFunctionMagic,
    length: c_int,
    magic: c_int,
) -> RawValue {
    // SAFETY: the name is a NUL-terminated static string; the caller vouches for `ctx`.
    unsafe { JS_NewCFunction2(ctx, func, c"".as_ptr(), length, CFUNC_GENERIC_MAGIC, magic) }
}

/// One owned reference to a JavaScript value (or the exception marker), freed on drop.
pub struct Value {
    ctx: *mut JSContext,
    raw: RawValue,
}

impl Value {
    /// Takes ownership of `raw`, a reference the caller owns.
    ///
    /// # Safety
    /// `ctx` must be live for as long as the value is.
    pub unsafe fn own(ctx: *mut JSContext, raw: RawValue) -> Value {
        Value { ctx, raw }
    }

    /// A new reference to a value someone else owns (an argument, a tracker's value).
    ///
    /// # Safety
    /// As for [`Value::own`]; `raw` must be a live value.
    pub unsafe fn dup(ctx: *mut JSContext, raw: RawValue) -> Value {
        // SAFETY: the caller vouches for `ctx` and `raw`.
        Value {
            ctx,
            raw: unsafe { warden_js_dup_value(ctx, raw) },
        }
    }

    pub fn raw(&self) -> RawValue {
        self.raw
    }

    /// Gives the reference up to the caller (a native function's return value, a setter).
    pub fn into_raw(self) -> RawValue {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    pub fn is_exception(&self) -> bool {
        is_exception(self.raw)
    }

    /// `Err(())` when the value is the exception marker: the exception is pending in the context.
    pub fn ok(self) -> Result<Value, ()> {
        if self.is_exception() {
            Err(())
        } else {
            Ok(self)
        }
    }
}

impl Clone for Value {
    fn clone(&self) -> Value {
        // SAFETY: `self` is live, so its context is.
        unsafe { Value::dup(self.ctx, self.raw) }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference in a live context.
        unsafe { warden_js_free_value(self.ctx, self.raw) }
    }
}
