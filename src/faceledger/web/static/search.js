// The search pages' module (a file: the CSP allows no inline script). On the new-search form:
// galleries offered only for the chosen purpose, the justification marked required where the
// policy says so, the probe taken by drag and drop as well as the file picker, and the probe
// edits (crop, rotate, brightness, contrast) previewed on a canvas and written, in order, into the
// hidden "edits" field the server applies and records. On the results and faces pages: the
// face boxes drawn over the probe. The form works without this file (no edits, no preview).
"use strict";

const form = document.getElementById("search-form");
if (form instanceof HTMLFormElement) {
  setUpPurposes(form);
  setUpProbe(form);
}
for (const box of document.querySelectorAll(".probe-figure .face-box[data-box]")) {
  drawBox(box);
}

function setUpPurposes(form) {
  const radios = [...form.querySelectorAll('input[name="purpose"]')];
  const justification = form.querySelector("#justification");
  const update = () => {
    const chosen = radios.find((r) => r.checked);
    const allowed = chosen ? chosen.dataset.galleries.split(" ") : null;
    for (const label of form.querySelectorAll("label.gallery")) {
      const box = label.querySelector("input");
      const ok = allowed === null || allowed.includes(label.dataset.gallery);
      label.hidden = !ok;
      box.disabled = !ok;
      if (!ok) box.checked = false;
    }
    if (justification) justification.required = chosen?.dataset.justification === "required";
  };
  for (const r of radios) r.addEventListener("change", update);
  update();
}

function setUpProbe(form) {
  const input = form.querySelector("#probe");
  const zone = form.querySelector("#dropzone");
  const editor = form.querySelector("#editor");
  const source = form.querySelector("#source-canvas");
  const preview = form.querySelector("#preview-canvas");
  const field = form.querySelector("#edits");
  const summary = form.querySelector("#edit-summary");
  const crop = ["left", "top", "right", "bottom"].map((k) => form.querySelector(`#crop-${k}`));
  const rotate = form.querySelector("#rotate");
  const brightness = form.querySelector("#brightness");
  const contrast = form.querySelector("#contrast");
  let image = null;

  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (!file) return;
    // An ImageBitmap, not a blob: URL (the CSP's img-src does not allow blob:); turned upright
    // by its EXIF orientation, as the server decodes it, so crop coordinates mean the same there.
    createImageBitmap(file, { imageOrientation: "from-image" }).then(
      (bitmap) => { image = bitmap; reset(); editor.hidden = false; },
      () => {
        image = null;
        editor.hidden = true;
        field.value = "";
        summary.textContent = "This file cannot be previewed here; it can still be searched as it is.";
      },
    );
  });

  const reset = () => {
    crop[0].value = 0; crop[1].value = 0;
    crop[2].value = image.width; crop[3].value = image.height;
    for (const c of crop) c.max = c === crop[0] || c === crop[2] ? image.width : image.height;
    rotate.value = 0; brightness.value = 1; contrast.value = 1;
    render();
  };
  form.querySelector("#reset-edits").addEventListener("click", () => { if (image) reset(); });
  for (const c of [...crop, rotate, brightness, contrast]) c.addEventListener("input", () => image && render());

  // Drag a rectangle on the source canvas to crop (in the photo's own pixels).
  let start = null;
  const at = (e) => {
    const r = source.getBoundingClientRect();
    const scale = image.width / r.width;
    return [Math.round((e.clientX - r.left) * scale), Math.round((e.clientY - r.top) * scale)];
  };
  source.addEventListener("pointerdown", (e) => { if (image) { start = at(e); source.setPointerCapture(e.pointerId); } });
  source.addEventListener("pointermove", (e) => {
    if (!start) return;
    const [x, y] = at(e);
    setCrop(Math.min(start[0], x), Math.min(start[1], y), Math.max(start[0], x), Math.max(start[1], y));
  });
  source.addEventListener("pointerup", () => { start = null; });

  const setCrop = (l, t, r, b) => {
    const w = image.width, h = image.height;
    const v = [Math.max(0, l), Math.max(0, t), Math.min(w, r), Math.min(h, b)];
    if (v[2] - v[0] < 16 || v[3] - v[1] < 16) return; // the service refuses less than 16 px a side
    crop.forEach((c, i) => { c.value = v[i]; });
    render();
  };

  const edits = () => {
    const out = [];
    const [l, t, r, b] = crop.map((c) => Number.parseInt(c.value, 10));
    const w = image.width, h = image.height;
    if ([l, t, r, b].every(Number.isFinite) && (l > 0 || t > 0 || r < w || b < h)) {
      out.push({ kind: "crop", params: { left: l, top: t, right: r, bottom: b } });
    }
    const degrees = Number.parseFloat(rotate.value);
    if (Number.isFinite(degrees) && degrees % 360 !== 0) out.push({ kind: "rotate", params: { degrees } });
    const factor = Number.parseFloat(brightness.value);
    if (Number.isFinite(factor) && factor !== 1) out.push({ kind: "brightness", params: { factor } });
    const stretch = Number.parseFloat(contrast.value);
    if (Number.isFinite(stretch) && stretch !== 1) out.push({ kind: "contrast", params: { factor: stretch } });
    return out;
  };

  const render = () => {
    const list = edits();
    field.value = list.length ? JSON.stringify(list) : "";
    summary.textContent = list.length
      ? "Edits: " + list.map((e) => `${e.kind} ${Object.values(e.params).join(",")}`).join("; ")
      : "No edits.";
    const w = image.width, h = image.height;
    source.width = w; source.height = h;
    const sc = source.getContext("2d");
    sc.drawImage(image, 0, 0);
    const [l, t, r, b] = crop.map((c) => Number.parseInt(c.value, 10));
    sc.strokeStyle = "#ffbf00"; sc.lineWidth = Math.max(2, w / 200);
    sc.strokeRect(l, t, r - l, b - t);
    // Preview: crop, then rotate counter-clockwise (the canvas turns clockwise), then brightness and contrast.
    const cw = Math.max(1, r - l), ch = Math.max(1, b - t);
    const rad = (-(Number.parseFloat(rotate.value) || 0) * Math.PI) / 180;
    const pw = Math.ceil(Math.abs(cw * Math.cos(rad)) + Math.abs(ch * Math.sin(rad)));
    const ph = Math.ceil(Math.abs(cw * Math.sin(rad)) + Math.abs(ch * Math.cos(rad)));
    preview.width = pw; preview.height = ph;
    const pc = preview.getContext("2d");
    pc.fillStyle = "rgb(128,128,128)"; pc.fillRect(0, 0, pw, ph);
    // The canvas filters approximate the server's arithmetic (which is what is searched and recorded).
    pc.filter = `brightness(${Number.parseFloat(brightness.value) || 1}) contrast(${Number.parseFloat(contrast.value) || 1})`;
    pc.translate(pw / 2, ph / 2); pc.rotate(rad);
    pc.drawImage(image, l, t, cw, ch, -cw / 2, -ch / 2, cw, ch);
  };
}

function drawBox(box) {
  const img = box.closest(".probe-figure").querySelector("img");
  const [l, t, r, b] = box.dataset.box.split(" ").map(Number);
  const place = () => {
    const w = img.naturalWidth, h = img.naturalHeight;
    if (!w || !h) return;
    box.style.left = `${(100 * l) / w}%`;
    box.style.top = `${(100 * t) / h}%`;
    box.style.width = `${(100 * (r - l)) / w}%`;
    box.style.height = `${(100 * (b - t)) / h}%`;
    box.hidden = false;
  };
  if (img.complete) place(); else img.addEventListener("load", place);
}
