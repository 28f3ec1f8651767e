// Browser device enrolment and confirmation with WebAuthn (docs/web.md), loaded as a module file:
// the pages' CSP allows no inline script. A form marked data-webauthn="enrol" posts its code for
// registration options, asks this machine's authenticator for a new credential
// (navigator.credentials.create) and posts it back; data-webauthn="confirm" asks for an assertion
// (navigator.credentials.get) and posts it, which binds the session to the device. Every request
// carries the page's CSRF token in the X-CSRF-Token header. The server checks everything.
"use strict";

const say = (form, message) => {
  const status = form.parentElement.querySelector(".webauthn-status");
  if (status) status.textContent = message;
};

const csrf = (form) => {
  const field = form.querySelector('input[name="csrf_token"]');
  return field instanceof HTMLInputElement ? field.value : "";
};

async function post(url, form, body, type) {
  const headers = { "X-CSRF-Token": csrf(form), Accept: "application/json" };
  if (type) headers["Content-Type"] = type;
  const answer = await fetch(url, { method: "POST", headers, body, credentials: "same-origin" });
  let data = {};
  try {
    data = await answer.json();
  } catch {
    data = { error: `the server answered ${answer.status}` };
  }
  if (!answer.ok) throw new Error(data.error || `the server answered ${answer.status}`);
  return data;
}

async function enrol(form) {
  const code = new FormData(form).get("code") || "";
  const options = await post("/devices/enrol/options", form, new URLSearchParams({ code }),
    "application/x-www-form-urlencoded");
  say(form, "Follow your authenticator's prompt…");
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  const credential = await navigator.credentials.create({ publicKey });
  const done = await post("/devices/enrol/finish", form, JSON.stringify(credential.toJSON()),
    "application/json");
  say(form, `This browser is now enrolled as device ${done.device_id}. Sign out and sign in again, then confirm the device on the home page.`);
}

async function confirm(form) {
  const options = await post("/devices/confirm/options", form, "", "application/json");
  say(form, "Follow your authenticator's prompt…");
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  const credential = await navigator.credentials.get({ publicKey });
  await post("/devices/confirm/finish", form, JSON.stringify(credential.toJSON()), "application/json");
  window.location.assign("/");
}

for (const form of document.querySelectorAll("form[data-webauthn]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    say(form, "Working…");
    try {
      if (!window.PublicKeyCredential) throw new Error("this browser does not support WebAuthn");
      await (form.dataset.webauthn === "enrol" ? enrol(form) : confirm(form));
    } catch (error) {
      say(form, `Not done: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      if (button) button.disabled = false;
    }
  });
}
