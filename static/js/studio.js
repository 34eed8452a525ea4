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
