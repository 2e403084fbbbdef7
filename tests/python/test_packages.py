"""The Python packages built into the guest (issue 18), through the official MCP SDK: the tool
description names them, each does a real task in the sandbox (files through /workspace), and
an operator's own list builds a guest that `warden serve --python-guest` serves, while a list
with native code, an unpinned or unhashed line, a wrong hash or a missing dependency is refused
with a message naming the package. The operator tests use a package index on 127.0.0.1 that
the test serves itself, with wheels it makes."""

import base64
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from test_stdio import CACHE, ROOT, WARDEN, call, run, server, server_env

BATTERIES = ROOT / "guest-runtimes" / "python" / "batteries.txt"
SCRIPT = ROOT / "scripts" / "python_guest.py"


def pinned():
    """(name, version) of every package batteries.txt pins."""
    out = []
    for line in BATTERIES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, rest = line.split("==", 1)
            out.append((name, rest.split()[0]))
    return out


def workspace_policy():
    return f'[workspace]\ndirectory = "{tempfile.mkdtemp(prefix="warden-pkg-ws-")}"\n'


def a_pdf(text):
    """A one-page PDF whose page shows `text` in Helvetica (offsets computed, as a writer would)."""
    content = f"BT /F1 18 Tf 20 50 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# One real task per package: (code, files given to the run, expected result).
