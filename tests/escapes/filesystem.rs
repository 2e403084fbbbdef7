//! Filesystem, environment and process access: the guests get no preopened directory, no
//! environment variable, no arguments beyond the program name and no way to start a process,
//! whether asked through the language (Python's `open`/`os`, JavaScript's missing `std`/`os`
//! modules and `import`) or through raw WASI calls from a hand-written guest. The one place for
//! files is the run's own `/workspace`, a host service (the "workspace and sessions" category).

use serde_json::json;

use crate::harness::*;

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[],
        api: false,
        sink: false,
        network: no_network,
    })
}

/// A WAT body that traps (`unreachable`) unless `path_open(fd, "etc/passwd")` fails for every
/// fd in `fds`, then reports 7.
fn path_open_everywhere(fds: &[u32]) -> String {
    let mut body = String::new();
    for fd in fds {
        body.push_str(&format!(
            "(if (i32.eqz (call $path_open (i32.const {fd}) (i32.const 1) (i32.const 4096) (i32.const 10)
                 (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8192)))
               (then unreachable))\n"
        ));
    }
    body + REPORT_7
}

pub fn cases(_: &Ports) -> Vec<Case> {
    let not_found = &[
        "FileNotFoundError",
        "PermissionError",
        "OSError",
        "NotADirectoryError",
    ];
    vec![
        // ------------------------------------------------------------------ Python: files
        Case::py("Python open('/etc/passwd').read()", "open('/etc/passwd').read()")
            .must("no file of the host is readable: the open fails")
            .status(&["error"])
            .error_type(not_found),
        Case::py(
            "Python open('/tmp/...', 'w') to plant a file in the host's /tmp",
            "open('/tmp/warden-escapes-planted', 'w').write('x')",
        )
        .must("the file lands in the run's own in-memory /tmp (issue 18): the host's /tmp never sees it")
        .ok_with(json!(1))
        .check(|_| match std::path::Path::new("/tmp/warden-escapes-planted").exists() {
            true => Err("the file appeared in the host's /tmp".into()),
            false => Ok(()),
        }),
        Case::py("Python os.listdir('/')", "import os\nos.listdir('/')")
            .must("the root directory cannot be listed")
            .status(&["error"])
            .error_type(not_found),
        Case::py("Python os.listdir('.') (the working directory)", "import os\n[os.getcwd(), os.listdir('.')]")
            .must("the working directory is the run's own, empty /workspace (issue 14), nothing of the host")
            .ok_with(json!(["/workspace", []])),
        Case::py("Python os.walk('/') over the whole tree", "import os\nlist(os.walk('/'))")
            .must("the walk finds nothing")
            .ok_with(json!([])),
        Case::py("Python os.scandir('/')", "import os\nlist(os.scandir('/'))")
            .must("the root cannot be scanned")
            .status(&["error"])
            .error_type(not_found),
        Case::py(
            "Python os.path.exists on the host's sensitive paths and the guest's own stdlib paths",
            "import os\n[os.path.exists(p) for p in ('/', '/etc/passwd', '/proc/self/environ', '/root', \
             '/home', '/tmp', '.', '/python/lib/python3.14/os.py', '/world/wit_world/__init__.py', '/dev/null')]",
        )
        .must("no host path exists; '.' is the run's own /workspace, '/tmp' the run's in-memory scratch directory")
        .ok_with(json!([false, false, false, false, false, true, true, false, false, false])),
        Case::py(
            "Python lists every directory of sys.path",
            "import os, sys\nout = []\nfor p in sys.path:\n    try:\n        out.append(len(os.listdir(p)))\n    except OSError as e:\n        out.append(type(e).__name__)\nsorted(set(map(str, out)))",
        )
        .must("every sys.path entry is unreadable (the stdlib lives in the snapshot, not on a disk)")
        .check(|o| match o.result.result.as_array() {
            Some(a) if o.result.status.as_str() == "ok"
                && !a.is_empty()
                && a.iter().all(|v| v.as_str().is_some_and(|s| s.ends_with("Error"))) => Ok(()),
            _ => Err("some sys.path entry was listed".into()),
        }),
        Case::py("Python reads /proc/self/maps and /proc/self/cmdline", "out = []\nfor p in ('/proc/self/maps', '/proc/self/cmdline', '/proc/1/environ'):\n    try:\n        out.append(open(p).read()[:20])\n    except OSError as e:\n        out.append(type(e).__name__)\nout")
            .must("the host's /proc is not there")
            .ok_with(json!(["FileNotFoundError", "FileNotFoundError", "FileNotFoundError"])),
        Case::py(
            "Python os.read on file descriptors 0 and 3..9 (stdin, any preopen)",
            "import os\nout = {}\nfor fd in [0] + list(range(3, 10)):\n    try:\n        out[fd] = os.read(fd, 64).decode('latin-1')\n    except OSError as e:\n        out[fd] = 'OSError'\nout",
        )
        .must("stdin reads nothing of the host's stdin, and fds 3..9 do not exist")
        .check(|o| {
            let v = &o.result.result;
            let fd0_ok = matches!(v["0"].as_str(), Some("") | Some("OSError"));
            let others = (3..10).all(|fd| v[fd.to_string()] == "OSError");
            if o.result.status.as_str() == "ok" && fd0_ok && others {
                Ok(())
            } else {
                Err("a descriptor was readable".into())
            }
        }),
        Case::py("Python io.FileIO('/etc/hostname')", "import io\nio.FileIO('/etc/hostname').read()")
            .must("raw file objects cannot open host files")
            .status(&["error"])
            .error_type(not_found),
        Case::py(
            "Python os.mkdir / os.symlink / os.remove / os.rename under /tmp",
            "import os\nout = []\nfor f, a in ((os.mkdir, ('/tmp/warden-escapes-dir',)), (os.symlink, ('/etc/passwd', '/tmp/l')), (os.remove, ('/tmp/warden-escapes-dir',)), (os.rename, ('/tmp/a', '/tmp/b'))):\n    try:\n        f(*a)\n        out.append('done')\n    except OSError as e:\n        out.append('refused')\nout",
        )
        .must("the directory is made in the run's own in-memory /tmp, never the host's; no link can be planted, a directory is not removed as a file, a missing file is not renamed")
        .ok_with(json!(["done", "refused", "refused", "refused"]))
        .check(|_| match std::path::Path::new("/tmp/warden-escapes-dir").exists() {
            true => Err("the directory appeared in the host's /tmp".into()),
            false => Ok(()),
        }),
        Case::py("Python os.chdir('/etc') then a relative open", "import os\nos.chdir('/etc')\nopen('passwd').read()")
            .must("changing directory leads nowhere")
            .status(&["error"])
            .error_type(not_found),
        Case::py(
            "Python imports pathlib, shutil, tempfile and glob to reach files another way",
            "out = []\nfor m in ('pathlib', 'shutil', 'tempfile', 'glob'):\n    try:\n        __import__(m)\n        out.append(m + ' imported')\n    except ImportError as e:\n        out.append(type(e).__name__)\nout",
        )
        .must("all four are in the sandbox and reach only /workspace and the run's in-memory /tmp (see the workspace and python packages categories)")
        .ok_with(json!(["pathlib imported", "shutil imported", "tempfile imported", "glob imported"])),
        // ------------------------------------------------------------ Python: environment
        Case::py(
            "Python reads the environment (os.environ, os.getenv of HOME, PATH and Warden's own variables)",
            "import os\n[dict(os.environ), os.getenv('HOME'), os.getenv('PATH'), os.getenv('WARDEN_TEST_CACHE_DIR'), os.getenv('CARGO_TARGET_DIR')]",
        )
        .must("the environment is empty")
        .ok_with(json!([{}, null, null, null, null])),
        Case::py(
            "Python sets os.environ and putenv in one run",
            "import os\nos.environ['LEAK'] = '1'\nos.putenv('LEAK2', '1')\ndict(os.environ)",
        )
        .must("the change does not survive into the next run")
        .then(PY, "import os\ndict(os.environ)")
        .next_ok_with(json!({})),
        Case::py(
            "Python reads sys.argv, sys.executable, sys.orig_argv and the working directory",
            "import os, sys\n[sys.argv, sys.executable, getattr(sys, 'orig_argv', []), os.getcwd()]",
        )
        .must("nothing of the host process (its command line, binary or directories) shows")
        .check(|o| {
            // The working directory is the run's /workspace, which is no host path.
            let text = o.result.result.to_string().replace("\"/workspace\"", "\"(workspace)\"");
            let host = ["/root", "/home", "/work", "warden", "cargo", "target"];
            match host.iter().find(|h| text.contains(**h)) {
                Some(h) if o.result.status.as_str() == "ok" => Err(format!("{h} is visible")),
                _ if o.result.status.as_str() == "ok" => Ok(()),
                _ => Err("the program failed".into()),
            }
        }),
        // -------------------------------------------------------------- Python: processes
        Case::py(
            "Python looks for process functions in os (system, fork, exec*, spawn*, kill)",
            "import os\n[n for n in ('system', 'fork', 'forkpty', 'execv', 'execve', 'spawnv', 'posix_spawn', 'kill', 'killpg', 'setuid') if hasattr(os, n)]",
        )
        .must("none of them exists")
        .ok_with(json!([])),
        Case::py("Python os.popen('id')", "import os\nos.popen('id').read()")
            .must("no process starts: the call fails")
            .status(&["error"]),
        Case::py(
            "Python imports subprocess, multiprocessing, pty and _posixsubprocess",
            "out = []\nfor m in ('subprocess', 'multiprocessing', 'pty', '_posixsubprocess'):\n    try:\n        __import__(m)\n        out.append(m + ' imported')\n    except ImportError as e:\n        out.append(type(e).__name__)\nout",
        )
        .must("no process module can be imported")
        .ok_with(json!(vec!["ModuleNotFoundError"; 4])),
        Case::py(
            "Python calls posix directly (the C module behind os)",
            "import posix\n[n for n in dir(posix) if n in ('system', 'fork', 'execv', 'kill', 'popen', 'pipe', 'dup2', 'socket')]",
        )
        .must("the C module has no process or socket function either")
        .ok_with(json!([])),
        // ------------------------------------------------------------ JavaScript / TypeScript
        Case::js(
            "JavaScript probes for host runtimes' globals (process, Deno, Bun, std, os, scriptArgs, print, __loadScript, bjson, module, exports)",
            "[typeof process, typeof Deno, typeof Bun, typeof std, typeof os, typeof scriptArgs, typeof print, typeof __loadScript, typeof bjson, typeof module, typeof exports]",
        )
        .must("none exists (`require` does, for the workspace's fs only: see the workspace category)")
        .ok_with(json!(vec!["undefined"; 11])),
        Case::js(
            "JavaScript dynamic import() of QuickJS's std/os modules and of Node's fs/child_process",
            "const out = [];\nfor (const m of ['std', 'os', 'qjs:std', 'qjs:os', 'bjson', 'fs', 'node:fs', 'child_process']) {\n  try { await import(m); out.push('loaded ' + m) } catch (e) { out.push('refused') }\n}\nout",
        )
        .must("every import is refused")
        .ok_with(json!(vec!["refused"; 8])),
        Case::js(
            "JavaScript dynamic import() of files (/etc/passwd, ./main.js, file:// and data: URLs)",
            "const out = [];\nfor (const m of ['/etc/passwd', './main.js', '../../etc/passwd', 'file:///etc/hostname', 'data:text/javascript,export default 1']) {\n  try { const x = await import(m); out.push('loaded ' + m) } catch (e) { out.push('refused') }\n}\nout",
        )
        .must("no module loader reads files")
        .ok_with(json!(vec!["refused"; 5])),
        Case::js("JavaScript static `import * as std from 'std'`", "import * as std from 'std';\nstd.getenv('HOME')")
            .must("a script cannot import modules at all")
            .status(&["error"])
            .error_type(&["SyntaxError"]),
        Case::ts("TypeScript `import fs from 'fs'` and readFileSync", "import fs from 'fs';\nfs.readFileSync('/etc/passwd', 'utf8')")
            .must("runtime imports are refused before anything runs")
            .status(&["error"])
            .error_type(&["SyntaxError"]),
        Case::ts(
            "TypeScript `declare const require` and reads /etc/passwd through it",
            "declare const require: (m: string) => any;\nrequire('fs').readFileSync('/etc/passwd')",
        )
        .must("require gives only the workspace's fs, which refuses any path outside /workspace")
        .status(&["error"])
        .error_has("EACCES"),
        Case::js(
            "JavaScript looks for browser and worker capabilities (navigator, location, document, Worker, XMLHttpRequest, WebSocket, importScripts)",
            "[typeof navigator, typeof location, typeof document, typeof Worker, typeof XMLHttpRequest, typeof WebSocket, typeof importScripts]",
        )
        .must("none exists")
        .ok_with(json!(vec!["undefined"; 7])),
        Case::js(
            "JavaScript reads stack traces (its own and the prelude's) for host paths",
            "let s = '';\ntry { new URL('not a url') } catch (e) { s += e.stack }\ntry { null.x } catch (e) { s += e.stack }\ns",
        )
        .must("traces name only the program and the prelude, nothing of the host's filesystem")
        .check(|o| {
            let text = o.result.result.to_string();
            match ["/root", "/home", "/work", "cargo", ".rs"].iter().find(|h| text.contains(**h)) {
                Some(h) => Err(format!("{h} appears in a trace")),
                None if o.result.status.as_str() == "ok" => Ok(()),
                None => Err("the program failed".into()),
            }
        }),
        // ------------------------------------------------------------------- raw WASI
        Case::wat(
            "raw WASI path_open(\"etc/passwd\") relative to fds 0..9 (stdio and any preopen)",
            WatGuest::new(path_open_everywhere(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])).data(4096, "etc/passwd"),
        )
        .must("every open fails (the guest traps if one succeeds)")
        .ok_with(json!(7)),
        Case::wat(
            "raw WASI fd_read on stdin",
            WatGuest::new(format!(
                "(i32.store (i32.const 200) (i32.const 300)) (i32.store (i32.const 204) (i32.const 64))
                 (i32.store (i32.const 208) (i32.const 0))
                 (if (i32.and (i32.eqz (call $fd_read (i32.const 0) (i32.const 200) (i32.const 1) (i32.const 208)))
                              (i32.ne (i32.load (i32.const 208)) (i32.const 0)))
                   (then unreachable))
                 {REPORT_7}"
            )),
        )
        .must("stdin gives no byte of the host's stdin")
        .ok_with(json!(7)),
        Case::wat(
            "raw WASI fd_readdir on fds 0..5",
            WatGuest::new({
                let mut body = String::new();
                for fd in 0..6 {
                    body.push_str(&format!(
                        "(if (i32.eqz (call $fd_readdir (i32.const {fd}) (i32.const 300) (i32.const 64) (i64.const 0) (i32.const 208))) (then unreachable))\n"
                    ));
                }
                body + REPORT_7
            }),
        )
        .must("no descriptor is a readable directory")
        .ok_with(json!(7)),
        Case::wat(
            "raw WASI environ_get into a buffer seeded with a marker",
            WatGuest::new(format!(
                "(i64.store (i32.const 300) (i64.const 0x4141414141414141))
                 (if (call $environ_get (i32.const 200) (i32.const 300)) (then unreachable))
                 (if (i64.ne (i64.load (i32.const 300)) (i64.const 0x4141414141414141)) (then unreachable))
                 {REPORT_7}"
            )),
        )
        .must("the environment writes nothing (there are no variables)")
        .ok_with(json!(7)),
    ]
}

#[tokio::test]
async fn filesystem() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("filesystem", &env, cases, Mode::Regular).await;
}
