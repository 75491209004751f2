"""A small async Chrome DevTools Protocol (CDP) driver for Castellan's browser tests.

The passkey and federation tests need a real browser: Castellan's sign-in and enrolment pages call
`navigator.credentials.create/get`, and a CDP virtual authenticator answers them without hardware
(docs/identity-notes.md, section 6.3). This module is that browser, with one dependency
(`websockets`, pinned in the py2 venv) and no Playwright or browser download: it runs the Chromium
that scripts/install-test-deps.sh puts at `.tools/bin/chromium`.

It is a library for the other Python test clients (they `sys.path.insert` this directory):

    from browser import Browser, find_chromium

    async with Browser.launch(find_chromium()) as browser:
        page = await browser.new_page()
        await page.add_virtual_authenticator()
        await page.goto("http://localhost:8080/login")
        await page.evaluate("document.querySelector('#signin').click()")
        await page.wait_for_url(lambda url: "/oauth/authorize" in url)
        print(await page.credentials())

On a failure, print `page.console_text()` (console messages, uncaught exceptions, browser log
entries) and `browser.stderr_tail()`.

Passkeys need a host name: serve the pages on `http://localhost:PORT`, not `127.0.0.1`
(Chromium rejects WebAuthn on an IP address with "This is an invalid domain").

Protocol notes: every message to the browser carries a fresh integer `id`; the browser answers with
the same `id` (a result or an error), and sends events (`method` without `id`). Page commands travel
on a flat session (`Target.attachToTarget` with `flatten: true`), named by `sessionId` in both
directions. One reader task per connection resolves the futures of pending commands and hands
events to listeners.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional, Union

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# Flags for a quiet, self-contained headless browser. --no-sandbox: Chromium refuses to start as
# root without it, and containers often lack the user namespaces its sandbox needs.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)

DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://\S+)")


class BrowserError(Exception):
    """Chromium did not start, went away, or the DevTools connection failed."""


class CDPError(Exception):
    """The browser answered a command with an error."""

    def __init__(self, method: str, error: dict):
        self.method = method
        self.code = error.get("code")
        self.error_message = error.get("message", "")
        detail = f" ({error['data']})" if error.get("data") else ""
        super().__init__(f"{method}: {self.error_message}{detail} [code {self.code}]")


class JSError(Exception):
    """A script run by `Page.evaluate` threw, or the promise it returned rejected."""


def find_chromium() -> str:
    """The Chromium the tests use: $CASTELLAN_CHROMIUM, else <tools>/bin/chromium where <tools> is
    $CASTELLAN_TOOLS_DIR or the repository's .tools (see scripts/install-test-deps.sh)."""
    if os.environ.get("CASTELLAN_CHROMIUM"):
        return os.environ["CASTELLAN_CHROMIUM"]
    repo = Path(__file__).resolve().parents[2]
    tools = Path(os.environ.get("CASTELLAN_TOOLS_DIR") or repo / ".tools")
    return str(tools / "bin" / "chromium")


# ------------------------------------------------------------------------------------------------
# The DevTools connection


Listener = Callable[[str, dict, Optional[str]], None]  # (method, params, sessionId)


class Connection:
    """One DevTools WebSocket: numbered commands, replies matched to futures, events to listeners."""

    def __init__(self, ws):
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future]] = {}
        self._listeners: list[Listener] = []
        self._closed: Optional[BaseException] = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> "Connection":
        # proxy=None: never route the loopback DevTools socket through an http(s)_proxy from the
        # environment; max_size=None: screenshots and big DOMs exceed the 1 MiB default.
        ws = await connect(url, max_size=None, max_queue=None, proxy=None, ping_interval=None,
                           open_timeout=10)
        return cls(ws)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def send(self, method: str, params: Optional[dict] = None, session_id: Optional[str] = None,
                   timeout: float = 30.0) -> dict:
        """Sends a command and returns its `result` (raises CDPError on an error reply)."""
        if self._closed is not None:
            raise BrowserError(f"{method}: the DevTools connection is closed ({self._closed})")
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = (method, future)
        try:
            await self._ws.send(json.dumps(message))
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{method}: no answer from the browser within {timeout}s") from None
        except ConnectionClosed as e:
            raise BrowserError(f"{method}: the DevTools connection closed ({e})") from None
        finally:
            self._pending.pop(msg_id, None)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    method, future = self._pending.pop(message["id"], (None, None))
                    if future is None or future.done():
                        continue  # timed out already
                    if "error" in message:
                        future.set_exception(CDPError(method, message["error"]))
                    else:
                        future.set_result(message.get("result", {}))
                elif "method" in message:
                    for listener in list(self._listeners):
                        try:
                            listener(message["method"], message.get("params", {}), message.get("sessionId"))
                        except Exception as e:  # a broken listener must not stop the reader
                            print(f"browser.py: listener for {message['method']} failed: {e!r}")
            self._closed = BrowserError("closed by the browser")
        except asyncio.CancelledError:
            self._closed = BrowserError("closed")
            raise
        except Exception as e:
            self._closed = e
        finally:
            for method, future in list(self._pending.values()):
                if not future.done():
                    future.set_exception(BrowserError(f"{method}: the DevTools connection closed ({self._closed})"))
            self._pending.clear()

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        with contextlib.suppress(Exception):
            await self._ws.close()


