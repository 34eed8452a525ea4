// The library: choosing many images (click, Shift-click for a range, keyboard, "select all matching"),
// the bulk bar, ZIP downloads, the tile's panel, and keeping every star of an image in step.
(() => {
  "use strict";

  const BOX = "input[data-select]";
  let anchor = null; // the box clicked last, where a Shift-click range starts

  const bulkForm = () => document.querySelector("form[data-bulk]");
  const boxes = () => Array.from(document.querySelectorAll(BOX));

  function isTyping(target) {
    return target instanceof Element && Boolean(target.closest("input:not([data-select]), textarea, select, [contenteditable]"));
  }

  function allMatching(form) {
    return form ? form.querySelector('input[name="all_matching"]') : null;
  }

  // The bar shows how many are chosen, and only when some are.
  function refresh() {
    const form = bulkForm();
    if (!form) return;
    const chosen = boxes().filter((box) => box.checked).length;
    const every = allMatching(form);
    const label = form.querySelector("[data-bulk-count]");
    const all = document.querySelector("[data-select-all]");
    if (every && every.value) {
      label.textContent = `All ${Number(all ? all.dataset.total : chosen).toLocaleString()} matching chosen`;
    } else {
      label.textContent = chosen ? `${chosen} chosen` : "None chosen";
    }
    form.hidden = !chosen && !(every && every.value);
    document.documentElement.classList.toggle("selecting", chosen > 0);
  }

  function clear() {
    for (const box of boxes()) box.checked = false;
    const every = allMatching(bulkForm());
    if (every) every.value = "";
    anchor = null;
    refresh();
  }

  function selectRange(from, to, checked) {
    const all = boxes();
    const [start, end] = [all.indexOf(from), all.indexOf(to)].sort((a, b) => a - b);
    if (start < 0) return;
    for (const box of all.slice(start, end + 1)) box.checked = checked;
  }

  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    const box = target.closest(BOX);
    if (box) {
      const every = allMatching(bulkForm());
      if (every) every.value = ""; // choosing by hand ends "all matching"
      if (event.shiftKey && anchor && anchor !== box && anchor.isConnected) selectRange(anchor, box, box.checked);
      anchor = box;
      refresh();
      return;
    }
    if (target.closest("[data-select-all]")) {
      for (const item of boxes()) item.checked = true;
      const every = allMatching(bulkForm());
      if (every) every.value = "1";
      refresh();
      return;
    }
    if (target.closest("[data-clear]")) {
      clear();
      return;
    }
    if (target.closest("[data-download]")) {
      download();
      return;
    }
    const more = target.closest("[data-panel-toggle]");
    if (more) togglePanel(more);
  });

  // The ZIP is a plain form post, so the browser downloads the streamed answer while the page stays.
  function download() {
    const form = bulkForm();
    const target = document.getElementById("download-form");
    if (!form || !target) return;
    for (const old of target.querySelectorAll("input[data-copied]")) old.remove();
    const every = allMatching(form);
    const fields = every && every.value
      ? [["all_matching", "1"], ["query", form.querySelector('input[name="query"]').value]]
      : boxes().filter((box) => box.checked).map((box) => ["image", box.value]);
    for (const [name, value] of fields) {
      const input = document.createElement("input");
      Object.assign(input, { type: "hidden", name, value });
      input.dataset.copied = "";
      target.append(input);
    }
    target.submit();
  }

  // The tile's "⋯": its star, collections and trash, in a panel over the tile.
  function togglePanel(button) {
    const tile = button.closest(".tile");
    const open = tile.querySelector(".tile-panel");
    if (open) {
      open.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const link = tile.querySelector("a[data-panel]");
    const panel = document.createElement("div");
    panel.className = "tile-panel";
    tile.append(panel);
    button.setAttribute("aria-expanded", "true");
    const next = window.location.pathname + window.location.search;
    window.htmx.ajax("GET", `${link.dataset.panel}?next=${encodeURIComponent(next)}`, { target: panel, swap: "innerHTML" });
  }

  // Keyboard: x chooses the focused tile (Shift+x a range), Escape clears, Ctrl/Cmd+A chooses all shown.
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || isTyping(event.target) || document.querySelector("dialog[open]")) return;
    if (!document.querySelector(BOX)) return;
    const tile = event.target instanceof Element && event.target.closest(".tile");
    if (event.key.toLowerCase() === "x" && tile && !event.ctrlKey && !event.metaKey && !event.altKey) {
      const box = tile.querySelector(BOX);
      if (!box) return;
      box.checked = !box.checked;
      if (event.shiftKey && anchor && anchor !== box && anchor.isConnected) selectRange(anchor, box, box.checked);
      anchor = box;
      refresh();
      event.preventDefault();
    } else if (event.key === "Escape" && boxes().some((box) => box.checked)) {
      clear();
      event.preventDefault();
    } else if (event.key.toLowerCase() === "a" && (event.ctrlKey || event.metaKey)) {
      for (const box of boxes()) box.checked = true;
      refresh();
      event.preventDefault();
    }
  });

  // Every star of an image (tile, panel, lightbox) follows the one that was clicked.
  document.body.addEventListener("favourite-changed", (event) => {
    const { image, starred } = event.detail;
    for (const star of document.querySelectorAll(`[data-star="${image}"]`)) {
      star.setAttribute("aria-pressed", String(starred));
    }
  });

  // The filter panel: folded on a phone, open on a wider screen, until the person opens or folds it; the
  // choice outlives the library's re-renders (each filter change redraws the panel open).
  const PANEL = "details[data-filter-panel]";
  let panelOpen = null;
  function placePanel() {
    const open = panelOpen ?? !window.matchMedia("(max-width: 600px)").matches;
    for (const panel of document.querySelectorAll(PANEL)) panel.open = open;
  }
  document.addEventListener("click", (event) => {
    const summary = event.target instanceof Element && event.target.closest(`${PANEL} > summary`);
    if (summary) panelOpen = !summary.parentElement.open;
  });
  document.addEventListener("htmx:afterSwap", placePanel);
  document.addEventListener("htmx:historyRestore", placePanel);
  document.addEventListener("DOMContentLoaded", placePanel);

  document.addEventListener("change", (event) => {
    if (event.target instanceof Element && event.target.matches(BOX)) refresh();
  });
  document.addEventListener("htmx:afterSettle", refresh);
  // A bulk action that changed the library reloads it: the choices made before are gone.
  document.body.addEventListener("library-changed", () => {
    anchor = null;
  });
  document.addEventListener("DOMContentLoaded", refresh);
  // Back/forward restores the page from htmx's history: count the boxes again.
  window.addEventListener("pageshow", refresh);
})();
