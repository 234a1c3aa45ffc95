// Kozmic's own script: asks before a destructive form is sent.
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (form.matches("form.confirm") && !window.confirm(form.dataset.confirm || "Are you sure?")) {
    e.preventDefault();
  }
});

// A log line's number is a CSS counter (.log p::before), which each block
// of lines, a page or an event of the live log, starts on its first line at
// that line's number, from its id (L<n>): the server sends no numbers.
function numberLines() {
  document.querySelectorAll("#log .log-lines:not([data-numbered])").forEach(function (block) {
    // On the first line, not the block: Chromium ignores the counter-reset
    // of a block that skips its layout off screen (content-visibility).
    var first = block.querySelector("p[id^=L]");
    if (first) {
      first.style.counterReset = "line " + (Number(first.id.slice(1)) - 1);
    }
    block.dataset.numbered = "";
  });
}
document.addEventListener("htmx:afterSwap", numberLines);

// A click on a line's number (the line's left padding) links to the line.
function onLineNumber(e, line) {
  return e.clientX < line.getBoundingClientRect().left + parseFloat(getComputedStyle(line).paddingLeft);
}
document.addEventListener("click", function (e) {
  var line = e.target.closest && e.target.closest("#log p[id]");
  if (line && onLineNumber(e, line)) {
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

// A link to a line (#L123): shown once it is there, its section opened. A
// finished log loads a page at a time: a line not loaded yet is fetched
// with the page holding it (log?line=N), which replaces what the log, or
// the section holding the line, showed and leads with a link to the lines
// before it. A live log brings every line from the first.
var shownLine = "";
function seekLine() {
  var id = window.location.hash.slice(1);
  if (!/^L\d+$/.test(id) || id === shownLine) {
    return;
  }
  var line = document.getElementById(id);
  var log = document.getElementById("log");
  var tools = document.getElementById("log-tools");
  if (line) {
    shownLine = id;
    var section = line.closest("details");
    if (section) {
      section.open = true;
    }
    line.scrollIntoView({ block: "center" });
  } else if (log && tools && !log.hasAttribute("sse-swap") && log.dataset.seeking !== id) {
    log.dataset.seeking = id;
    htmx.ajax("GET", tools.dataset.job + "/log?line=" + id.slice(1), { target: sectionBody(Number(id.slice(1))) || log, swap: "innerHTML" });
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

// ---- groups ----
// A build script's ::group:: lines fold. The server sends every line flat,
// a group's header (p.group-start) and its end (p.group-end, a row of no
// height) among them, so that a group may span pages and events: this
// script keeps the groups open at the end of what is loaded, folds each
// new line into them, and makes each header a button. A finished log
// starts with its groups folded; a live one keeps the group it is writing
// into open and folds a group when it ends, unless someone opened or
// closed it by hand. Without the script every line shows.
var openGroups = [];
var groupsIn = null; // the section (or log) whose lines openGroups holds
function isFolded(header) {
  return header.getAttribute("aria-expanded") === "false";
}
// setFolded shows or hides the lines of the group that header starts, up
// to its end or the end of what is loaded, keeping nested groups as they
// are; a header folded away itself keeps them hidden.
function setFolded(header, folded) {
  header.setAttribute("aria-expanded", folded ? "false" : "true");
  var hidden = header.classList.contains("folded");
  var inside = [header];
  for (var line = nextLogLine(header); line && inside.length; line = nextLogLine(line)) {
    line.classList.toggle("folded", hidden || inside.some(isFolded));
    if (line.classList.contains("group-start")) {
      inside.push(line);
    } else if (line.classList.contains("group-end")) {
      inside.pop();
    }
  }
}
// nextLogLine is the line after line, in its block or the blocks after it.
function nextLogLine(line) {
  var next = line.nextElementSibling;
  for (var block = line.parentElement; !next && block; ) {
    block = block.nextElementSibling;
    next = block && block.classList.contains("log-lines") ? block.firstElementChild : null;
  }
  return next;
}
function foldLines(block, live) {
  // A group never runs on from one step's section into the next.
  if (block.parentElement !== groupsIn) {
    openGroups = [];
    groupsIn = block.parentElement;
  }
  block.querySelectorAll(":scope > p").forEach(function (line) {
    line.classList.toggle("folded", openGroups.some(isFolded));
    if (line.classList.contains("group-start")) {
      line.dataset.depth = Math.min(openGroups.length, 2);
      line.tabIndex = 0;
      line.setAttribute("role", "button");
      line.setAttribute("aria-expanded", live ? "true" : "false");
      openGroups.push(line);
    } else if (line.classList.contains("group-end") && openGroups.length) {
      var ended = openGroups.pop();
      if (live && !ended.dataset.byHand && !isFolded(ended)) {
        setFolded(ended, true);
      }
    }
  });
  block.dataset.groups = "";
}
function foldNewLines() {
  var log = document.getElementById("log");
  if (!log) {
    return;
  }
  // Blocks of lines are the log's own, or its sections' (sections.templ).
  var blocks = log.querySelectorAll(".log-lines");
  var fresh = log.querySelectorAll(".log-lines:not([data-groups])");
  var live = log.hasAttribute("sse-swap");
  if (fresh.length && blocks[blocks.length - fresh.length] !== fresh[0]) {
    // A block came before others already seen: fold everything anew.
    groupsIn = null;
    fresh = blocks;
  }
  fresh.forEach(function (block) { foldLines(block, live); });
}
document.addEventListener("htmx:afterSwap", foldNewLines);
document.addEventListener("htmx:sseMessage", foldNewLines);

function toggleGroup(header) {
  header.dataset.byHand = "";
  setFolded(header, !isFolded(header));
}
document.addEventListener("click", function (e) {
  var header = e.target.closest && e.target.closest("#log p.group-start[aria-expanded]");
  if (header && !onLineNumber(e, header)) {
    toggleGroup(header);
  }
});
document.addEventListener("keydown", function (e) {
  var header = e.target.closest && e.target.closest("#log p.group-start[aria-expanded]");
  if (header && (e.key === "Enter" || e.key === " ")) {
    e.preventDefault();
    toggleGroup(header);
  }
});

// A linked line (#L123) in a folded group opens the groups around it, once
// it is loaded: a group folded again later stays so.
var revealedLine = "";
function revealLine() {
  var id = window.location.hash.slice(1);
  var line = /^L\d+$/.test(id) && id !== revealedLine && document.getElementById(id);
  if (!line) {
    return;
  }
  revealedLine = id;
  if (!line.classList.contains("folded")) {
    return;
  }
  // Back from the line, each header whose end is not on the way holds it.
  var depth = 0;
  for (var prev = previousLogLine(line); prev && line.classList.contains("folded"); prev = previousLogLine(prev)) {
    if (prev.classList.contains("group-end")) {
      depth++;
    } else if (prev.classList.contains("group-start")) {
      if (depth > 0) {
        depth--;
      } else if (isFolded(prev)) {
        toggleGroup(prev);
      }
    }
  }
  line.scrollIntoView({ block: "center" });
}
function previousLogLine(line) {
  var prev = line.previousElementSibling;
  for (var block = line.parentElement; !prev && block; ) {
    block = block.previousElementSibling;
    prev = block && block.classList.contains("log-lines") ? block.lastElementChild : null;
  }
  return prev;
}
document.addEventListener("htmx:afterSettle", revealLine);
window.addEventListener("hashchange", revealLine);
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
// (the last that begins at or before it), opened: the page holding it
// takes the place of what the section's body showed.
function sectionBody(n) {
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
  return found.querySelector(".log-section-body");
}

/* ---- logtools ---- */

// Times: each line's <p> has data-t (ms from the job's start to the line's
// arrival) where it differs from the line before it in its block; shown,
// as the time since the start or the time of day, they are each line's
// data-ts, which the stylesheet puts beside its number. The choice is kept
// (localStorage) from job to job; ?times= in the address comes first.
var timesKey = "kozmic-log-times";
// two writes n (0 to 99) in two digits.
function two(n) { return (n < 10 ? "0" : "") + n; }
function logOffset(ms) {
  var s = Math.floor(ms / 1000), milli = String(ms % 1000).padStart(3, "0");
  if (s >= 3600) {
    return "+" + Math.floor(s / 3600) + ":" + two(Math.floor(s / 60) % 60) + ":" + two(s % 60) + "." + milli;
  }
  return "+" + Math.floor(s / 60) + ":" + two(s % 60) + "." + milli;
}
function logWall(ms) {
  var d = new Date(ms);
  return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function showTimes() {
  var log = document.getElementById("log");
  var select = document.getElementById("log-times");
  var tools = document.getElementById("log-tools");
  if (!log || !select || !tools) {
    return;
  }
  var mode = select.value;
  var started = Number(tools.dataset.started);
  log.classList.toggle("log-timed", mode !== "");
  log.querySelectorAll(".log-lines").forEach(function (block) {
    if (block.dataset.times === mode) {
      return;
    }
    block.dataset.times = mode;
    var t = null;
    block.querySelectorAll("p[id^=L]").forEach(function (p) {
      if (p.dataset.t !== undefined) {
        t = Number(p.dataset.t);
      }
      if (mode === "" || t === null) {
        delete p.dataset.ts;
      } else {
        p.dataset.ts = mode === "wall" ? logWall(started + t) : logOffset(t);
      }
    });
  });
}
document.addEventListener("change", function (e) {
  if (e.target.id === "log-times") {
    try { window.localStorage.setItem(timesKey, e.target.value); } catch (err) { /* private mode: not kept */ }
    showTimes();
  }
});

// Search: the results (links to the matching lines, data-line, and the
// pages starting at them, data-page) come as you type; Enter and
// Shift+Enter, or the arrows, step through them, loading the page of a
// line not loaded yet, and the matched text of loaded lines is marked.
var search = { query: null, links: [], at: -1 };
function searchResults() {
  var box = document.getElementById("log-search-results");
  if (!box) {
    return;
  }
  var query = box.dataset.query || "";
  if (query !== search.query) {
    document.querySelectorAll("#log mark.log-hit").forEach(function (m) {
      var parent = m.parentNode;
      parent.replaceChild(document.createTextNode(m.textContent), m);
      parent.normalize();
    });
    document.querySelectorAll("#log p.log-current").forEach(function (p) { p.classList.remove("log-current"); });
    search = { query: query, links: Array.prototype.slice.call(box.querySelectorAll("a[data-line]")), at: -1 };
  }
  var found = search.links.length > 0;
  ["log-search-prev", "log-search-next"].forEach(function (id) {
    var b = document.getElementById(id);
    if (b) {
      b.hidden = false;
      b.disabled = !found;
    }
  });
  showCount();
  markMatches();
  var input = document.getElementById("log-q");
  if (stepWhenFound && input && input.value === query) {
    var step = stepWhenFound;
    stepWhenFound = 0;
    goToMatch(step);
  }
}
function showCount() {
  var count = document.getElementById("log-search-count");
  var box = document.getElementById("log-search-results");
  if (!count || !box || !search.query) {
    if (count) { count.textContent = ""; }
    return;
  }
  var all = Number(box.dataset.count || 0);
  count.textContent = search.at < 0 ? all + (all === 1 ? " match" : " matches") : (search.at + 1) + " of " + all;
}
function markLine(p, query) {
  if (p.dataset.marked === query) {
    return;
  }
  p.dataset.marked = query;
  var q = query.toLowerCase();
  var walker = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
  var nodes = [];
  while (walker.nextNode()) {
    if (!walker.currentNode.parentNode.closest("a.line-cut")) {
      nodes.push(walker.currentNode);
    }
  }
  nodes.forEach(function (node) {
    var i;
    while ((i = node.data.toLowerCase().indexOf(q)) >= 0) {
      var hit = node.splitText(i);
      node = hit.splitText(q.length);
      var mark = document.createElement("mark");
      mark.className = "log-hit";
      hit.parentNode.replaceChild(mark, hit);
      mark.appendChild(hit);
    }
  });
}
function markMatches() {
  if (!search.query) {
    return;
  }
  search.links.forEach(function (a) {
    var p = document.getElementById("L" + a.dataset.line);
    if (p) {
      markLine(p, search.query);
    }
  });
}
function goToMatch(step) {
  if (search.links.length === 0) {
    return;
  }
  search.at = (search.at + step + search.links.length) % search.links.length;
  var a = search.links[search.at];
  var id = "L" + a.dataset.line;
  showCount();
  document.querySelectorAll("#log p.log-current").forEach(function (p) { p.classList.remove("log-current"); });
  var show = function () {
    var p = document.getElementById(id);
    if (p) {
      markLine(p, search.query);
      p.classList.add("log-current");
      shownLine = id;
      history.replaceState(null, "", "#" + id);
      p.scrollIntoView({ block: "center" });
    }
  };
  if (document.getElementById(id) || document.getElementById("log").hasAttribute("sse-swap")) {
    show();
  } else {
    htmx.ajax("GET", a.dataset.page + "&earlier=1", { target: "#log", swap: "innerHTML" }).then(show);
  }
}
document.addEventListener("click", function (e) {
  var b = e.target.closest && e.target.closest("#log-search-prev, #log-search-next");
  if (b) {
    goToMatch(b.id === "log-search-next" ? 1 : -1);
  }
});
// Enter in the search box submits its form, which with scripts steps to
// the next match (Shift+Enter: the one before) instead of leaving the page.
var searchBack = false, stepWhenFound = 0;
document.addEventListener("keydown", function (e) {
  if (e.target.id === "log-q" && e.key === "Enter") {
    searchBack = e.shiftKey;
  }
});
document.addEventListener("submit", function (e) {
  var input = document.getElementById("log-q");
  if (!e.target.matches("form.log-search") || !input) {
    return;
  }
  e.preventDefault();
  var back = searchBack;
  searchBack = false;
  if (search.query !== input.value) {
    stepWhenFound = back ? -1 : 1; // once the list for what is typed comes
    htmx.trigger(input, "search");
  } else {
    goToMatch(back ? -1 : 1);
  }
});

function logTools() {
  var select = document.getElementById("log-times");
  if (!select) {
    return;
  }
  document.querySelectorAll("#log-tools .no-js").forEach(function (b) { b.hidden = true; });
  // The page came with its log's first page (of each section).
  numberLines();
  foldNewLines();
  if (!/[?&]times=/.test(window.location.search)) {
    try { select.value = window.localStorage.getItem(timesKey) || ""; } catch (err) { /* not kept */ }
  }
  showTimes();
  searchResults();
  seekLine();
  revealLine();
}
document.addEventListener("DOMContentLoaded", logTools);
document.addEventListener("htmx:afterSwap", function () {
  showTimes();
  searchResults();
});
document.addEventListener("htmx:sseMessage", showTimes);
