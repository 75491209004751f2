"""The full MCP client path: the official Python SDK's OAuth client (mcp 2.x, `OAuthClientProvider`)
finds Castellan's authorization server on its own and calls a tool.

Usage: oauth_mcp_sdk.py JOB_JSON, prints one JSON report for integration-tests/tests/oauth_clients.rs.

    JOB: {"enrolment_link": "...",
          "endpoints": [{"url": "{public_url}/mcp", "tool": "customers__list_customers", "mode": "auto",
                         "call_again_after": 2.5}, ...]}

`mode` is the SDK's connection mode: "auto" (2026-07-28, stateless) or "legacy" (initialize and a
session, which adds the GET stream and the closing DELETE, all carrying the token).

`call_again_after` (optional): wait that many seconds (past the access token's lifetime, on a daemon
with a short `identity.access_token_ttl`) and call the tool again: the SDK refreshes first.

For each endpoint a fresh SDK client starts with no token: its first request gets a 401, it reads
the protected resource metadata named in `WWW-Authenticate`, then the authorization server metadata,
registers itself (RFC 7591), and hands the authorization URL to `redirect_handler`. That handler
drives headless Chromium (a passkey enrolled first, so the person is signed in) through consent; the
browser lands on a loopback HTTP server on the client's redirect URI, which hands code, state and
`iss` to `callback_handler`. The SDK redeems the code and retries, then the tool is called.
Every HTTP exchange the SDK makes is recorded (method, path, status) so the test can check the order.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import Browser, find_chromium  # noqa: E402
from passkey_browser import authorize, enrol  # noqa: E402

STEP_TIMEOUT = 20


class MemoryStorage:
    """The SDK's TokenStorage protocol, in memory: every run starts unregistered and without tokens."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class CallbackServer:
    """A loopback HTTP server standing in for the native app's redirect URI. Each authorization
    waits on `expect()`; the browser's GET to `/callback?code=...&state=...&iss=...` resolves it."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pending: asyncio.Future | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def expect(self) -> asyncio.Future:
        self.pending = asyncio.get_running_loop().create_future()
        return self.pending

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode(errors="replace")
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing in them matters here
            target = request_line.split(" ")[1] if " " in request_line else "/"
            parsed = urlparse(target)
            if parsed.path == "/callback" and self.pending is not None and not self.pending.done():
                self.pending.set_result({name: values[0] for name, values in parse_qs(parsed.query).items()})
            body = b"<!doctype html><title>Done</title><p>You may close this tab.</p>"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def run_endpoint(page, callbacks: CallbackServer, endpoint: dict) -> dict:
    url, tool, call_again_after = endpoint["url"], endpoint["tool"], endpoint.get("call_again_after")
    exchanges: list[dict] = []
    authorization_urls: list[str] = []
    callback_parameters: list[dict] = []
    storage = MemoryStorage()
    arrival: dict[str, asyncio.Future] = {}

    async def record(response: httpx2.Response) -> None:
        exchange = {"method": response.request.method, "path": response.request.url.path,
                    "status": response.status_code}
        if response.request.url.path.endswith("/token"):
            exchange["grant_type"] = parse_qs(response.request.content.decode()).get("grant_type", [None])[0]
        exchanges.append(exchange)

    async def redirect_handler(authorization_url: str) -> None:
        authorization_urls.append(authorization_url)
        arrival["callback"] = callbacks.expect()
        ended = await authorize(page, authorization_url, callbacks.redirect_uri)
        if ended["error_page"]:
            raise RuntimeError(f"the authorization ended on an error page: {ended['error_page']}")

    async def callback_handler() -> AuthorizationCodeResult:
        parameters = await asyncio.wait_for(arrival["callback"], STEP_TIMEOUT)
        callback_parameters.append({name: value for name, value in parameters.items() if name != "code"})
        return AuthorizationCodeResult(code=parameters["code"], state=parameters.get("state"),
                                       iss=parameters.get("iss"))

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(client_name="MCP SDK test client",
                                            redirect_uris=[callbacks.redirect_uri]),
        storage=storage, redirect_handler=redirect_handler, callback_handler=callback_handler)
    http = httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(STEP_TIMEOUT),
                              event_hooks={"response": [record]})
    report: dict = {"url": url}
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode=endpoint.get("mode", "auto"),
                          cache=None) as client:
            report["protocol_version"] = client.protocol_version
            listed = await client.list_tools()
            report["tools"] = [listed_tool.name for listed_tool in listed.tools]
            result = await client.call_tool(tool, {})
            report["call"] = {"is_error": result.is_error, "structured": result.structured_content}
            if call_again_after is not None:
                first_refresh_token = storage.tokens.refresh_token if storage.tokens else None
                await asyncio.sleep(call_again_after)
                again = await client.call_tool(tool, {})
                report["call_after_expiry"] = {
                    "is_error": again.is_error,
                    "refresh_token_rotated": storage.tokens is not None
                    and storage.tokens.refresh_token != first_refresh_token,
                }
    await page.goto("about:blank")
    report["exchanges"] = exchanges
    report["authorization_requests"] = [
        {name: values[0] for name, values in parse_qs(urlparse(sent).query).items()
         if name in ("response_type", "client_id", "scope", "resource", "code_challenge_method", "redirect_uri")}
        | {"endpoint": urlparse(sent)._replace(query="").geturl()}
        for sent in authorization_urls]
    report["callbacks"] = callback_parameters
    report["registered_client_id"] = storage.client.client_id if storage.client else None
    report["token_scope"] = storage.tokens.scope if storage.tokens else None
    report["has_refresh_token"] = bool(storage.tokens and storage.tokens.refresh_token)
    return report


async def main(job: dict) -> dict:
    callbacks = CallbackServer()
    await callbacks.start()
    try:
        async with Browser.launch(find_chromium()) as browser:
            page = await browser.new_page()
            await page.add_virtual_authenticator()
            await enrol(page, job["enrolment_link"])
            runs = [await run_endpoint(page, callbacks, endpoint) for endpoint in job["endpoints"]]
    finally:
        await callbacks.close()
    return {"runs": runs}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
