// The light or dark theme: the system's setting (prefers-color-scheme), unless the person chose one with the
// header's toggle, remembered in localStorage. Loaded in <head> without `defer`, so the first paint is
// already in the chosen theme (the CSP allows no inline script to do it).
(() => {
  "use strict";

  const KEY = "studio-theme";
  const root = document.documentElement;
  const system = window.matchMedia("(prefers-color-scheme: light)");

  function stored() {
    try {
      return window.localStorage.getItem(KEY);
    } catch {
      return null; // storage refused (private mode, a policy): the system's setting it is
    }
  }

  const chosen = stored();
  if (chosen === "light" || chosen === "dark") root.dataset.theme = chosen;

  const current = () => root.dataset.theme || (system.matches ? "light" : "dark");

  function showToggles() {
    for (const button of document.querySelectorAll("[data-theme-toggle]")) {
      button.hidden = false;
      button.setAttribute("aria-pressed", String(current() === "light"));
    }
  }

  document.addEventListener("DOMContentLoaded", showToggles);
  system.addEventListener("change", showToggles);
  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element) || !event.target.closest("[data-theme-toggle]")) return;
    const next = current() === "light" ? "dark" : "light";
    root.dataset.theme = next;
    try {
      window.localStorage.setItem(KEY, next);
    } catch {
      // not remembered; this page still switches
    }
    showToggles();
  });
})();
