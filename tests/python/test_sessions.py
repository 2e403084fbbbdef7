"""Sessions, the workspace and files through the official Python MCP SDK, as a notebook user
drives them: a CSV in, parsed in one call, aggregated in the next with the first call's
variables, charts (PNG and SVG) written in a third and read back as resources; the same in
TypeScript; reset, close, restart after a trap, quotas, and sessions bound to their grant."""

import asyncio
import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from mcp import Client

from test_http import OTHER, TOKEN, client, http_server
from test_stdio import MODES, call, server

CSV = "city,month,sales\nOslo,1,10\nOslo,2,14\nLima,1,7\nLima,2,9\nKyiv,1,12\n"


def policy(workspace_dir, extra=""):
    return f"""
[workspace]
directory = "{workspace_dir}"
max_bytes = 200000
max_files = 50
max_file_bytes = 100000

[sessions]
max_sessions = 4
max_per_grant = 2
{extra}
"""


def workspaces(base):
    """The workspaces alive under `base` (one directory per workspace, in the process's)."""
    return sorted(p.name for p in Path(base).glob("warden-*/w-*"))


PY_PARSE = """
import csv
rows = list(csv.DictReader(open('sales.csv')))
len(rows)
"""

PY_AGGREGATE = """
totals = {}
for r in rows:
    totals[r['city']] = totals.get(r['city'], 0) + int(r['sales'])
totals
"""

# A real PNG from zlib and struct (a bar per city), and an SVG of the same bars.
PY_CHART = r"""
import struct, zlib, os
w, h = 60, 40
scale = max(totals.values())
pixels = bytearray()
for y in range(h):
    pixels.append(0)
    for x in range(w):
        bar = x // 20
        value = list(totals.values())[bar] if bar < len(totals) else 0
        on = (h - y) <= value * h / scale and x % 20 < 16
        pixels += bytes((30, 90, 200) if on else (255, 255, 255))
def chunk(kind, data):
    body = kind + data
    return struct.pack('>I', len(data)) + body + struct.pack('>I', zlib.crc32(body) & 0xffffffff)
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) \
    + chunk(b'IDAT', zlib.compress(bytes(pixels))) + chunk(b'IEND', b'')
os.makedirs('charts', exist_ok=True)
with open('charts/sales.png', 'wb') as f:
    f.write(png)
bars = ''.join(f'<rect x="{i*20}" y="{40-v*40//scale}" width="16" height="{v*40//scale}"/>'
               for i, v in enumerate(totals.values()))
open('charts/sales.svg', 'w').write(f'<svg xmlns="http://www.w3.org/2000/svg" width="60" height="40">{bars}</svg>')
sorted(os.listdir('charts'))
"""

TS_PARSE = """
const text: string = fs.readFileSync('sales.csv', 'utf8');
const rows = text.trim().split('\\n').slice(1).map((l) => { const [city, month, sales] = l.split(','); return { city, sales: Number(sales) }; });
interface Row { city: string; sales: number }
await Promise.resolve();
rows.length
"""

TS_AGGREGATE = """
const totals: Record<string, number> = {};
for (const r of rows as Row[]) totals[r.city] = (totals[r.city] ?? 0) + r.sales;
totals
"""

TS_CHART = """
function svg(values: Record<string, number>): string {
  const max = Math.max(...Object.values(values));
  const bars = Object.values(values).map((v, i) => `<rect x="${i * 20}" y="${40 - (v * 40) / max}" width="16" height="${(v * 40) / max}"/>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="60" height="40">${bars}</svg>`;
}
fs.mkdirSync('charts', { recursive: true });
fs.writeFileSync('charts/sales.svg', svg(totals));
// A 1x1 PNG, as bytes.
fs.writeFileSync('charts/dot.png', Uint8Array.from(atob('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='), (c) => c.charCodeAt(0)));
fs.readdirSync('charts')
"""