TASKS = {
    "yaml": (
        "import yaml\ndoc = yaml.safe_load('name: warden\\nports: [80, 443]\\nnested: {a: 1}')\n"
        "[doc, yaml.safe_dump(doc, sort_keys=True).splitlines()[0], yaml.__with_libyaml__]",
        None,
        [{"name": "warden", "ports": [80, 443], "nested": {"a": 1}}, "name: warden", False],
    ),
    "dateutil+zoneinfo": (
        "from dateutil import parser, relativedelta, tz\nimport zoneinfo, datetime\n"
        "t = parser.parse('2026-03-29 01:30 UTC')\n"
        "[(t + relativedelta.relativedelta(months=+1, day=31)).date().isoformat(),\n"
        " t.astimezone(tz.gettz('Europe/Oslo')).isoformat(),\n"
        " datetime.datetime(2026, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo('America/New_York')).utcoffset().total_seconds()]",
        None,
        ["2026-04-30", "2026-03-29T03:30:00+02:00", -14400.0],
    ),
    "jinja2": (
        "import jinja2\nenv = jinja2.Environment(autoescape=True)\n"
        "env.from_string('{% for u in users %}<li>{{ u.name|title }}</li>{% endfor %}').render("
        "users=[{'name': 'ada'}, {'name': '<script>'}])",
        None,
        "<li>Ada</li><li>&lt;Script&gt;</li>",
    ),
    "bs4": (
        "from bs4 import BeautifulSoup\nhtml = open('page.html').read()\n"
        "soup = BeautifulSoup(html, 'html.parser')\n"
        "[soup.title.string, [a['href'] for a in soup.select('ul.links a')], soup.find(id='x').get_text(strip=True)]",
        {"page.html": "<html><head><title>T</title></head><body><ul class=links><li><a href='/a'>A</a>"
                      "<li><a href='/b'>B</a></ul><p id=x> hi <b>there</b></p></body></html>"},
        ["T", ["/a", "/b"], "hithere"],
    ),
    "tabulate": (
        "from tabulate import tabulate\ntabulate([['Oslo', 10], ['Lima', 7]], headers=['city', 'sales'], tablefmt='github')",
        None,
        "| city   |   sales |\n|--------|---------|\n| Oslo   |      10 |\n| Lima   |       7 |",
    ),
    "markdown": (
        "import markdown\nmarkdown.markdown('# Title\\n\\nSome *text* and a [link](https://example.com).\\n\\n- a\\n- b', extensions=['tables'])",
        None,
        '<h1>Title</h1>\n<p>Some <em>text</em> and a <a href="https://example.com">link</a>.</p>\n<ul>\n<li>a</li>\n<li>b</li>\n</ul>',
    ),
    "sympy": (
        "import sympy as sp\nx, y = sp.symbols('x y')\n"
        "[str(sp.solve(x**2 - 2, x)), str(sp.integrate(sp.sin(x)**2, (x, 0, sp.pi))),\n"
        " str(sp.solve([x + y - 3, x - y - 1], [x, y])), str(sp.factor(x**3 - 1)), str(sp.N(sp.pi, 20))]",
        None,
        ["[-sqrt(2), sqrt(2)]", "pi/2", "{x: 2, y: 1}", "(x - 1)*(x**2 + x + 1)", "3.1415926535897932385"],
    ),
    "networkx": (
        "import networkx as nx\nG = nx.Graph()\n"
        "G.add_weighted_edges_from([('a','b',4), ('a','c',1), ('c','b',1), ('b','d',5), ('c','d',8)])\n"
        "[nx.shortest_path(G, 'a', 'd', weight='weight'), nx.shortest_path_length(G, 'a', 'd', weight='weight'),\n"
        " sorted(nx.connected_components(nx.path_graph(3)), key=len)[0] == {0, 1, 2}]",
        None,
        [["a", "c", "b", "d"], 7, True],
    ),
    "attrs+more_itertools": (
        "import attrs, more_itertools\n@attrs.define\nclass Point:\n    x: int\n    y: int = 0\n"
        "[attrs.asdict(Point(1)), list(more_itertools.chunked(range(7), 3)), list(more_itertools.windowed([1, 2, 3], 2))]",
        None,
        [{"x": 1, "y": 0}, [[0, 1, 2], [3, 4, 5], [6]], [[1, 2], [2, 3]]],
    ),
    "openpyxl": (
        "import openpyxl\nwb = openpyxl.Workbook()\nws = wb.active\nws.title = 'Sales'\n"
        "ws.append(['city', 'sales'])\nws.append(['Oslo', 10])\nws.append(['Lima', 7])\nws['B4'] = '=SUM(B2:B3)'\n"
        "wb.save('report.xlsx')\nback = openpyxl.load_workbook('report.xlsx')['Sales']\n"
        "[[c.value for c in row] for row in back.iter_rows()]",
        None,
        [["city", "sales"], ["Oslo", 10], ["Lima", 7], [None, "=SUM(B2:B3)"]],
    ),
    "xlsxwriter": (
        "import xlsxwriter, openpyxl\nwb = xlsxwriter.Workbook('made.xlsx')\nws = wb.add_worksheet('Data')\n"
        "ws.write_row(0, 0, ['n', 'square'])\nfor i in range(1, 4):\n    ws.write_row(i, 0, [i, i * i])\n"
        "chart = wb.add_chart({'type': 'column'})\nchart.add_series({'values': '=Data!$B$2:$B$4'})\nws.insert_chart('D2', chart)\nwb.close()\n"
        "[[c.value for c in row] for row in openpyxl.load_workbook('made.xlsx')['Data'].iter_rows()]",
        None,
        [["n", "square"], [1, 1], [2, 4], [3, 9]],
    ),
    "pypdf": (
        "import pypdf\nr = pypdf.PdfReader('doc.pdf')\n[len(r.pages), r.pages[0].extract_text()]",
        {"doc.pdf": {"base64": base64.b64encode(a_pdf("Hello from Warden")).decode()}},
        [1, "Hello from Warden"],
    ),
    "pygal": (
        "import pygal\nchart = pygal.Bar(title='Sales')\nchart.x_labels = ['Oslo', 'Lima']\nchart.add('2026', [10, 7])\n"
        "import os\nos.makedirs('charts', exist_ok=True)\nchart.render_to_file('charts/sales.svg')\n"
        "svg = open('charts/sales.svg').read()\n[svg.startswith('<?xml') and '<svg' in svg, 'Sales' in svg, 'Oslo' in svg, '.graph' in svg]",
        None,
        [True, True, True, True],
    ),
    "importlib.metadata": (
        "import importlib.metadata as m\n[m.version('sympy'), m.version('PyYAML'), m.metadata('jinja2')['Name']]",
        None,
        None,  # checked against batteries.txt below
    ),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_package_does_a_real_task_through_the_tool(task):
    code, files, expected = TASKS[task]
    versions = dict(pinned())
    if task == "importlib.metadata":
        expected = [versions["sympy"], versions["PyYAML"], "Jinja2"]

    async def body():
        async with Client(server(workspace_policy()), mode="legacy") as c:
            extra = {"files": files} if files else {}
            _, s = await call(c, code, "python", timeout_ms=30000, **extra)
            assert s["status"] == "ok", s
            assert s["result"] == expected, s
            return s

    s = run(body())
    if task in ("openpyxl", "xlsxwriter", "pygal"):
        written = {f["path"]: f for f in s["files"]}
        wanted = {"openpyxl": "/workspace/report.xlsx", "xlsxwriter": "/workspace/made.xlsx",
                  "pygal": "/workspace/charts/sales.svg"}[task]
        assert wanted in written, written
        if task == "pygal":
            assert written[wanted]["media_type"] == "image/svg+xml"


def test_the_tool_description_names_every_package_and_version():
    async def body():
        async with Client(server(), mode="legacy") as c:
            return (await c.list_tools()).tools[0].description

    description = run(body())
    for name, version in pinned():
        # As the package's own metadata spells it (typing_extensions for typing-extensions).
        spelled = re.escape(name).replace("\\-", "[-_]").replace("\\_", "[-_]")
        assert re.search(f"(?i){spelled} {re.escape(version)}", description), (name, description)
    assert "PyYAML 6.0.4 (import yaml)" in description
    assert "beautifulsoup4 4.15.0 (import bs4)" in description


TEMPFILES = r"""
import errno, os, tempfile
out = {}
fd1, p1 = tempfile.mkstemp(suffix='.xml')
fd2, p2 = tempfile.mkstemp()
os.close(fd1)
fd3, p3 = tempfile.mkstemp()
out['distinct'] = len({fd1, fd2, fd3}) == 3 and len({p1, p2, p3}) == 3 and p1.endswith('.xml')
with os.fdopen(fd2, 'w') as f:
    f.write('two')
os.write(fd3, b'three')
os.close(fd3)
out['contents'] = [open(p2).read(), open(p3, 'rb').read().decode()]
with tempfile.NamedTemporaryFile('w+', suffix='.csv') as f:
    f.write('a,b\n')
    f.flush()
    out['named'] = [f.name.startswith('/tmp/'), open(f.name).read()]
out['named_removed'] = not os.path.exists(f.name)
with tempfile.TemporaryDirectory() as d:
    open(os.path.join(d, 'x.txt'), 'w').write('x')
    out['dir'] = os.listdir(d)
out['dir_removed'] = not os.path.exists(d)
s = tempfile.SpooledTemporaryFile(max_size=10)
s.write(b'0123456789abcdef')
s.seek(0)
out['spooled'] = s.read().decode()
os.utime(p2)
try:
    open('/site-packages/yaml/__init__.py', 'w')
except OSError as e:
    out['read_only'] = e.errno == errno.EROFS
out
"""


def test_tempfile_works_on_tmp_in_the_runs_memory():
    async def body():
        async with Client(server(), mode="legacy") as c:
            _, s = await call(c, TEMPFILES, "python")
            _, after = await call(c, "import os\nos.listdir('/tmp')", "python")
            return s, after

    s, after = run(body())
    assert s["status"] == "ok", s
    assert s["result"] == {
        "distinct": True, "contents": ["two", "three"], "named": [True, "a,b\n"],
        "named_removed": True, "dir": ["x.txt"], "dir_removed": True,
        "spooled": "0123456789abcdef", "read_only": True,
    }, s
    assert after["status"] == "ok" and after["result"] == [], after


def test_the_licence_file_records_every_package_at_its_version():
    text = (ROOT / "licenses" / "python-packages.txt").read_text()
    for name, version in pinned():
        assert f"\n{name} {version} (" in text, f"{name} {version}: run scripts/python_guest.py licences"


def test_a_package_file_read_and_a_blocked_module_still_refused():
    code = (
        "import importlib.resources, sys\n"
        "n = len(importlib.resources.files('tzdata.zoneinfo').joinpath('UTC').read_bytes())\n"
        "try:\n    import threading\n    t = 'imported'\nexcept ImportError as e:\n    t = str(e)\n"
        "[n > 0, t, 'yaml' in sys.modules]"
    )

    async def body():
        async with Client(server(), mode="legacy") as c:
            _, s = await call(c, code, "python")
            return s

    s = run(body())
    assert s["status"] == "ok", s
    assert s["result"][0] is True
    assert "not available in the sandbox" in s["result"][1]
    assert s["result"][2] is True


# ----------------------------------------------------------------------- an operator's own list


def wheel(directory, name, version, files, tag="py3-none-any", requires=()):
    """A wheel as a build backend would write it: the files, METADATA, WHEEL and a licence."""
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\nLicense-Expression: MIT\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    path = Path(directory) / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, text in files.items():
            z.writestr(member, text)
        z.writestr(f"{dist}/METADATA", metadata)
        z.writestr(f"{dist}/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
        z.writestr(f"{dist}/licenses/LICENSE", "MIT License (test)\n")
    return path


class Index:
    """PyPI's JSON API for a few wheels, on 127.0.0.1 (file addresses relative, as mirrors give)."""

    def __init__(self, wheels):
        self.wheels = {Path(w).name: Path(w).read_bytes() for w in wheels}
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                parts = self.path.strip("/").split("/")
                if parts[:1] == ["pypi"] and len(parts) == 3 and parts[2] == "json":
                    releases = {}
                    for filename, data in index.wheels.items():
                        name, version = filename.split("-")[:2]
                        if name.lower() == parts[1].lower().replace("-", "_"):
                            releases.setdefault(version, []).append({
                                "filename": filename, "url": f"../../files/{filename}",
                                "packagetype": "bdist_wheel", "size": len(data),
                                "digests": {"sha256": hashlib.sha256(data).hexdigest()}})
                    body = json.dumps({"releases": releases}).encode() if releases else None
                elif parts[:1] == ["files"] and len(parts) == 2:
                    body = index.wheels.get(parts[1])
                else:
                    body = None
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pypi"

    def line(self, filename, suffix=""):
        name, version = filename.split("-")[:2]
        digest = hashlib.sha256(self.wheels[filename]).hexdigest()
        return f"{name}=={version} --hash=sha256:{digest}{suffix}\n"


@pytest.fixture(scope="module")
def index():
    work = tempfile.mkdtemp(prefix="warden-index-")
    greeting = wheel(work, "greeting", "1.0", {
        "greeting/__init__.py": "import importlib.resources\n"
                                "def hello(name):\n"
                                "    word = importlib.resources.files('greeting').joinpath('word.txt').read_text().strip()\n"
                                "    return f'{word}, {name}'\n",
        "greeting/word.txt": "Hello\n",
    }, requires=["fastthing>=1"])
    native = wheel(work, "fastthing", "1.0", {
        "fastthing/__init__.py": "try:\n    from ._speed import twice\nexcept ImportError:\n"
                                 "    def twice(x):\n        return 2 * x\n",
        "fastthing/_speed.cpython-314-x86_64-linux-gnu.so": "\x7fELF not really",
    }, tag="cp314-cp314-manylinux_2_17_x86_64")
    lonely = wheel(work, "lonely", "2.0", {"lonely.py": "X = 1\n"}, requires=["missingdep>=1"])
    index = Index([greeting, native, lonely])
    yield index
    index.httpd.shutdown()


def build(index, requirements, out):
    req = Path(tempfile.mkdtemp(prefix="warden-req-")) / "requirements.txt"
    req.write_text(requirements)
    env = dict(os.environ, WARDEN_PYPI_JSON=index.url)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "build", "--requirements", str(req), "--out", str(out),
         "--wheels", tempfile.mkdtemp(prefix="warden-wheels-")],
        env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.parametrize("case", ["native", "unpinned", "unhashed", "wrong hash", "missing dependency", "sdist option"])
def test_an_operator_list_that_cannot_be_built_is_refused_naming_the_package(index, case):
    out = Path(tempfile.mkdtemp()) / "guest.wasm"
    native = "fastthing-1.0-cp314-cp314-manylinux_2_17_x86_64.whl"
    requirements, expected = {
        "native": (index.line(native), "fastthing==1.0 has native code"),
        "unpinned": ("fastthing>=1.0\n", "`fastthing>=1.0` is not pinned"),
        "unhashed": ("fastthing==1.0\n", "fastthing==1.0 has no --hash"),
        "wrong hash": ("fastthing==1.0 --hash=sha256:" + "0" * 64 + "\n", "no file of this release on PyPI has the pinned hash"),
        "missing dependency": (index.line("lonely-2.0-py3-none-any.whl"), "lonely needs missingdep>=1, which the list does not name"),
        "sdist option": ("--no-binary :all:\n", "options such as --no-binary are not supported"),
    }[case]
    result = build(index, requirements, out)
    assert result.returncode == 2, result
    assert expected in result.stderr, result.stderr
    assert not out.exists()


def test_an_operator_builds_a_guest_with_their_own_list_and_serves_it(index):
    out = Path(tempfile.mkdtemp(prefix="warden-guest-")) / "guest.wasm"
    requirements = index.line("greeting-1.0-py3-none-any.whl") + index.line(
        "fastthing-1.0-cp314-cp314-manylinux_2_17_x86_64.whl", "  # warden: pure-mode")
    result = build(index, requirements, out)
    assert result.returncode == 0, result.stderr
    assert "with 2 packages" in result.stdout

    params = StdioServerParameters(
        command=WARDEN, args=["serve", "--cache-dir", CACHE, "--python-guest", str(out)], env=server_env())

    async def body():
        async with Client(params, mode="legacy") as c:
            description = (await c.list_tools()).tools[0].description
            _, s = await call(c, "import greeting, fastthing, importlib.metadata as m\n"
                                 "[greeting.hello('operator'), fastthing.twice(21), m.version('greeting')]", "python")
            _, missing = await call(c, "import yaml", "python")
            return description, s, missing

    description, s, missing = run(body())
    assert "greeting 1.0" in description and "fastthing 1.0" in description, description
    assert "PyYAML" not in description
    assert s["status"] == "ok", s
    assert s["result"] == ["Hello, operator", 42, "1.0"]
    assert missing["status"] == "error" and missing["error"]["type"] == "ModuleNotFoundError", missing
    assert "greeting" in missing["error"]["message"], missing


def test_a_file_that_is_not_a_guest_stops_the_server_with_the_reason(tmp_path):
    bogus = tmp_path / "guest.wasm"
    bogus.write_bytes(b"not wasm at all")
    result = subprocess.run([WARDEN, "serve", "--python-guest", str(bogus)], env=server_env(),
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result
    assert "is not a WebAssembly component" in result.stderr, result.stderr
