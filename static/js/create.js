// The create page: the generate form.
(() => {
  "use strict";

  const FORM = "#create-form";

  // Ctrl/Cmd+Enter in the create form generates, from any field.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const form = event.target.closest && event.target.closest(FORM);
    if (form) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  // --- Advanced: a folded part must still say what it will send --------------------------------------
  // The same words as GenerateForm.advanced_summary, from the fields' data-summary and data-default.

  function sameValue(value, fallback) {
    const a = Number.parseFloat(value);
    const b = Number.parseFloat(fallback);
    if (value.trim() !== "" && fallback.trim() !== "" && !Number.isNaN(a) && !Number.isNaN(b)) return a === b;
    return value.trim() === fallback.trim();
  }

  function summaryOf(control) {
    const value = control.value.trim();
    if (sameValue(value, control.dataset.default || "")) return null;
    const words = control.dataset.summary;
    if (control instanceof HTMLTextAreaElement && words.includes("|")) {
      const count = value.split("\n").filter((line) => line.trim()).length;
      const [one, many] = words.split("|");
      return count === 1 ? one : many.replace("{}", String(count));
    }
    const shown = control instanceof HTMLSelectElement ? control.selectedOptions[0]?.textContent || value : value;
    return words.replace("{}", shown);
  }

  function refreshSummary(form) {
    const details = form.querySelector("details.advanced");
    if (!details) return;
    const parts = Array.from(details.querySelectorAll("[data-summary]"), summaryOf).filter(Boolean);
    const line = details.querySelector("[data-advanced-summary]");
    if (line) line.textContent = parts.length ? `: ${parts.join(" · ")}` : "";
    const reset = form.querySelector("[data-advanced-reset]");
    if (reset) reset.hidden = parts.length === 0;
  }

  for (const type of ["input", "change"]) {
    document.addEventListener(type, (event) => {
      const control = event.target;
      if (!(control instanceof Element) || !control.matches("[data-summary]")) return;
      const form = control.closest(FORM);
      if (form) refreshSummary(form);
    });
  }

  document.addEventListener("click", (event) => {
    const reset = event.target instanceof Element && event.target.closest("[data-advanced-reset]");
    if (!reset) return;
    const form = reset.closest(FORM);
    if (!form) return;
    for (const control of form.querySelectorAll("details.advanced [data-summary]")) {
      if (control.value === (control.dataset.default || "")) continue;
      control.value = control.dataset.default || "";
      // The estimate and anything else listening hear of it as of an edit.
      control.dispatchEvent(new Event("input", { bubbles: true }));
      control.dispatchEvent(new Event("change", { bubbles: true }));
    }
    refreshSummary(form);
    const summary = form.querySelector("details.advanced > summary");
    if (summary) summary.focus();
  });

  // --- A refused Generate: show the first field to fix ----------------------------------------------

  function showFirstProblem(form) {
    const field = form.querySelector('[aria-invalid="true"]:not([type="hidden"])') || form.querySelector(".has-error");
    const details = field && field.closest("details");
    if (details) details.open = true;
    const target = field || form.querySelector("#create-form-alert:not([hidden])");
    if (!target) return;
    // The generate bar sits over the bottom of the viewport: centre the field, well clear of it.
    target.scrollIntoView({ block: "center", behavior: "instant" });
    if (field && typeof field.focus === "function") {
      field.focus({ preventScroll: true });
    } else if (target) {
      target.setAttribute("tabindex", "-1");
      target.focus({ preventScroll: true });
    }
  }

  // The focused control's id when Generate is sent, to put focus back after the form is drawn again; and
  // the values sent, to tell what the person typed while the job was being queued.
  let focusedId = null;
  let sent = null;
  document.addEventListener("htmx:beforeRequest", (event) => {
    const elt = event.detail && event.detail.elt;
    if (!(elt instanceof HTMLFormElement) || !elt.matches(FORM)) return;
    focusedId = document.activeElement && document.activeElement.id;
    sent = new Map(Array.from(elt.elements, (control) => [control, control.value]));
    // The last refusal no longer stands while the form is sent again.
    const alert = elt.querySelector("#create-form-alert");
    if (alert) alert.hidden = true;
  });

  // The form drawn again after a job is queued carries the values that were sent: keep anything typed
  // since, rather than wipe the next prompt as it is being written.
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const detail = event.detail || {};
    if (!sent || !detail.target || detail.target.id !== "create-form" || !detail.fragment) return;
    const incoming = detail.fragment.querySelector(FORM) || detail.fragment.firstElementChild;
    if (!incoming) return;
    // Advanced stays as the person left it, open or folded.
    const [before, after] = [detail.target, incoming].map((form) => form.querySelector("details.advanced"));
    if (before && after) after.open = before.open;
    for (const [control, before] of sent) {
      if (!control.name || control.type === "file" || control.type === "hidden" || control.value === before) continue;
      const twin = incoming.querySelector(`[name="${CSS.escape(control.name)}"]:not([type="radio"])`);
      if (twin instanceof HTMLTextAreaElement) twin.textContent = control.value;
      else if (twin instanceof HTMLSelectElement) {
        for (const option of twin.options) option.toggleAttribute("selected", option.value === control.value);
      } else if (twin instanceof HTMLInputElement) twin.setAttribute("value", control.value);
    }
    sent = null;
  });

  function formDrawn(form) {
    refreshSummary(form);
    if (form.hasAttribute("data-refused")) {
      showFirstProblem(form);
    } else if (focusedId && (document.activeElement === document.body || !document.activeElement)) {
      const again = document.getElementById(focusedId);
      if (again && form.contains(again)) again.focus({ preventScroll: true });
    }
    focusedId = null;
  }

  document.addEventListener("htmx:load", (event) => {
    const elt = event.detail && event.detail.elt;
    if (elt instanceof Element && elt.matches(FORM)) formDrawn(elt);
  });
  // Out-of-band swaps (the form again after a job is queued) fire no htmx:load for the form itself.
  document.addEventListener("htmx:oobAfterSwap", (event) => {
    const form = document.querySelector(FORM);
    if (form && event.detail && event.detail.target && event.detail.target.id === "create-form") formDrawn(form);
  });

  // A painted mask answers the page's note that one is needed.
  document.addEventListener("input", (event) => {
    if (!(event.target instanceof HTMLInputElement) || event.target.name !== "mask" || !event.target.value) return;
    const note = event.target.closest("#mask-field")?.querySelector("[data-mask-note]");
    if (note) note.remove();
  });

  function start() {
    const form = document.querySelector(FORM);
    if (!form) return;
    refreshSummary(form);
    if (form.hasAttribute("data-refused")) showFirstProblem(form);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
