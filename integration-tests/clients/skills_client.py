"""The official Python MCP SDK (1.x) reading skills from Castellan's aggregated endpoint (the
skills extension, SEP-2640: `skills/list`, `skills/get` and `skill://` resources).

Usage: skills_client.py URL TOKEN FILE
FILE is the path, inside the first listed skill, of a second file to read (e.g. references/FORMS.md).
The SDK knows nothing of the skills methods: they are sent as custom requests through the session.
Prints one JSON object with what it saw; the Rust test asserts on it and on `skill_fetches`.
"""

import asyncio
import json
import sys
from typing import Any, Literal

import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl


class SkillsListRequest(types.Request[types.PaginatedRequestParams | None, Literal["skills/list"]]):
    method: Literal["skills/list"] = "skills/list"
    params: types.PaginatedRequestParams | None = None


class SkillsGetParams(types.RequestParams):
    uri: str


class SkillsGetRequest(types.Request[SkillsGetParams, Literal["skills/get"]]):
    method: Literal["skills/get"] = "skills/get"
    params: SkillsGetParams


class SkillsListResult(types.PaginatedResult):
    skills: list[dict[str, Any]]


class SkillsGetResult(types.Result):
    skill: dict[str, Any]


def error_of(error: McpError) -> dict:
    return {"code": error.error.code, "message": error.error.message}


def content_of(result: types.ReadResourceResult) -> dict:
    content = result.contents[0]
    return {
        "uri": str(content.uri),
        "mimeType": content.mimeType,
        "text": getattr(content, "text", None),
        "_meta": content.meta,
    }


async def main(url: str, token: str, file: str) -> dict:
    report: dict = {}
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30.0, read=60.0))
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                report["protocol_version"] = init.protocolVersion
                report["extensions"] = (init.capabilities.model_extra or {}).get("extensions")
                skills, cursor = [], None
                while True:
                    params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await session.send_request(SkillsListRequest(params=params), SkillsListResult)
                    skills += page.skills
                    cursor = page.nextCursor
                    if cursor is None:
                        break
                report["skills"] = skills
                first = skills[0]["uri"]
                got = await session.send_request(SkillsGetRequest(params=SkillsGetParams(uri=first)), SkillsGetResult)
                report["get"] = got.model_dump(mode="json", by_alias=True, exclude_none=True)
                report["skill_md"] = content_of(await session.read_resource(AnyUrl(first)))
                other = first.rsplit("/", 1)[0] + "/" + file
                report["reference"] = content_of(await session.read_resource(AnyUrl(other)))
                resources, cursor = [], None
                while True:
                    page = await session.list_resources(cursor=cursor)
                    resources += [resource.model_dump(mode="json", by_alias=True, exclude_none=True) for resource in page.resources]
                    cursor = page.nextCursor
                    if cursor is None:
                        break
                report["resources"] = resources
                # Skills RBAC denies: neither the manifest nor the content.
                denied = "skill://release-notes/SKILL.md"
                try:
                    await session.send_request(SkillsGetRequest(params=SkillsGetParams(uri=denied)), SkillsGetResult)
                    report["denied_get"] = "answered"
                except McpError as error:
                    report["denied_get"] = error_of(error)
                try:
                    await session.read_resource(AnyUrl(denied))
                    report["denied_read"] = "answered"
                except McpError as error:
                    report["denied_read"] = error_of(error)
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
