// Progressive enhancement only: every page works without this file.
// A resource picker marked data-autosubmit opens the chosen calendar without a click on "Show".
document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});
