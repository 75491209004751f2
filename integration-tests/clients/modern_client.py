"""A real MCP client (the official Python SDK, 2.x) driving Castellan in one of its modes.

Usage: modern_client.py URL TOKEN PREFIX MODE
MODE is "legacy" (initialize and a session), "2026-07-28" (stateless) or "auto" (discover first).
Prints one JSON object with what it saw; the Rust test asserts on it and on the audit trail.
"""

import asyncio
import json
import sys

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def on_sampling(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", model="loopback-model", stop_reason="endTurn",
        content=types.TextContent(type="text", text="Paris"),
    )


async def on_elicitation(context, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True, "email": "ada@example.com"})


def text_of(result) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def main(url: str, token: str, prefix: str, mode: str) -> dict:
    report: dict = {}
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0, read=60.0))
    async with http:
        async with Client(
            streamable_http_client(url, http_client=http), mode=mode, cache=None,
            sampling_callback=on_sampling, elicitation_callback=on_elicitation,
        ) as client:
            report["protocol_version"] = client.protocol_version
            names, cursor = [], None
            while True:
                page = await client.list_tools(cursor=cursor)
                names += [tool.name for tool in page.tools]
                cursor = page.next_cursor
                if cursor is None:
                    break
            report["tools"] = names
            summed = await client.call_tool(f"{prefix}get-sum", {"a": 2, "b": 3})
            report["sum"] = {"text": text_of(summed), "is_error": summed.is_error}

            progress: list = []

            async def on_progress(value, total, message):
                progress.append([value, total])

            long_run = await client.call_tool(
                f"{prefix}trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress
            )
            report["long_running"] = {"text": text_of(long_run), "progress": progress}

            sampled = await client.call_tool(f"{prefix}trigger-sampling-request", {"prompt": "capital of France?"})
            report["sampling"] = {"text": text_of(sampled), "is_error": sampled.is_error}
            elicited = await client.call_tool(f"{prefix}trigger-elicitation-request", {})
            report["elicitation"] = {"text": text_of(elicited), "is_error": elicited.is_error}

            if prefix:
                customer = await client.call_tool("customers__get_customer", {"id": 1})
                report["customer"] = {"structured": customer.structured_content, "is_error": customer.is_error}
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]))))