def notebook(language, cells, mode):
    async def body():
        base = tempfile.mkdtemp()
        async with Client(server(policy(base)), mode=mode) as c:
            parse, aggregate, chart = cells
            _, s = await call(c, parse, language, session="new", files={"sales.csv": CSV})
            assert s["status"] == "ok", s
            assert s["result"] == 5
            session = s["session"]
            assert session["call"] == 1 and session["fresh"] is True, session
            sid = session["id"]
            _, s = await call(c, aggregate, language, session=sid)
            assert s["status"] == "ok", s
            assert s["result"] == {"Oslo": 24, "Lima": 16, "Kyiv": 12}
            assert s["session"]["call"] == 2 and s["session"]["fresh"] is False
            r, s = await call(c, chart, language, session=sid)
            assert s["status"] == "ok", s
            files = {f["path"]: f for f in s["files"]}
            assert "/workspace/charts/sales.svg" in files, files
            svg = files["/workspace/charts/sales.svg"]
            assert svg["media_type"] == "image/svg+xml"
            pngs = [f for f in s["files"] if f["media_type"] == "image/png"]
            assert len(pngs) == 1, files
            # The PNG comes back as an image a person sees; the SVG as a link to a resource.
            images = [b for b in r.content if b.type == "image"]
            assert len(images) == 1 and images[0].mime_type == "image/png"
            png = base64.b64decode(images[0].data)
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            assert hashlib.sha256(png).hexdigest() == pngs[0]["sha256"]
            links = [b for b in r.content if b.type == "resource_link"]
            assert [link.uri for link in links] == [svg["uri"]]
            # Both are resources of the session, readable while it lives.
            listed = {res.uri: res for res in (await c.list_resources()).resources}
            assert svg["uri"] in listed and pngs[0]["uri"] in listed
            assert listed[svg["uri"]].name == "/workspace/charts/sales.svg"
            assert listed[pngs[0]["uri"]].mime_type == "image/png"
            text = (await c.read_resource(svg["uri"])).contents[0]
            assert text.text.startswith("<svg") and text.mime_type == "image/svg+xml"
            blob = (await c.read_resource(pngs[0]["uri"])).contents[0]
            assert hashlib.sha256(base64.b64decode(blob.blob)).hexdigest() == pngs[0]["sha256"]
            assert len(workspaces(base)) == 1
            mine = json.loads((await c.read_resource("warden://sessions")).contents[0].text)
            assert [(m["id"], m["calls"]) for m in mine] == [(sid, 3)], mine
            _, s = await call(c, "1", language, session=sid, session_action="close")
            assert s["status"] == "ok" and s["session"]["expires_in_s"] == 0, s
            assert workspaces(base) == [], "a closed session's workspace is removed"
            _, s = await call(c, "1", language, session=sid)
            assert s["status"] == "invalid_arguments" and "no such session" in s["error"]["message"]
            assert [r.uri for r in (await c.list_resources()).resources] == ["warden://sessions"]
            assert json.loads((await c.read_resource("warden://sessions")).contents[0].text) == []

    asyncio.run(body())


@pytest.mark.parametrize("mode", MODES)
def test_a_python_notebook_keeps_state_files_and_returns_charts(mode):
    notebook("python", (PY_PARSE, PY_AGGREGATE, PY_CHART), mode)


@pytest.mark.parametrize("mode", MODES)
def test_a_typescript_notebook_keeps_state_files_and_returns_charts(mode):
    notebook("typescript", (TS_PARSE, TS_AGGREGATE, TS_CHART), mode)


def test_reset_and_a_trap_lose_the_state_but_keep_the_workspace():
    audit = Path(tempfile.mkdtemp()) / "audit.jsonl"

    async def body():
        base = tempfile.mkdtemp()
        extra = f'[audit]\npath = "{audit}"\n'
        async with Client(server(extra + policy(base)), mode="legacy") as c:
            for language, setup, probe, spin in [
                ("python", "x = 1\nopen('keep.txt','w').write('kept')", "'x' in globals(), open('keep.txt').read()", "while True: pass"),
                ("javascript", "var x = 1; fs.writeFileSync('keep.txt', 'kept')", "[typeof x !== 'undefined', fs.readFileSync('keep.txt', 'utf8')]", "while (true) {}"),
            ]:
                _, s = await call(c, setup, language, session="new")
                sid = s["session"]["id"]
                _, s = await call(c, probe, language, session=sid)
                assert s["result"] == [True, "kept"], s
                _, s = await call(c, probe, language, session=sid, session_action="reset")
                assert s["result"] == [False, "kept"], s
                assert s["session"]["fresh"] is True
                await call(c, setup, language, session=sid)
                _, s = await call(c, spin, language, session=sid, timeout_ms=200)
                assert s["status"] == "timeout" and s["session"]["restarted"] is True, s
                _, s = await call(c, probe, language, session=sid)
                assert s["result"] == [False, "kept"], s
                assert s["session"]["fresh"] is True and s["session"]["restarted"] is False
                await call(c, "0", language, session=sid, session_action="close")

    asyncio.run(body())
    # Every step of a session's life is an audit event, tied to the session and the call.
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    lives = [(e["action"], e["reason"] if e["action"] == "restart" else None)
             for e in events if e["event"] == "code_session"]
    assert lives == [("open", None), ("reset", None), ("restart", "timeout"), ("close", None)] * 2, lives
    assert all(e["request_id"].startswith("r-") for e in events if e["event"] == "code_session")


