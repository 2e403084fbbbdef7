//! Hostile data through the Python packages built into the guest (issue 18), in the real
//! sandbox through `Service::call`: YAML (safe and unsafe loaders), HTML for BeautifulSoup,
//! Markdown, Jinja2 templates (plain and sandboxed), dates for dateutil, tables for tabulate,
//! PDFs for pypdf and workbooks for openpyxl, each given as the run's `input` to a fixed program
//! that catches what the package raises.
//!
//! Asserts (see `common::check_run`): the host never panics; every run returns within its
//! deadline plus a fixed slack, within its memory, fuel and output caps; status and error
//! agree; the host never fails on its own account; after a failed run the next run works; and
//! a program that only parses never reaches a process, a socket or a host file (its result
//! never names one).

#![no_main]

mod common;

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use warden::contract::{ExecuteArgs, Language, Status};

static SANDBOX: LazyLock<common::Sandbox> =
    LazyLock::new(|| common::Sandbox::with_small_limits(1500, 128 << 20));

#[derive(Debug, Arbitrary)]
enum Task {
    YamlSafe,
    YamlUnsafe,
    Html,
    Markdown,
    Template,
    SandboxedTemplate,
    Date,
    Table,
    Pdf,
    Workbook,
}

impl Task {
    /// The program: the package's work on `input["data"]` (text, or base64 for bytes).
    fn program(&self) -> &'static str {
        match self {
            Task::YamlSafe => "import yaml\nr = repr(yaml.safe_load(input['data']))",
            Task::YamlUnsafe => "import yaml\nr = repr(yaml.unsafe_load(input['data']))",
            Task::Html => {
                "from bs4 import BeautifulSoup\ns = BeautifulSoup(input['data'], 'html.parser')\nr = [s.get_text()[:200], [t.name for t in s.find_all(True)][:50]]"
            }
            Task::Markdown => "import markdown\nr = markdown.markdown(input['data'])",
            Task::Template => "import jinja2\nr = jinja2.Template(input['data']).render(x=1)",
            Task::SandboxedTemplate => {
                "from jinja2.sandbox import SandboxedEnvironment\nr = SandboxedEnvironment().from_string(input['data']).render(x=[1, 2])"
            }
            Task::Date => {
                "from dateutil import parser\nr = parser.parse(input['data'], fuzzy=True).isoformat()"
            }
            Task::Table => {
                "from tabulate import tabulate\nrows = [line.split(',') for line in input['data'].splitlines()]\nr = tabulate(rows, headers='firstrow', tablefmt='grid')"
            }
            Task::Pdf => {
                "import pypdf, io, base64\nreader = pypdf.PdfReader(io.BytesIO(base64.b64decode(input['data'])))\nr = [p.extract_text()[:200] for p in reader.pages[:3]]"
            }
            Task::Workbook => {
                "import openpyxl, io, base64\nwb = openpyxl.load_workbook(io.BytesIO(base64.b64decode(input['data'])))\nr = [[c.value for c in row] for row in wb.active.iter_rows(max_row=5)]"
            }
        }
    }

    fn takes_bytes(&self) -> bool {
        matches!(self, Task::Pdf | Task::Workbook)
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    task: Task,
    data: Vec<u8>,
}

fuzz_target!(
    init: {
        LazyLock::force(&SANDBOX);
    },
    |input: Input| {
    let data = if input.task.takes_bytes() {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&input.data)
    } else {
        String::from_utf8_lossy(&input.data).into_owned()
    };
    let code = format!(
        "try:\n{}\nexcept Exception as e:\n    r = type(e).__name__\nr",
        input
            .task
            .program()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let args = ExecuteArgs {
        language: Language::Python,
        code: code.clone(),
        timeout_ms: None,
        input: Some(serde_json::json!({ "data": data })),
        files: None,
        session: None,
        session_action: None,
    };
    let (result, elapsed) = common::run(&SANDBOX.rt, &SANDBOX.service, args);
    common::check_run(&result, elapsed, &SANDBOX.policy.limits, None, &code);
    if result.status == Status::Ok {
        let text = result.result.to_string();
        for host in ["uid=", "/etc/passwd", "root:x:"] {
            assert!(!text.contains(host), "the result names {host}: {text}\ncode: {code}");
        }
    } else {
        common::check_next_run_works(&SANDBOX.rt, &SANDBOX.service, Language::Python, &code);
    }
});
