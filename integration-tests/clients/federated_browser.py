"""Drives a federated browser sign-in in headless Chromium, for the federation tests.

An OAuth client's authorization request opens Castellan's sign-in page; this clicks the link of a
federated issuer (`#federated-N`), lets the issuer (the fake issuer auto-approves) send the browser
back to Castellan's callback, answers Castellan's consent page, and stops when the browser reaches
the client's redirect URI. It is `passkey_browser.authorize` with the federated link in place of
the passkey button; no authenticator is involved.

Reads a JSON job on stdin and prints one JSON result:

    {"authorize": "<url>", "callback": "<redirect uri prefix>", "link": "federated-0",
     "decision": "allow"}
    -> {"url": "<where it ended>", "error_page": "<text>" | null, "navigations": [...]}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import Browser, BrowserError, CDPError, JSError, find_chromium  # noqa: E402

# Which page the tab is on: Castellan's sign-in page (with the wanted link), its consent page, an
# error page, or anything else (a redirect in flight, the issuer).
PAGE_STATE = """(() => {{
  if (document.querySelector('#{link}')) return 'login';
  if (document.querySelector('#allow')) return 'consent';
  const h = document.querySelector('h1');
  if (h && h.textContent.includes('cannot continue')) return 'error';
  return 'other';
}})()"""


async def authorize(page, url: str, callback: str, link: str, decision: str = "allow",
                    timeout: float = 20.0) -> dict:
    try:
        await page.goto(url)
    except BrowserError:
        pass  # a redirect to a callback nobody serves "fails"; the URL is what matters
    deadline = time.monotonic() + timeout
    clicked_link = clicked_consent = False
    seen = len(page.navigations)
    while time.monotonic() < deadline:
        for committed in page.navigations[seen:]:
            if committed.startswith(callback):
                return {"url": committed, "error_page": None}
        try:
            current = await page.url()
        except CDPError:
            await asyncio.sleep(0.05)
            continue
        if current.startswith(callback):
            return {"url": current, "error_page": None}
        try:
            state = "other" if current.startswith("chrome-error") else await page.evaluate(PAGE_STATE.format(link=link))
        except (CDPError, JSError):
            state = "other"
        if state == "error":
            return {"url": current, "error_page": await page.evaluate("document.body.innerText")}
        if state == "login" and not clicked_link:
            clicked_link = True
            await page.evaluate(f"document.querySelector('#{link}').click()")
        elif state == "consent" and not clicked_consent:
            clicked_consent = True
            await page.evaluate(f"document.querySelector('#{'allow' if decision == 'allow' else 'deny'}').click()")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"authorization did not reach {callback}; at {await page.url()}\n{page.console_text()}")


async def run(job: dict) -> dict:
    async with Browser.launch(find_chromium()) as browser:
        page = await browser.new_page()
        result = await authorize(page, job["authorize"], job["callback"], job.get("link", "federated-0"),
                                 job.get("decision", "allow"))
        return {**result, "navigations": page.navigations}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))