def test_quotas_are_ordinary_errors_in_the_guest():
    async def body():
        base = tempfile.mkdtemp()
        async with Client(server(policy(base)), mode="legacy") as c:
            _, s = await call(c, """
import errno
try:
    open('big.bin', 'wb').write(b'x' * 100001)
except OSError as e:
    code = errno.errorcode[e.errno]
import os
code, os.path.getsize('big.bin')
""", "python")
            # Refused where it is written, though the file is never closed; nothing half-written.
            assert s["result"] == ["EFBIG", 0], s
            _, s = await call(c, """
let codes = [];
for (let i = 0; i < 3; i++) {
  try { fs.writeFileSync('f' + i, 'x'.repeat(90000)); } catch (e) { codes.push(e.code); }
}
[codes, fs.readdirSync('.').length]
""")
            assert s["result"] == [["ENOSPC"], 2], s

    asyncio.run(body())


def test_a_call_without_a_session_gets_its_files_back_and_leaves_nothing():
    async def body():
        base = tempfile.mkdtemp()
        async with Client(server(policy(base)), mode="legacy") as c:
            r, s = await call(c, "open('out.txt','w').write(open('in.txt').read().upper())", "python",
                              files={"in.txt": "hello", "raw.bin": {"base64": "AAEC"}})
            assert s["status"] == "ok" and "session" not in s, s
            assert [f["path"] for f in s["files"]] == ["/workspace/out.txt"]
            embedded = [b for b in r.content if b.type == "resource"]
            assert embedded[0].resource.text == "HELLO", embedded
            assert workspaces(base) == []
            _, s = await call(c, "import os\nos.listdir('.')", "python")
            assert s["result"] == [], "a new call's scratch workspace is empty"
            _, s = await call(c, "fs.writeFileSync('b.bin', 'AAEC/w==', 'base64'); "
                              "const raw = fs.readFileSync('b.bin'); "
                              "[fs.readFileSync('b.bin', 'hex'), fs.readFileSync('b.bin', 'base64'), "
                              "raw instanceof Uint8Array, [...raw]]")
            assert s["result"] == ["000102ff", "AAEC/w==", True, [0, 1, 2, 255]], s
            assert s["files"][0]["size"] == 4
            _, s = await call(c, "1", "python", files={"../escape.txt": "x"})
            assert s["status"] == "invalid_arguments" and "files.../escape.txt" in s["error"]["message"], s

    asyncio.run(body())


@pytest.mark.parametrize("mode", MODES)
def test_a_session_is_no_such_session_to_another_grant(mode):
    base = tempfile.mkdtemp()
    grants = f"""
[grants.py]
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
[grants.narrow]
token_sha256 = "{hashlib.sha256(OTHER.encode()).hexdigest()}"
"""

    async def body():
        with http_server(policy(base) + grants) as url:
            async with client(url, TOKEN, mode) as mine, client(url, OTHER, mode) as theirs:
                _, s = await call(mine, "var secret = 42; fs.writeFileSync('s.txt', 'x')", session="new")
                sid = s["session"]["id"]
                _, s = await call(theirs, "secret", session=sid)
                assert s["status"] == "invalid_arguments", s
                forged = "s-" + "0" * 32
                _, f = await call(theirs, "1", session=forged)
                assert s["error"]["message"].replace(sid, "ID") == f["error"]["message"].replace(forged, "ID")
                listed = (await theirs.list_resources()).resources
                assert [r.uri for r in listed] == ["warden://sessions"], listed
                theirs_listing = (await theirs.read_resource("warden://sessions")).contents[0].text
                assert json.loads(theirs_listing) == []
                uri = f"warden://sessions/{sid}/files/s.txt"
                with pytest.raises(Exception) as refused:
                    await theirs.read_resource(uri)
                assert "no such resource" in str(refused.value)
                _, s = await call(mine, "secret", session=sid)
                assert s["result"] == 42, s

    asyncio.run(body())
