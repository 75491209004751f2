// Castellan's passkey pages: enrolment (create) and sign-in (get). Served from /static/passkeys.js
// so that the pages' Content-Security-Policy can forbid inline scripts.
"use strict";

function fromB64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function say(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "muted";
}

async function enrol(token) {
  const start = await postJson("/webauthn/register/start", { token });
  const options = start.options.publicKey;
  options.challenge = fromB64url(options.challenge);
  options.user.id = fromB64url(options.user.id);
  options.excludeCredentials = (options.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  // Discoverable, so that sign-in needs no user name.
  options.authenticatorSelection = { ...(options.authenticatorSelection || {}), residentKey: "required", requireResidentKey: true };
  const credential = await navigator.credentials.create({ publicKey: options });
  const finish = await postJson("/webauthn/register/finish", {
    ceremony: start.ceremony,
    token,
    credential: {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults(),
      response: {
        attestationObject: toB64url(credential.response.attestationObject),
        clientDataJSON: toB64url(credential.response.clientDataJSON),
      },
    },
  });
  window.location.assign(finish.next);
}

async function signIn(flow) {
  const start = await postJson("/webauthn/login/start", {});
  const options = start.options.publicKey;
  options.challenge = fromB64url(options.challenge);
  options.allowCredentials = (options.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  const credential = await navigator.credentials.get({ publicKey: options });
  const finish = await postJson("/webauthn/login/finish", {
    ceremony: start.ceremony,
    flow: flow || null,
    credential: {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      extensions: credential.getClientExtensionResults(),
      response: {
        authenticatorData: toB64url(credential.response.authenticatorData),
        clientDataJSON: toB64url(credential.response.clientDataJSON),
        signature: toB64url(credential.response.signature),
        userHandle: credential.response.userHandle ? toB64url(credential.response.userHandle) : null,
      },
    },
  });
  window.location.assign(finish.next);
}

function wire(id, action) {
  const button = document.getElementById(id);
  if (!button) return;
  button.addEventListener("click", async () => {
    button.disabled = true;
    say("Waiting for your passkey…", false);
    try {
      await action(button.dataset);
    } catch (error) {
      say(`That did not work: ${error.message}`, true);
      button.disabled = false;
    }
  });
}

wire("passkey-enrol", (data) => enrol(data.token));
wire("passkey-signin", (data) => signIn(data.flow));
// Tells automation (and nothing else) that the buttons are wired.
document.body.dataset.ready = "1";
