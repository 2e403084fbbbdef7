#!/usr/bin/env python3
"""What each built-in Python package costs: one guest per package (with its dependencies) beside
a guest without packages and the default guest, each served by `warden serve --python-guest`
with the default policy and audit on, as users run it.

Per guest: the component's size, a fresh `print(1+1)` over stdio (p50 of --calls), a first real
use of the package in a fresh run (p50), and the server's RSS per live instance (four busy runs
at once, as bench/instance_rss.py measures it).

Usage: bench/python_packages.py [--calls N] [--only NAME ...]   (WARDEN_BIN names the binary)
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
# Each group: the packages (names as batteries.txt pins them, dependencies included) and a first
# real use, timed in a fresh run.
GROUPS = {
    "python-dateutil": (["python-dateutil", "six", "tzdata"],
                        "from dateutil import parser, tz\nparser.parse('2026-12-01T10:00:00+01:00').astimezone(tz.gettz('America/New_York')).isoformat()"),
    "PyYAML": (["PyYAML"], "import yaml\nyaml.safe_load('a: [1, 2, {b: c}]')"),
    "Jinja2": (["Jinja2", "MarkupSafe"], "import jinja2\njinja2.Template('{% for x in xs %}<{{x}}>{% endfor %}').render(xs=[1,'<&>'])"),
    "beautifulsoup4": (["beautifulsoup4", "soupsieve", "typing-extensions"],
                       "from bs4 import BeautifulSoup\n[a['href'] for a in BeautifulSoup('<p><a href=x>1</a><a href=y>2</a>', 'html.parser').select('p a')]"),
    "tabulate": (["tabulate"], "import tabulate\ntabulate.tabulate([[1, 2], [3, 4]], headers=['a', 'b'])"),
    "Markdown": (["Markdown"], "import markdown\nmarkdown.markdown('# Hi\\n\\n* a\\n* b')"),
    "sympy": (["sympy", "mpmath"], "import sympy\nx = sympy.symbols('x')\nstr(sympy.solve(x**2 - 2, x))"),
    "networkx": (["networkx"], "import networkx as nx\nnx.shortest_path(nx.path_graph(50), 0, 49)[-1]"),
    "attrs": (["attrs"], "import attrs\n@attrs.define\nclass P:\n    x: int\nP(1).x"),
    "more-itertools": (["more-itertools"], "import more_itertools\nlist(more_itertools.chunked(range(7), 3))"),
    "openpyxl": (["openpyxl", "et-xmlfile"],
                 "import openpyxl, io\nwb = openpyxl.Workbook()\nwb.active['A1'] = 42\nb = io.BytesIO()\nwb.save(b)\nopenpyxl.load_workbook(io.BytesIO(b.getvalue())).active['A1'].value"),
    "XlsxWriter": (["XlsxWriter"], "import xlsxwriter, io\nb = io.BytesIO()\nwb = xlsxwriter.Workbook(b, {'in_memory': True})\nwb.add_worksheet().write('A1', 42)\nwb.close()\nlen(b.getvalue()) > 0"),
    "pypdf": (["pypdf"], "import pypdf, io\nw = pypdf.PdfWriter()\nw.add_blank_page(72, 72)\nb = io.BytesIO()\nw.write(b)\nlen(pypdf.PdfReader(io.BytesIO(b.getvalue())).pages)"),
    "pygal": (["pygal", "importlib-metadata", "zipp"], "import pygal\nc = pygal.Bar()\nc.add('a', [1, 3, 2])\nlen(c.render())"),
}
BUSY = "while True:\n    pass"


def requirement_lines():
    lines = {}
    for line in BATTERIES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            lines[line.split("==", 1)[0]] = line
    return lines


def build(name, packages, work):
    lines = requirement_lines()
    requirements = work / f"{name}.txt"
    requirements.write_text("".join(lines[p] + "\n" for p in packages))
    out = work / f"{name}.wasm"
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


async def measure(guest, use, calls, work):
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
    row = {}
    async with Client(server, mode="legacy") as c:
        async def call(code, timeout_ms=30000):
            started = time.perf_counter()
            result = await c.call_tool("execute_code", {"language": "python", "code": code, "timeout_ms": timeout_ms})
            elapsed = time.perf_counter() - started
            status = result.structured_content["status"]
            return elapsed, status, result.structured_content

        await call("1")
        times = []
        for _ in range(calls):
            elapsed, status, _ = await call("print(1+1)")
            assert status == "ok", status
            times.append(elapsed)
        row["print_ms"] = statistics.median(times) * 1000
        if use:
            times = []
            for _ in range(max(3, calls // 4)):
                elapsed, status, out = await call(use)
                assert status == "ok", out
                times.append(elapsed)
            row["use_ms"] = statistics.median(times) * 1000
        pid = int(pid_file.read_text())
        await asyncio.sleep(0.3)
        idle = rss_kib(pid)
        busy = [asyncio.create_task(call(BUSY, 2000)) for _ in range(4)]
        await asyncio.sleep(1.0)
        live = rss_kib(pid)
        await asyncio.gather(*busy)
        row["rss_mib_per_instance"] = (live - idle) / 4 / 1024
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--only", nargs="*", help="groups to measure (default: all)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warden-packages-bench-"))
    rows = []
    base = build("none", [], work)
    rows.append(("(no packages)", base, None))
    for name, (packages, use) in GROUPS.items():
        if args.only and name not in args.only:
            continue
        rows.append((name, build(name, packages, work), use))
    rows.append(("default guest (all)", None, None))
    print(f"| guest | component MB | print(1+1) ms | first use ms | RSS MiB per live instance |")
    print("|---|---|---|---|---|")
    for name, guest, use in rows:
        size = (guest.stat().st_size if guest else 0) / 1e6
        row = asyncio.run(measure(guest, use, args.calls, work))
        use_ms = f"{row['use_ms']:.1f}" if "use_ms" in row else ""
        shown = f"{size:.1f}" if guest else "(built in)"
        print(f"| {name} | {shown} | {row['print_ms']:.1f} | {use_ms} | {row['rss_mib_per_instance']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
