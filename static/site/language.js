// The language picker submits as soon as a language is chosen (a strict CSP
// forbids the inline onchange handler this replaces).
for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.submit());
}
