// Gallery lightbox (keys, swipes), arrow-key navigation between detail pages, and the image page's
// long prompt, clamped until "Show more".
(() => {
  "use strict";

  const ITEM = "a[data-lightbox]";
  const SWIPE = 40; // pixels across before a touch counts as a swipe
  let dialog = null;
  let parts = null;
  let current = null;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function hasModifier(event) {
    return event.altKey || event.ctrlKey || event.metaKey || event.shiftKey;
  }

  function isTyping(target) {
    return (
      target instanceof Element &&
      (target.isContentEditable || Boolean(target.closest("input, textarea, select, [contenteditable]")))
    );
  }

  function items() {
    return Array.from(document.querySelectorAll(ITEM));
  }

  function build() {
    parts = {
      image: el("img", { class: "lightbox-image", alt: "" }),
      caption: el("p", { class: "lightbox-caption" }),
      counter: el("span", { class: "lightbox-counter", "aria-live": "polite" }),
      details: el("a", { class: "lightbox-details", href: "#" }, "Open details"),
      // The tile's star and its panel (collections, trash), for gallery tiles that have them (library.js).
      star: el(
        "button",
        { type: "button", class: "lightbox-star", "aria-pressed": "false", title: "Star" },
        el("span", { "aria-hidden": "true" }, "★"),
        el("span", { class: "visually-hidden" }, "Star"),
      ),
      more: el("button", { type: "button", class: "lightbox-more", "aria-expanded": "false" }, "Collections…"),
      panel: el("div", { class: "lightbox-panel", hidden: "" }),
      prev: el("button", { type: "button", class: "lightbox-prev", "aria-label": "Previous image" }, "‹"),
      next: el("button", { type: "button", class: "lightbox-next", "aria-label": "Next image" }, "›"),
      close: el("button", { type: "button", class: "lightbox-close", "aria-label": "Close" }, "×"),
    };
    parts.stage = el("div", { class: "lightbox-stage" }, parts.image);
    dialog = el(
      "dialog",
      { class: "lightbox", "aria-label": "Image viewer" },
      parts.stage,
      el("div", { class: "lightbox-bar" }, parts.caption, parts.counter, parts.star, parts.more, parts.details),
      parts.panel,
      parts.prev,
      parts.next,
      parts.close,
    );
    document.body.append(dialog);

    parts.prev.addEventListener("click", () => step(-1));
    parts.next.addEventListener("click", () => step(1));
    parts.close.addEventListener("click", () => dialog.close());
    // The tile's own star form does the work, so every star of the image follows (favourite-changed).
    parts.star.addEventListener("click", () => {
      const tileStar = tileOf(current) && tileOf(current).querySelector("button[data-star]");
      if (tileStar) tileStar.click();
    });
    parts.more.addEventListener("click", () => {
      const open = parts.panel.hidden;
      parts.panel.hidden = !open;
      parts.more.setAttribute("aria-expanded", String(open));
      if (open) loadPanel();
    });
    // A swipe on a touch screen: to the left shows the next image, to the right the previous one.
    let touch = null;
    parts.stage.addEventListener(
      "touchstart",
      (event) => {
        touch = event.touches.length === 1 ? { x: event.touches[0].clientX, y: event.touches[0].clientY } : null;
      },
      { passive: true },
    );
    parts.stage.addEventListener("touchend", (event) => {
      if (!touch || event.changedTouches.length !== 1) return;
      const dx = event.changedTouches[0].clientX - touch.x;
      const dy = event.changedTouches[0].clientY - touch.y;
      touch = null;
      if (Math.abs(dx) < SWIPE || Math.abs(dx) < 1.5 * Math.abs(dy)) return;
      event.preventDefault(); // not also a click on the backdrop
      step(dx < 0 ? 1 : -1);
    });
    parts.image.addEventListener("load", () => dialog.classList.remove("loading"));
    parts.image.addEventListener("error", () => dialog.classList.remove("loading"));
    // The dialog fills the viewport, so a click on it (not on its content) is a click on the backdrop.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog || event.target === parts.stage) dialog.close();
    });
    dialog.addEventListener("keydown", (event) => {
      if (hasModifier(event) || isTyping(event.target)) return;
      if (event.key === "ArrowLeft") step(-1);
      else if (event.key === "ArrowRight") step(1);
      else return;
      event.preventDefault();
    });
    dialog.addEventListener("close", () => {
      document.documentElement.classList.remove("lightbox-open");
      parts.image.removeAttribute("src");
      if (current && current.isConnected) current.focus();
    });
    // Infinite scroll may append items while the lightbox is open.
    document.addEventListener("htmx:load", () => {
      if (dialog.open) update();
    });
  }

  function tileOf(item) {
    return item ? item.closest(".tile") : null;
  }

  function loadPanel() {
    if (!current || !current.dataset.panel || parts.panel.hidden || !window.htmx) return;
    const next = window.location.pathname + window.location.search;
    window.htmx.ajax("GET", `${current.dataset.panel}?next=${encodeURIComponent(next)}`, {
      target: parts.panel,
      swap: "innerHTML",
    });
  }

  function preload(item) {
    if (item && item.dataset.full) new Image().src = item.dataset.full;
  }

  function update() {
    const all = items();
    const index = all.indexOf(current);
    parts.counter.textContent = `${index + 1} of ${all.length}`;
    parts.prev.disabled = index <= 0;
    parts.next.disabled = index >= all.length - 1;
    return { all, index };
  }

  function show(item) {
    current = item;
    const thumbnail = item.querySelector("img");
    const caption = item.dataset.caption || (thumbnail && thumbnail.alt) || "";
    dialog.classList.add("loading");
    parts.image.removeAttribute("src");
    if (item.dataset.width && item.dataset.height) {
      parts.image.width = Number(item.dataset.width);
      parts.image.height = Number(item.dataset.height);
    }
    parts.image.alt = (thumbnail && thumbnail.alt) || caption;
    parts.image.src = item.dataset.full || item.href;
    parts.caption.textContent = caption;
    parts.details.setAttribute("href", item.getAttribute("href"));
    const tileStar = tileOf(item) && tileOf(item).querySelector("[data-star]");
    parts.star.hidden = !tileStar;
    parts.more.hidden = !item.dataset.panel;
    if (tileStar) {
      parts.star.dataset.star = tileStar.dataset.star;
      parts.star.setAttribute("aria-pressed", tileStar.getAttribute("aria-pressed"));
    }
    parts.panel.textContent = "";
    loadPanel();
    const { all, index } = update();
    preload(all[index - 1]);
    preload(all[index + 1]);
    // Keeps the gallery behind in step, which also lets infinite scroll load the next page.
    item.scrollIntoView({ block: "nearest" });
  }

  function step(delta) {
    const all = items();
    const next = all[all.indexOf(current) + delta];
    if (next) show(next);
  }

  document.addEventListener(
    "click",
    (event) => {
      const item = event.target instanceof Element && event.target.closest(ITEM);
      if (!item || event.defaultPrevented || event.button !== 0 || hasModifier(event)) return;
      // Capture phase, so an hx-get on the link does not also navigate.
      event.preventDefault();
      event.stopPropagation();
      if (!dialog) build();
      show(item);
      if (!dialog.open) {
        document.documentElement.classList.add("lightbox-open");
        dialog.showModal();
        parts.close.focus();
      }
    },
    true,
  );

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || hasModifier(event) || isTyping(event.target)) return;
    if (document.querySelector("dialog[open]")) return;
    const selector = {
      ArrowLeft: 'a[rel~="prev"][data-key-nav]',
      ArrowRight: 'a[rel~="next"][data-key-nav]',
      Escape: "a[data-key-close]",
    }[event.key];
    const link = selector && document.querySelector(selector);
    if (!link) return;
    event.preventDefault();
    link.click();
  });

  // A long prompt shows four lines and a "Show more" that only appears when there is more to show.
  function fitPrompts() {
    for (const button of document.querySelectorAll("[data-show-more]")) {
      const prompt = document.getElementById(button.getAttribute("aria-controls"));
      if (!prompt) continue;
      const expanded = prompt.classList.contains("expanded");
      button.hidden = !expanded && prompt.scrollHeight <= prompt.clientHeight + 1;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("[data-show-more]");
    if (!button) return;
    const prompt = document.getElementById(button.getAttribute("aria-controls"));
    const expanded = prompt.classList.toggle("expanded");
    button.setAttribute("aria-expanded", String(expanded));
    button.textContent = expanded ? "Show less" : "Show more";
  });
  document.addEventListener("DOMContentLoaded", fitPrompts);
  window.addEventListener("resize", fitPrompts);
})();
