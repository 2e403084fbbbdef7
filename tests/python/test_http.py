"""`warden serve --http` driven by the official Python MCP SDK over Streamable HTTP, in both
connection modes ("legacy" = 2025-11-25 sessions, "auto" = 2026-07-28 stateless), with bearer
tokens naming grants."""

import asyncio
import hashlib
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from test_stdio import CACHE, MODES, WARDEN, call, server_env

TOKEN = "py-token-5c1e9a7b3d2f8046"
OTHER = "py-other-0d4b8f2a6e1c3975"

POLICY = f"""
[grants.py]
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"

[grants.narrow]
token_sha256 = "{hashlib.sha256(OTHER.encode()).hexdigest()}"
languages = ["javascript"]

[[tools.execute_code.limits]]
counter = "runs"
window = "hour"
max = 50
scope = "grant"
"""


@contextmanager
def http_server(policy=POLICY, extra=(), env=None):
    path = Path(tempfile.mkdtemp()) / "policy.toml"
    path.write_text(policy)
    proc = subprocess.Popen(
        [WARDEN, "serve", "--http", "127.0.0.1:0", "--cache-dir", CACHE, "--policy", str(path),
         *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**server_env(), **(env or {})},
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def client(url, token, mode):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"} if token else {})
    return Client(streamable_http_client(url, http_client=http), mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_python_sdk_runs_code_over_http(mode):
    async def body():
        with http_server() as url:
            async with client(url, TOKEN, mode) as c:
                _, s = await call(c, "[1, 2, 3].map(x => x * 2)")
                assert s["status"] == "ok", s
                assert s["result"] == [2, 4, 6]
                _, s = await call(c, "sum(range(10))", language="python")
                assert s["result"] == 45, s
                r, s = await call(c, "while (true) {}", timeout_ms=100)
                assert r.is_error is True and s["status"] == "timeout"

    asyncio.run(body())


@pytest.mark.parametrize("mode", MODES)
def test_a_narrow_grant_sees_and_gets_less(mode):
    async def body():
        with http_server() as url:
            async with client(url, OTHER, mode) as c:
                tools = await c.list_tools()
                schema = tools.tools[0].input_schema
                assert schema["properties"]["language"]["enum"] == ["javascript"]
                _, s = await call(c, "1", language="python")
                assert s["status"] == "denied", s
                assert s["policy"]["rule"] == "grants.narrow.languages"

    asyncio.run(body())


@pytest.mark.parametrize("token", [None, "wrong-token-000000000000"])
def test_without_a_valid_token_the_sdk_cannot_connect(token):
    async def body():
        with http_server() as url:
            with pytest.raises(Exception):
                async with client(url, token, "legacy") as c:
                    await c.list_tools()
            async with httpx2.AsyncClient() as http:
                r = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                    headers={"Authorization": f"Bearer {token}"} if token else {})
                assert r.status_code == 401
                assert r.headers["www-authenticate"].startswith("Bearer")

    asyncio.run(body())
