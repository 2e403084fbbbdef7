//! The Python packages built into the guest (issue 18): code that has always been dangerous on
//! a real interpreter (yaml's unsafe loaders, Jinja2 template injection, sympy's and pygal's
//! helpers that start processes or write files), the blocked modules the packages imported
//! while the guest was built, and the packages' own files. Each reaches nothing of the host:
//! the import gate still refuses, files outside the workspace do not exist, the packages' files
//! are read-only, and what a package kept of a blocked module cannot start a process, a thread
//! or a socket.

use serde_json::json;

use crate::harness::*;

/// A file a run writes in its /tmp; the host's must never see it.
const TMP_PROBE: &str = "/tmp/warden-escapes-tmp-probe";

/// A workspace (pygal and openpyxl write files), default limits otherwise.
fn with_workspace(_: Ports) -> String {
    let base = std::env::temp_dir().join(format!("warden-escapes-pkg-{}", std::process::id()));
    format!(
        "[workspace]\ndirectory = {:?}\n",
        base.display().to_string()
    )
}

/// `(label, outcome)` for each attempt in `attempts` (Python expressions), so that one case can
/// show that every way failed: "ok:<value>" or the exception's type.
fn each(attempts: &[(&str, &str)]) -> String {
    let mut code = String::from("out = {}\n");
    for (label, expression) in attempts {
        code.push_str(&format!(
            "try:\n    out[{label:?}] = 'ok:' + repr({expression})[:80]\nexcept BaseException as e:\n    out[{label:?}] = type(e).__name__\n"
        ));
    }
    code.push_str("out");
    code
}

/// Every attempt failed (none came back `ok:`).
fn all_failed(o: &Outcome) -> Result<(), String> {
    match o.result.result.as_object() {
        Some(all) if o.result.status.as_str() == "ok" && !all.is_empty() => {
            match all
                .iter()
                .find(|(_, v)| v.as_str().is_none_or(|s| s.starts_with("ok:")))
            {
                Some((label, v)) => Err(format!("{label} succeeded: {v}")),
                None => Ok(()),
            }
        }
        _ => Err(format!(
            "got {} {}",
            o.result.status.as_str(),
            o.result.result
        )),
    }
}