# ------------------------------------------------------------------------------------------------
# The browser process


class Browser:
    """A headless Chromium process and its DevTools connection. Make one with `Browser.launch`."""

    def __init__(self, process: asyncio.subprocess.Process, profile: str, connection: Connection,
                 stderr_lines: collections.deque, stderr_task: asyncio.Task):
        self.process = process
        self.profile = profile
        self.connection = connection
        self.pages: list[Page] = []
        self._stderr_lines = stderr_lines
        self._stderr_task = stderr_task

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, chromium_path: Optional[str] = None, *, extra_args: tuple = (),
                     timeout: float = 30.0) -> AsyncIterator["Browser"]:
        """Starts Chromium with a fresh profile and connects to it; on exit kills Chromium's whole
        process group and deletes the profile."""
        chromium_path = chromium_path or find_chromium()
        if not (os.path.isfile(chromium_path) and os.access(chromium_path, os.X_OK)):
            raise BrowserError(f"no Chromium at {chromium_path} (run scripts/install-test-deps.sh)")
        # One temporary directory holds the profile and Chromium's TMPDIR (its singleton socket
        # directory would otherwise stay behind in /tmp after the kill); removing it removes both.
        scratch = tempfile.mkdtemp(prefix="castellan-chromium-")
        profile = os.path.join(scratch, "profile")
        os.mkdir(os.path.join(scratch, "tmp"))
        env = {**os.environ, "TMPDIR": os.path.join(scratch, "tmp")}
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra_args, "about:blank"]
        stderr_lines: collections.deque = collections.deque(maxlen=200)
        process = None
        stderr_task = None
        connection = None
        try:
            # A session of its own, so that killing the group also ends the zygote and renderers.
            process = await asyncio.create_subprocess_exec(
                chromium_path, *args, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
            url_future = asyncio.get_running_loop().create_future()
            # Keeps reading stderr for the whole run: a full pipe would block Chromium.
            stderr_task = asyncio.get_running_loop().create_task(
                _drain_stderr(process.stderr, stderr_lines, url_future))
            try:
                url = await asyncio.wait_for(url_future, timeout)
            except asyncio.TimeoutError:
                raise BrowserError(f"Chromium printed no DevTools URL within {timeout}s; stderr tail:\n"
                                   + _tail(stderr_lines)) from None
            if url is None:
                await _wait_quietly(process, 2)
                raise BrowserError(f"Chromium exited (status {process.returncode}) before printing its "
                                   "DevTools URL; stderr tail:\n" + _tail(stderr_lines))
            connection = await Connection.open(url)
            browser = cls(process, profile, connection, stderr_lines, stderr_task)
            yield browser
        finally:
            if connection is not None:
                await connection.close()
            if process is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await _wait_quietly(process, 10)
            if stderr_task is not None:
                stderr_task.cancel()
                with contextlib.suppress(BaseException):
                    await stderr_task
            shutil.rmtree(scratch, ignore_errors=True)

    def stderr_tail(self, lines: int = 40) -> str:
        """The last lines Chromium wrote to stderr (for failure reports)."""
        return _tail(self._stderr_lines, lines)

    async def send(self, method: str, params: Optional[dict] = None, timeout: float = 30.0) -> dict:
        """A browser-level command (no session)."""
        return await self.connection.send(method, params, timeout=timeout)

    async def new_page(self, url: str = "about:blank") -> "Page":
        """Opens a tab, attaches a flat session to it and enables the Page, Runtime and Log domains."""
        target_id = (await self.send("Target.createTarget", {"url": url}))["targetId"]
        session_id = (await self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True}))["sessionId"]
        page = Page(self, target_id, session_id)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Log.enable")
        self.pages.append(page)
        return page


async def _drain_stderr(stream: asyncio.StreamReader, lines: collections.deque,
                        url_future: asyncio.Future) -> None:
    while True:
        raw = await stream.readline()
        if not raw:
            if not url_future.done():
                url_future.set_result(None)  # exited before printing the URL
            return
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        match = DEVTOOLS_LINE.search(line)
        if match and not url_future.done():
            url_future.set_result(match.group(1))


