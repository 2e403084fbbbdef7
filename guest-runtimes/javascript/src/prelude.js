// Warden's JavaScript prelude: the globals that LLM-written code expects and QuickJS lacks
// (console with Node-style formatting, TextEncoder/TextDecoder, URL/URLSearchParams, atob/btoa,
// structuredClone, timers, crypto.getRandomValues/randomUUID, fetch/Headers/Response), plus the private helpers the Rust
// side of the guest calls. It is evaluated once, before the Wizer snapshot.
//
// The whole file is one function expression: it receives the native bridge and returns its
// internals, so neither is reachable from user code.
(function (natives) {
  'use strict';
  // Captured now, so that a program replacing these globals cannot change how its own outcome
  // is reported (the host does not trust the report for limits anyway).
  const jsonStringify = JSON.stringify;
  const jsonParse = JSON.parse;
  const StringOf = String;
  const print = natives.print;
  const defineProperty = Object.defineProperty;
  const isFiniteNumber = Number.isFinite;
  const defineGlobal = (name, value) =>
    defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  // ---------------------------------------------------------------- inspect (Node-like)
  const IDENT = /^[A-Za-z_$][\w$]*$/;
  const quote = (s) => {
    const q = s.includes("'") && !s.includes('"') ? '"' : "'";
    const body = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r');
    return q + (q === "'" ? body.replace(/'/g, "\\'") : body) + q;
  };
  const keyText = (k) => (typeof k === 'symbol' ? '[' + k.toString() + ']' : IDENT.test(k) ? k : quote(k));
  const typedArrayProto = Object.getPrototypeOf(Uint8Array.prototype);
  const isTypedArray = (v) => v instanceof typedArrayProto.constructor;
  const ctorName = (v) => {
    const proto = Object.getPrototypeOf(v);
    if (proto === null) return null;
    const c = proto.constructor;
    return typeof c === 'function' && typeof c.name === 'string' ? c.name : '';
  };
  const BREAK_LENGTH = 72;

  function wrap(open, items, close, indent) {
    if (items.length === 0) return open.trimEnd() + close.trimStart();
    const oneLine = open + ' ' + items.join(', ') + ' ' + close;
    if (oneLine.length + indent <= BREAK_LENGTH && !items.some((i) => i.includes('\n'))) return oneLine;
    const pad = ' '.repeat(indent + 2);
    return open + '\n' + items.map((i) => pad + i).join(',\n') + '\n' + ' '.repeat(indent) + close;
  }

  function formatValue(v, depth, seen, indent, nested) {
    switch (typeof v) {
      case 'string': return nested ? quote(v) : v;
      case 'number': return Object.is(v, -0) ? '-0' : String(v);
      case 'bigint': return String(v) + 'n';
      case 'boolean': case 'undefined': return String(v);
      case 'symbol': return v.toString();
      case 'function': {
        const src = Function.prototype.toString.call(v);
        if (/^class\b/.test(src)) return '[class ' + (v.name || '(anonymous)') + ']';
        return '[Function' + (v.name ? ': ' + v.name : ' (anonymous)') + ']';
      }
    }
    if (v === null) return 'null';
    if (seen.includes(v)) return '[Circular *1]';
    if (v instanceof Error) {
      const head = v.name + ': ' + v.message;
      const stack = typeof v.stack === 'string' ? v.stack.replace(/\n$/, '') : '';
      return stack ? head + '\n' + stack : head;
    }
    if (v instanceof Date) return isNaN(v) ? 'Invalid Date' : v.toISOString();
    if (v instanceof RegExp) return String(v);
    if (v instanceof Promise) return 'Promise { <unknown> }';
    if (v instanceof WeakMap || v instanceof WeakSet) return ctorName(v) + ' { <items unknown> }';
    const name = ctorName(v);
    if (depth > 2) {
      if (Array.isArray(v)) return '[Array]';
      return '[' + (name || 'Object') + ']';
    }
    seen = seen.concat([v]);
    const sub = (x) => formatValue(x, depth + 1, seen, indent + 2, true);
    if (v instanceof ArrayBuffer) {
      const bytes = Array.from(new Uint8Array(v).slice(0, 50), (b) => b.toString(16).padStart(2, '0'));
      return 'ArrayBuffer { [Uint8Contents]: <' + bytes.join(' ') + (v.byteLength > 50 ? ' ...' : '') + '>, byteLength: ' + v.byteLength + ' }';
    }
    if (v instanceof Map) {
      const items = [];
      for (const [k, val] of v) items.push(sub(k) + ' => ' + sub(val));
      return wrap(name + '(' + v.size + ') {', items, '}', indent);
    }
    if (v instanceof Set) {
      const items = [];
      for (const val of v) items.push(sub(val));
      return wrap(name + '(' + v.size + ') {', items, '}', indent);
    }
    const items = [];
    let open = '{';
    let close = '}';
    const arrayLike = Array.isArray(v) || isTypedArray(v);
    if (arrayLike) {
      const shown = Math.min(v.length, 100);
      let holes = 0;
      for (let i = 0; i < shown; i++) {
        if (!(i in v)) { holes++; continue; }
        if (holes) { items.push('<' + holes + ' empty item' + (holes > 1 ? 's' : '') + '>'); holes = 0; }
        items.push(sub(v[i]));
      }
      if (holes) items.push('<' + holes + ' empty item' + (holes > 1 ? 's' : '') + '>');
      if (v.length > shown) items.push('... ' + (v.length - shown) + ' more item' + (v.length - shown > 1 ? 's' : ''));
      open = Array.isArray(v) ? (name === 'Array' ? '[' : name + '(' + v.length + ') [') : name + '(' + v.length + ') [';
      close = ']';
    } else if (name === null) {
      open = '[Object: null prototype] {';
    } else if (name !== 'Object') {
      open = (name || 'Object') + ' {';
    }
    for (const key of Reflect.ownKeys(v)) {
      if (arrayLike && (key === 'length' || (typeof key === 'string' && /^\d+$/.test(key)))) continue;
      const desc = Object.getOwnPropertyDescriptor(v, key);
      if (!desc || (!desc.enumerable && typeof key !== 'symbol')) continue;
      let text;
      if (desc.get || desc.set) text = desc.get && desc.set ? '[Getter/Setter]' : desc.get ? '[Getter]' : '[Setter]';
      else text = sub(desc.value);
      items.push(keyText(key) + ': ' + text);
    }
    if (!arrayLike && items.length === 0 && open !== '{') return open + '}';
    return wrap(open, items, close, indent);
  }
  const inspect = (v) => formatValue(v, 0, [], 0, false);

  function formatArgs(args) {
    let out = [];
    let rest = args;
    if (typeof args[0] === 'string' && args[0].includes('%') && args.length > 1) {
      let i = 1;
      const first = args[0].replace(/%([sdifjoOc%])/g, (m, c) => {
        if (c === '%') return '%';
        if (i >= args.length) return m;
        const a = args[i++];
        switch (c) {
          case 's': return typeof a === 'string' ? a : inspect(a);
          case 'd': case 'i': return typeof a === 'bigint' ? a + 'n' : String(c === 'i' ? parseInt(a) : Number(a));
          case 'f': return String(parseFloat(a));
          case 'j': try { return JSON.stringify(a); } catch (e) { return '[Circular]'; }
          case 'c': return '';
          default: return formatValue(a, 0, [], 0, true);
        }
      });
      out.push(first);
      rest = args.slice(i);
    } else if (args.length) {
      out.push(inspect(args[0]));
      rest = args.slice(1);
    }
    for (const a of rest) out.push(inspect(a));
    return out.join(' ');
  }

  // ---------------------------------------------------------------- console
  let groupIndent = '';
  let outputFull = [false, false, false];
  const emit = (stream, text) => {
    if (outputFull[stream]) return;
    const body = groupIndent ? text.split('\n').map((l) => groupIndent + l).join('\n') : text;
    if (!print(stream, body + '\n')) outputFull[stream] = true;
  };
  const counts = new Map();
  const timers = new Map();
  const console = {
    log: (...a) => emit(1, formatArgs(a)),
    info: (...a) => emit(1, formatArgs(a)),
    debug: (...a) => emit(1, formatArgs(a)),
    warn: (...a) => emit(2, formatArgs(a)),
    error: (...a) => emit(2, formatArgs(a)),
    trace: (...a) => emit(2, 'Trace' + (a.length ? ': ' + formatArgs(a) : '') + '\n' + (new Error().stack || '').replace(/\n$/, '')),
    dir: (v) => emit(1, inspect(v)),
    assert: (cond, ...a) => { if (!cond) emit(2, 'Assertion failed' + (a.length ? ': ' + formatArgs(a) : '')); },
    count: (label = 'default') => { const n = (counts.get(label) || 0) + 1; counts.set(label, n); emit(1, label + ': ' + n); },
    countReset: (label = 'default') => counts.delete(label),
    time: (label = 'default') => timers.set(label, Date.now()),
    timeLog: (label = 'default', ...a) => emit(1, label + ': ' + (Date.now() - (timers.get(label) ?? Date.now())) + 'ms' + (a.length ? ' ' + formatArgs(a) : '')),
    timeEnd: (label = 'default') => { emit(1, label + ': ' + (Date.now() - (timers.get(label) ?? Date.now())) + 'ms'); timers.delete(label); },
    group: (...a) => { if (a.length) emit(1, formatArgs(a)); groupIndent += '  '; },
    groupEnd: () => { groupIndent = groupIndent.slice(2); },
    table: (data) => {
      if (typeof data !== 'object' || data === null) return emit(1, inspect(data));
      const rows = Object.entries(data);
      const cols = [];
      for (const [, r] of rows) if (r && typeof r === 'object') for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
      const hasValues = rows.some(([, r]) => !(r && typeof r === 'object'));
      const header = ['(index)', ...cols, ...(hasValues ? ['Values'] : [])];
      const cell = (x) => (x === undefined ? '' : formatValue(x, 1, [], 0, true));
      const body = rows.map(([k, r]) => [k, ...cols.map((c) => (r && typeof r === 'object' ? cell(r[c]) : '')), ...(hasValues ? [r && typeof r === 'object' ? '' : cell(r)] : [])]);
      const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)) + 2);
      const line = (l, m, r) => l + widths.map((w) => '─'.repeat(w)).join(m) + r;
      const row = (cells) => '│' + cells.map((c, i) => { const pad = widths[i] - c.length; const left = Math.floor(pad / 2); return ' '.repeat(left) + c + ' '.repeat(pad - left); }).join('│') + '│';
      emit(1, [line('┌', '┬', '┐'), row(header), line('├', '┼', '┤'), ...body.map(row), line('└', '┴', '┘')].join('\n'));
    },
  };
  console.groupCollapsed = console.group;
  defineGlobal('console', console);

  // ---------------------------------------------------------------- randomness
  Math.random = natives.mathRandom;
  const randomU32 = natives.randomU32;
  const getRandomValues = (array) => {
    if (!isTypedArray(array) || array instanceof Float32Array || array instanceof Float64Array) {
      throw new TypeError('crypto.getRandomValues: argument must be an integer TypedArray');
    }
    if (array.byteLength > 65536) throw new RangeError('crypto.getRandomValues: at most 65536 bytes per call');
    const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    for (let i = 0; i < bytes.length; i += 4) {
      let r = randomU32();
      for (let j = i; j < Math.min(i + 4, bytes.length); j++) { bytes[j] = r & 0xff; r >>>= 8; }
    }
    return array;
  };
  const randomUUID = () => {
    const b = getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  };
  defineGlobal('crypto', { getRandomValues, randomUUID });

  // ---------------------------------------------------------------- what QuickJS-ng offered
  // The guest ran quickjs-ng until issue 16; code written for it (and for Node) may use these.
  const monotonicMs = natives.monotonicMs;
  let runStartMs = monotonicMs();
  let runStartDate = Date.now();
  defineGlobal('performance', {
    now: () => monotonicMs() - runStartMs,
    get timeOrigin() { return runStartDate; },
  });
  // Node's and V8's API over QuickJS's text stacks: `stack` becomes the caller's frames, from
  // below `constructorOpt`'s when it is given and on the stack.
  defineProperty(Error, 'captureStackTrace', {
    value: function captureStackTrace(target, constructorOpt) {
      if ((typeof target !== 'object' && typeof target !== 'function') || target === null) {
        throw new TypeError('Error.captureStackTrace: target must be an object');
      }
      let frames = StringOf(new Error().stack ?? '').split('\n').slice(1);
      if (typeof constructorOpt === 'function' && constructorOpt.name) {
        const at = frames.findIndex((line) => line.trimStart().startsWith('at ' + constructorOpt.name + ' '));
        if (at >= 0) frames = frames.slice(at + 1);
      }
      defineProperty(target, 'stack', { value: frames.join('\n'), writable: true, configurable: true, enumerable: false });
    },
    writable: true, configurable: true, enumerable: false,
  });
  defineProperty(Array, 'fromAsync', {
    value: async function fromAsync(items, mapFn, thisArg) {
      if (items == null) throw new TypeError('Array.fromAsync: items is null or undefined');
      if (mapFn !== undefined && typeof mapFn !== 'function') throw new TypeError('Array.fromAsync: mapFn is not a function');
      const out = [];
      const add = async (value) => { out.push(mapFn ? await mapFn.call(thisArg, value, out.length) : value); };
      if (items[Symbol.asyncIterator] != null || items[Symbol.iterator] != null) {
        for await (const value of items) await add(value);
      } else {
        const length = Math.min(Math.max(Math.trunc(Number(items.length)) || 0, 0), Number.MAX_SAFE_INTEGER);
        for (let i = 0; i < length; i++) await add(await items[i]);
      }
      return out;
    },
    writable: true, configurable: true, enumerable: false,
  });

  // ---------------------------------------------------------------- text encoding
  function utf8Encode(str) {
    str = String(str);
    const out = [];
    for (let i = 0; i < str.length; i++) {
      let c = str.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < str.length) {
        const d = str.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; } else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return new Uint8Array(out);
  }
  function utf8Decode(bytes, fatal) {
    let out = '';
    const fail = () => { if (fatal) throw new TypeError('The encoded data was not valid for encoding utf-8'); return 0xfffd; };
    for (let i = 0; i < bytes.length;) {
      const b = bytes[i];
      let c, n;
      if (b < 0x80) { c = b; n = 1; }
      else if (b >= 0xc2 && b < 0xe0) { c = b & 31; n = 2; }
      else if (b >= 0xe0 && b < 0xf0) { c = b & 15; n = 3; }
      else if (b >= 0xf0 && b < 0xf5) { c = b & 7; n = 4; }
      else { out += String.fromCharCode(fail()); i++; continue; }
      if (i + n > bytes.length) { out += String.fromCharCode(fail()); i++; continue; }
      let ok = true;
      for (let j = 1; j < n; j++) { const x = bytes[i + j]; if ((x & 0xc0) !== 0x80) { ok = false; break; } c = (c << 6) | (x & 63); }
      if (!ok || (n === 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) || (n === 4 && (c < 0x10000 || c > 0x10ffff))) {
        out += String.fromCharCode(fail()); i++; continue;
      }
      out += String.fromCodePoint(c);
      i += n;
    }
    return out;
  }
  const toBytes = (input) => {
    if (input === undefined) return new Uint8Array(0);
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeError('The "input" argument must be an ArrayBuffer or ArrayBufferView');
  };
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(input = '') { return utf8Encode(input); }
    encodeInto(src, dest) {
      const bytes = utf8Encode(src);
      const n = Math.min(bytes.length, dest.length);
      dest.set(bytes.subarray(0, n));
      return { read: n === bytes.length ? String(src).length : utf8Decode(bytes.subarray(0, n), false).length, written: n };
    }
  }
  class TextDecoder {
    #fatal; #ignoreBOM;
    constructor(label = 'utf-8', options = {}) {
      const l = String(label).trim().toLowerCase();
      if (l !== 'utf-8' && l !== 'utf8' && l !== 'unicode-1-1-utf-8') throw new RangeError('TextDecoder: only utf-8 is supported, not "' + label + '"');
      this.#fatal = !!options.fatal;
      this.#ignoreBOM = !!options.ignoreBOM;
    }
    get encoding() { return 'utf-8'; }
    get fatal() { return this.#fatal; }
    get ignoreBOM() { return this.#ignoreBOM; }
    decode(input) {
      let bytes = toBytes(input);
      if (!this.#ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
      return utf8Decode(bytes, this.#fatal);
    }
  }
  defineGlobal('TextEncoder', TextEncoder);
  defineGlobal('TextDecoder', TextDecoder);

  // ---------------------------------------------------------------- base64
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const invalidCharacter = (msg) => { const e = new Error(msg); e.name = 'InvalidCharacterError'; return e; };
  defineGlobal('btoa', function btoa(data) {
    if (arguments.length === 0) throw new TypeError('btoa: 1 argument required');
    const s = String(data);
    let out = '';
    for (let i = 0; i < s.length; i += 3) {
      const a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
      if (a > 255 || b > 255 || c > 255) throw invalidCharacter('btoa: the string contains characters outside of the Latin1 range');
      const n = (a << 16) | ((b || 0) << 8) | (c || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : '=') + (i + 2 < s.length ? B64[n & 63] : '=');
    }
    return out;
  });
  defineGlobal('atob', function atob(data) {
    if (arguments.length === 0) throw new TypeError('atob: 1 argument required');
    let s = String(data).replace(/[\t\n\f\r ]/g, '');
    if (s.length % 4 === 0) s = s.replace(/==?$/, '');
    if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) throw invalidCharacter('atob: the string to be decoded is not correctly encoded');
    let out = '';
    let buf = 0, bits = 0;
    for (const ch of s) {
      buf = (buf << 6) | B64.indexOf(ch);
      bits += 6;
      if (bits >= 8) { bits -= 8; out += String.fromCharCode((buf >> bits) & 0xff); }
    }
    return out;
  });

  // ---------------------------------------------------------------- URLSearchParams and URL
  const formEncode = (s) => Array.from(utf8Encode(s), (b) => {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9*\-._]/.test(c)) return c;
    if (c === ' ') return '+';
    return '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }).join('');
  const formDecode = (s) => {
    const bytes = [];
    const t = s.replace(/\+/g, ' ');
    for (let i = 0; i < t.length; i++) {
      if (t[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(t.slice(i + 1, i + 3))) { bytes.push(parseInt(t.slice(i + 1, i + 3), 16)); i += 2; }
      else for (const b of utf8Encode(t[i])) bytes.push(b);
    }
    return utf8Decode(bytes, false);
  };
  class URLSearchParams {
    #list = [];
    #url = null;
    constructor(init = '') {
      if (typeof init === 'object' && init !== null) {
        if (typeof init[Symbol.iterator] === 'function') {
          for (const pair of init) {
            const p = Array.from(pair);
            if (p.length !== 2) throw new TypeError('URLSearchParams: each pair must have exactly two items');
            this.#list.push([String(p[0]), String(p[1])]);
          }
        } else for (const k of Object.keys(init)) this.#list.push([k, String(init[k])]);
      } else this.#parse(String(init));
    }
    #parse(s) {
      this.#list = [];
      for (const part of s.replace(/^\?/, '').split('&')) {
        if (!part) continue;
        const i = part.indexOf('=');
        this.#list.push(i < 0 ? [formDecode(part), ''] : [formDecode(part.slice(0, i)), formDecode(part.slice(i + 1))]);
      }
    }
    #update() { if (this.#url) this.#url._setSearchFromParams(this.toString()); }
    static _attach(params, url, search) { params.#url = url; params.#parse(search); }
    get size() { return this.#list.length; }
    append(k, v) { this.#list.push([String(k), String(v)]); this.#update(); }
    delete(k, v) { k = String(k); this.#list = this.#list.filter(([a, b]) => !(a === k && (v === undefined || b === String(v)))); this.#update(); }
    get(k) { const e = this.#list.find(([a]) => a === String(k)); return e ? e[1] : null; }
    getAll(k) { return this.#list.filter(([a]) => a === String(k)).map(([, b]) => b); }
    has(k, v) { return this.#list.some(([a, b]) => a === String(k) && (v === undefined || b === String(v))); }
    set(k, v) {
      k = String(k); v = String(v);
      const i = this.#list.findIndex(([a]) => a === k);
      if (i < 0) this.#list.push([k, v]);
      else { this.#list[i][1] = v; this.#list = this.#list.filter(([a], j) => a !== k || j === i); }
      this.#update();
    }
    sort() { this.#list.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)); this.#update(); }
    forEach(fn, thisArg) { for (const [k, v] of this.#list) fn.call(thisArg, v, k, this); }
    keys() { return this.#list.map(([k]) => k)[Symbol.iterator](); }
    values() { return this.#list.map(([, v]) => v)[Symbol.iterator](); }
    entries() { return this.#list.map(([k, v]) => [k, v])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this.#list.map(([k, v]) => formEncode(k) + '=' + formEncode(v)).join('&'); }
    get [Symbol.toStringTag]() { return 'URLSearchParams'; }
  }
  const urlOp = natives.url;
  const URL_PARTS = ['href', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash', 'origin'];
  class URL {
    #parts;
    #params = new URLSearchParams();
    constructor(url, base) {
      const parts = base === undefined ? urlOp('parse', String(url)) : urlOp('parse', String(url), String(base));
      if (!parts) throw new TypeError('Invalid URL: ' + String(url) + (base === undefined ? '' : ' (base: ' + String(base) + ')'));
      this.#set(parts);
    }
    #set(parts) {
      this.#parts = {};
      URL_PARTS.forEach((k, i) => { this.#parts[k] = parts[i]; });
      URLSearchParams._attach(this.#params, this, this.#parts.search);
    }
    #change(component, value) {
      const parts = urlOp(component, this.#parts.href, String(value));
      if (parts) this.#set(parts);
      else if (component === 'href') throw new TypeError('Invalid URL: ' + String(value));
    }
    _setSearchFromParams(query) {
      const parts = urlOp('search', this.#parts.href, query);
      if (parts) { URL_PARTS.forEach((k, i) => { this.#parts[k] = parts[i]; }); }
    }
    static canParse(url, base) { try { new URL(url, base); return true; } catch (e) { return false; } }
    static parse(url, base) { try { return new URL(url, base); } catch (e) { return null; } }
    get href() { return this.#parts.href; }
    set href(v) { this.#change('href', v); }
    get protocol() { return this.#parts.protocol; }
    set protocol(v) { this.#change('protocol', v); }
    get username() { return this.#parts.username; }
    set username(v) { this.#change('username', v); }
    get password() { return this.#parts.password; }
    set password(v) { this.#change('password', v); }
    get host() { return this.#parts.host; }
    set host(v) { this.#change('host', v); }
    get hostname() { return this.#parts.hostname; }
    set hostname(v) { this.#change('hostname', v); }
    get port() { return this.#parts.port; }
    set port(v) { this.#change('port', v); }
    get pathname() { return this.#parts.pathname; }
    set pathname(v) { this.#change('pathname', v); }
    get search() { return this.#parts.search; }
    set search(v) { this.#change('search', v); }
    get hash() { return this.#parts.hash; }
    set hash(v) { this.#change('hash', v); }
    get searchParams() { return this.#params; }
    get origin() { return this.#parts.origin; }
    toString() { return this.#parts.href; }
    toJSON() { return this.#parts.href; }
    get [Symbol.toStringTag]() { return 'URL'; }
  }
  defineGlobal('URLSearchParams', URLSearchParams);
  defineGlobal('URL', URL);

  // ---------------------------------------------------------------- fetch
  // The host sends the request (allowlist, blocked networks, credentials, caps) and answers
  // synchronously; the promise settles at once. A refusal is a TypeError with the reason.
  const nativeFetch = natives.fetch;
  const normalizeName = (name) => {
    const n = StringOf(name);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(n)) throw new TypeError('Invalid header name: "' + n + '"');
    return n.toLowerCase();
  };
  const normalizeValue = (value) => {
    const v = StringOf(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    if (/[\0\r\n]/.test(v)) throw new TypeError('Invalid header value');
    return v;
  };
  class Headers {
    #list = [];
    constructor(init) {
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        for (const [k, v] of init) this.append(k, v);
      } else if (typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError('Headers: each header must be a [name, value] pair');
          this.append(p[0], p[1]);
        }
      } else if (typeof init === 'object') {
        for (const k of Object.keys(init)) this.append(k, init[k]);
      } else {
        throw new TypeError('Headers: init must be an object, an iterable of pairs or Headers');
      }
    }
    append(name, value) { this.#list.push([normalizeName(name), normalizeValue(value)]); }
    set(name, value) {
      const n = normalizeName(name);
      this.#list = this.#list.filter(([k]) => k !== n);
      this.#list.push([n, normalizeValue(value)]);
    }
    get(name) {
      const n = normalizeName(name);
      const values = this.#list.filter(([k]) => k === n).map(([, v]) => v);
      return values.length === 0 ? null : values.join(', ');
    }
    getSetCookie() { return this.#list.filter(([k]) => k === 'set-cookie').map(([, v]) => v); }
    has(name) { const n = normalizeName(name); return this.#list.some(([k]) => k === n); }
    delete(name) { const n = normalizeName(name); this.#list = this.#list.filter(([k]) => k !== n); }
    forEach(fn, thisArg) { for (const [k, v] of this) fn.call(thisArg, v, k, this); }
    *entries() {
      const names = [...new Set(this.#list.map(([k]) => k))].sort();
      for (const n of names) {
        if (n === 'set-cookie') { for (const v of this.getSetCookie()) yield [n, v]; } else yield [n, this.get(n)];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'Headers'; }
  }
  const bodyBytes = (body) => {
    if (body === undefined || body === null) return [new Uint8Array(0), null];
    if (typeof body === 'string') return [utf8Encode(body), 'text/plain;charset=UTF-8'];
    if (body instanceof URLSearchParams) return [utf8Encode(body.toString()), 'application/x-www-form-urlencoded;charset=UTF-8'];
    if (body instanceof ArrayBuffer) return [new Uint8Array(body.slice(0)), null];
    if (ArrayBuffer.isView(body)) return [new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength)), null];
    return [utf8Encode(StringOf(body)), 'text/plain;charset=UTF-8'];
  };
  class Response {
    #bytes; #used = false;
    constructor(body, init = {}) {
      const [bytes, type] = bodyBytes(body);
      this.#bytes = bytes;
      this.status = init.status === undefined ? 200 : Number(init.status);
      this.statusText = init.statusText === undefined ? '' : StringOf(init.statusText);
      this.headers = new Headers(init.headers);
      if (type && !this.headers.has('content-type')) this.headers.set('content-type', type);
      this.url = '';
      this.redirected = false;
      this.type = 'basic';
    }
    get ok() { return this.status >= 200 && this.status <= 299; }
    get bodyUsed() { return this.#used; }
    #consume() {
      if (this.#used) return Promise.reject(new TypeError('Body has already been consumed.'));
      this.#used = true;
      return Promise.resolve(this.#bytes);
    }
    arrayBuffer() { return this.#consume().then((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); }
    bytes() { return this.#consume().then((b) => new Uint8Array(b)); }
    text() { return this.#consume().then((b) => utf8Decode(b, false)); }
    json() { return this.text().then((t) => jsonParse(t)); }
    clone() {
      if (this.#used) throw new TypeError('Response.clone: Body has already been consumed.');
      const copy = new Response(this.#bytes.slice(0), { status: this.status, statusText: this.statusText, headers: this.headers });
      copy.url = this.url;
      copy.redirected = this.redirected;
      return copy;
    }
    static json(data, init = {}) {
      const r = new Response(jsonStringify(data), init);
      r.headers.set('content-type', 'application/json');
      return r;
    }
    get [Symbol.toStringTag]() { return 'Response'; }
  }
  function fetch(resource, init = {}) {
    try {
      const url = resource instanceof URL ? resource.href : typeof resource === 'object' && resource !== null && 'url' in resource ? StringOf(resource.url) : StringOf(resource);
      init = init || {};
      const method = StringOf(init.method === undefined ? 'GET' : init.method).toUpperCase();
      const headers = new Headers(init.headers);
      const [bytes, type] = bodyBytes(init.body);
      if ((method === 'GET' || method === 'HEAD') && init.body !== undefined && init.body !== null) {
        throw new TypeError('Request with GET/HEAD method cannot have body.');
      }
      if (type && !headers.has('content-type')) headers.set('content-type', type);
      const head = jsonStringify({ method, url, headers: Array.from(headers) });
      const [answer, body] = nativeFetch(head, bytes);
      const meta = jsonParse(answer);
      if (!meta.ok) throw new TypeError('fetch failed: ' + meta.error);
      const response = new Response(new Uint8Array(body), { status: meta.status, statusText: meta.status_text, headers: meta.headers });
      response.url = meta.url;
      response.redirected = meta.redirected;
      return Promise.resolve(response);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  defineGlobal('Headers', Headers);
  defineGlobal('Response', Response);
  defineGlobal('fetch', fetch);

  // ---------------------------------------------------------------- structuredClone
  function dataCloneError(what) {
    const e = new Error(what + ' could not be cloned.');
    e.name = 'DataCloneError';
    return e;
  }
  function clone(v, memo) {
    if (typeof v === 'function') throw dataCloneError(formatValue(v, 3, [], 0, true));
    if (typeof v === 'symbol') throw dataCloneError(v.toString());
    if (typeof v !== 'object' || v === null) return v;
    if (memo.has(v)) return memo.get(v);
    let out;
    if (v instanceof Date) out = new Date(v.getTime());
    else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
    else if (v instanceof ArrayBuffer) out = v.slice(0);
    else if (ArrayBuffer.isView(v)) {
      const buffer = clone(v.buffer, memo);
      out = v instanceof DataView ? new DataView(buffer, v.byteOffset, v.byteLength) : new v.constructor(buffer, v.byteOffset, v.length);
    } else if (v instanceof Map) { out = new Map(); memo.set(v, out); for (const [k, x] of v) out.set(clone(k, memo), clone(x, memo)); return out; }
    else if (v instanceof Set) { out = new Set(); memo.set(v, out); for (const x of v) out.add(clone(x, memo)); return out; }
    else if (v instanceof Error) {
      const Ctor = { EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError }[v.name] || Error;
      out = new Ctor(v.message);
      if (v.stack !== undefined) out.stack = v.stack;
      if ('cause' in v) out.cause = clone(v.cause, memo);
    } else if (v instanceof Promise || v instanceof WeakMap || v instanceof WeakSet) throw dataCloneError('#<' + ctorName(v) + '>');
    else if (Array.isArray(v)) {
      out = new Array(v.length);
      memo.set(v, out);
      for (const k of Object.keys(v)) out[k] = clone(v[k], memo);
      return out;
    } else {
      out = {};
      memo.set(v, out);
      for (const k of Object.keys(v)) out[k] = clone(v[k], memo);
      return out;
    }
    memo.set(v, out);
    return out;
  }
  defineGlobal('structuredClone', function structuredClone(value, options) {
    if (arguments.length === 0) throw new TypeError('structuredClone: 1 argument required');
    void options;
    return clone(value, new Map());
  });

  // ---------------------------------------------------------------- timers (virtual time)
  // There is no event loop in the sandbox: once the microtask queue is empty and the program is
  // still waiting, the earliest due timer fires at once. Order is preserved; waiting is not.
  let timerQueue = [];
  let nextTimerId = 1;
  let virtualNow = 0;
  const addTimer = (fn, ms, args, repeat) => {
    if (typeof fn !== 'function') throw new TypeError('The "callback" argument must be of type function');
    const delay = Math.max(0, Number(ms) || 0);
    const id = nextTimerId++;
    timerQueue.push({ id, due: virtualNow + delay, delay, fn, args, repeat, seq: id });
    return id;
  };
  const clearTimer = (id) => { timerQueue = timerQueue.filter((t) => t.id !== id); };
  defineGlobal('setTimeout', (fn, ms, ...args) => addTimer(fn, ms, args, false));
  defineGlobal('setInterval', (fn, ms, ...args) => addTimer(fn, ms, args, true));
  defineGlobal('setImmediate', (fn, ...args) => addTimer(fn, 0, args, false));
  defineGlobal('clearTimeout', clearTimer);
  defineGlobal('clearInterval', clearTimer);
  defineGlobal('clearImmediate', clearTimer);
  defineGlobal('queueMicrotask', (fn) => { Promise.resolve().then(fn); });
  function runNextTimer(oneShotOnly) {
    let best = -1;
    for (let i = 0; i < timerQueue.length; i++) {
      const t = timerQueue[i];
      if (oneShotOnly && t.repeat) continue;
      const b = timerQueue[best];
      if (best < 0 || t.due < b.due || (t.due === b.due && t.seq < b.seq)) best = i;
    }
    if (best < 0) return false;
    const t = timerQueue[best];
    virtualNow = t.due;
    if (t.repeat) { t.due = virtualNow + Math.max(1, t.delay); t.seq = nextTimerId++; }
    else timerQueue.splice(best, 1);
    t.fn.apply(undefined, t.args);
    return true;
  }

  defineGlobal('global', globalThis);

  // ---------------------------------------------------------------- workspace and require
  const fs = natives.makeFs(natives.workspace);
  defineGlobal('fs', fs);
  const MODULES = { fs, 'node:fs': fs, 'fs/promises': fs.promises, 'node:fs/promises': fs.promises };
  defineGlobal('require', function require(name) {
    if (Object.prototype.hasOwnProperty.call(MODULES, name)) return MODULES[name];
    const error = new Error(`Cannot find module '${StringOf(name)}': the sandbox has no packages (fs is built in)`);
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  });

  // ---------------------------------------------------------------- tools from code
  // tools.<server>.<tool>(args) -> Promise of the tool's result; the host applies the policy to
  // every call (src/service/tools.rs). A tool's error rejects with ToolError, a policy refusal
  // with ToolDenied (a ToolError); tools.search(query) and tools.describe('server.tool') say
  // what this caller may use.
  const nativeTools = natives.tools;
  const REFUSALS = ['denied', 'rate_limited', 'budget', 'approval_required', 'approval_declined'];
  class ToolError extends Error {
    constructor(answer) {
      super(StringOf(answer.message));
      this.name = 'ToolError';
      this.kind = answer.kind;
      this.rule = answer.rule === undefined ? null : answer.rule;
      this.retryAfterMs = answer.retry_after_ms === undefined ? null : answer.retry_after_ms;
    }
  }
  class ToolDenied extends ToolError {
    constructor(answer) {
      super(answer);
      this.name = 'ToolDenied';
    }
  }
  function toolsRequest(request) {
    const answer = jsonParse(nativeTools(jsonStringify(request)));
    if (!answer.ok) throw REFUSALS.includes(answer.kind) ? new ToolDenied(answer) : new ToolError(answer);
    return answer.value;
  }
  function callTool(server, tool, args) {
    try {
      if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args))) {
        throw new TypeError(`tools.${server}.${tool}: the arguments are one object, e.g. ({ title: "..." })`);
      }
      return Promise.resolve(toolsRequest({ op: 'call', server, tool, arguments: args === undefined ? {} : args }));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  // Any name is a server and any name on it a tool: the host says whether it exists, so a
  // hidden tool and a typo get the same answer. `then` is not a name, so awaiting works.
  function serverProxy(server) {
    return new Proxy(Object.freeze(Object.create(null)), {
      get(_, tool) {
        if (typeof tool !== 'string' || tool === 'then') return undefined;
        return (args) => callTool(server, tool, args);
      },
      set() { return false; },
      defineProperty() { return false; },
    });
  }
  const toolsApi = Object.freeze({
    search: (query) => toolsRequest({ op: 'search', query: query === undefined ? '' : StringOf(query) }),
    describe: (name) => toolsRequest({ op: 'describe', name: StringOf(name) }),
    ToolError,
    ToolDenied,
  });
  defineGlobal('tools', new Proxy(Object.freeze(Object.create(null)), {
    get(_, name) {
      if (typeof name !== 'string' || name === 'then') return undefined;
      if (Object.prototype.hasOwnProperty.call(toolsApi, name)) return toolsApi[name];
      return serverProxy(name);
    },
    set() { return false; },
    defineProperty() { return false; },
  }));
  defineGlobal('ToolError', ToolError);
  defineGlobal('ToolDenied', ToolDenied);

  // ---------------------------------------------------------------- internals for the Rust side
  function describeError(e) {
    let type = 'Error', message, traceback = null;
    try {
      if (typeof e === 'object' && e !== null && 'message' in e) {
        type = StringOf(e.name || 'Error');
        message = StringOf(e.message);
        const stack = e.stack;
        if (typeof stack === 'string' && stack) traceback = stack.endsWith('\n') ? stack.slice(0, -1) : stack;
      } else {
        message = 'Uncaught ' + formatValue(e, 0, [], 0, true);
      }
    } catch (inner) {
      type = 'Error';
      message = 'an exception was thrown, and describing it threw again';
    }
    const out = { type, message };
    if (traceback) out.traceback = traceback;
    return jsonStringify(out);
  }
  function jsonReplacer(key, value) {
    // Primitives first: `instanceof` would look up Map's and Set's `Symbol.hasInstance` for them.
    if (typeof value !== 'object' || value === null) {
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
      return value;
    }
    if (value instanceof Map) return Object.fromEntries(Array.from(value, ([k, v]) => [typeof k === 'string' ? k : inspect(k), v]));
    if (value instanceof Set) return Array.from(value);
    return value;
  }
  function serializeResult(value) {
    if (value === undefined) return 'null';
    // What the replacer below would do to a primitive, without calling it.
    switch (typeof value) {
      case 'number': return isFiniteNumber(value) ? '' + value : jsonStringify(StringOf(value));
      case 'string': case 'boolean': return jsonStringify(value);
      case 'bigint': return jsonStringify(value.toString());
    }
    try {
      const json = jsonStringify(value, jsonReplacer);
      return json === undefined ? 'null' : json;
    } catch (e) {
      // Not JSON-encodable (e.g. circular): return Node's rendering of it, and say so.
      emit(2, '[warden] the result is not JSON-serializable (' + e.message + '); returning its inspect() text instead');
      return jsonStringify(inspect(value));
    }
  }
  // One descriptor for every run's `input`, rather than a new object each time.
  const inputDescriptor = { value: null, writable: true, configurable: true, enumerable: false };
  function beginRun(inputJson) {
    runStartMs = monotonicMs();
    runStartDate = Date.now();
    inputDescriptor.value = inputJson && inputJson !== 'null' ? jsonParse(inputJson) : null;
    defineProperty(globalThis, 'input', inputDescriptor);
    inputDescriptor.value = null;
  }
  // Once here, so that the snapshot holds what every run would otherwise build again: the
  // global `input` (a new global reshapes the global object; redefining it does not), and the
  // properties QuickJS makes on first use that serializing a result touches.
  beginRun('');
  serializeResult([{ n: 1, s: 's' }, new Map([['k', 2]]), new Set([1]), 1n, NaN]);
  return { beginRun, describeError, serializeResult, runNextTimer };
})
