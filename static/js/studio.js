// A range input shows its value in the <output data-value-of="its id"> beside it.
document.addEventListener("input", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.type !== "range" || !input.id) return;
  for (const output of document.querySelectorAll(`output[data-value-of="${input.id}"]`)) {
    output.textContent = input.value;
  }
});

// A select marked data-autosubmit (the header's team switcher) submits its form when changed.
document.addEventListener("change", (event) => {
  const select = event.target;
  if (select instanceof HTMLSelectElement && select.hasAttribute("data-autosubmit")) {
    select.form.requestSubmit();
  }
});

// A read-only link field (invite or share link) selects its whole text on focus, ready to copy.
document.addEventListener("focusin", (event) => {
  const input = event.target;
  if (input instanceof HTMLInputElement && input.hasAttribute("data-select-on-focus")) input.select();
});

// --- The header's menu (phones): a <details>, so it opens without JavaScript; here it also says whether it
// is open (aria-expanded), closes with Escape (focus back on its button) and when a click lands elsewhere.
(() => {
  "use strict";

  function menus() {
    return document.querySelectorAll("details[data-menu]");
  }

  function sync(menu) {
    menu.querySelector(":scope > summary")?.setAttribute("aria-expanded", String(menu.open));
  }

  document.addEventListener("DOMContentLoaded", () => menus().forEach(sync));
  document.addEventListener(
    "toggle",
    (event) => {
      if (event.target instanceof HTMLDetailsElement && event.target.matches("[data-menu]")) sync(event.target);
    },
    true,
  );
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const menu of menus()) {
      if (!menu.open) continue;
      menu.open = false;
      menu.querySelector(":scope > summary")?.focus();
      event.preventDefault();
    }
  });
  document.addEventListener("click", (event) => {
    for (const menu of menus()) {
      if (menu.open && event.target instanceof Node && !menu.contains(event.target)) menu.open = false;
    }
  });
})();

// --- The sandbox notice: dismissed once, remembered in a cookie the server reads (no flash on later pages).
// Its button needs this script, so it shows only when the script runs.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-dismiss-sandbox-note]")) button.hidden = false;
});
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element && event.target.closest("[data-dismiss-sandbox-note]");
  if (!button) return;
  document.cookie = "sandbox_note_dismissed=1; path=/; max-age=31536000; samesite=lax";
  const note = button.closest("[data-sandbox-note]");
  if (note) note.remove();
  document.getElementById("main")?.focus({ preventScroll: true });
});

// --- The header's balance: fresh when the person comes back to the tab (from topping up, say). The load
// and `balance-changed` refreshes are htmx attributes on the element; this one asks past the short cache.
document.addEventListener("visibilitychange", () => {
  const balance = document.querySelector(".balance[data-fresh-url]");
  if (document.visibilityState !== "visible" || !balance || !window.htmx) return;
  window.htmx.ajax("GET", balance.dataset.freshUrl, { target: balance, swap: "innerHTML" });
});

// --- Focus after an htmx swap. Content swapped in that carries `data-focus-after-swap` takes the keyboard
// focus once it has settled, scrolled into view only as far as needed, so a keyboard or screen-reader user
// lands on what changed (a refused form's first problem, a new job card, the image a lightbox showed).
// Put the attribute on the element to focus in the fragment the server returns; a non-focusable element
// (a heading, a card) is given tabindex="-1" for it. htmx itself focuses `[autofocus]` in new content.
(() => {
  "use strict";

  let pending = null;
  document.addEventListener("htmx:load", (event) => {
    const root = event.target;
    if (!(root instanceof Element) || root === document.body) return; // the first page load
    const found = root.matches("[data-focus-after-swap]") ? root : root.querySelector("[data-focus-after-swap]");
    if (found) pending = found;
  });
  document.addEventListener("htmx:afterSettle", () => {
    const target = pending;
    pending = null;
    if (!target || !target.isConnected) return;
    if (target.tabIndex < 0 && !target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
    target.scrollIntoView({ block: "nearest" });
  });
})();

// A table wider than a phone scrolls within itself (studio.css); one that does is made focusable so that
// keyboard users can scroll it too.
function focusableWideTables() {
  for (const table of document.querySelectorAll("main table")) {
    const scrolls = table.scrollWidth > table.clientWidth + 1;
    if (scrolls && !table.hasAttribute("tabindex")) table.setAttribute("tabindex", "0");
    else if (!scrolls && table.getAttribute("tabindex") === "0") table.removeAttribute("tabindex");
  }
}
document.addEventListener("DOMContentLoaded", focusableWideTables);
document.addEventListener("htmx:afterSettle", focusableWideTables);
window.addEventListener("resize", focusableWideTables);
