"""Drives Castellan's browser pages in headless Chromium with a virtual passkey authenticator.

As a library (for the other clients): `enrol(page, link)` creates a passkey through an enrolment
link; `authorize(page, url, callback_prefix, decision)` follows an authorization request through
sign-in and consent until the browser reaches the client's redirect URI (or an error page) and
returns where it ended (and the consent page's text, if one was shown).

As a program: reads a JSON job on stdin and prints one JSON result, for the Rust tests:

    {"enrol": "<enrolment link>" | null,
     "steps": [{"authorize": "<url>", "callback": "<redirect uri prefix>", "decision": "allow",
                "fresh_session": false}],
     "sign_out": "<home page URL>" | null,    (signs out there at the end, reporting the cookie it had)
     "probe": "<URL>" | null}                 (fetched with that cookie just before signing out)
    -> {"credentials": [...], "results": [{"url": "...", "error_page": "<text>" | null, "consent": "<text>" | null}]}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import Browser, BrowserError, CDPError, JSError, find_chromium  # noqa: E402


async def enrol(page, link: str) -> None:
    """Opens the enrolment link, creates a passkey, and waits for the signed-in home page."""
    await page.goto(link)
    await page.wait_for("document.querySelector('#passkey-enrol') !== null && document.body.dataset.ready === '1'")
    await page.evaluate("document.querySelector('#passkey-enrol').click()")
    await page.wait_for("document.querySelector('#signed-in') !== null || "
                        "(document.querySelector('#status') || {}).className === 'error'", timeout=15)
    signed_in = await page.evaluate("document.querySelector('#signed-in') !== null")
    if not signed_in:
        status = await page.evaluate("document.querySelector('#status').textContent")
        raise BrowserError(f"enrolment failed: {status}\n{page.console_text()}")


async def clear_session(page) -> None:
    await page.send("Network.clearBrowserCookies")


# Which page the tab is on: Castellan's sign-in page (with its sign-in control wired), its consent
# page, an error page, or anything else (a redirect in flight, an external issuer).
PAGE_STATE = """(() => {{
  if (document.querySelector('#{sign_in}') && document.body.dataset.ready === '1') return 'login';
  if (document.querySelector('#allow')) return 'consent';
  const h = document.querySelector('h1');
  if (h && h.textContent.includes('cannot continue')) return 'error';
  return 'other';
}})()"""


async def authorize(page, url: str, callback: str, decision: str = "allow", timeout: float = 20.0,
                    sign_in: str = "passkey-signin") -> dict:
    """Follows an authorization URL: on the sign-in page clicks `#sign_in` (the passkey button, or a
    federated issuer's link such as `federated-0`), answers the consent page, and returns
    {"url": final URL, "error_page": text or None, "consent": consent page text or None}."""
    try:
        await page.goto(url)
    except BrowserError:
        pass  # the redirect to a callback nobody serves "fails"; the URL is what matters
    deadline = time.monotonic() + timeout
    clicked_signin = clicked_consent = False
    consent_text = None
    seen = len(page.navigations)
    while time.monotonic() < deadline:
        # A redirect to a callback that nobody serves ends on an error page of another origin, so
        # look at the committed navigations as well as the current URL.
        for url in page.navigations[seen:]:
            if url.startswith(callback):
                return {"url": url, "error_page": None, "consent": consent_text}
        try:
            current = await page.url()
        except CDPError:
            await asyncio.sleep(0.05)
            continue
        if current.startswith(callback):
            return {"url": current, "error_page": None, "consent": consent_text}
        try:
            state = ("other" if current.startswith("chrome-error")
                     else await page.evaluate(PAGE_STATE.format(sign_in=sign_in)))
        except (CDPError, JSError):
            state = "other"
        if state == "error":
            text = await page.evaluate("document.body.innerText")
            return {"url": current, "error_page": text, "consent": consent_text}
        if state == "login" and not clicked_signin:
            clicked_signin = True
            await page.evaluate(f"document.querySelector('#{sign_in}').click()")
        elif state == "consent" and not clicked_consent:
            clicked_consent = True
            consent_text = await page.evaluate("document.body.innerText")
            await page.evaluate(f"document.querySelector('#{'allow' if decision == 'allow' else 'deny'}').click()")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"authorization did not reach {callback}; at {await page.url()}\n{page.console_text()}")


async def run(job: dict) -> dict:
    async with Browser.launch(find_chromium()) as browser:
        page = await browser.new_page()
        await page.send("Network.enable")
        await page.add_virtual_authenticator()
        if job.get("enrol"):
            await enrol(page, job["enrol"])
        results = []
        for step in job.get("steps", []):
            if step.get("fresh_session"):
                await clear_session(page)
            results.append(await authorize(page, step["authorize"], step["callback"], step.get("decision", "allow")))
            if not results[-1]["error_page"]:
                # Leave the unreachable callback's error page before the next request.
                await page.goto("about:blank")
        session = probe_before = None
        if job.get("sign_out"):
            cookies = (await page.send("Network.getCookies"))["cookies"]
            session = next((c["value"] for c in cookies if c["name"] == "castellan_session"), None)
            if job.get("probe"):
                # The same cookie presented elsewhere (another replica) before signing out.
                request = urllib.request.Request(job["probe"], headers={"Cookie": f"castellan_session={session}"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    probe_before = "Signed in as" in response.read().decode()
            await page.goto(job["sign_out"])
            await page.wait_for("document.querySelector('#sign-out') !== null")
            await page.evaluate("document.querySelector('#sign-out').click()")
            await page.wait_for("document.querySelector('#signed-in') === null && document.querySelector('h1') !== null")
        credentials = await page.credentials()
        return {
            "session_cookie": session,
            "probe_signed_in_before_sign_out": probe_before,
            "credentials": [{"rpId": c.get("rpId"), "resident": c.get("isResidentCredential"),
                             "signCount": c.get("signCount")} for c in credentials],
            "results": results,
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))
