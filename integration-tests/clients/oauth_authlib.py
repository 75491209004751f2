"""Castellan's authorization server driven by OAuth client code that is not ours.

Usage: oauth_authlib.py MODE JOB_JSON, prints one JSON report; the Rust tests in
integration-tests/tests/oauth_clients.rs assert on it (and on /mcp and the audit trail).

MODE
  code                authlib's OAuth2Session runs the authorization code flow with PKCE (S256) and
                      `resource` for a confidential client; a passkey is enrolled and used in headless
                      Chromium; then refresh (rotation), introspection, revocation.
                      JOB: issuer, client_id, client_secret, redirect_uri, enrolment_link
  client-credentials  authlib fetches a client-credentials token; the JWT is decoded, and verified
                      against the JWKS with PyJWT (EdDSA) and with authlib's RFC 9068 validator;
                      a second token is revoked by itself.
                      JOB: issuer, client_id, client_secret
  passkey             no OAuth library at all: the browser enrols, forgets its session, signs in with
                      the passkey on the login page, consents; plain `requests` redeems the code for
                      a public client.
                      JOB: issuer, client_id, redirect_uri, enrolment_link
  metadata            the discovery documents through authlib's RFC 8414 validator, the RFC 9207
                      `iss` of an error redirect, and the `iss` of a client-credentials token.
                      JOB: issuer, client_id, client_secret, code_client_id, redirect_uri

Every endpoint is taken from the RFC 8414 document, as a client would, never assumed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oauth2.rfc9068 import token_validator as rfc9068_token_validator
from joserfc import jwt as joserfc_jwt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import Browser, find_chromium  # noqa: E402
from passkey_browser import authorize, clear_session, enrol  # noqa: E402

HTTP_TIMEOUT = 10


def metadata(issuer: str) -> dict:
    response = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response.json()


def callback_parameters(url: str) -> dict:
    """The query of a redirect to the client, one value per name."""
    return {name: values[0] for name, values in parse_qs(urlparse(url).query).items()}


def mcp_status(issuer: str, access_token: str) -> dict:
    """What /mcp answers to an initialize request carrying `access_token`."""
    response = requests.post(
        f"{issuer}/mcp",
        headers={
            "Authorization": f"Bearer {access_token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "oauth-authlib-test", "version": "0"}}}),
        timeout=HTTP_TIMEOUT,
    )
    return {"status": response.status_code, "www_authenticate": response.headers.get("www-authenticate")}


def mcp_status_until(issuer: str, access_token: str, status: int, limit: float = 3.0) -> dict:
    """Polls /mcp until it answers `status` or `limit` seconds pass; returns the last answer."""
    deadline = time.monotonic() + limit
    while True:
        answer = mcp_status(issuer, access_token)
        if answer["status"] == status or time.monotonic() >= deadline:
            return answer
        time.sleep(0.1)


def oauth_error(call) -> str | None:
    """Runs a token request expected to fail; returns the OAuth error code (None if it succeeded)."""
    try:
        call()
    except OAuthError as error:
        return error.error
    return None


class DocumentRequests:
    """Every top-level document request a tab makes (redirect hops included), as "METHOD /path", from
    the DevTools Network domain: which pages the person was shown, without touching the flow.
    `mark()` starts a new segment; `since_mark()` returns it."""

    def __init__(self, page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.start = 0
        page.browser.connection.add_listener(self._on_event)

    def _on_event(self, method: str, params: dict, session_id) -> None:
        if session_id == self.page.session_id and method == "Network.requestWillBeSent" \
                and params.get("type") == "Document":
            request = params.get("request", {})
            self.requests.append(f"{request.get('method')} {urlparse(request.get('url', '')).path}")

    def mark(self) -> None:
        self.start = len(self.requests)

    def since_mark(self) -> list[str]:
        return self.requests[self.start:]


async def observed_page(browser):
    """A tab with the Network domain on, a virtual authenticator, and a DocumentRequests log."""
    page = await browser.new_page()
    await page.send("Network.enable")
    await page.add_virtual_authenticator()
    return page, DocumentRequests(page)


def token_summary(token: dict) -> dict:
    return {name: token.get(name) for name in ("token_type", "expires_in", "scope")} | {
        "has_refresh_token": bool(token.get("refresh_token"))}


# ------------------------------------------------------------------------------------------------
# code


async def authorization_round(session: OAuth2Session, page, documents: DocumentRequests, document: dict,
                              job: dict) -> dict:
    """One authorization request through the browser and its code exchange; returns the callback
    parameters, the state authlib generated, the token and the pages the browser requested."""
    resource = f"{job['issuer']}/mcp"
    verifier = secrets.token_urlsafe(64)
    url, state = session.create_authorization_url(
        document["authorization_endpoint"], code_verifier=verifier, resource=resource)
    documents.mark()
    ended = await authorize(page, url, job["redirect_uri"])
    if ended["error_page"]:
        raise RuntimeError(f"the authorization ended on an error page: {ended['error_page']}")
    pages = documents.since_mark()
    await page.goto("about:blank")  # leave the unserved callback's error page
    query = parse_qs(urlparse(url).query)
    token = session.fetch_token(document["token_endpoint"], authorization_response=ended["url"], state=state,
                                code_verifier=verifier, resource=resource)
    return {"callback": callback_parameters(ended["url"]), "state": state, "token": token, "pages": pages,
            "request": {name: values[0] for name, values in query.items() if name != "code_challenge"}}


async def code_flow(job: dict) -> dict:
    issuer = job["issuer"]
    document = metadata(issuer)
    session = OAuth2Session(job["client_id"], job["client_secret"], scope="mcp:tools offline_access",
                            redirect_uri=job["redirect_uri"], code_challenge_method="S256")
    report: dict = {}
    async with Browser.launch(find_chromium()) as browser:
        page, documents = await observed_page(browser)
        await enrol(page, job["enrolment_link"])
        first = await authorization_round(session, page, documents, document, job)
        # The second request for the same client and scopes needs no consent: a new grant (family)
        # whose access token the Rust test uses on /mcp after this script revoked the first family.
        second = await authorization_round(session, page, documents, document, job)
    report["request"] = first["request"]
    report["pages"] = first["pages"]
    callback = first["callback"]
    report["callback"] = {"iss": callback.get("iss"), "state_matches": callback.get("state") == first["state"],
                          "has_code": bool(callback.get("code"))}
    token = first["token"]
    report["token"] = token_summary(token)

    refreshed = session.refresh_token(document["token_endpoint"], refresh_token=token["refresh_token"])
    report["refresh"] = token_summary(refreshed) | {
        "refresh_token_rotated": refreshed["refresh_token"] != token["refresh_token"],
        "access_token_new": refreshed["access_token"] != token["access_token"],
    }
    introspected = session.introspect_token(document["introspection_endpoint"], token=refreshed["access_token"],
                                            token_type_hint="access_token")
    report["introspection"] = {"status": introspected.status_code, "body": introspected.json()}
    live = session.introspect_token(document["introspection_endpoint"], token=refreshed["refresh_token"],
                                    token_type_hint="refresh_token")
    report["introspection_of_refresh_token"] = live.json()
    userinfo = requests.get(document["userinfo_endpoint"], timeout=HTTP_TIMEOUT,
                            headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    report["userinfo"] = {"status": userinfo.status_code, "body": userinfo.json()}
    spent = session.introspect_token(document["introspection_endpoint"], token=token["refresh_token"],
                                     token_type_hint="refresh_token")
    report["introspection_of_spent_refresh_token"] = spent.json()
    report["mcp_before_revocation"] = mcp_status(issuer, refreshed["access_token"])

    revoked = session.revoke_token(document["revocation_endpoint"], token=refreshed["refresh_token"],
                                   token_type_hint="refresh_token")
    report["revocation_status"] = revoked.status_code
    report["refresh_after_revocation"] = oauth_error(
        lambda: session.refresh_token(document["token_endpoint"], refresh_token=refreshed["refresh_token"]))
    report["mcp_after_revocation"] = mcp_status_until(issuer, refreshed["access_token"], 401)
    report["mcp_first_access_token_after_revocation"] = mcp_status_until(issuer, token["access_token"], 401)
    after = session.introspect_token(document["introspection_endpoint"], token=refreshed["access_token"],
                                     token_type_hint="access_token")
    report["introspection_after_revocation"] = after.json()

    report["second_grant"] = {"iss": second["callback"].get("iss"), "pages": second["pages"],
                              "token": token_summary(second["token"])}
    report["access_token"] = second["token"]["access_token"]
    return report


# ------------------------------------------------------------------------------------------------
# client-credentials


def verified_claims(token: str, jwks: dict, issuer: str, audience: str) -> dict:
    """Verifies the signature with the JWKS key named by `kid` (PyJWT, EdDSA only) and the standard
    claims; raises on any failure."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(entry) for entry in jwks["keys"] if entry.get("kid") == kid)
    return jwt.decode(token, key.key, algorithms=["EdDSA"], audience=audience, issuer=issuer,
                      options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]})


