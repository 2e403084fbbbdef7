//! The workspace and sessions: a run's `/workspace` is a directory opened through cap-std under
//! quotas, reached through one host call that checks every name; a session keeps an
//! interpreter and a workspace for the grant that opened it. Every attempt to leave the
//! directory, to plant a link, to exceed a quota, to reach another session's files or state,
//! to guess or borrow a session id, or to keep state past a reset, a trap or an expiry.

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::contract::{ErrorInfo, ExecutionResult, Status};

use crate::harness::*;

/// Small quotas, so that exhaustion is quick; an idle expiry of one second.
fn workspace_and_sessions(_: Ports) -> String {
    let base = std::env::temp_dir().join(format!("warden-escapes-ws-{}", std::process::id()));
    format!(
        "[workspace]
directory = {:?}
max_bytes = 100000
max_files = 20
max_file_bytes = 60000
max_input_bytes = 200000

[sessions]
max_sessions = 6
max_per_grant = 3
idle_timeout_s = 1
",
        base.display().to_string()
    )
}

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[],
        api: false,
        sink: false,
        network: workspace_and_sessions,
    })
}

/// A custom case's findings, as the result the checks read.
fn findings(value: Value) -> ExecutionResult {
    let mut result = ExecutionResult::without_run(Status::Ok, ErrorInfo::raised("", ""));
    result.error = None;
    result.result = value;
    result
}

async fn call(env: &Env, grant: &str, args: Value) -> ExecutionResult {
    crate::common::call_as(
        &env.executor,
        grant,
        "escapes",
        args,
        &CancellationToken::new(),
    )
    .await
}

fn session_of(r: &ExecutionResult) -> String {
    r.session.as_ref().map(|s| s.id.clone()).unwrap_or_default()
}

fn no_such(r: &ExecutionResult) -> bool {
    r.status == Status::InvalidArguments
        && r.error
            .as_ref()
            .is_some_and(|e| e.message.starts_with("no such session"))
}

/// A session opened by one grant, used by another, by a forged id, and by ids that look like
/// paths: every one is "no such session", and the owner's state is untouched.
fn borrowed_and_forged_ids(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let opened = call(
            env,
            "local",
            json!({"language": "javascript", "code": "var secret = 41; secret", "session": "new"}),
        )
        .await;
        let id = session_of(&opened);
        let mut refused = Vec::new();
        let attempts = [
            ("intruder", id.clone()),
            ("intruder", id.to_uppercase()),
            ("local", format!("{id}x")),
            ("local", id[..id.len() - 1].to_string()),
            ("local", "s-00000000000000000000000000000000".to_string()),
            ("local", "../".to_string()),
            ("local", "s-*".to_string()),
        ];
        for (grant, attempt) in &attempts {
            let r = call(
                env,
                grant,
                json!({"language": "javascript", "code": "secret", "session": attempt}),
            )
            .await;
            refused.push(no_such(&r));
        }
        let owner = call(env, "local", json!({"language": "javascript", "code": "secret + 1", "session": id, "session_action": "close"})).await;
        findings(json!({"refused": refused, "owner": owner.result}))
    })
}

/// 300 random ids: none is a session.
fn guessed_ids(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let opened = call(
            env,
            "local",
            json!({"language": "javascript", "code": "1", "session": "new"}),
        )
        .await;
        let real = session_of(&opened);
        let mut hits = 0;
        for i in 0..300u64 {
            let guess = format!(
                "s-{:032x}",
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128 ^ 0x5555
            );
            let r = call(
                env,
                "local",
                json!({"language": "javascript", "code": "1", "session": guess}),
            )
            .await;
            if !no_such(&r) {
                hits += 1;
            }
        }
        call(env, "local", json!({"language": "javascript", "code": "1", "session": real, "session_action": "close"})).await;
        findings(json!({"hits": hits, "id_len": real.len()}))
    })
}

/// Two sessions of one grant: neither reads the other's files or globals.
fn another_sessions_files(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let a = call(env, "local", json!({"language": "python", "code": "secret = 'A'\nopen('secret.txt','w').write('from A')", "session": "new"})).await;
        let b = call(env, "local", json!({"language": "python", "code": "import os\n[os.listdir('.'), 'secret' in globals()]", "session": "new"})).await;
        let steal = call(env, "local", json!({"language": "python", "code": "open('../secret.txt').read()", "session": session_of(&b)})).await;
        for r in [&a, &b] {
            call(env, "local", json!({"language": "python", "code": "0", "session": session_of(r), "session_action": "close"})).await;
        }
        findings(json!({"b_sees": b.result, "steal": steal.status.as_str()}))
    })
}

