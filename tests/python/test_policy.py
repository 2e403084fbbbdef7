"""The policy pipeline through the official Python MCP SDK: denials, rate limits and approval
by elicitation, as a second, independent client sees them."""

import asyncio
import time

import pytest
from mcp import Client, types

from test_stdio import MODES, call, server

POLICY = """
[[tools.execute_code.rules]]
name = "no-eval"
message = "eval is not allowed"
when = [{ arg = "code", op = "contains", value = "eval(" }]

[[tools.execute_code.rules]]
name = "python-needs-approval"
message = "Python runs need a person's approval"
effect = "require_approval"
when = [{ arg = "language", op = "eq", value = "python" }]

[[tools.execute_code.limits]]
counter = "calls"
window = "hour"
max = 3
scope = "session"
"""


def answer(approve):
    async def on_elicitation(context, params):
        assert "python-needs-approval" in params.message
        if approve:
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")

    return on_elicitation


def test_denials_and_rate_limits():
    async def body():
        async with Client(server(POLICY), mode="legacy") as c:
            r, s = await call(c, "eval('1')")
            assert r.is_error is True
            assert s["status"] == "denied"
            assert s["policy"] == {"rule": "no-eval", "reason": "eval is not allowed"}
            for i in range(3):
                _, s = await call(c, f"{i}")
                assert s["status"] == "ok", s
            _, s = await call(c, "4")
            assert s["status"] == "rate_limited"
            assert s["policy"]["rule"] == "rate_limit.calls"
            assert s["policy"]["retry_after_ms"] > 0

    asyncio.run(body())


# "legacy" asks with elicitation/create during the call; "auto" negotiates 2026-07-28, where
# the call returns an InputRequiredResult and the SDK retries with the answer.
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("approve,status", [(True, "ok"), (False, "approval_declined")])
def test_approval_by_elicitation(mode, approve, status):
    async def body():
        async with Client(server(POLICY), mode=mode, elicitation_callback=answer(approve)) as c:
            _, s = await call(c, "6 * 7", language="python")
            assert s["status"] == status, s
            if approve:
                assert s["result"] == 42
            else:
                assert s["policy"]["rule"] == "python-needs-approval"

    asyncio.run(body())


@pytest.mark.parametrize("mode", MODES)
def test_approval_without_a_way_to_ask_is_denied_with_the_reason(mode):
    async def body():
        async with Client(server(POLICY), mode=mode) as c:
            _, s = await call(c, "1", language="python")
            assert s["status"] == "denied", s
            assert "approval" in s["policy"]["reason"]

    asyncio.run(body())


def test_input_required_round_by_hand():
    """The 2026-07-28 flow driven by hand: the question, the answer, a replay of the same
    answer, and a tampered state."""

    async def body():
        async with Client(server(POLICY), mode="auto", elicitation_callback=answer(True)) as c:
            args = {"language": "python", "code": "6 * 7"}
            first = await c.session.call_tool("execute_code", args, allow_input_required=True)
            assert isinstance(first, types.InputRequiredResult), first
            question = first.input_requests["approval"]
            assert "python-needs-approval" in question.params.message
            state = first.request_state
            yes = {"approval": types.ElicitResult(action="accept", content={"approve": True})}

            # The state is bound to these arguments: other code cannot ride on the approval.
            with pytest.raises(Exception, match="requestState"):
                await c.session.call_tool(
                    "execute_code",
                    {"language": "python", "code": "7 * 7"},
                    input_responses=yes,
                    request_state=state,
                    allow_input_required=True,
                )
            tampered = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
            with pytest.raises(Exception, match="requestState"):
                await c.session.call_tool(
                    "execute_code", args, input_responses=yes, request_state=tampered,
                    allow_input_required=True,
                )

            done = await c.session.call_tool(
                "execute_code", args, input_responses=yes, request_state=state,
                allow_input_required=True,
            )
            assert done.structured_content["status"] == "ok", done
            assert done.structured_content["result"] == 42

            replay = await c.session.call_tool(
                "execute_code", args, input_responses=yes, request_state=state,
                allow_input_required=True,
            )
            assert replay.structured_content["status"] == "denied"
            assert "already used" in replay.structured_content["policy"]["reason"]

    asyncio.run(body())


# PolicyLayer's recommended policy for execute_code, unchanged.
SEED = """{"version": "1", "default": "deny",
 "tools": {"execute_code": {"limits": [
   {"counter": "execute_code_rate", "window": "minute", "max": 10, "scope": "grant"}]}}}"""


def test_the_policylayer_seed_policy_allows_ten_calls_a_minute():
    async def body():
        # All eleven calls in one fixed minute window.
        into_minute = time.time() % 60
        if into_minute > 40:
            await asyncio.sleep(60.5 - into_minute)
        async with Client(server(SEED, suffix=".json"), mode="legacy") as c:
            tools = (await c.list_tools()).tools
            assert [t.name for t in tools] == ["execute_code"]
            for i in range(10):
                _, s = await call(c, f"{i} * 2")
                assert s["status"] == "ok", (i, s)
                assert s["result"] == i * 2
            r, s = await call(c, "11")
            assert r.is_error is True
            assert s["status"] == "rate_limited"
            assert s["policy"]["rule"] == "rate_limit.execute_code_rate"
            assert 0 < s["policy"]["retry_after_ms"] <= 60_000

    asyncio.run(body())


INTERCEPT = """
version: "1"
default: deny
hide: [delete_repository]
tools:
  execute_code:
    rules:
      - name: "python only"
        conditions:
          - path: "args.language"
            op: "eq"
            value: "python"
        on_deny: "Only Python here"
"""


def test_an_intercept_policy_decides_as_the_gateway():
    async def body():
        async with Client(server(INTERCEPT, suffix=".yaml"), mode="legacy") as c:
            _, s = await call(c, "1")
            assert s["status"] == "denied"
            assert s["policy"] == {"rule": "python only", "reason": "Only Python here"}
            _, s = await call(c, "6 * 7", language="python")
            assert s["status"] == "ok" and s["result"] == 42, s

    asyncio.run(body())