async def _wait_quietly(process: asyncio.subprocess.Process, timeout: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
        await asyncio.wait_for(process.wait(), timeout)


def _tail(lines: collections.deque, count: int = 40) -> str:
    return "\n".join(list(lines)[-count:]) or "(nothing)"


# ------------------------------------------------------------------------------------------------
# A tab


UrlPredicate = Union[str, Callable[[str], bool]]


class Page:
    """One tab, driven over its own flat session. Made by `Browser.new_page`."""

    def __init__(self, browser: Browser, target_id: str, session_id: str):
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id
        # Console messages, uncaught exceptions, browser log entries and dialogs, in order; print
        # them (console_text()) when a test fails.
        self.console: list[str] = []
        # Every URL the main frame committed (including error pages, under the URL that failed).
        self.navigations: list[str] = []
        self.authenticator_id: Optional[str] = None
        self._waiters: list[tuple[str, Callable[[dict], bool], asyncio.Future]] = []
        browser.connection.add_listener(self._on_event)

    async def send(self, method: str, params: Optional[dict] = None, timeout: float = 30.0) -> dict:
        """A command on this tab's session."""
        return await self.browser.connection.send(method, params, self.session_id, timeout)

    # -- events

    def _on_event(self, method: str, params: dict, session_id: Optional[str]) -> None:
        if session_id != self.session_id:
            return
        if method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_object_text(arg) for arg in params.get("args", []))
            self.console.append(f"console.{params.get('type', 'log')}: {text}")
        elif method == "Runtime.exceptionThrown":
            self.console.append(f"uncaught: {_exception_text(params.get('exceptionDetails', {}))}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            where = f" ({entry['url']})" if entry.get("url") else ""
            self.console.append(f"log.{entry.get('level', '?')}: {entry.get('text', '')}{where}")
        elif method == "Page.frameNavigated":
            frame = params.get("frame", {})
            if not frame.get("parentId"):
                self.navigations.append(frame.get("unreachableUrl") or frame.get("url", ""))
        elif method == "Page.navigatedWithinDocument":
            self.navigations.append(params.get("url", ""))
        elif method == "Page.javascriptDialogOpening":
            # An open alert/confirm blocks the page's scripts: note it and accept it.
            self.console.append(f"dialog.{params.get('type')}: {params.get('message')}")
            asyncio.get_running_loop().create_task(self._dismiss_dialog())
        for waiter in list(self._waiters):
            wanted, predicate, future = waiter
            if wanted == method and not future.done():
                try:
                    if predicate(params):
                        future.set_result(params)
                except Exception as e:
                    future.set_exception(e)

    async def _dismiss_dialog(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Page.handleJavaScriptDialog", {"accept": True})

    def expect_event(self, method: str, predicate: Optional[Callable[[dict], bool]] = None) -> asyncio.Future:
        """A future for the next `method` event on this tab (whose params satisfy `predicate`).
        Create it before the action that triggers the event; `await asyncio.wait_for(f, t)` it."""
        future = asyncio.get_running_loop().create_future()
        waiter = (method, predicate or (lambda _params: True), future)
        self._waiters.append(waiter)
        future.add_done_callback(lambda _f: self._waiters.remove(waiter) if waiter in self._waiters else None)
        return future

    def console_text(self) -> str:
        return "\n".join(self.console) or "(no console output)"

    # -- navigation

    async def goto(self, url: str, timeout: float = 15.0) -> None:
        """Navigates and waits for the load event. Raises BrowserError if the navigation fails
        outright, for example connection refused, also at the end of redirects (an OAuth redirect
        to a callback nobody serves: catch it and look at `url()` / `wait_for_url`)."""
        loaded = self.expect_event("Page.loadEventFired")
        try:
            result = await self.send("Page.navigate", {"url": url}, timeout=timeout)
            if result.get("errorText"):
                raise BrowserError(f"navigating to {url}: {result['errorText']}")
            if "loaderId" not in result:
                return  # same-document navigation (only the fragment changed): no load event
            await asyncio.wait_for(loaded, timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"{url} did not finish loading within {timeout}s") from None
        finally:
            loaded.cancel()

    async def url(self) -> str:
        """The URL of the tab's current history entry (also while a new page is loading, and the
        attempted URL when loading failed)."""
        history = await self.send("Page.getNavigationHistory")
        return history["entries"][history["currentIndex"]]["url"]

    async def wait_for_url(self, predicate: UrlPredicate, timeout: float = 15.0) -> str:
        """Waits until the tab is at, or has committed a navigation to since this call, a URL for
        which `predicate(url)` is true (a string predicate matches URLs starting with it). Returns
        that URL."""
        test = (lambda u: u.startswith(predicate)) if isinstance(predicate, str) else predicate
        seen_from = len(self.navigations)
        deadline = time.monotonic() + timeout
        current = None
        while True:
            # Navigations committed since the call, then the current entry.
            for url in self.navigations[seen_from:]:
                if test(url):
                    return url
            seen_from = len(self.navigations)
            with contextlib.suppress(CDPError):
                current = await self.url()
                if test(current):
                    return current
            if time.monotonic() >= deadline:
                raise TimeoutError(f"URL still {current!r} after {timeout}s (committed meanwhile: "
                                   f"{self.navigations[-5:]})")
            await asyncio.sleep(0.1)

    # -- scripts

    async def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """Runs `expression` in the page (as if after a user gesture), awaits it if it is a promise,
        and returns its value as JSON data (None for undefined). A thrown exception or a rejected
        promise raises JSError with the JavaScript error text."""
        result = await self.send("Runtime.evaluate", {
            "expression": expression,
            "awaitPromise": True,
            "returnByValue": True,
            "userGesture": True,
        }, timeout=timeout)
        if "exceptionDetails" in result:
            raise JSError(_exception_text(result["exceptionDetails"]))
        return result.get("result", {}).get("value")

    async def wait_for(self, js_condition: str, timeout: float = 10.0, interval: float = 0.1) -> Any:
        """Evaluates `js_condition` until it is truthy and returns its value. Errors while polling
        (the page navigating away, an element not there yet) count as "not yet"."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = await self.evaluate(js_condition, timeout=max(1.0, deadline - time.monotonic()))
                if last:
                    return last
            except (JSError, CDPError, TimeoutError) as e:
                last = e
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{js_condition!r} not truthy after {timeout}s (last: {last!r})")
            await asyncio.sleep(interval)

    # -- WebAuthn

    async def add_virtual_authenticator(self, **options: Any) -> str:
        """Adds a platform-like CTAP2 authenticator to this tab (resident keys, user verification
        that always succeeds, presence simulated) and returns its id. `options` override the
        WebAuthn.VirtualAuthenticatorOptions fields."""
        await self.send("WebAuthn.enable", {"enableUI": False})
        opts = {
            "protocol": "ctap2",
            "ctap2Version": "ctap2_1",
            "transport": "internal",
            "hasResidentKey": True,
            "hasUserVerification": True,
            "isUserVerified": True,
            "automaticPresenceSimulation": True,
            **options,
        }
        self.authenticator_id = (await self.send("WebAuthn.addVirtualAuthenticator", {"options": opts}))["authenticatorId"]
        return self.authenticator_id

    async def credentials(self, authenticator_id: Optional[str] = None) -> list[dict]:
        """The credentials the authenticator holds (credentialId, isResidentCredential, rpId,
        userHandle, signCount, ...)."""
        authenticator_id = authenticator_id or self.authenticator_id
        if authenticator_id is None:
            raise BrowserError("no virtual authenticator on this page (add_virtual_authenticator first)")
        return (await self.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id}))["credentials"]

    async def close(self) -> None:
        self.browser.connection.remove_listener(self._on_event)
        with contextlib.suppress(Exception):
            await self.browser.send("Target.closeTarget", {"targetId": self.target_id})
        if self in self.browser.pages:
            self.browser.pages.remove(self)


def _remote_object_text(obj: dict) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    if "unserializableValue" in obj:
        return obj["unserializableValue"]
    preview = obj.get("preview")
    if preview and preview.get("type") == "object" and obj.get("subtype") not in ("error", "node"):
        # Objects and arrays logged to the console: show their first properties, not "Object".
        props = preview.get("properties", [])
        more = ", ..." if preview.get("overflow") else ""
        if obj.get("subtype") == "array":
            return "[" + ", ".join(p.get("value", "?") for p in props) + more + "]"
        return "{" + ", ".join(f"{p['name']}: {p.get('value', '?')}" for p in props) + more + "}"
    return obj.get("description") or obj.get("type", "?")


def _exception_text(details: dict) -> str:
    """The most useful text of a Runtime.ExceptionDetails: the error's description (name, message,
    stack), else the thrown value, else the summary."""
    exception = details.get("exception") or {}
    if exception.get("description"):
        return exception["description"]
    if "value" in exception:
        return f"{details.get('text', 'Uncaught')} {json.dumps(exception['value'])}"
    where = f" at {details.get('url', '')}:{details.get('lineNumber', '?')}" if details.get("url") else ""
    return f"{details.get('text', 'exception')}{where}"
