// The comparison viewer (templates/compare.html): the probe and one candidate with synchronised
// zoom and pan, side by side, overlaid with an opacity slider, wiped, or flickered. Every control
// is a labelled button, radio or slider, and the page's keyboard shortcuts are listed on it.
// Loaded as a module file: the pages' CSP allows no inline script.

const root = document.querySelector("[data-compare]");

if (root instanceof HTMLElement) {
  start(root);
}

/** @param {HTMLElement} root */
function start(root) {
  const stages = /** @type {HTMLElement} */ (root.querySelector(".compare-stages"));
  const probeStage = /** @type {HTMLElement} */ (root.querySelector(".pane-probe .stage"));
  const candidateStage = /** @type {HTMLElement} */ (root.querySelector(".pane-candidate .stage"));
  const probe = /** @type {HTMLImageElement} */ (root.querySelector("img.probe"));
  const candidate = /** @type {HTMLImageElement} */ (root.querySelector("img.candidate"));
  const zoom = /** @type {HTMLInputElement} */ (root.querySelector("#zoom"));
  const opacity = /** @type {HTMLInputElement} */ (root.querySelector("#opacity"));
  const wipe = /** @type {HTMLInputElement} */ (root.querySelector("#wipe"));
  const rate = /** @type {HTMLInputElement} */ (root.querySelector("#flicker-rate"));
  const flickerToggle = /** @type {HTMLButtonElement} */ (root.querySelector(".flicker-toggle"));
  const status = /** @type {HTMLElement} */ (root.querySelector(".compare-status"));
  const showing = /** @type {HTMLElement} */ (root.querySelector(".flicker-showing"));
  const state = { mode: "side", x: 0, y: 0, flickerOn: true, timer: 0, candidateShown: true };

  function say(text) {
    status.textContent = text;
  }

  function zoomLevel() {
    return Number(zoom.value);
  }

  function clampPan() {
    // At zoom z an image may move by at most half of what lies outside its frame.
    const limit = ((zoomLevel() - 1) / 2) * 100;
    state.x = Math.max(-limit, Math.min(limit, state.x));
    state.y = Math.max(-limit, Math.min(limit, state.y));
  }

  function render() {
    clampPan();
    const transform = `scale(${zoomLevel()}) translate(${state.x / zoomLevel()}%, ${state.y / zoomLevel()}%)`;
    probe.style.transform = transform;
    candidate.style.transform = transform;
    root.querySelector(".zoom-value").textContent = `${zoomLevel()}×`;
    zoom.setAttribute("aria-valuetext", `${zoomLevel()} times`);
    root.querySelector(".opacity-value").textContent = `${opacity.value}%`;
    opacity.setAttribute("aria-valuetext", `${opacity.value} percent`);
    root.querySelector(".wipe-value").textContent = `${wipe.value}%`;
    wipe.setAttribute("aria-valuetext", `${wipe.value} percent`);
    root.querySelector(".flicker-value").textContent = `${rate.value} ms`;
    rate.setAttribute("aria-valuetext", `${rate.value} milliseconds`);
    candidate.style.opacity = "1";
    candidate.style.clipPath = "none";
    candidate.style.visibility = "visible";
    if (state.mode === "overlay") {
      candidate.style.opacity = String(Number(opacity.value) / 100);
    } else if (state.mode === "wipe") {
      candidate.style.clipPath = `inset(0 0 0 ${wipe.value}%)`;
    } else if (state.mode === "flicker") {
      candidate.style.visibility = state.candidateShown ? "visible" : "hidden";
      showing.textContent = state.candidateShown ? "showing the candidate" : "showing the probe";
    }
    if (state.mode !== "flicker") {
      showing.textContent = "";
    }
    for (const control of root.querySelectorAll("[data-for-modes]")) {
      control.hidden = control.getAttribute("data-for-modes") !== state.mode;
    }
  }

  function setMode(mode) {
    state.mode = mode;
    stages.dataset.mode = mode;
    const radio = root.querySelector(`input[name="mode"][value="${mode}"]`);
    if (radio instanceof HTMLInputElement) radio.checked = true;
    // One frame holds both images in every mode but side by side.
    (mode === "side" ? candidateStage : probeStage).appendChild(candidate);
    window.clearInterval(state.timer);
    state.candidateShown = true;
    if (mode === "flicker" && state.flickerOn) startFlicker();
    render();
    say({ side: "Side by side", overlay: "Overlay", wipe: "Wipe", flicker: "Flicker" }[mode] + " view");
  }

  function startFlicker() {
    window.clearInterval(state.timer);
    state.timer = window.setInterval(() => {
      state.candidateShown = !state.candidateShown;
      render();
    }, Number(rate.value));
  }

  function toggleFlicker() {
    state.flickerOn = !state.flickerOn;
    flickerToggle.setAttribute("aria-pressed", String(state.flickerOn));
    flickerToggle.textContent = state.flickerOn ? "Pause flicker (P)" : "Resume flicker (P)";
    if (state.mode === "flicker" && state.flickerOn) startFlicker();
    else window.clearInterval(state.timer);
    say(state.flickerOn ? "Flicker resumed" : "Flicker paused");
  }

  function zoomBy(steps) {
    const next = Math.max(Number(zoom.min), Math.min(Number(zoom.max), zoomLevel() + steps * Number(zoom.step)));
    zoom.value = String(next);
    render();
    say(`Zoom ${zoomLevel()} times`);
  }

  function pan(dx, dy) {
    if (zoomLevel() === 1) {
      say("Zoom in first to pan");
      return;
    }
    state.x += dx;
    state.y += dy;
    render();
  }

  function reset() {
    zoom.value = "1";
    state.x = 0;
    state.y = 0;
    render();
    say("Zoom and pan reset");
  }

  /** The slider the [ and ] keys move in the current mode. */
  function modeSlider() {
    return { overlay: opacity, wipe: wipe, flicker: rate }[state.mode] || null;
  }

  function stepSlider(slider, steps) {
    const next = Number(slider.value) + steps * Number(slider.step);
    slider.value = String(Math.max(Number(slider.min), Math.min(Number(slider.max), next)));
    slider.dispatchEvent(new Event("input", { bubbles: true }));
  }

  for (const radio of root.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => setMode(/** @type {HTMLInputElement} */ (radio).value));
  }
  zoom.addEventListener("input", render);
  opacity.addEventListener("input", render);
  wipe.addEventListener("input", render);
  rate.addEventListener("input", () => {
    render();
    if (state.mode === "flicker" && state.flickerOn) startFlicker();
  });
  flickerToggle.addEventListener("click", toggleFlicker);
  root.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target.closest("button") : null;
    if (!target) return;
    const direction = target.getAttribute("data-zoom");
    if (direction) zoomBy(direction === "in" ? 1 : -1);
    const way = target.getAttribute("data-pan");
    if (way) pan(...{ left: [10, 0], right: [-10, 0], up: [0, 10], down: [0, -10] }[way]);
    if (target.hasAttribute("data-reset")) reset();
  });

  // Dragging either image pans both.
  for (const stage of [probeStage, candidateStage]) {
    let last = null;
    stage.addEventListener("pointerdown", (event) => {
      last = { x: event.clientX, y: event.clientY };
      stage.setPointerCapture(event.pointerId);
    });
    stage.addEventListener("pointermove", (event) => {
      if (!last) return;
      const box = stage.getBoundingClientRect();
      state.x += ((event.clientX - last.x) / box.width) * 100;
      state.y += ((event.clientY - last.y) / box.height) * 100;
      last = { x: event.clientX, y: event.clientY };
      render();
    });
    const stop = () => {
      last = null;
    };
    stage.addEventListener("pointerup", stop);
    stage.addEventListener("pointercancel", stop);
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const inField =
      target instanceof HTMLTextAreaElement ||
      (target instanceof HTMLInputElement && !["radio", "checkbox", "button"].includes(target.type));
    const onSlider = target instanceof HTMLInputElement && target.type === "range";
    const key = event.key;
    const modes = { s: "side", o: "overlay", w: "wipe", f: "flicker" };
    if (inField && !onSlider) return;
    if (key.toLowerCase() in modes && !onSlider) {
      setMode(modes[key.toLowerCase()]);
    } else if (key === "+" || key === "=") {
      zoomBy(1);
    } else if (key === "-" || key === "_") {
      zoomBy(-1);
    } else if (key === "0") {
      reset();
    } else if (key === "[" || key === "]") {
      const slider = modeSlider();
      if (!slider) return;
      stepSlider(slider, key === "]" ? 1 : -1);
    } else if (key.toLowerCase() === "p") {
      toggleFlicker();
    } else if (key.startsWith("Arrow") && !onSlider && !(target instanceof HTMLInputElement)) {
      const moves = { ArrowLeft: [10, 0], ArrowRight: [-10, 0], ArrowUp: [0, 10], ArrowDown: [0, -10] };
      pan(...moves[key]);
    } else {
      return;
    }
    event.preventDefault();
  });

  setMode("side");
}
