"""The MCP tasks extension (SEP-2663, `io.modelcontextprotocol/tasks`) on the client side, for
the official Python SDK, which does not implement it yet (mcp 2.3): the extension's wire shapes
as SDK models, its three methods, and a `ClientExtension` that declares it and, through the
SDK's claim hook, turns a task back into the tool's result by polling (what a client that
supports tasks does for its user). The tests also drive the methods one by one."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, RequestParams, Result

TASKS = "io.modelcontextprotocol/tasks"


class _Task(Result):
    """The task's own fields (both answers carry them)."""

    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class TaskHandle(_Task):
    """What `tools/call` answers when the server runs the call as a task."""

    result_type: Literal["task"]


class DetailedTask(_Task):
    """`tasks/get`: the task, with its questions, result or error inlined."""

    result_type: str | None = None
    input_requests: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class Ack(Result):
    result_type: str | None = None


class TaskIdParams(RequestParams):
    task_id: str


class UpdateParams(RequestParams):
    task_id: str
    input_responses: dict[str, Any]


class GetTask(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class UpdateTask(Request[UpdateParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    name_param = "taskId"


class CancelTask(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param = "taskId"


TERMINAL = ("completed", "failed", "cancelled")


async def start(client, arguments: dict, name: str = "execute_code"):
    """Calls the tool and returns what came back: a `TaskHandle`, or a `CallToolResult` when
    the server answered at once."""
    return await client.session.call_tool(name, arguments, allow_claimed=True)


async def get(client, task_id: str) -> DetailedTask:
    return await client.session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), DetailedTask)


async def update(client, task_id: str, responses: dict) -> Ack:
    request = UpdateTask(params=UpdateParams(task_id=task_id, input_responses=responses))
    return await client.session.send_request(request, Ack)


async def cancel(client, task_id: str) -> Ack:
    return await client.session.send_request(CancelTask(params=TaskIdParams(task_id=task_id)), Ack)


async def wait(client, task_id: str, until=TERMINAL, timeout: float = 60, seen: list | None = None):
    """Polls `tasks/get` (at the interval the server asks for) until the status is in `until`;
    every status message seen goes into `seen`."""
    with anyio.fail_after(timeout):
        while True:
            task = await get(client, task_id)
            if seen is not None and task.status_message and task.status_message not in seen:
                seen.append(task.status_message)
            if task.status in until:
                return task
            await anyio.sleep((task.poll_interval_ms or 200) / 1000)


async def _resolve(handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
    """A client's transparent path: poll the task to its end and hand back the tool result."""

    class _Client:
        session = ctx.session

    task = await wait(_Client, handle.task_id, timeout=3600)
    if task.status == "completed":
        return CallToolResult.model_validate(task.result)
    raise RuntimeError(f"task {handle.task_id} ended {task.status}: {task.error}")


class Tasks(ClientExtension):
    """Declares the tasks extension on every request; `Client.call_tool` then returns the
    task's result once it ended."""

    identifier = TASKS

    def claims(self):
        return (ResultClaim(result_type="task", model=TaskHandle, resolve=_resolve),)