/// State does not survive a reset, a timeout, fuel or memory exhaustion; the workspace does.
fn state_after_reset_and_traps(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let setup = "globalThis.kept = 'state'; fs.writeFileSync('w.txt', 'file'); 1";
        let probe = "[typeof kept, fs.readFileSync('w.txt', 'utf8')]";
        let opened = call(
            env,
            "local",
            json!({"language": "javascript", "code": setup, "session": "new"}),
        )
        .await;
        let id = session_of(&opened);
        let mut after = Vec::new();
        let breakers = [
            json!({"session_action": "reset", "code": probe}),
            json!({"code": "for (;;) {}", "timeout_ms": 200}),
            json!({"code": "let a = []; for (;;) a.push(new Array(1e6).fill(1))"}),
            json!({"code": "function f() { return f() + 1 } f()"}),
        ];
        for breaker in breakers {
            call(
                env,
                "local",
                json!({"language": "javascript", "code": setup, "session": id}),
            )
            .await;
            let mut args = json!({"language": "javascript", "session": id});
            args.as_object_mut()
                .unwrap()
                .extend(breaker.as_object().unwrap().clone());
            let broke = call(env, "local", args).await;
            let probed = call(
                env,
                "local",
                json!({"language": "javascript", "code": probe, "session": id}),
            )
            .await;
            after.push(json!([
                broke.status.as_str(),
                broke.session.as_ref().map(|s| s.restarted),
                probed.result
            ]));
        }
        call(env, "local", json!({"language": "javascript", "code": "0", "session": id, "session_action": "close"})).await;
        findings(Value::Array(after))
    })
}

/// Python: state does not survive `os._exit` or fuel exhaustion; the workspace does.
fn python_state_after_traps(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let setup = "kept = 'state'\nopen('w.txt','w').write('file')";
        let probe = "['kept' in globals(), open('w.txt').read()]";
        let opened = call(
            env,
            "local",
            json!({"language": "python", "code": setup, "session": "new"}),
        )
        .await;
        let id = session_of(&opened);
        let mut after = Vec::new();
        for breaker in ["import os\nos._exit(3)", "while True: pass"] {
            call(
                env,
                "local",
                json!({"language": "python", "code": setup, "session": id}),
            )
            .await;
            let broke = call(
                env,
                "local",
                json!({"language": "python", "code": breaker, "session": id, "timeout_ms": 300}),
            )
            .await;
            let probed = call(
                env,
                "local",
                json!({"language": "python", "code": probe, "session": id}),
            )
            .await;
            after.push(json!([
                broke.session.as_ref().map(|s| s.restarted),
                probed.result
            ]));
        }
        call(
            env,
            "local",
            json!({"language": "python", "code": "0", "session": id, "session_action": "close"}),
        )
        .await;
        findings(Value::Array(after))
    })
}

/// A session unused for longer than `idle_timeout_s` is gone, with its files.
fn outliving_expiry(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let opened = call(env, "local", json!({"language": "javascript", "code": "fs.writeFileSync('x', 'y'); var v = 1", "session": "new"})).await;
        let id = session_of(&opened);
        tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
        let late = call(
            env,
            "local",
            json!({"language": "javascript", "code": "v", "session": id}),
        )
        .await;
        let uri = format!("warden://sessions/{id}/files/x");
        let file = env
            .executor
            .read_resource(&uri, "local", "escapes")
            .is_some();
        findings(json!({"expired": no_such(&late), "file_readable": file}))
    })
}

