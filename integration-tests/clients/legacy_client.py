"""A real MCP client (the official Python SDK, 1.x: session revisions only) driving Castellan.

Usage: legacy_client.py URL TOKEN PREFIX
PREFIX is "everything__" on the aggregated endpoint and "" on /mcp/everything.
Prints one JSON object with what it saw; the Rust test asserts on it and on the audit trail.
"""

import asyncio
import json
import sys

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError


async def on_sampling(context, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    asked = params.messages[0].content.text if params.messages else ""
    return types.CreateMessageResult(
        role="assistant",
        model="loopback-model",
        stopReason="endTurn",
        content=types.TextContent(type="text", text=f"Paris (asked: {asked})"),
    )


async def on_elicitation(context, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True, "email": "ada@example.com"})


def text_of(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def main(url: str, token: str, prefix: str) -> dict:
    report: dict = {}
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30.0, read=60.0))
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(
                read, write, sampling_callback=on_sampling, elicitation_callback=on_elicitation
            ) as session:
                init = await session.initialize()
                report["protocol_version"] = init.protocolVersion
                report["server_name"] = init.serverInfo.name
                names, cursor = [], None
                while True:
                    page = await session.list_tools(cursor=cursor)
                    names += [tool.name for tool in page.tools]
                    cursor = page.nextCursor
                    if cursor is None:
                        break
                report["tools"] = names

                summed = await session.call_tool(f"{prefix}get-sum", {"a": 2, "b": 3})
                report["sum"] = {"text": text_of(summed), "is_error": summed.isError}

                progress: list = []

                async def on_progress(value, total, message):
                    progress.append([value, total])

                long_run = await session.call_tool(
                    f"{prefix}trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress
                )
                report["long_running"] = {"text": text_of(long_run), "progress": progress}

                sampled = await session.call_tool(f"{prefix}trigger-sampling-request", {"prompt": "capital of France?"})
                report["sampling"] = {"text": text_of(sampled), "is_error": sampled.isError}

                elicited = await session.call_tool(f"{prefix}trigger-elicitation-request", {})
                report["elicitation"] = {"text": text_of(elicited), "is_error": elicited.isError}

                try:
                    unknown = await session.call_tool(f"{prefix}no-such-tool", {})
                    report["unknown_tool"] = {"is_error": unknown.isError, "text": text_of(unknown)}
                except McpError as error:
                    report["unknown_tool"] = {"code": error.error.code, "message": error.error.message}

                resources = await session.list_resources()
                report["resource_count"] = len(resources.resources)
                if resources.resources:
                    first = resources.resources[0]
                    content = await session.read_resource(first.uri)
                    report["resource_read"] = {"uri": str(first.uri), "parts": len(content.contents)}
                prompts = await session.list_prompts()
                report["prompts"] = [prompt.name for prompt in prompts.prompts]
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))))
