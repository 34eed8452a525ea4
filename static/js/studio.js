// Ctrl/Cmd+Enter in the create form generates, from any field.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const form = event.target.closest && event.target.closest("#create-form");
  if (form) {
    event.preventDefault();
    form.requestSubmit();
  }
});

// A range input shows its value in the <output data-value-of="its id"> beside it.
document.addEventListener("input", (event) => {
  const input = event.target;
  if (!(input instanceof HTMLInputElement) || input.type !== "range" || !input.id) return;
  for (const output of document.querySelectorAll(`output[data-value-of="${input.id}"]`)) {
    output.textContent = input.value;
  }
});
