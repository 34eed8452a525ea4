// "Fill from a PNG": a PNG dropped on the create form's prompt (or on the field itself) is handed to the
// field's file input, whose change htmx posts; the answer is the form filled from the PNG's parameters.
// And [data-copy="id"] buttons copy the text of the element with that id (the image page's metadata).
(() => {
  "use strict";

  const DROP_TARGETS = "#create-form #id_prompt, #create-form #import-field";

  function dropTarget(event) {
    const files = event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
    return files && event.target instanceof Element ? event.target.closest(DROP_TARGETS) : null;
  }

  // Capture phase, so this runs before the page-wide guard that refuses files dropped outside a drop zone.
  document.addEventListener(
    "dragover",
    (event) => {
      const target = dropTarget(event);
      if (!target) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      target.classList.add("dragging");
    },
    true,
  );
  document.addEventListener(
    "dragleave",
    (event) => {
      const target = dropTarget(event);
      if (target && !target.contains(event.relatedTarget)) target.classList.remove("dragging");
    },
    true,
  );
  document.addEventListener(
    "drop",
    (event) => {
      const target = dropTarget(event);
      const input = document.getElementById("id_import_png");
      if (!target || !input || !event.dataTransfer.files.length) return;
      event.preventDefault();
      target.classList.remove("dragging");
      const one = new DataTransfer();
      one.items.add(event.dataTransfer.files[0]);
      input.files = one.files;
      // A field swapped in a moment ago may not be wired up by htmx yet (it does so when the swap settles):
      // process it now (idempotent), so a quick second drop is not lost.
      if (window.htmx) window.htmx.process(input);
      input.dispatchEvent(new Event("change", { bubbles: true }));
    },
    true,
  );

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // No clipboard API (a page served over plain HTTP): copy through a selection instead.
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      const done = document.execCommand("copy");
      area.remove();
      return done;
    }
  }

  document.addEventListener("click", async (event) => {
    const button = event.target instanceof Element && event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    button.dataset.label = button.dataset.label || button.textContent;
    const text = "value" in source ? source.value : source.textContent;
    button.textContent = (await copy(text)) ? "Copied" : "Select and copy the text";
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(() => (button.textContent = button.dataset.label), 1500);
  });
})();
