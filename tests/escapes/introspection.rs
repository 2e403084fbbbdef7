//! Introspection escapes: walking the object graph (`__subclasses__`, `gc`, frames, the global
//! object, stack-trace call sites) for a capability or a secret the sandbox should not hold, and
//! abusing the interpreter itself (hand-built bytecode, signals, trace and audit hooks). What
//! can be reached is only ever the guest's own world: no process, socket or file function, no
//! credential value in the heap, and a crash of the interpreter stays in the sandbox.

use serde_json::json;

use crate::harness::*;

fn network(p: Ports) -> String {
    format!(
        "[network]\nallow = [\"http://127.0.0.1:{}\"]\n{}",
        p.api,
        credentials(p, &["/echo"])
    )
}

fn env() -> Env {
    Env::new(EnvSpec {
        // The default policy's fuel: walking the whole heap of a guest with packages in its
        // snapshot (issue 18) takes more than the suite's usual budget.
        limits: &[("fuel", 20_000_000_000)],
        api: true,
        sink: false,
        network,
    })
}

/// Python that uses both credentials through the API, then walks every object the garbage
/// collector knows and everything they refer to, counting strings and bytes that contain a
/// piece of either value (the pieces are built at run time from reversed text, so that the
/// program's own source does not match).
fn heap_search(api: u16) -> String {
    let token_piece: String = API_TOKEN[API_TOKEN.len() - 10..].chars().rev().collect();
    let key_piece: String = KEY[..12].chars().rev().collect();
    format!(
        r#"import gc, requests
gc.unfreeze()  # the snapshot's objects are frozen (out of the collector's lists): search them too
requests.get('http://127.0.0.1:{api}/echo?k=__WARDEN_SECRET_key__')
pieces = [{token_piece:?}[::-1], {key_piece:?}[::-1]]
seen, found = 0, 0
def check(x):
    global seen, found
    if isinstance(x, (bytes, bytearray, memoryview)):
        x = bytes(x).decode('latin-1')
    if isinstance(x, str):
        seen += 1
        if any(p in x for p in pieces if x is not p):
            found += 1
for o in gc.get_objects():
    check(o)
    for r in gc.get_referents(o):
        check(r)
[found, seen > 1000]"#
    )
}

const PRISTINE_PY: &str =
    "import os, json\n[len(dir(__builtins__)) > 100, callable(open), json.dumps(1)]";

