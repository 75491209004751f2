"""Drives a federated browser sign-in in headless Chromium, for the federation tests.

An OAuth client's authorization request opens Castellan's sign-in page; this clicks the link of a
federated issuer (`#federated-N`), lets the issuer (the fake issuer auto-approves) send the browser
back to Castellan's callback, answers Castellan's consent page, and stops when the browser reaches
the client's redirect URI: `passkey_browser.authorize` with the federated link in place of the
passkey button; no authenticator is involved.

Reads a JSON job on stdin and prints one JSON result:

    {"authorize": "<url>", "callback": "<redirect uri prefix>", "link": "federated-0",
     "decision": "allow"}
    -> {"url": "<where it ended>", "error_page": "<text>" | null, "navigations": [...]}
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import Browser, find_chromium  # noqa: E402
from passkey_browser import authorize  # noqa: E402


async def run(job: dict) -> dict:
    async with Browser.launch(find_chromium()) as browser:
        page = await browser.new_page()
        result = await authorize(page, job["authorize"], job["callback"], job.get("decision", "allow"),
                                 sign_in=job.get("link", "federated-0"))
        return {**result, "navigations": page.navigations}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))