/// Beyond `max_per_grant` a new session is refused; a closed one frees its place; a closed id
/// is never usable again.
fn session_limits_and_reuse(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let mut ids = Vec::new();
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let r = call(
                env,
                "local",
                json!({"language": "javascript", "code": "1", "session": "new"}),
            )
            .await;
            statuses.push(r.status.as_str().to_string());
            ids.push(session_of(&r));
        }
        let closed = ids[0].clone();
        call(env, "local", json!({"language": "javascript", "code": "1", "session": closed, "session_action": "close"})).await;
        let reused = call(
            env,
            "local",
            json!({"language": "javascript", "code": "1", "session": closed}),
        )
        .await;
        let again = call(
            env,
            "local",
            json!({"language": "javascript", "code": "1", "session": "new"}),
        )
        .await;
        ids.push(session_of(&again));
        for id in ids.iter().skip(1).filter(|id| !id.is_empty()) {
            call(env, "local", json!({"language": "javascript", "code": "1", "session": id, "session_action": "close"})).await;
        }
        findings(
            json!({"opens": statuses, "reused": no_such(&reused), "again": again.status.as_str()}),
        )
    })
}

/// Two calls on one session at once take turns: neither sees the other half-done.
fn concurrent_calls_take_turns(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let opened = call(env, "local", json!({"language": "javascript", "code": "globalThis.n = 0; globalThis.busy = false; 1", "session": "new"})).await;
        let id = session_of(&opened);
        let cell = "if (busy) throw new Error('interleaved'); busy = true; var t = Date.now(); while (Date.now() - t < 150) {} busy = false; ++n";
        let args = json!({"language": "javascript", "code": cell, "session": id});
        let (a, b) = tokio::join!(call(env, "local", args.clone()), call(env, "local", args));
        let mut got = vec![a.result.clone(), b.result.clone()];
        got.sort_by_key(|v| v.as_i64());
        call(env, "local", json!({"language": "javascript", "code": "1", "session": id, "session_action": "close"})).await;
        findings(json!({"results": got, "statuses": [a.status.as_str(), b.status.as_str()]}))
    })
}

/// The language of a session is fixed by its first call.
fn switching_language(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let opened = call(
            env,
            "local",
            json!({"language": "javascript", "code": "var x = 1", "session": "new"}),
        )
        .await;
        let id = session_of(&opened);
        let py = call(
            env,
            "local",
            json!({"language": "python", "code": "x", "session": id}),
        )
        .await;
        let ts = call(
            env,
            "local",
            json!({"language": "typescript", "code": "const y: number = x + 1; y", "session": id}),
        )
        .await;
        call(env, "local", json!({"language": "javascript", "code": "1", "session": id, "session_action": "close"})).await;
        findings(json!({"python": py.status.as_str(), "typescript": ts.result}))
    })
}

/// A call without a session leaves nothing for the next one.
fn scratch_is_gone(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        call(
            env,
            "local",
            json!({"language": "python", "code": "open('left.txt','w').write('x')"}),
        )
        .await;
        let next = call(
            env,
            "local",
            json!({"language": "python", "code": "import os\nos.listdir('.')"}),
        )
        .await;
        findings(next.result)
    })
}

