// The create page: the generate form.

// Ctrl/Cmd+Enter in the create form generates, from any field.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const form = event.target.closest && event.target.closest("#create-form");
  if (form) {
    event.preventDefault();
    form.requestSubmit();
  }
});
