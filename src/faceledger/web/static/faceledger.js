// faceledger's own script for its pages (loaded as a file: the CSP allows no inline script).
// Every htmx request that changes something carries the page's CSRF token as the X-CSRF-Token
// header, read from the page's hidden csrf_token field; the pages work without this file.
"use strict";
document.addEventListener("htmx:configRequest", (event) => {
  const field = document.querySelector('input[name="csrf_token"]');
  if (field instanceof HTMLInputElement && event.detail.verb !== "get") {
    event.detail.headers["X-CSRF-Token"] = field.value;
  }
});
// A button marked data-print prints the page (the print stylesheet drops the navigation).
document.addEventListener("click", (event) => {
  const target = event.target;
  if (target instanceof Element && target.closest("[data-print]")) {
    window.print();
  }
});