def tampered(token: str) -> str:
    """The same token with one claim changed and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tier"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def rfc9068_check(token: str, jwks: dict, issuer: str, audience: str) -> str | None:
    """authlib's RFC 9068 resource-server validator on the token: None if it accepts it, else why.

    joserfc (under authlib) refuses the polymorphic `EdDSA` algorithm name by default since RFC 9864
    deprecated it for `Ed25519`; the validator has no parameter for that, so its decoder is given
    an explicit allow-list naming the one algorithm Castellan signs with. Every other check (typ,
    iss, aud, exp, required claims) is authlib's own."""

    class EdDSADecoder:
        @staticmethod
        def decode(value, key):
            return joserfc_jwt.decode(value, key, algorithms=["EdDSA"])

    class Validator(JWTBearerTokenValidator):
        def get_jwks(self):
            return jwks

    original = rfc9068_token_validator.jwt
    rfc9068_token_validator.jwt = EdDSADecoder
    try:
        claims = Validator(issuer=issuer, resource_server=audience).authenticate_token(token)
        claims.validate(now=int(time.time()))
    except Exception as error:  # the validator raises several unrelated exception types
        return f"{type(error).__name__}: {error}"
    finally:
        rfc9068_token_validator.jwt = original
    return None


def client_credentials(job: dict) -> dict:
    issuer = job["issuer"]
    document = metadata(issuer)
    audience = f"{issuer}/mcp"
    session = OAuth2Session(job["client_id"], job["client_secret"], scope="mcp:tools")
    token = session.fetch_token(document["token_endpoint"], grant_type="client_credentials")
    access_token = token["access_token"]
    jwks = requests.get(document["jwks_uri"], timeout=HTTP_TIMEOUT).json()
    report = {
        "token": token_summary(token),
        "header": jwt.get_unverified_header(access_token),
        "claims": jwt.decode(access_token, options={"verify_signature": False}),
        "jwks_key_types": [[entry.get("kty"), entry.get("crv"), entry.get("alg")] for entry in jwks["keys"]],
    }
    report["verified_claims"] = verified_claims(access_token, jwks, issuer, audience)
    try:
        verified_claims(tampered(access_token), jwks, issuer, audience)
        report["tampered_token_rejected"] = False
    except jwt.InvalidSignatureError:
        report["tampered_token_rejected"] = True
    report["rfc9068_validator_error"] = rfc9068_check(access_token, jwks, issuer, audience)
    introspected = session.introspect_token(document["introspection_endpoint"], token=access_token,
                                            token_type_hint="access_token")
    report["introspection"] = {"status": introspected.status_code, "body": introspected.json()}
    # A second token, revoked on its own (RFC 7009 with an access token, not a refresh token): the
    # first one, left alone, is what the Rust test calls /mcp with.
    doomed = session.fetch_token(document["token_endpoint"], grant_type="client_credentials")["access_token"]
    before = mcp_status(issuer, doomed)["status"]
    revoked = session.revoke_token(document["revocation_endpoint"], token=doomed, token_type_hint="access_token")
    report["revoked_access_token"] = {
        "mcp_before": before,
        "revocation_status": revoked.status_code,
        "mcp_after": mcp_status_until(issuer, doomed, 401)["status"],
        "introspection_after": session.introspect_token(document["introspection_endpoint"], token=doomed,
                                                        token_type_hint="access_token").json(),
    }
    report["access_token"] = access_token
    return report