pub fn cases(p: &Ports) -> Vec<Case> {
    vec![
        Case::py(
            "Python walks object.__subclasses__() for process and socket functions in any method's globals",
            "found = {}\nfor cls in object.__subclasses__():\n    for attr in ('__init__', '__new__', '__enter__', '__call__'):\n        g = getattr(getattr(cls, attr, None), '__globals__', None) or {}\n        for name in ('system', 'fork', 'execv', 'execve', 'spawnv', 'posix_spawn', 'socket', 'create_connection', 'Popen', 'check_output'):\n            if name in g and callable(g[name]):\n                found.setdefault(name, g[name])\nargs = {'system': ('id',), 'fork': (), 'execv': ('/bin/sh', ['sh']), 'execve': ('/bin/sh', ['sh'], {}), 'spawnv': (0, '/bin/sh', ['sh']), 'posix_spawn': ('/bin/sh', ['sh'], {}), 'socket': (), 'create_connection': (('127.0.0.1', 1),), 'Popen': (['id'],), 'check_output': (['id'],)}\nout = {}\nfor name, f in found.items():\n    try:\n        f(*args[name])\n        out[name] = 'ran'\n    except BaseException as e:\n        out[name] = type(e).__name__\nout",
        )
        .must("whatever is reachable (since issue 18 the snapshot holds subprocess for pypdf: Popen and check_output) fails when called: no process or socket exists")
        .check(|o| match o.result.result.as_object() {
            Some(all) if o.result.status.as_str() == "ok" && all.values().all(|v| v != "ran") => Ok(()),
            _ => Err(format!("got {} {}", o.result.status.as_str(), o.result.result)),
        }),
        Case::py(
            "Python reaches os.popen through os._wrap_close.__init__.__globals__ and calls it",
            "g = [c for c in object.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__\ng['popen']('id').read()",
        )
        .must("no process starts: an error")
        .status(&["error"]),
        Case::py("Python searches the whole heap (gc) for the credential values after using them", heap_search(p.api))
            .must("no string or bytes object anywhere in the guest holds a piece of a value")
            .ok_with(json!([0, true])),
        Case::py(
            "Python walks the frame stack up from the program (sys._getframe)",
            "import sys\nout = []\nf = sys._getframe()\nwhile f is not None:\n    out.append(f.f_code.co_filename)\n    f = f.f_back\nout",
        )
        .must("only the guest's own frames (the program and the guest runner), nothing of the host")
        .check(|o| match o.result.result.as_array() {
            Some(frames) if o.result.status.as_str() == "ok" && frames.len() <= 5 => {
                let text = o.result.result.to_string();
                match ["/work", "/root", ".rs", "warden::"].iter().find(|h| text.contains(**h)) {
                    Some(h) => Err(format!("{h} appears in the frames")),
                    None => Ok(()),
                }
            }
            _ => Err("unexpected frames".into()),
        }),
        Case::py(
            "Python reads the guest runner's globals and locals through its frame",
            "import sys\nf = sys._getframe(1)\n[sorted(k for k in f.f_locals if not k.startswith('__')), f.f_globals['__name__']]",
        )
        .must("they hold only the run's own request (source, input, file name), no secret")
        .status(&["ok"]),
        Case::py(
            "Python lists the component runtime's raw functions and calls call_import with garbage",
            "import componentize_py_runtime as r\nnames = [n for n in dir(r) if not n.startswith('__')]\ntry:\n    r.call_import(2**31, [None], 7)\n    out = 'called'\nexcept BaseException as e:\n    out = type(e).__name__\n[names, out]",
        )
        .must("a clean end: at worst the guest crashes, inside its sandbox")
        .status(&["ok", "error"]),
        Case::py(
            "Python imports ctypes and _ctypes, directly and through importlib",
            "import importlib\nout = []\nfor name in ('ctypes', '_ctypes', 'ctypes.util'):\n    for load in (__import__, importlib.import_module):\n        try:\n            load(name)\n            out.append(name + ' loaded')\n        except ImportError:\n            out.append('refused')\nout",
        )
        .must("no native-memory module can be loaded")
        .ok_with(json!(vec!["refused"; 6])),
        Case::py(
            "Python asks the interpreter for _ctypes and _posixsubprocess as built-ins (_imp.create_builtin)",
            "import _imp, importlib.machinery\nout = []\nfor name in ('_ctypes', '_posixsubprocess', '_multiprocessing'):\n    try:\n        m = _imp.create_builtin(importlib.machinery.ModuleSpec(name, None))\n        out.append('refused' if m is None else name + ' created')\n    except ImportError:\n        out.append('refused')\nout",
        )
        .must("they are not compiled into the guest")
        .ok_with(json!(vec!["refused"; 3])),
        Case::py(
            "Python puts its own finder first in sys.meta_path, loading socket from the stdlib's source path",
            "import sys, importlib.machinery\nclass Finder:\n    def find_spec(self, name, path=None, target=None):\n        if name == 'socket':\n            loader = importlib.machinery.SourceFileLoader(name, '/python/lib/python3.14/socket.py')\n            return importlib.machinery.ModuleSpec(name, loader, origin=loader.path)\nsys.meta_path.insert(0, Finder())\nimport socket\nsocket.socket",
        )
        .must("there is no file to load: the import fails, nothing gains a socket")
        .status(&["error"])
        .error_type(&["FileNotFoundError", "ModuleNotFoundError", "OSError"]),
        Case::py(
            "Python raises SIGKILL in the interpreter (the _signal built-in via _imp.create_builtin)",
            "import _imp, importlib.machinery\nsig = _imp.create_builtin(importlib.machinery.ModuleSpec('_signal', None))\nsig.raise_signal(9)\n'survived'",
        )
        .must("the guest dies alone (error); the host and the next run are unaffected")
        .status(&["error"]),
        Case::py(
            "Python executes hand-built bytecode (types.CodeType with invalid opcodes)",
            "code = (lambda: 0).__code__.replace(co_code=b'\\xff\\xff' * 20)\nexec(code)",
        )
        .must("the interpreter's crash stays in the sandbox (error)")
        .status(&["error"]),
        Case::py(
            "Python sets a trace function that raises inside the guest's own reporting",
            "import sys\ndef tracer(frame, event, arg):\n    if frame.f_code.co_filename != 'main.py':\n        raise RuntimeError('tracer')\n    return tracer\nsys.settrace(tracer)\n1",
        )
        .must("a clean error; the next run has no tracer")
        .status(&["error"])
        .then(PY, "import sys\nsys.gettrace() is None")
        .next_ok_with(json!(true)),
        Case::py(
            "Python installs an audit hook that raises on every event",
            "import sys\ndef hook(event, args):\n    raise RuntimeError('audit ' + event)\nsys.addaudithook(hook)\n1",
        )
        .must("a clean error; audit hooks do not survive into the next run")
        .status(&["error"])
        .then(PY, "compile('1', 'x', 'eval') and 'no hook'")
        .next_ok_with(json!("no hook")),
        Case::py(
            "Python empties __builtins__ and the module cache",
            "import sys, builtins\nsys.modules.clear()\nbuiltins.__dict__.clear()\n1",
        )
        .must("the program breaks only itself; the next run has everything back")
        .status(&["ok", "error"])
        .then(PY, PRISTINE_PY)
        .next_ok_with(json!([true, true, "1"])),
        Case::js(
            "JavaScript walks everything reachable from globalThis for the prelude's private helpers and native bridge",
            "const seen = new Set(), names = new Set(), q = [globalThis];\nwhile (q.length) { const o = q.pop(); if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue; seen.add(o); if (typeof o === 'function') names.add(o.name); for (const k of Reflect.ownKeys(o)) { let d; try { d = Object.getOwnPropertyDescriptor(o, k) } catch (e) { continue } if (d) q.push(d.value, d.get, d.set) } q.push(Object.getPrototypeOf(o)) }\n['beginRun', 'describeError', 'serializeResult', 'runNextTimer', 'nativeFetch', 'natives', 'internals', 'print', 'randomU32', 'url'].filter((n) => names.has(n))",
        )
        .must("none of them is reachable from the global object")
        .ok_with(json!([])),
        Case::js(
            "JavaScript evaluates names of the prelude's closure from new Function and indirect eval",
            "[new Function('return typeof natives + typeof internals + typeof nativeFetch')(), (0, eval)('typeof natives')]",
        )
        .must("they are not in scope")
        .ok_with(json!(["undefinedundefinedundefined", "undefined"])),
        Case::js(
            "JavaScript lists the global object's own symbols and names for host objects",
            "[Object.getOwnPropertySymbols(globalThis).map(String), Object.getOwnPropertyNames(Function('return this')()).filter((n) => /natives|internals|nativeFetch|^std$|^os$|^print$/.test(n))]",
        )
        .must("nothing but the standard toStringTag")
        .ok_with(json!([["Symbol(Symbol.toStringTag)"], []])),
        Case::js(
            "JavaScript reads arguments.callee.caller from a callback the prelude invokes",
            "let got; const v = { toString() { try { got = typeof arguments.callee.caller } catch (e) { got = 'refused' } return 'x' } }; new Headers({ a: v }); got",
        )
        .must("the caller chain is closed")
        .ok_with(json!("refused")),
        Case::js(
            "JavaScript looks for WebAssembly and Atomics (a second compiler, a blocking wait)",
            "[typeof WebAssembly, typeof Atomics]",
        )
        .must("neither exists")
        .ok_with(json!(["undefined", "undefined"])),
        Case::js(
            "JavaScript grabs the prelude's private helpers through Error.prepareStackTrace call sites and calls them with hostile arguments",
            r#"Error.prepareStackTrace = (e, cs) => cs;
let grabbed = {};
const spy = { toJSON() {
  for (const c of new Error().stack) { const n = c.getFunctionName(); if (n) grabbed[n] = c.getFunction() }
  const out = [];
  for (const n of ['serializeResult', 'describeError', 'runNextTimer', 'beginRun']) {
    try { if (grabbed[n]) out.push(n + ':' + typeof grabbed[n](n === 'beginRun' ? '{"forged": true}' : { toJSON() { throw 1 } })) } catch (e) { out.push(n + ':threw') }
  }
  return out;
} };
spy"#,
        )
        .must("whatever the helpers do, they grant nothing the host trusts: the run ends ok with the program's value")
        .status(&["ok"]),
        Case::js(
            "JavaScript reaches the prelude's private helpers through call sites (encapsulation)",
            "Error.prepareStackTrace = (e, cs) => cs;\n({ toJSON() { const s = new Error().stack; return Array.isArray(s) ? s.filter((c) => ['serializeResult', 'describeError', 'beginRun', 'runNextTimer'].includes(c.getFunctionName()) && typeof c.getFunction() === 'function').length : typeof s } })",
        )
        .must("QuickJS has no call-site API: Error.prepareStackTrace is an ordinary property and the stack stays text, so no frame hands out a function")
        .ok_with(json!("string")),
        Case::js(
            "JavaScript asks its own frames for CallSite objects and their functions",
            "Error.prepareStackTrace = (e, cs) => cs;\nfunction mine() { return new Error().stack; }\nconst s = mine();\n[typeof s, typeof s.getFunction, /at mine \\(main\\.js:2:/.test(s)]",
        )
        .must("the stack is text naming the frame, with no function behind it")
        .ok_with(json!(["string", "undefined", true])),
        Case::ts(
            "TypeScript casts globalThis to any and looks for host objects",
            "const g = globalThis as any;\n[typeof g.natives, typeof g.internals, typeof g.std, typeof g.os, typeof g.process]",
        )
        .must("none exists")
        .ok_with(json!(vec!["undefined"; 5])),
    ]
}

#[tokio::test]
async fn introspection() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("introspection", &env, cases, Mode::Regular).await;
}
