// Kozmic's own script: asks before a destructive form is sent.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.matches("form.confirm") && !window.confirm(form.dataset.confirm || "Are you sure?")) {
    e.preventDefault();
  }
});