# ------------------------------------------------------------------------------------------------
# passkey


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def credential_summary(credentials: list) -> list:
    return [{"rpId": c.get("rpId"), "resident": c.get("isResidentCredential"), "signCount": c.get("signCount")}
            for c in credentials]


async def passkey_sign_in(job: dict) -> dict:
    issuer = job["issuer"]
    document = metadata(issuer)
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = document["authorization_endpoint"] + "?" + urlencode({
        "response_type": "code", "client_id": job["client_id"], "redirect_uri": job["redirect_uri"],
        "scope": "mcp:tools", "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
        "resource": f"{issuer}/mcp"})
    report: dict = {}
    async with Browser.launch(find_chromium()) as browser:
        page, documents = await observed_page(browser)
        await enrol(page, job["enrolment_link"])
        report["credentials_after_enrolment"] = credential_summary(await page.credentials())
        await clear_session(page)
        documents.mark()
        ended = await authorize(page, url, job["redirect_uri"])
        report["pages"] = documents.since_mark()
        report["credentials_after_sign_in"] = credential_summary(await page.credentials())
    if ended["error_page"]:
        raise RuntimeError(f"the authorization ended on an error page: {ended['error_page']}")
    callback = callback_parameters(ended["url"])
    report["callback"] = {"iss": callback.get("iss"), "state_matches": callback.get("state") == state}
    exchanged = requests.post(document["token_endpoint"], data={
        "grant_type": "authorization_code", "code": callback["code"], "redirect_uri": job["redirect_uri"],
        "client_id": job["client_id"], "code_verifier": verifier, "resource": f"{issuer}/mcp"},
        timeout=HTTP_TIMEOUT)
    report["exchange_status"] = exchanged.status_code
    body = exchanged.json()
    report["token"] = token_summary(body)
    report["access_token"] = body.get("access_token")
    return report


