// Small conveniences only; every page works without JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Filter menus apply as soon as they change.
  document.querySelectorAll(".autosubmit").forEach(function (field) {
    field.addEventListener("change", function () {
      if (field.form) field.form.submit();
    });
  });
  // Escalating without a note loses the reason; ask for one first.
  document.querySelectorAll("form.review button[value=escalated]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      var note = button.form.querySelector("input[name=note]");
      if (note && !note.value.trim()) {
        event.preventDefault();
        note.setCustomValidity("Say why this claim is escalated.");
        note.reportValidity();
        note.addEventListener("input", function () { note.setCustomValidity(""); }, { once: true });
      }
    });
  });
});