pub fn cases(_: &Ports) -> Vec<Case> {
    let refused = &[
        "FileNotFoundError",
        "PermissionError",
        "OSError",
        "ValueError",
        "NotADirectoryError",
    ];
    let raw = |request: &str| {
        format!(
            "import wit_world, json\nanswer, data = wit_world.workspace({}, b'')\njson.loads(answer)['code']",
            lit(request)
        )
    };
    vec![
        // ---------------------------------------------------------------- Python: names
        Case::py("Python open('/workspace/../etc/passwd')", "open('/workspace/../etc/passwd').read()")
            .must("no path leaves the workspace").status(&["error"]).error_type(refused),
        Case::py("Python open('../../etc/passwd') from the working directory", "open('../../etc/passwd').read()")
            .must("a relative path cannot climb out").status(&["error"]).error_type(refused),
        Case::py("Python open('/proc/self/environ')", "open('/proc/self/environ').read()")
            .must("/proc is not reachable").status(&["error"]).error_type(refused),
        Case::py("Python open('/workspace/../../proc/self/mem')", "open('/workspace/../../proc/self/mem','rb').read()")
            .must("/proc through the workspace is not reachable").status(&["error"]).error_type(refused),
        Case::py("Python os.symlink('/etc/passwd', 'link')", "import os\nos.symlink('/etc/passwd', '/workspace/link')")
            .must("no symlink can be created").status(&["error"]),
        Case::py("Python os.link onto a workspace file", "import os\nopen('a','w').write('x')\nos.link('/workspace/a', '/workspace/b')")
            .must("no hard link can be created").status(&["error"]),
        Case::py("Python os.mkfifo in the workspace", "import os\nos.mkfifo('/workspace/fifo')")
            .must("no FIFO can be created").status(&["error"]),
        Case::py("Python os.mknod a device", "import os\nos.mknod('/workspace/dev', 0o20666, os.makedev(1, 3))")
            .must("no device can be created").status(&["error"]),
        Case::py("Python pathlib symlink_to", "import pathlib\npathlib.Path('/workspace/l').symlink_to('/etc')")
            .must("no symlink through pathlib either").status(&["error"]),
        Case::py("Python a NUL in a file name", "open('a\\x00b', 'w').write('x')")
            .must("refused before it reaches the disk").status(&["error"]).error_type(refused),
        Case::py("Python a right-to-left override in a name", "open('evil\\u202egnp.exe', 'w').write('x')")
            .must("names that lie about themselves are refused").status(&["error"]).error_type(refused),
        Case::py("Python a zero-width joiner in a name", "open('a\\u200db.txt', 'w').write('x')")
            .must("invisible characters in names are refused").status(&["error"]).error_type(refused),
        Case::py("Python a backslash path", "open('a\\\\..\\\\..\\\\x', 'w').write('x')")
            .must("backslashes are not separators nor allowed").status(&["error"]).error_type(refused),
        Case::py("Python a 300-byte name", "open('n' * 300, 'w').write('x')")
            .must("overlong names are refused (ENAMETOOLONG)").status(&["error"]).error_type(refused),
        Case::py("Python 20 nested directories", "import os\nos.makedirs('/'.join(['d'] * 20))")
            .must("depth is bounded").status(&["error"]).error_type(refused),
        Case::py("Python the reserved .warden- prefix", "open('.warden-tmp-1', 'w').write('x')")
            .must("the host's temporary names cannot be planted").status(&["error"]).error_type(refused),
        Case::py("Python rmtree of /workspace itself", "import shutil, os\nopen('k','w').write('x')\ntry:\n    shutil.rmtree('/workspace')\nexcept OSError:\n    pass\nos.path.isdir('/workspace')")
            .must("the workspace's root cannot be removed").ok_with(json!(true)),
        Case::py("Python rename a directory into itself", "import os\nos.makedirs('a/b')\nos.rename('a', 'a/b/c')")
            .must("refused, nothing moves").status(&["error"]).error_type(refused),
        Case::py("Python zip slip: extractall of '../../evil'", "import zipfile, io, os\nbuf = io.BytesIO()\nwith zipfile.ZipFile(buf, 'w') as z:\n    z.writestr('../../evil.txt', 'x')\nopen('s.zip','wb').write(buf.getvalue())\nzipfile.ZipFile('s.zip').extractall('out')\nsorted(os.listdir('out'))")
            .must("the member lands inside the workspace, never above it").ok_with(json!(["evil.txt"])),
        // ---------------------------------------------------------------- Python: quotas
        Case::py("Python one file over max_file_bytes, never closed", "import errno, os\ntry:\n    open('big','wb').write(b'x' * 60001)\nexcept OSError as e:\n    r = errno.errorcode[e.errno]\nr, os.path.getsize('big')")
            .must("EFBIG where the write is made (not lost in a finalizer); nothing half-written").ok_with(json!(["EFBIG", 0])),
        Case::py("Python a file over the quota written in small pieces", "import errno\nf = open('chunks','w')\ntry:\n    for i in range(100):\n        f.write('y' * 1000)\nexcept OSError as e:\n    r = (errno.errorcode[e.errno], i)\nf.close()\nr")
            .must("the write that passes max_file_bytes fails, at that write").ok_with(json!(["EFBIG", 60])),
        Case::py("Python files summing over max_bytes", "import errno\nwith open('a','wb') as f:\n    f.write(b'x' * 55000)\ntry:\n    open('b','wb').write(b'y' * 55000)\nexcept OSError as e:\n    r = errno.errorcode[e.errno]\nr, len(open('a','rb').read())")
            .must("ENOSPC, and the earlier file is intact").ok_with(json!(["ENOSPC", 55000])),
        Case::py("Python more files than max_files", "import errno\nr = None\nfor i in range(40):\n    try:\n        open(f'f{i}','w').write('x')\n    except OSError as e:\n        r = (errno.errorcode[e.errno], i)\n        break\nr")
            .must("EDQUOT once the count is reached").ok_with(json!(["EDQUOT", 20])),
        Case::py("Python appending past the quota", "import errno\nopen('a','wb').write(b'x' * 50000)\ntry:\n    with open('a','ab') as f:\n        f.write(b'y' * 20000)\nexcept OSError as e:\n    r = errno.errorcode[e.errno]\nr, len(open('a','rb').read())")
            .must("refused, the file keeps its old content").ok_with(json!(["EFBIG", 50000])),
        Case::py("Python a quota race: rewrite a file many times", "for i in range(200):\n    open('r','wb').write(b'z' * 50000)\nlen(open('r','rb').read())")
            .must("rewriting in place is not counted twice").ok_with(json!(50000)),
        // ---------------------------------------------------------------- Python: the raw call
        Case::py("Python raw host call: malformed JSON", raw("{not json"))
            .must("an EINVAL answer, not a crash").ok_with(json!("EINVAL")),
        Case::py("Python raw host call: an unknown operation", raw("{\"op\":\"chmod\",\"path\":\"x\"}"))
            .must("an EINVAL answer").ok_with(json!("EINVAL")),
        Case::py("Python raw host call: a 9 KiB request", "import wit_world, json\njson.loads(wit_world.workspace('{\"op\":\"stat\",\"path\":\"' + 'a' * 9000 + '\"}', b'')[0])['code']")
            .must("refused unread").ok_with(json!("EINVAL")),
        Case::py("Python raw host call: rename to ../x", raw("{\"op\":\"rename\",\"path\":\"/workspace\",\"to\":\"/workspace/../x\"}"))
            .must("refused (EACCES)").ok_with(json!("EACCES")),
        Case::py("Python raw host call: read /etc/passwd", raw("{\"op\":\"read\",\"path\":\"/etc/passwd\"}"))
            .must("refused (EACCES)").ok_with(json!("EACCES")),
        // ---------------------------------------------------------------- JavaScript
        Case::js("JS fs.readFileSync('/etc/passwd')", "fs.readFileSync('/etc/passwd', 'utf8')")
            .must("refused").status(&["error"]).error_has("EACCES"),
        Case::js("JS fs.readFileSync('../../../etc/passwd')", "fs.readFileSync('../../../etc/passwd', 'utf8')")
            .must("refused").status(&["error"]).error_has("EACCES"),
        Case::js("JS fs.writeFileSync('/workspace/../x')", "fs.writeFileSync('/workspace/../x', 'y')")
            .must("refused").status(&["error"]).error_has("EACCES"),
        Case::js("JS fs.symlinkSync", "fs.symlinkSync('/etc/passwd', 'l')")
            .must("there is no symlink call").status(&["error"]).error_type(&["TypeError"]),
        Case::js("JS require('child_process')", "require('child_process').execSync('id')")
            .must("no module but fs").status(&["error"]).error_has("Cannot find module"),
        Case::js("JS a NUL in a name", "fs.writeFileSync('a\\u0000b', 'x')")
            .must("refused before it reaches the disk").status(&["error"]).error_has("may not contain NUL"),
        Case::js("JS fs.readdirSync('/')", "fs.readdirSync('/')")
            .must("only /workspace exists").status(&["error"]).error_has("EACCES"),
        Case::js("JS one write over the quota", "try { fs.writeFileSync('big', 'x'.repeat(70000)); 'written' } catch (e) { [e.code, fs.existsSync('big')] }")
            .must("EFBIG, and no file").ok_with(json!(["EFBIG", false])),
        Case::js("JS fs.rmSync('/workspace', {recursive: true})", "fs.writeFileSync('k', 'x'); try { fs.rmSync('/workspace', { recursive: true }); } catch (e) {} fs.existsSync('/workspace')")
            .must("the root stays").ok_with(json!(true)),
        Case::ts("TS a path that climbs through a directory", "fs.mkdirSync('d'); let r: string; try { fs.readFileSync('d/../../etc/passwd'); r = 'read' } catch (e: any) { r = e.code } r")
            .must("refused").ok_with(json!("EACCES")),
        // ---------------------------------------------------------------- files in
        Case::args("files: a name that climbs out", json!({"language": "python", "code": "1", "files": {"../../etc/cron.d/x": "boom"}}))
            .must("invalid_arguments, nothing written").status(&["invalid_arguments"]),
        Case::args("files: an absolute host path", json!({"language": "python", "code": "1", "files": {"/etc/passwd": "x"}}))
            .must("invalid_arguments").status(&["invalid_arguments"]),
        Case::args("files: more files than the quota", json!({"language": "python", "code": "1", "files": (0..30).map(|i| (format!("f{i}"), json!("x"))).collect::<serde_json::Map<_, _>>()}))
            .must("invalid_arguments naming the quota").status(&["invalid_arguments"]),
        Case::args("files: bytes beyond max_input_bytes", json!({"language": "python", "code": "1", "files": {"a": "x".repeat(200_001)}}))
            .must("invalid_arguments").status(&["invalid_arguments"]),
        Case::args("files: not base64", json!({"language": "python", "code": "1", "files": {"a": {"base64": "@@@"}}}))
            .must("invalid_arguments").status(&["invalid_arguments"]),
        // ---------------------------------------------------------------- sessions
        Case::custom("a session id borrowed by another grant, forged, or shaped like a path", borrowed_and_forged_ids)
            .must("each is the same \"no such session\"; the owner's state is intact")
            .check(|o| match (&o.result.result["refused"], &o.result.result["owner"]) {
                (Value::Array(r), owner) if r.iter().all(|b| b == true) && owner == &json!(42) => Ok(()),
                (r, owner) => Err(format!("refused {r}, owner got {owner}")),
            }),
        Case::custom("guessing 300 session ids", guessed_ids)
            .must("none exists; ids carry 128 random bits")
            .ok_with(json!({"hits": 0, "id_len": 34})),
        Case::custom("reading another session's files and globals", another_sessions_files)
            .must("each session has its own workspace and interpreter")
            .ok_with(json!({"b_sees": [[], false], "steal": "error"})),
        Case::custom("state after a reset, a timeout, memory and stack exhaustion", state_after_reset_and_traps)
            .must("a reset and every trap leave no state; the workspace stays")
            .check(|o| {
                let want = |status: &str, restarted: Value| json!([status, restarted, ["undefined", "file"]]);
                let expected = json!([
                    ["ok", false, ["undefined", "file"]],
                    want("timeout", json!(true)),
                    want("out_of_memory", json!(true)),
                ]);
                let got = &o.result.result;
                // A stack overflow is QuickJS's catchable RangeError or, deeper, a wasm trap: a
                // trap restarts (state gone), a RangeError does not (state kept).
                let stack_ok = match got[3][1].as_bool() {
                    Some(true) => got[3][2] == json!(["undefined", "file"]),
                    Some(false) => got[3][2] == json!(["string", "file"]),
                    None => false,
                };
                if got[0] == expected[0] && got[1] == expected[1] && got[2] == expected[2] && stack_ok {
                    Ok(())
                } else {
                    Err(format!("got {got}"))
                }
            }),
        Case::custom("Python state after os._exit and a timeout", python_state_after_traps)
            .must("the interpreter restarts, the workspace stays")
            .ok_with(json!([[true, [false, "file"]], [true, [false, "file"]]])),
        Case::custom("a session used after its idle expiry", outliving_expiry)
            .must("it is gone, and its files with it")
            .ok_with(json!({"expired": true, "file_readable": false})),
        Case::custom("more sessions than max_per_grant, and a closed id reused", session_limits_and_reuse)
            .must("the fourth is rate_limited; a closed id is no such session; its place is free again")
            .ok_with(json!({"opens": ["ok", "ok", "ok", "rate_limited"], "reused": true, "again": "ok"})),
        Case::custom("two calls on one session at once", concurrent_calls_take_turns)
            .must("they take turns: both finish, never interleaved")
            .ok_with(json!({"results": [1, 2], "statuses": ["ok", "ok"]})),
        Case::custom("switching a session's language", switching_language)
            .must("python is refused on a JavaScript session; TypeScript shares its globals")
            .ok_with(json!({"python": "invalid_arguments", "typescript": 2})),
        Case::custom("a file left by a call without a session", scratch_is_gone)
            .must("the next call's workspace is empty")
            .ok_with(json!([])),
    ]
}

#[tokio::test]
async fn workspace() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("workspace and sessions", &env, cases, Mode::Regular).await;
}
