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

// A link to a line (#L123) of a finished log, which loads a page at a time:
// load pages until that line is there, then show it once.
var shownLine = "";
function seekLine() {
  var id = window.location.hash.slice(1);
  if (!/^L\d+$/.test(id) || id === shownLine) {
    return;
  }
  var line = document.getElementById(id);
  var more = document.querySelector("#log > .log-more");
  if (line) {
    shownLine = id;
    line.scrollIntoView({ block: "center" });
  } else if (more) {
    htmx.trigger(more, "seek");
  }
}
document.addEventListener("htmx:afterSettle", function () {
  if (document.getElementById("log")) {
    seekLine();
  }
});
window.addEventListener("hashchange", seekLine);