# ------------------------------------------------------------------------------------------------
# metadata


def discovery(job: dict) -> dict:
    issuer = job["issuer"]
    report: dict = {"documents": {}}
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = requests.get(issuer + path, timeout=HTTP_TIMEOUT)
        document = response.json()
        try:
            AuthorizationServerMetadata(document).validate()
            error = None
        except ValueError as failure:
            error = str(failure)
        report["documents"][path] = {"status": response.status_code, "content_type": response.headers.get(
            "content-type"), "issuer": document.get("issuer"), "rfc8414_error": error, "document": document}
    document = metadata(issuer)
    # An authorization request that fails after the client and redirect URI are known comes back to
    # the client, with `iss` (RFC 9207) like a success would.
    _, challenge = pkce_pair()
    refused = requests.get(document["authorization_endpoint"], params={
        "response_type": "code", "client_id": job["code_client_id"], "redirect_uri": job["redirect_uri"],
        "state": "s1", "code_challenge": challenge, "code_challenge_method": "plain"},
        allow_redirects=False, timeout=HTTP_TIMEOUT)
    report["error_redirect"] = {"status": refused.status_code,
                                "parameters": callback_parameters(refused.headers.get("location", ""))}
    session = OAuth2Session(job["client_id"], job["client_secret"])
    token = session.fetch_token(document["token_endpoint"], grant_type="client_credentials")
    report["token_iss"] = jwt.decode(token["access_token"], options={"verify_signature": False})["iss"]
    return report


def main(mode: str, job: dict) -> dict:
    if mode == "code":
        return asyncio.run(code_flow(job))
    if mode == "client-credentials":
        return client_credentials(job)
    if mode == "passkey":
        return asyncio.run(passkey_sign_in(job))
    if mode == "metadata":
        return discovery(job)
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
