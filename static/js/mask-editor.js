// Drag and drop for the init image, and a brush that paints the inpainting mask over it.
(() => {
  "use strict";

  const PAINTED_SOURCES = ["MASK_IMAGE_WHITE", "MASK_IMAGE_BLACK"];
  // Antialiased edges leave a faint fringe after erasing; fainter pixels count as unpainted.
  const FAINT = 8;
  const ready = new WeakSet();
  let lastId = 0;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function hasFiles(event) {
    return Boolean(event.dataTransfer) && Array.from(event.dataTransfer.types).includes("Files");
  }

  function initDropzone(zone) {
    const input = zone.querySelector('input[type="file"]');
    if (!input) return;
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", (event) => {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", (event) => {
      zone.classList.remove("dragging");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      event.preventDefault();
      if (input.multiple || files.length === 1) {
        input.files = files;
      } else {
        const one = new DataTransfer();
        one.items.add(files[0]);
        input.files = one.files;
      }
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    // The input normally covers the zone; this catches clicks on anything laid over it.
    zone.addEventListener("click", (event) => {
      if (event.target === input || event.target.closest("a, button, label, input, select, textarea")) return;
      input.click();
    });
  }

  function initMaskEditor(editor) {
    const img = editor.querySelector("img");
    if (!img) return;
    const width = parseInt(editor.dataset.width, 10) || img.naturalWidth;
    const height = parseInt(editor.dataset.height, 10) || img.naturalHeight;
    if (!width || !height) {
      ready.delete(editor);
      img.addEventListener("load", () => init(editor), { once: true });
      return;
    }
    const scope = editor.closest(".init-field, form") || document;
    const maskInput = scope.querySelector('input[name="mask"]') || document.getElementById("id_mask");
    const sourceSelect = scope.querySelector('[name="mask_source"]') || document.getElementById("id_mask_source");
    const colour = getComputedStyle(editor).getPropertyValue("--accent").trim() || "#8b7cf6";

    // An htmx history snapshot keeps the nodes added here but not their listeners or pixels.
    editor.querySelectorAll("[data-mask-generated]").forEach((node) => node.remove());
    let stage = img.parentElement.classList.contains("mask-stage") ? img.parentElement : null;
    if (!stage) {
      stage = el("div", { class: "mask-stage" });
      img.replaceWith(stage);
      stage.append(img);
    }
    img.draggable = false;

    const canvas = el("canvas", { class: "mask-canvas", "aria-hidden": "true", "data-mask-generated": "" });
    canvas.width = width;
    canvas.height = height;
    const cursor = el("div", { class: "mask-cursor", "aria-hidden": "true", hidden: "", "data-mask-generated": "" });
    stage.append(canvas, cursor);
    const ctx = canvas.getContext("2d", { willReadFrequently: true });

    const id = `mask-size-${++lastId}`;
    const brush = el("button", { type: "button", "aria-pressed": "true" }, "Brush");
    const eraser = el("button", { type: "button", "aria-pressed": "false" }, "Eraser");
    const size = el("input", { type: "range", id, min: "4", max: "200", step: "1", value: "48" });
    const sizeValue = el("output", { for: id }, "48 px");
    const clear = el("button", { type: "button" }, "Clear");
    const invert = el("button", { type: "button" }, "Invert");
    const overlay = el("input", { type: "checkbox", checked: "" });
    const toolbar = el(
      "div",
      { class: "mask-toolbar", role: "toolbar", "aria-label": "Mask painting tools", "data-mask-generated": "" },
      el("span", { class: "mask-tools" }, brush, eraser),
      el("span", { class: "mask-size" }, el("label", { for: id }, "Brush size"), size, sizeValue),
      el("span", { class: "mask-actions" }, clear, invert),
      el("label", { class: "mask-overlay-toggle" }, overlay, " Show overlay"),
    );
    stage.after(toolbar);

    let tool = "brush";
    let stroke = null;

    function setTool(name) {
      tool = name;
      brush.setAttribute("aria-pressed", String(name === "brush"));
      eraser.setAttribute("aria-pressed", String(name === "eraser"));
      stage.classList.toggle("erasing", name === "eraser");
    }

    function setValue(field, value) {
      if (!field || field.value === value) return;
      field.value = value;
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }

    // Gives every pixel the accent colour, keeping its alpha (the painted amount).
    function recolour() {
      ctx.save();
      ctx.globalCompositeOperation = "source-in";
      ctx.fillStyle = colour;
      ctx.fillRect(0, 0, width, height);
      ctx.restore();
    }

    function exportMask() {
      const pixels = ctx.getImageData(0, 0, width, height);
      const px = pixels.data;
      let painted = false;
      for (let i = 0; i < px.length; i += 4) {
        const amount = px[i + 3] >= FAINT ? px[i + 3] : 0;
        if (amount) painted = true;
        px[i] = px[i + 1] = px[i + 2] = amount;
        px[i + 3] = 255;
      }
      if (!painted) {
        setValue(maskInput, "");
        return;
      }
      const out = el("canvas");
      out.width = width;
      out.height = height;
      out.getContext("2d").putImageData(pixels, 0, 0);
      setValue(maskInput, out.toDataURL("image/png"));
      if (sourceSelect && sourceSelect.value === "") setValue(sourceSelect, "MASK_IMAGE_WHITE");
    }

    function toImage(event) {
      const rect = canvas.getBoundingClientRect();
      return {
        x: ((event.clientX - rect.left) * width) / rect.width,
        y: ((event.clientY - rect.top) * height) / rect.height,
      };
    }

    function paintTo(point) {
      ctx.save();
      ctx.globalCompositeOperation = tool === "eraser" ? "destination-out" : "source-over";
      ctx.strokeStyle = ctx.fillStyle = colour;
      ctx.lineWidth = Number(size.value);
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.beginPath();
      if (point.x === stroke.x && point.y === stroke.y) {
        ctx.arc(point.x, point.y, ctx.lineWidth / 2, 0, Math.PI * 2);
        ctx.fill();
      } else {
        ctx.moveTo(stroke.x, stroke.y);
        ctx.lineTo(point.x, point.y);
        ctx.stroke();
      }
      ctx.restore();
      stroke.x = point.x;
      stroke.y = point.y;
    }

    function moveCursor(event) {
      if (event.pointerType === "touch") {
        cursor.hidden = true;
        return;
      }
      const rect = canvas.getBoundingClientRect();
      const diameter = (Number(size.value) * rect.width) / width;
      cursor.hidden = false;
      cursor.style.width = cursor.style.height = `${diameter}px`;
      cursor.style.left = `${event.clientX - rect.left}px`;
      cursor.style.top = `${event.clientY - rect.top}px`;
    }

    function endStroke(event) {
      if (!stroke || event.pointerId !== stroke.pointerId) return;
      stroke = null;
      exportMask();
    }

    canvas.addEventListener("pointerdown", (event) => {
      if (stroke || (event.pointerType === "mouse" && event.button !== 0)) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      const point = toImage(event);
      stroke = { pointerId: event.pointerId, ...point };
      paintTo(point);
      moveCursor(event);
    });
    canvas.addEventListener("pointermove", (event) => {
      moveCursor(event);
      if (!stroke || event.pointerId !== stroke.pointerId) return;
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      for (const each of events.length ? events : [event]) paintTo(toImage(each));
    });
    canvas.addEventListener("pointerup", endStroke);
    canvas.addEventListener("pointercancel", endStroke);
    canvas.addEventListener("lostpointercapture", endStroke);
    canvas.addEventListener("pointerleave", () => {
      if (!stroke) cursor.hidden = true;
    });

    brush.addEventListener("click", () => setTool("brush"));
    eraser.addEventListener("click", () => setTool("eraser"));
    size.addEventListener("input", () => {
      sizeValue.value = `${size.value} px`;
      size.setAttribute("aria-valuetext", `${size.value} px`);
    });
    clear.addEventListener("click", () => {
      ctx.clearRect(0, 0, width, height);
      setValue(maskInput, "");
      if (sourceSelect && PAINTED_SOURCES.includes(sourceSelect.value)) setValue(sourceSelect, "");
    });
    invert.addEventListener("click", () => {
      const pixels = ctx.getImageData(0, 0, width, height);
      const px = pixels.data;
      for (let i = 3; i < px.length; i += 4) px[i] = px[i] >= FAINT ? 255 - px[i] : 255;
      ctx.putImageData(pixels, 0, 0);
      recolour();
      exportMask();
    });
    overlay.addEventListener("change", () => {
      stage.classList.toggle("overlay-off", !overlay.checked);
    });

    // A form re-rendered after an error carries the mask that was painted; show it again.
    if (maskInput && maskInput.value.startsWith("data:image/")) {
      const previous = new Image();
      previous.addEventListener("load", () => {
        const scratch = el("canvas");
        scratch.width = width;
        scratch.height = height;
        const scratchCtx = scratch.getContext("2d", { willReadFrequently: true });
        scratchCtx.drawImage(previous, 0, 0, width, height);
        const pixels = scratchCtx.getImageData(0, 0, width, height);
        const px = pixels.data;
        for (let i = 0; i < px.length; i += 4) px[i + 3] = px[i];
        ctx.putImageData(pixels, 0, 0);
        recolour();
      });
      previous.src = maskInput.value;
    }
  }

  function init(root) {
    if (!(root instanceof Element || root instanceof Document)) return;
    const setups = [
      ["[data-dropzone]", initDropzone],
      ["[data-mask-editor]", initMaskEditor],
    ];
    for (const [selector, setup] of setups) {
      const found = Array.from(root.querySelectorAll(selector));
      if (root instanceof Element && root.matches(selector)) found.unshift(root);
      for (const node of found) {
        if (ready.has(node)) continue;
        ready.add(node);
        setup(node);
      }
    }
  }

  // A file dropped just beside the zone would otherwise replace the page and lose the form.
  for (const type of ["dragover", "drop"]) {
    document.addEventListener(type, (event) => {
      if (event.defaultPrevented || !hasFiles(event) || !document.querySelector("[data-dropzone]")) return;
      if (event.target instanceof Element && event.target.closest('[data-dropzone], input[type="file"]')) return;
      event.preventDefault();
      if (type === "dragover") event.dataTransfer.dropEffect = "none";
    });
  }

  document.addEventListener("htmx:load", (event) => init(event.detail.elt));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => init(document));
  } else {
    init(document);
  }
})();
