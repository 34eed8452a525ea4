// `?` opens the list of keyboard shortcuts (the <dialog id="shortcuts"> in base.html); Escape closes it.
(() => {
  "use strict";

  function isTyping(target) {
    return (
      target instanceof Element &&
      (target.isContentEditable || target.closest("input, textarea, select, [contenteditable]") !== null)
    );
  }

  document.addEventListener("keydown", (event) => {
    if (event.key !== "?" || event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target) || document.querySelector("dialog[open]")) return;
    const dialog = document.getElementById("shortcuts");
    if (!(dialog instanceof HTMLDialogElement)) return;
    event.preventDefault();
    dialog.showModal();
  });

  // A click on the backdrop (outside the list) closes it too.
  document.addEventListener("click", (event) => {
    const dialog = document.getElementById("shortcuts");
    if (event.target !== dialog || !dialog.open) return;
    const box = dialog.getBoundingClientRect();
    const inside = event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
    if (!inside) dialog.close();
  });
})();
