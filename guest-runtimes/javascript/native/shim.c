/* QuickJS's static inline API as functions the Rust side can call (bindgen cannot bind
   inline functions, and these depend on the NaN-boxed JSValue layout of wasm32). */
#include "quickjs.h"

void warden_js_free_value(JSContext *ctx, JSValue v) { JS_FreeValue(ctx, v); }

JSValue warden_js_dup_value(JSContext *ctx, JSValueConst v) { return JS_DupValue(ctx, v); }

JSValue warden_js_new_float64(JSContext *ctx, double d) { return JS_NewFloat64(ctx, d); }

JSValue warden_js_new_uint32(JSContext *ctx, uint32_t u) { return JS_NewUint32(ctx, u); }
