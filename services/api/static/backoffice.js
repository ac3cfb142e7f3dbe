// The back office (services/api/backoffice.py): small conveniences only; every page
// works without this script (plain links and forms).
"use strict";
(function () {
  // A tap on an evidence image shows it at full height (and back).
  document.querySelectorAll("img[data-zoomable]").forEach(function (img) {
    img.addEventListener("click", function () {
      var figure = img.closest(".shot");
      if (figure) figure.classList.toggle("zoomed");
    });
  });
  // Copy a shown secret (a new API key) to the clipboard.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.querySelector(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) return;
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = "已复制 Copied";
      });
    });
  });
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      // Optional fields left empty are not sent (the badge check refuses an empty one).
      if (form.hasAttribute("data-drop-empty")) {
        form.querySelectorAll("input, textarea").forEach(function (field) {
          if (!field.value.trim()) field.disabled = true;
        });
      }
      // One click, one request: a POST form's buttons are disabled once it is sent.
      if ((form.getAttribute("method") || "get").toLowerCase() === "post") {
        window.setTimeout(function () {
          form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
        }, 0);
      }
    });
  });
  // Back to a page kept in the browser's cache: its buttons work again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("button[type=submit]:disabled").forEach(function (b) { b.disabled = false; });
  });
})();
