#!/usr/bin/env python3
"""What each Python package of the default guest costs, and what the packages cost a run that
uses none of them: the default guest beside a guest built without packages, each served by
`warden serve` (--python-guest for the latter) with the default policy and audit on, as users
run them.

Per guest: the component's size, the memory a fresh run starts with (`usage.memory_peak_bytes`
of `1`: the snapshot, counted against the policy's memory limit), a fresh `print(1+1)` over stdio
(p50 of --calls) and the server's RSS per live instance (four busy runs at once, as
bench/instance_rss.py measures it).

Per package (default guest): a first real use in a fresh run (p50: its import, unless it is
preloaded, and the work), the memory that run adds to a fresh run's (what preloading would add
to every run's snapshot), and its compiled, compressed code in the guest. The peer: the
machine's CPython doing the same first use in a fresh process (import and work timed inside
it, bytecode cached), as a fresh Warden run is a fresh interpreter.

Usage: bench/python_packages.py [--calls N]   (WARDEN_BIN names the binary)
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
WARDEN = os.environ.get("WARDEN_BIN") or str(ROOT / "target" / "release" / "warden")
BATTERIES = ROOT / "guest-runtimes" / "python" / "batteries.txt"
# Each package: what batteries.txt pins for it (dependencies included), a first real use, timed
# in a fresh run, and its top-level modules (for the size of its code in the guest).
GROUPS = {
    "python-dateutil": (["python-dateutil", "six", "tzdata"],
                        "from dateutil import parser, tz\nparser.parse('2026-12-01T10:00:00+01:00').astimezone(tz.gettz('America/New_York')).isoformat()", ["dateutil", "six", "tzdata"]),
    "PyYAML": (["PyYAML"], "import yaml\nyaml.safe_load('a: [1, 2, {b: c}]')", ["yaml"]),
    "Jinja2": (["Jinja2", "MarkupSafe"], "import jinja2\njinja2.Template('{% for x in xs %}<{{x}}>{% endfor %}').render(xs=[1,'<&>'])", ["jinja2", "markupsafe"]),
    "beautifulsoup4": (["beautifulsoup4", "soupsieve", "typing-extensions"],
                       "from bs4 import BeautifulSoup\n[a['href'] for a in BeautifulSoup('<p><a href=x>1</a><a href=y>2</a>', 'html.parser').select('p a')]", ["bs4", "soupsieve", "typing_extensions"]),
    "tabulate": (["tabulate"], "import tabulate\ntabulate.tabulate([[1, 2], [3, 4]], headers=['a', 'b'])", ["tabulate"]),
    "Markdown": (["Markdown"], "import markdown\nmarkdown.markdown('# Hi\\n\\n* a\\n* b')", ["markdown"]),
    "sympy": (["sympy", "mpmath"], "import sympy\nx = sympy.symbols('x')\nstr(sympy.solve(x**2 - 2, x))", ["sympy", "mpmath", "isympy"]),
    "networkx": (["networkx"], "import networkx as nx\nnx.shortest_path(nx.path_graph(50), 0, 49)[-1]", ["networkx"]),
    "attrs": (["attrs"], "import attrs\n@attrs.define\nclass P:\n    x: int\nP(1).x", ["attrs", "attr"]),
    "more-itertools": (["more-itertools"], "import more_itertools\nlist(more_itertools.chunked(range(7), 3))", ["more_itertools"]),
    "openpyxl": (["openpyxl", "et-xmlfile"],
                 "import openpyxl, io\nwb = openpyxl.Workbook()\nwb.active['A1'] = 42\nb = io.BytesIO()\nwb.save(b)\nopenpyxl.load_workbook(io.BytesIO(b.getvalue())).active['A1'].value", ["openpyxl", "et_xmlfile"]),
    "XlsxWriter": (["XlsxWriter"], "import xlsxwriter, io\nb = io.BytesIO()\nwb = xlsxwriter.Workbook(b, {'in_memory': True})\nwb.add_worksheet().write('A1', 42)\nwb.close()\nlen(b.getvalue()) > 0", ["xlsxwriter"]),
    "pypdf": (["pypdf"], "import pypdf, io\nw = pypdf.PdfWriter()\nw.add_blank_page(72, 72)\nb = io.BytesIO()\nw.write(b)\nlen(pypdf.PdfReader(io.BytesIO(b.getvalue())).pages)", ["pypdf"]),
    "pygal": (["pygal", "importlib-metadata", "zipp"], "import pygal\nc = pygal.Bar()\nc.add('a', [1, 3, 2])\nlen(c.render())", ["pygal", "importlib_metadata", "zipp"]),
}
BUSY = "while True:\n    pass"


def requirement_lines():
    lines = {}
    for line in BATTERIES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            lines[line.split("==", 1)[0]] = line
    return lines


def build_without_packages(work):
    requirements = work / "none.txt"
    requirements.write_text("# no packages\n")
    out = work / "none.wasm"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "python_guest.py"), "build", "--requirements",
         str(requirements), "--out", str(out)],
        check=True, stdout=subprocess.DEVNULL,
    )
    return out


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


STORE_BYTES = """import warden_packages
tops = set(input)
sum(len(v) for k, v in warden_packages._files.items() if v and k.split('/')[0].removesuffix('.py') in tops)"""


async def measure(guest, uses, calls, work):
    policy = work / "policy.toml"
    policy.write_text("[limits]\nmax_concurrent_runs = 4\nfuel = 1000000000000\ndefault_timeout_ms = 30000\nmax_timeout_ms = 30000\n")
    pid_file = work / "pid"
    args = ["serve", "--policy", str(policy)]
    if guest is not None:
        args += ["--python-guest", str(guest)]
    server = StdioServerParameters(
        command="sh",
        args=["-c", 'echo $$ > "$0"; exec "$@"', str(pid_file), WARDEN, *args],
        env={"WARDEN_LOG": "error", "WARDEN_STATE_DSN": "memory:"},
    )
    row, packages = {}, {}
    async with Client(server, mode="legacy") as c:
        async def call(code, timeout_ms=30000, input=None):
            arguments = {"language": "python", "code": code, "timeout_ms": timeout_ms}
            if input is not None:
                arguments["input"] = input
            started = time.perf_counter()
            result = await c.call_tool("execute_code", arguments)
            elapsed = time.perf_counter() - started
            out = result.structured_content
            return elapsed, out["status"], out

        _, _, first = await call("1")
        baseline = first["usage"]["memory_peak_bytes"]
        row["snapshot_mib"] = baseline / 2**20
        times = []
        for _ in range(calls):
            elapsed, status, _ = await call("print(1+1)")
            assert status == "ok", status
            times.append(elapsed)
        row["print_ms"] = statistics.median(times) * 1000
        for name, (tops, use) in uses.items():
            times, peaks = [], []
            for _ in range(max(3, calls // 8)):
                elapsed, status, out = await call(use)
                assert status == "ok", (name, out)
                times.append(elapsed)
                peaks.append(out["usage"]["memory_peak_bytes"])
            _, _, stored = await call(STORE_BYTES, input=tops)
            packages[name] = {
                "use_ms": statistics.median(times) * 1000,
                "added_mib": (statistics.median(peaks) - baseline) / 2**20,
                "store_kib": stored["result"] / 1024,
            }
        pid = int(pid_file.read_text())
        await asyncio.sleep(0.3)
        idle = rss_kib(pid)
        busy = [asyncio.create_task(call(BUSY, 2000)) for _ in range(4)]
        await asyncio.sleep(1.0)
        live = rss_kib(pid)
        await asyncio.gather(*busy)
        row["rss_mib_per_instance"] = (live - idle) / 4 / 1024
    return row, packages


def native(use, site, runs=5):
    """The same first use in a fresh CPython process (median of `runs`, after one that writes
    the bytecode caches)."""
    body = "import time\nt = time.perf_counter()\n" + use.replace("\n", "\n") + "\nprint(time.perf_counter() - t)"
    # The last line of `use` is an expression; keep it as a statement.
    times = []
    for i in range(runs + 1):
        out = subprocess.run([sys.executable, "-c", body], env={"PYTHONPATH": str(site)},
                             capture_output=True, text=True, check=True)
        if i:
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times) * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-packages-bench-"))
    site = work / "site"
    sys.path.insert(0, str(ROOT / "scripts"))
    import python_guest

    site.mkdir()
    python_guest.assemble(python_guest.parse_requirements(BATTERIES.read_text()),
                          python_guest.DEFAULT_WHEELS, str(site))
    preloaded = {line.split("==")[0] for line in BATTERIES.read_text().splitlines()
                 if "warden:" in line and "preload" in line}
    uses = {name: (tops, use) for name, (_, use, tops) in GROUPS.items()}
    none_row, _ = asyncio.run(measure(build_without_packages(work), {}, args.calls, work))
    default_row, packages = asyncio.run(measure(None, uses, args.calls, work))
    print("| guest | component MB | fresh run's memory MiB | print(1+1) p50 ms | RSS MiB per live instance |")
    print("|---|---:|---:|---:|---:|")
    for name, row, size in (("without packages", none_row, (work / "none.wasm").stat().st_size),
                            ("default (batteries.txt)", default_row, None)):
        shown = f"{size / 1e6:.1f}" if size else "(built in)"
        print(f"| {name} | {shown} | {row['snapshot_mib']:.1f} | {row['print_ms']:.1f} | {row['rss_mib_per_instance']:.1f} |")
    print()
    print("| package | loaded | first use in a fresh run, ms | CPython fresh process, ms | ratio | memory it adds, MiB | compiled code in the guest, KiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, (packages_of, use, _) in GROUPS.items():
        p = packages[name]
        peer_ms = native(use, site)
        loaded = "preloaded" if packages_of[0] in preloaded else "on import"
        print(f"| {name} | {loaded} | {p['use_ms']:.1f} | {peer_ms:.1f} | {p['use_ms'] / peer_ms:.1f} | {p['added_mib']:.1f} | {p['store_kib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
