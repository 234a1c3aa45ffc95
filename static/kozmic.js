// Kozmic's own script: asks before a destructive form is sent.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.matches("form.confirm") && !window.confirm(form.dataset.confirm || "Are you sure?")) {
    e.preventDefault();
  }
});

// A followed log scrolls with its new lines.
document.addEventListener("htmx:sseMessage", function (e) {
  var follow = document.getElementById("follow");
  if (follow && follow.checked && e.target.id === "log") {
    window.scrollTo(0, document.body.scrollHeight);
  }
});