pub fn cases(_: &Ports) -> Vec<Case> {
    vec![
        Case::py(
            "yaml.unsafe_load applies os.system, subprocess.check_output and os.popen from tags",
            each(&[
                ("os.system", "yaml.unsafe_load('!!python/object/apply:os.system [\"id\"]')"),
                (
                    "subprocess",
                    "yaml.unsafe_load('!!python/object/apply:subprocess.check_output [[\"id\"]]')",
                ),
                ("os.popen", "yaml.unsafe_load('!!python/object/apply:os.popen [\"id\"]').read()"),
                (
                    "full_load socket",
                    "yaml.load('!!python/name:socket.socket', Loader=yaml.UnsafeLoader)()",
                ),
            ])
            .replacen("out = {}\n", "import yaml\nout = {}\n", 1),
        )
        .must("each fails: no process or socket exists for a tag to reach")
        .check(all_failed),
        Case::py(
            "yaml.safe_load is given python/object tags",
            "import yaml\ntry:\n    yaml.safe_load('!!python/object/apply:os.system [\"id\"]')\n    out = 'loaded'\nexcept yaml.constructor.ConstructorError:\n    out = 'refused'\nout",
        )
        .must("the safe loader refuses them, as it does anywhere")
        .ok_with(json!("refused")),
        Case::py(
            "Jinja2 template injection walks object.__subclasses__() to catch_warnings and imports os and subprocess",
            "import jinja2\nt = \"{% for c in ''.__class__.__mro__[1].__subclasses__() %}{% if c.__name__ == 'catch_warnings' %}{{ c()._module.__builtins__['__import__']('os').popen('id').read() }}{% endif %}{% endfor %}\"\ntry:\n    out = jinja2.Template(t).render()\nexcept BaseException as e:\n    out = type(e).__name__\ntry:\n    jinja2.Template(\"{{ cycler.__init__.__globals__.os.system('id') }}\").render()\n    out2 = 'ran'\nexcept BaseException as e:\n    out2 = type(e).__name__\n[out, out2]",
        )
        .must("no process starts: the injection ends in an exception, never in output of `id`")
        .check(|o| {
            let text = o.result.result.to_string();
            if o.result.status.as_str() == "ok" && !text.contains("uid=") && !text.contains("ran") {
                Ok(())
            } else {
                Err(format!("got {text}"))
            }
        }),
        Case::py(
            "Jinja2's SandboxedEnvironment is asked for __subclasses__ and __globals__",
            "from jinja2.sandbox import SandboxedEnvironment\nfrom jinja2.exceptions import SecurityError\nenv = SandboxedEnvironment()\nout = []\nfor t in (\"{{ ''.__class__.__mro__[1].__subclasses__() }}\", \"{{ cycler.__init__.__globals__ }}\"):\n    try:\n        out.append(env.from_string(t).render(cycler=object))\n    except SecurityError:\n        out.append('SecurityError')\nout",
        )
        .must("its sandbox refuses (or renders nothing) as it does anywhere")
        .check(|o| match o.result.result.as_array() {
            Some(all) if all.iter().all(|v| v == "SecurityError" || v == "") => Ok(()),
            _ => Err(format!("got {}", o.result.result)),
        }),
        Case::py(
            "Python imports the blocked modules after importing every package that imported them at build time",
            "import importlib, sys, yaml, jinja2, markdown, attrs, dateutil.tz, dateutil.rrule, pypdf.filters, networkx\nout = []\nfor name in ('threading', 'subprocess', 'socket', 'ctypes', 'select', 'signal', 'fcntl', '_thread', 'bz2'):\n    for load in (importlib.import_module, __import__, importlib.__import__, lambda n: sys.modules[n]):\n        try:\n            load(name)\n            out.append(name + ' imported')\n        except (ImportError, KeyError):\n            out.append('refused')\nout",
        )
        .must("each is still refused, however the program imports it, after the packages imported theirs (pypdf.filters subprocess, dateutil _thread, networkx the bz2 stand-in)")
        .ok_with(json!(vec!["refused"; 36])),
        Case::py(
            "Python collects every blocked module the packages hold (module attributes) and uses it",
            "import sys, types\nheld = {}\nfor m in list(sys.modules.values()):\n    for v in list(vars(m).values()) if isinstance(m, types.ModuleType) else []:\n        if isinstance(v, types.ModuleType) and v.__name__.split('.')[0] in ('threading', 'subprocess', 'socket', 'ctypes', '_thread', 'select', 'signal'):\n            held[v.__name__] = v\nout = {}\nfor name, m in sorted(held.items()):\n    try:\n        if name == 'threading':\n            t = m.Thread(target=print, args=('thread ran',))\n            t.start()\n            t.join()\n            out[name] = 'ok:thread started'\n        elif name == 'subprocess':\n            out[name] = 'ok:' + repr(m.run(['id'], capture_output=True))\n        elif name == '_thread':\n            out[name] = 'ok:' + repr(m.start_new_thread(print, ('x',)))\n        elif name == 'socket':\n            out[name] = 'ok:' + repr(m.socket())\n        elif name == 'signal':\n            out[name] = 'ok:' + repr(m.alarm(1))\n        else:\n            out[name] = 'ok:' + repr(dir(m))[:40]\n    except BaseException as e:\n        out[name] = type(e).__name__\nout",
        )
        .must("none can start a thread or a process or open a socket")
        .check(|o| match o.result.result.as_object() {
            Some(all) if o.result.status.as_str() == "ok" => {
                match all.iter().find(|(name, v)| {
                    let v = v.as_str().unwrap_or("");
                    v.starts_with("ok:")
                        && matches!(name.as_str(), "threading" | "subprocess" | "_thread" | "socket" | "signal")
                }) {
                    Some((name, v)) => Err(format!("{name}: {v}")),
                    None => Ok(()),
                }
            }
            _ => Err(format!("got {} {}", o.result.status.as_str(), o.result.result)),
        }),
        Case::py(
            "sympy's helpers that run programs (preview with LaTeX, the system's compilers)",
            each(&[
                ("preview", "sympy.preview(sympy.Symbol('x'), output='png', viewer='file', filename='/tmp/x.png')"),
                ("autowrap", "__import__('sympy.utilities.autowrap', fromlist=['autowrap']).autowrap(sympy.Symbol('x') + 1)"),
                ("find_executable", "sympy.utilities.misc.find_executable('sh') or 1/0"),
            ])
            .replacen("out = {}\n", "import sympy\nout = {}\n", 1),
        )
        .must("each fails: there is no program to run")
        .check(all_failed),
        Case::py(
            "Packages read host files through their own file helpers",
            each(&[
                ("networkx", "__import__('networkx').read_edgelist('/etc/passwd')"),
                ("openpyxl", "__import__('openpyxl').load_workbook('/proc/self/environ')"),
                ("pypdf", "__import__('pypdf').PdfReader('/etc/hostname')"),
                ("zoneinfo", "__import__('zoneinfo').ZoneInfo('../../../../etc/passwd')"),
                ("tzdata traversal", "__import__('importlib.resources').resources.files('tzdata').joinpath('../../../etc/passwd').read_bytes()"),
                ("metadata traversal", "__import__('importlib.metadata').metadata.distribution('sympy').read_text('../../../../etc/passwd') or 1/0"),
                ("package dotdot", "open('/site-packages/../etc/passwd').read()"),
            ]),
        )
        .must("each fails: outside the workspace there are no files, and the packages' own files hold nothing of the host")
        .check(all_failed),
        Case::py(
            "Python writes into the packages' files (to plant code for the next import)",
            each(&[
                ("overwrite", "open('/site-packages/yaml/__init__.py', 'w').write('x')"),
                ("append", "open('/site-packages/jinja2/utils.py', 'a').write('x')"),
                ("create", "open('/site-packages/evil.py', 'x').write('x')"),
                ("mkdir", "__import__('os').mkdir('/site-packages/evil')"),
                ("remove", "__import__('os').remove('/site-packages/six.py')"),
            ]),
        )
        .must("each fails: the packages' files are read-only")
        .check(all_failed),
        Case::py(
            "pygal and openpyxl save their output outside the workspace",
            each(&[
                ("pygal", "__import__('pygal').Bar().render_to_file('/etc/chart.svg')"),
                ("openpyxl", "__import__('openpyxl').Workbook().save('/root/book.xlsx')"),
                ("xlsxwriter", "__import__('xlsxwriter').Workbook('/root/book.xlsx').close()"),
            ]),
        )
        .must("each fails: only /workspace (and /tmp, in the run's memory) can be written")
        .check(all_failed),
        Case::py(
            "Python writes through /tmp, expecting the host's /tmp",
            format!(
                "import tempfile, os\nopen({TMP_PROBE:?}, 'w').write('x')\nwith tempfile.NamedTemporaryFile('w', delete=False) as f:\n    f.write('y')\n[os.path.exists({TMP_PROBE:?}), f.name.startswith('/tmp/'), sorted(os.listdir('/tmp')) == sorted([os.path.basename({TMP_PROBE:?}), os.path.basename(f.name)])]"
            ),
        )
        .must("the files live in the run's memory: the run sees them, the host's /tmp never does, the next run starts empty")
        .ok_with(json!([true, true, true]))
        .check(|_| match std::path::Path::new(TMP_PROBE).exists() {
            true => Err(format!("{TMP_PROBE} exists on the host")),
            false => Ok(()),
        })
        .then(PY, format!("import os\n[os.path.exists({TMP_PROBE:?}), os.listdir('/tmp')]"))
        .next_ok_with(json!([false, []])),
        Case::py(
            "pypdf is given a compression bomb (a 1 GB stream of zeros in 1 MB)",
            "import pypdf, zlib, io\nd = zlib.compressobj(9)\nbomb = b''.join(d.compress(b'\\0' * (1 << 24)) for _ in range(64)) + d.flush()\nstream = b'<< /Length %d /Filter /FlateDecode >>\\nstream\\n' % len(bomb) + bomb + b'\\nendstream'\npdf = b'%PDF-1.4\\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\\n3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\\n4 0 obj ' + stream + b' endobj\\ntrailer << /Root 1 0 R >>\\n%%EOF'\ntry:\n    text = pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()\n    out = len(text)\nexcept MemoryError:\n    out = 'MemoryError'\nexcept Exception as e:\n    out = type(e).__name__\nout",
        )
        .must("the run's own limits hold (an error, a limit, or pypdf's own refusal); the next run is fine")
        .status(&["ok", "error", "out_of_memory", "timeout", "out_of_fuel"])
        .then(PY, "import pypdf\n1 + 1")
        .next_ok_with(json!(2)),
        Case::py(
            "Python replaces a package module's loader to run code from a host path",
            "import yaml, importlib\nspec = yaml.__spec__\nspec.loader.relative = '../../../../etc/passwd'\ntry:\n    importlib.reload(yaml)\n    out = 'reloaded'\nexcept BaseException as e:\n    out = type(e).__name__\nout",
        )
        .must("the loader reads only the packages' own memory: nothing of the host is read or run")
        .check(|o| match o.result.result.as_str() {
            Some(s) if s != "reloaded" => Ok(()),
            _ => Err(format!("got {} {}", o.result.status.as_str(), o.result.result)),
        }),
    ]
}

#[tokio::test]
async fn python_packages() {
    // The default policy's memory: sympy's import needs ~24 MiB above the 45 MiB snapshot.
    let env = Env::new(EnvSpec {
        limits: &[("memory_bytes", 128 << 20)],
        api: false,
        sink: false,
        network: with_workspace,
    });
    let cases = cases(&env.ports);
    run_table("python packages", &env, cases, Mode::Regular).await;
}
