// A Stable Image tool's page: the outpaint preview (the source inside the new canvas, and the result's
// size) follows the four side inputs; a result whose size follows a choice (the style guide's aspect
// ratio) shows the size for the choice made.
(() => {
  "use strict";

  const MAX_SIDE = 480; // the preview's largest side on screen, in CSS pixels
  const TIMES = "\u00d7";
  const ready = new WeakSet();

  function sideValue(form, name) {
    const input = form.querySelector(`[name="${name}"]`);
    const value = input ? parseInt(input.value, 10) : 0;
    return Number.isFinite(value) && value > 0 ? value : 0;
  }

  function initOutpaint(box) {
    const form = box.closest("form");
    const frame = box.querySelector("[data-outpaint-frame]");
    const source = box.querySelector("[data-outpaint-source]");
    const width = parseInt(box.dataset.width, 10);
    const height = parseInt(box.dataset.height, 10);
    if (!form || !frame || !source || !width || !height) return;
    const output = form.querySelector("[data-output-size]");

    function update() {
      const grow = {};
      for (const name of ["left", "right", "up", "down"]) grow[name] = sideValue(form, name);
      const newWidth = width + grow.left + grow.right;
      const newHeight = height + grow.up + grow.down;
      const room = Math.min(MAX_SIDE, box.clientWidth || MAX_SIDE);
      const scale = Math.min(room / newWidth, MAX_SIDE / newHeight);
      frame.classList.add("sized");
      frame.style.width = `${Math.round(newWidth * scale)}px`;
      frame.style.height = `${Math.round(newHeight * scale)}px`;
      source.style.left = `${grow.left * scale}px`;
      source.style.top = `${grow.up * scale}px`;
      source.style.width = `${width * scale}px`;
      source.style.height = `${height * scale}px`;
      frame.dataset.canvas = `${newWidth}x${newHeight}`;
      if (output) output.textContent = `${newWidth} ${TIMES} ${newHeight}`;
    }

    form.addEventListener("input", (event) => {
      if (event.target.matches('[name="left"], [name="right"], [name="up"], [name="down"]')) update();
    });
    window.addEventListener("resize", update);
    update();
  }

  function initOutputSizes(form) {
    let table;
    try {
      table = JSON.parse(form.dataset.outputSizes);
    } catch {
      return;
    }
    const select = form.querySelector(`[name="${table.field}"]`);
    const output = form.querySelector("[data-output-size]");
    if (!select || !output) return;
    const update = () => {
      if (table.sizes[select.value]) output.textContent = table.sizes[select.value];
    };
    select.addEventListener("change", update);
    update();
  }

  function init(root) {
    if (!(root instanceof Element || root instanceof Document)) return;
    const pick = (selector) => {
      const found = Array.from(root.querySelectorAll(selector));
      if (root instanceof Element && root.matches(selector)) found.unshift(root);
      return found;
    };
    for (const [selector, setup] of [
      ["[data-outpaint]", initOutpaint],
      ["form[data-output-sizes]", initOutputSizes],
    ]) {
      for (const node of pick(selector)) {
        if (ready.has(node)) continue;
        ready.add(node);
        setup(node);
      }
    }
  }

  document.addEventListener("htmx:load", (event) => init(event.detail.elt));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => init(document));
  } else {
    init(document);
  }
})();
