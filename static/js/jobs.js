// Job cards: how a running job reaches the page (templates/generations/job_card.html).
// The card polls itself (htmx, a 204 while nothing changed); this script counts its elapsed seconds between
// answers, says a status change out loud once, and keeps the keyboard where it was when a card is replaced.
(() => {
  const seenAt = new WeakMap(); // elapsed counter -> when this page first showed it
  const before = new Map(); // card id -> {status, hadFocus}, while its answer is being swapped in

  function announcer() {
    let region = document.getElementById("job-announcer");
    if (!region) {
      region = document.createElement("div");
      region.id = "job-announcer";
      region.className = "visually-hidden";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      region.setAttribute("aria-atomic", "true");
      document.body.append(region);
    }
    return region;
  }

  function tick() {
    const now = performance.now();
    for (const counter of document.querySelectorAll(".job-card .elapsed[data-elapsed]")) {
      if (!seenAt.has(counter)) seenAt.set(counter, now);
      const seconds = Number(counter.dataset.elapsed) + (now - seenAt.get(counter)) / 1000;
      counter.textContent = `${Math.floor(seconds)} s`;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    announcer(); // present before anything changes, so that screen readers listen to it
    tick();
    setInterval(tick, 1000);
  });

  document.addEventListener("htmx:beforeSwap", (event) => {
    const card = event.detail.target;
    if (!event.detail.shouldSwap || !(card instanceof HTMLElement) || !card.classList.contains("job-card")) return;
    before.set(card.id, { status: card.dataset.status, hadFocus: card.contains(document.activeElement) });
  });

  document.addEventListener("htmx:load", (event) => {
    const card = event.detail.elt;
    if (!(card instanceof HTMLElement) || !card.classList.contains("job-card")) return;
    tick();
    // A retry answers a new card in the old one's place: match it by where it stands, not by id.
    const key = before.has(card.id) ? card.id : [...before.keys()].find((id) => !document.getElementById(id));
    if (key === undefined) return; // a new job's card: it never takes the focus
    const was = before.get(key);
    before.delete(key);
    if (was.status !== card.dataset.status) announcer().textContent = card.dataset.announce || "";
    // htmx keeps the focus on an element whose id is in the new card too; a button that went away
    // (Cancel, when the job ended) hands it to its card rather than to the top of the page.
    if (was.hadFocus && (document.activeElement === document.body || !document.activeElement)) {
      card.focus({ preventScroll: true });
    }
  });
})();
