package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"kozmic/store"
)

// logToolsLog is a 5,000-line log whose line i arrived i×10 ms after the
// job began, with "needle" (in several cases and colours) on lines 2, 1500
// and 4800: the last two beyond the first page.
func logToolsLog() ([]timedWrite, []int) {
	var writes []timedWrite
	for i := 1; i <= 5000; i++ {
		text := fmt.Sprintf("\x1b[36mstep\x1b[0m %d of the build\n", i)
		switch i {
		case 2:
			text = "found a needle here\n"
		case 1500:
			text = "\x1b[1mNEEDLE\x1b[0m in bold\n"
		case 4800:
			text = "the last Needle, and another needle\n"
		}
		writes = append(writes, timedWrite{text, time.Duration(i) * 10 * time.Millisecond})
	}
	return writes, []int{2, 1500, 4800}
}

// On a phone and a desktop: the times toggle shows each line's time since
// the start or of day, and the choice holds on the next job's page; the
// search counts as you type, Enter and Shift+Enter (and the arrows) step
// through the matches, loading the page of one not loaded and marking the
// text; a link to a line deep in the log opens the page holding it, with a
// way to the lines before, and #L of a line not loaded fetches its page.
func TestBrowserLogTimesSearchAndLineLinks(t *testing.T) {
	srv, ctx, p, jobs := browserBuild(t, "octocat/log-tools", store.NewBuild{Ref: "refs/heads/main", SHA: strings.Repeat("b", 40), Message: "Log tools"}, "unit", "lint")
	writes, matches := logToolsLog()
	writeTimedLog(t, srv.db, jobs[0].ID, writes, 250)
	writeTimedLog(t, srv.db, jobs[1].ID, writes[:20], 5)
	bg := context.Background()
	job, err := srv.db.JobByID(bg, jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	other, err := srv.db.JobByID(bg, jobs[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	jobURL := fmt.Sprintf("%s/projects/%d/builds/1/jobs/%d", srv.url, p.ID, jobs[0].ID)
	otherURL := fmt.Sprintf("%s/projects/%d/builds/1/jobs/%d", srv.url, p.ID, jobs[1].ID)
	eval := func(t *testing.T, tab context.Context, js string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	poll := func(t *testing.T, tab context.Context, what, js string) {
		t.Helper()
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	inView := func(id string) string {
		return fmt.Sprintf(`(function () { var e = document.getElementById(%q); if (!e) return false;
			var r = e.getBoundingClientRect(); return r.top >= -1 && r.bottom <= window.innerHeight + 1; })()`, id)
	}
	fits := func(t *testing.T, tab context.Context, width int64, where string) {
		t.Helper()
		if bad := eval(t, tab, fmt.Sprintf(fitCheck, width)); bad != "" {
			t.Errorf("%s at %d px:\n%s", where, width, bad)
		}
	}
	wall := func(j store.Job, ms int) string {
		return j.StartedAt.Add(time.Duration(ms) * time.Millisecond).Local().Format("15:04:05.000")
	}

	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
		shot          string
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}, "phone-job-search.png"}, {"desktop", 1280, 800, nil, "job-search.png"}} {
		t.Run(size.name, func(t *testing.T) {
			tab, cancel := chromedp.NewContext(ctx)
			defer cancel()
			if err := chromedp.Do(tab, chromedp.EmulateViewport(size.width, size.height, size.opts...), chromedp.Navigate(jobURL),
				chromedp.WaitVisible(chromedp.ID("L1000"))); err != nil {
				t.Fatal(err)
			}
			eval(t, tab, `localStorage.clear(); ""`)

			// Times: since the start, then of day; each line keeps its own.
			pick := func(mode string) {
				eval(t, tab, fmt.Sprintf(`(function () { var s = document.getElementById("log-times"); s.value = %q;
					s.dispatchEvent(new Event("change", { bubbles: true })); return ""; })()`, mode))
			}
			pick("offset")
			if got := eval(t, tab, `document.getElementById("L3").dataset.ts + " " + document.getElementById("L250").dataset.ts + " " +
				getComputedStyle(document.getElementById("L3"), "::before").content`); got != `+0:00.030 +0:02.500 "+0:00.030  " counter(line)` &&
				!strings.HasPrefix(got, "+0:00.030 +0:02.500 ") {
				t.Errorf("offsets: %q", got)
			}
			if cls := eval(t, tab, `document.getElementById("log").className`); !strings.Contains(cls, "log-timed") {
				t.Errorf("the log's class with times: %q", cls)
			}
			pick("wall")
			if got, want := eval(t, tab, `document.getElementById("L3").dataset.ts`), wall(job, 30); got != want {
				t.Errorf("wall time of L3: %q, want %q", got, want)
			}
			fits(t, tab, size.width, "the job page with times")
			// The choice holds on the next job's page.
			if err := chromedp.Do(tab, chromedp.Navigate(otherURL), chromedp.WaitVisible(chromedp.ID("L20"))); err != nil {
				t.Fatal(err)
			}
			if got := eval(t, tab, `document.getElementById("log-times").value + " " + document.getElementById("L20").dataset.ts`); got != "wall "+wall(other, 200) {
				t.Errorf("the next job's page: %q, want wall %s", got, wall(other, 200))
			}
			pick("offset")

			// Search as you type: the count, then Enter steps to each match.
			if err := chromedp.Do(tab, chromedp.Navigate(jobURL), chromedp.WaitVisible(chromedp.ID("L1000")),
				chromedp.SendKeys(chromedp.ID("log-q"), "needle"),
				waitText("#log-search-count", func(s string) bool { return s == "3 matches" })); err != nil {
				t.Fatal(err)
			}
			current := func() string {
				return eval(t, tab, `Array.from(document.querySelectorAll("#log p.log-current")).map(function (p) {
					return p.id + ":" + Array.from(p.querySelectorAll("mark.log-hit")).map(function (m) { return m.textContent; }).join(",");
				}).join(" ")`)
			}
			step := func(key, count string, line int, marks string) {
				t.Helper()
				if err := chromedp.Do(tab, chromedp.Focus(chromedp.ID("log-q")), chromedp.KeyEvent(key),
					waitText("#log-search-count", func(s string) bool { return s == count })); err != nil {
					t.Fatal(err)
				}
				id := fmt.Sprintf("L%d", line)
				poll(t, tab, id+" in view", inView(id)+` && document.getElementById("`+id+`").classList.contains("log-current")`)
				if got := current(); got != id+":"+marks {
					t.Errorf("after %q (%s): the current line %q, want %s:%s", key, count, got, id, marks)
				}
			}
			const enter, shiftEnter = "\r", "\r" // Shift is given apart
			step(enter, "1 of 3", matches[0], "needle")
			step(enter, "2 of 3", matches[1], "NEEDLE") // not loaded: its page comes
			if n := eval(t, tab, `String(document.querySelectorAll("#log p").length)`); n == "5000" {
				t.Error("the second match loaded the whole log")
			}
			step(enter, "3 of 3", matches[2], "Needle,needle")
			screenshot(t, tab, size.shot)
			fits(t, tab, size.width, "the job page with a search")
			// Shift+Enter goes back; the buttons step too.
			if err := chromedp.Do(tab, chromedp.Focus(chromedp.ID("log-q")), chromedp.KeyEvent(shiftEnter, chromedp.KeyModifiers(chromedp.ModifierShift)),
				waitText("#log-search-count", func(s string) bool { return s == "2 of 3" })); err != nil {
				t.Fatal(err)
			}
			poll(t, tab, "L1500 current", inView("L1500")+` && document.getElementById("L1500").classList.contains("log-current")`)
			if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("log-search-prev")),
				waitText("#log-search-count", func(s string) bool { return s == "1 of 3" })); err != nil {
				t.Fatal(err)
			}
			poll(t, tab, "L2 current", inView("L2")+` && document.getElementById("L2").classList.contains("log-current")`)
			if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("log-search-next")),
				waitText("#log-search-count", func(s string) bool { return s == "2 of 3" })); err != nil {
				t.Fatal(err)
			}

			// A link deep into the log opens the page holding its line.
			if err := chromedp.Do(tab, chromedp.Navigate(jobURL+"?line=4321#L4321"), chromedp.WaitVisible(chromedp.ID("L4321"))); err != nil {
				t.Fatal(err)
			}
			poll(t, tab, "L4321 in view", inView("L4321"))
			if got := eval(t, tab, `document.querySelector("#log p").id + " " + document.querySelectorAll("#log p").length + " " +
				document.querySelector("#log .log-earlier a").textContent`); got != "L4001 1000 Show lines 3001–4000" {
				t.Errorf("?line=4321 opened %q", got)
			}
			checkLineNumbers(t, tab)
			if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#log .log-earlier a")), chromedp.WaitReady(chromedp.ID("L3001"))); err != nil {
				t.Fatal(err)
			}
			if got := eval(t, tab, `document.querySelector("#log p").id + " " + document.querySelectorAll("#log p").length`); got != "L3001 2000" {
				t.Errorf("after loading the lines before: %q", got)
			}
			checkLineNumbers(t, tab)
			// #L of a line not loaded fetches the page holding it, alone.
			eval(t, tab, `location.hash = "#L1234"; ""`)
			poll(t, tab, "L1234 in view", inView("L1234"))
			if got := eval(t, tab, `document.querySelector("#log p").id + " " + document.querySelectorAll("#log p").length`); got != "L1001 1000" {
				t.Errorf("#L1234 loaded %q", got)
			}
			checkLineNumbers(t, tab)
			fits(t, tab, size.width, "the job page at a line")
		})
	}
}
