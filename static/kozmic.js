// Kozmic's own script: asks before a destructive form is sent.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.matches("form.confirm") && !window.confirm(form.dataset.confirm || "Are you sure?")) {
    e.preventDefault();
  }
});

// A log line's number is a CSS counter (.log p::before), which each block
// of lines, a page or an event of the live log, starts at its first line's
// number, from that line's id (L<n>): the server sends no numbers.
function numberLines() {
  document.querySelectorAll("#log .log-lines:not([style])").forEach(function (block) {
    var first = block.querySelector("p[id^=L]");
    block.style.counterReset = "line " + (first ? Number(first.id.slice(1)) - 1 : 0);
  });
}
document.addEventListener("htmx:afterSwap", numberLines);

// A click on a line's number (the line's left padding) links to the line.
document.addEventListener("click", function (e) {
  var line = e.target.closest && e.target.closest("#log p[id]");
  if (line && e.clientX < line.getBoundingClientRect().left + parseFloat(getComputedStyle(line).paddingLeft)) {
    window.location.hash = line.id;
  }
});

// A followed log scrolls with its new lines.
document.addEventListener("htmx:sseMessage", function (e) {
  numberLines();
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
  var more = document.querySelector("#log > .log-more") || sectionMore(Number(id.slice(1)));
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

// The elapsed time of a running build or job (a <time data-since=START>,
// see views.elapsed) ticks every second, counted from its start. A client
// clock behind the server's would count from too late, so it never shows
// less than the server's figure (datetime="PT…S") plus the time since the
// element appeared. The text is written as when.Duration writes it.
var elapsedSeen = new WeakMap();
function showDuration(s) {
  function two(n) { return (n < 10 ? "0" : "") + n; }
  if (s < 60) {
    return s + "s";
  }
  if (s < 3600) {
    return Math.floor(s / 60) + "m" + two(s % 60) + "s";
  }
  return Math.floor(s / 3600) + "h" + two(Math.floor(s / 60) % 60) + "m";
}
function tickElapsed() {
  var now = Date.now();
  document.querySelectorAll("time[data-since]").forEach(function (el) {
    var seen = elapsedSeen.get(el);
    if (!seen) {
      var m = /^PT(\d+)S$/.exec(el.getAttribute("datetime"));
      seen = { at: now, seconds: m ? Number(m[1]) : 0 };
      elapsedSeen.set(el, seen);
    }
    var fromStart = Math.round((now - Date.parse(el.dataset.since)) / 1000);
    var s = Math.max(fromStart || 0, seen.seconds + Math.round((now - seen.at) / 1000));
    el.setAttribute("datetime", "PT" + s + "S");
    el.textContent = showDuration(s);
  });
}
window.setInterval(tickElapsed, 1000);

/* ---- sections ---- */
// A live log's section that was open while its step ran closes when the
// step has passed (its new head comes with data-fold); the reader may open
// it again.
document.addEventListener("htmx:sseMessage", function () {
  document.querySelectorAll("#log summary[data-fold]").forEach(function (head) {
    head.removeAttribute("data-fold");
    head.parentElement.open = false;
  });
});

// In a log in sections, a line not loaded yet is sought in its section
// (the last that begins at or before it), opened: the placeholder there
// loads its next page.
function sectionMore(n) {
  var found = null;
  document.querySelectorAll("#log > details[data-line]").forEach(function (d) {
    if (Number(d.dataset.line) <= n) {
      found = d;
    }
  });
  if (!found) {
    return null;
  }
  found.open = true;
  return found.querySelector(".log-more");
}
// A page of a log in sections loads no lines by itself while its sections
// are folded: a link to a line is sought as soon as the page is there.
document.addEventListener("DOMContentLoaded", function () {
  if (document.querySelector("#log > details[data-line]")) {
    seekLine();
  }
});
