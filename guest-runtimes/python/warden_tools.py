"""Tools from code: `tools.<server>.<tool>(**arguments)` calls a tool of an upstream MCP server
through the host, which applies the policy to every call (src/service/tools.rs has the
protocol). A tool's error raises ToolError; a policy refusal raises ToolDenied."""

import json

_REFUSALS = {"denied", "rate_limited", "budget", "approval_required", "approval_declined"}


class ToolError(Exception):
    """A tool call that gave no result: `kind` says why (`tool_error`, `not_found`,
    `timeout`, `failed`, `too_large`, ...), `rule` names the policy rule when there is one."""

    def __init__(self, answer):
        super().__init__(answer.get("message", "the tool call failed"))
        self.kind = answer.get("kind", "failed")
        self.rule = answer.get("rule")
        self.retry_after_ms = answer.get("retry_after_ms")


class ToolDenied(ToolError):
    """The policy refused the call (denied, rate limited, over the run's budget...)."""


def _request(call, request):
    answer = json.loads(call(json.dumps(request)))
    if not answer.get("ok"):
        raise (ToolDenied if answer.get("kind") in _REFUSALS else ToolError)(answer)
    return answer.get("value")


class _Tool:
    __slots__ = ("_call", "_server", "_name")

    def __init__(self, call, server, name):
        self._call, self._server, self._name = call, server, name

    def __call__(self, arguments=None, /, **keywords):
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError("a tool takes keyword arguments (or one dict of them)")
        merged = dict(arguments or {}, **keywords)
        return _request(
            self._call,
            {"op": "call", "server": self._server, "tool": self._name, "arguments": merged},
        )

    def __repr__(self):
        return f"<tool {self._server}.{self._name}>"


class _Server:
    __slots__ = ("_call", "_name")

    def __init__(self, call, name):
        self._call, self._name = call, name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Tool(self._call, self._name, name)

    __getitem__ = __getattr__

    def __repr__(self):
        return f"<tools of {self._name}>"


class Tools:
    """`tools.<server>.<tool>(...)`; `tools.search(query)` and `tools.describe("server.tool")`
    to find out what exists (only what this caller may use)."""

    ToolError = ToolError
    ToolDenied = ToolDenied

    def __init__(self, call):
        object.__setattr__(self, "_call", call)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Server(self._call, name)

    __getitem__ = __getattr__

    def __setattr__(self, name, value):
        raise AttributeError("tools is read-only")

    def search(self, query=""):
        return _request(self._call, {"op": "search", "query": str(query)})

    def describe(self, name):
        return _request(self._call, {"op": "describe", "name": str(name)})

    def __repr__(self):
        return "<tools: tools.search(query), tools.describe('server.tool')>"


def install(call):
    import builtins

    builtins.tools = Tools(call)
    builtins.ToolError = ToolError
    builtins.ToolDenied = ToolDenied
