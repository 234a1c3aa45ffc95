package handlers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"kozmic/store"
	"kozmic/views"
)

// longLineUnit makes up the long line of longLineJob: colours and a
// two-byte rune, so that the cut can fall inside an escape or a rune.
const (
	longLineUnit    = "\x1b[32mgrün\x1b[0m step 0123456789 "
	longLineVisible = "grün step 0123456789 "
)

// longLineJob makes a finished job of a project of s whose log is a short
// line, a line of n bytes and another short line, stored as the runner
// stores a log: in appends of 64 KiB, compressed once the job has finished.
// It returns the build, the job, and the log's size and SHA-256: the log
// itself is not kept, so that it does not weigh on the memory measured.
func longLineJob(t testing.TB, s *testServer, p store.Project, n int) (store.Build, store.Job, int, [32]byte) {
	t.Helper()
	ctx := context.Background()
	if hooks, _ := s.db.Hooks(ctx, p.ID); len(hooks) == 0 {
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	b, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc", Author: "Ann", Message: "m"})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("build: %+v, %v", jobs, err)
	}
	line := bytes.Repeat([]byte(longLineUnit), n/len(longLineUnit)+1)[:n]
	log := append(append([]byte("before\n"), line...), "\nafter\n"...)
	s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
	for data := log; len(data) > 0; {
		k := min(len(data), 64<<10)
		if _, err := s.db.AppendLog(ctx, jobs[0].ID, data[:k], false); err != nil {
			t.Fatal(err)
		}
		data = data[k:]
	}
	s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess})
	return b, jobs[0], len(log), sha256.Sum256(log)
}

// peakRSSGrowth runs fn and returns how far the process's resident memory
// rose, at its peak, above where it stood before: the kernel's high-water
// mark (VmHWM), reset just before fn, less the resident size then. Free
// heap goes back to the system first, so that memory kept from earlier
// work cannot hide what fn takes.
func peakRSSGrowth(t testing.TB, fn func()) int64 {
	t.Helper()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak resident size: %v", err)
	}
	before := procStatusBytes(t, "VmRSS")
	fn()
	return procStatusBytes(t, "VmHWM") - before
}

// procStatusBytes reads a size in kB from /proc/self/status.
func procStatusBytes(t testing.TB, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// fetchAll gets path as b from n viewers at once and returns the bodies.
// Failures are reported with t.Error, so it may run in any goroutine.
func fetchAll(t testing.TB, b *browser, path string, n int) []string {
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() {
			res, err := b.c.Get(b.base + path)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil || res.StatusCode != 200 {
				t.Errorf("%s: %d, %v", path, res.StatusCode, err)
			}
			bodies[i] = string(body)
		})
	}
	wg.Wait()
	return bodies
}

// logLine finds the lines in a log's HTML.
const logLine = "p[id^=L]"

// shownText is the text a log line shows, without a cut line's marker.
func shownText(line *goquery.Selection) string {
	line = line.Clone()
	line.Find("a." + lineCutClass).Remove()
	return line.Text()
}

// checkLongLine checks the HTML of longLineJob's log: its three lines, the
// long one cut to at most maxLineShown bytes (but not much fewer) of its
// text, whole runes only, and then a marker linking the raw log.
func checkLongLine(t *testing.T, where, html, rawURL string) {
	t.Helper()
	if len(html) > 4*maxLineShown {
		t.Errorf("%s: %d bytes of HTML for lines of %d bytes shown at most", where, len(html), maxLineShown)
	}
	lines := parse(t, html).Find(logLine)
	if lines.Length() != 3 || lines.Eq(0).AttrOr("id", "") != "L1" || lines.Eq(2).AttrOr("id", "") != "L3" ||
		shownText(lines.Eq(0)) != "before" || shownText(lines.Eq(2)) != "after" {
		t.Fatalf("%s: the lines around the long one are not L1 before and L3 after: %.500s", where, html)
	}
	long := lines.Eq(1)
	text := shownText(long)
	visible := strings.Repeat(longLineVisible, maxLineShown/len(longLineVisible)+1)
	if len(text) > maxLineShown || len(text) < maxLineShown/2 || !strings.HasPrefix(visible, text) || strings.ContainsRune(text, '\uFFFD') {
		t.Errorf("%s: L2 shows %d bytes, not a clean start of the line of at most %d: …%q", where, len(text), maxLineShown, text[max(0, len(text)-40):])
	}
	cut := long.Find("a." + lineCutClass)
	if cut.Length() != 1 || cut.AttrOr("href", "") != rawURL || cut.Text() != "line truncated — see raw log" {
		t.Errorf("%s: L2's marker = %d links %q", where, cut.Length(), cut.AttrOr("href", ""))
	}
	if lines.Eq(0).Find("a."+lineCutClass).Length()+lines.Eq(2).Find("a."+lineCutClass).Length() != 0 {
		t.Errorf("%s: a short line is marked as cut", where)
	}
}

// A log line of 32 MiB is shown cut to maxLineShown bytes with a marker
// linking the raw log, on its page and in its stream, each viewed by four
// at once while the server's resident memory grows by less than 64 MiB,
// the bound (showing the whole line took about 1.4 GB a view;
// now it grows by 10 to 25 MiB, depending on when the collector runs);
// the raw log still has all of it.
func TestLongLogLineRendersInBoundedMemory(t *testing.T) {
	const viewers, bound = 4, 64 << 20
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job, size, sum := longLineJob(t, s, p, 32<<20)
	jobURL := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID)

	var pages, streams []string
	grew := peakRSSGrowth(t, func() { pages = fetchAll(t, b, jobURL+"/log", viewers) })
	t.Logf("%d views of the log page: resident memory grew by %.1f MiB at its peak", viewers, float64(grew)/(1<<20))
	if grew > bound {
		t.Errorf("%d views of the log page grew the resident memory by %d MiB, want < %d", viewers, grew>>20, bound>>20)
	}
	grew = peakRSSGrowth(t, func() { streams = fetchAll(t, b, jobURL+"/log/stream", viewers) })
	t.Logf("%d streams of the log: resident memory grew by %.1f MiB at its peak", viewers, float64(grew)/(1<<20))
	if grew > bound {
		t.Errorf("%d streams of the log grew the resident memory by %d MiB, want < %d", viewers, grew>>20, bound>>20)
	}
	for i, page := range pages {
		checkLongLine(t, fmt.Sprintf("page %d", i), page, jobURL+"/log.txt")
		if strings.Contains(page, views.LogMoreClass) {
			t.Errorf("page %d: the log goes on after its end", i)
		}
	}
	for i, stream := range streams {
		evs := parseEvents(strings.NewReader(stream))
		var html strings.Builder
		lastID := ""
		for _, e := range evs {
			if e.event == "line" {
				html.WriteString(e.data)
				lastID = e.id
			}
		}
		checkLongLine(t, fmt.Sprintf("stream %d", i), html.String(), jobURL+"/log.txt")
		// The skipped bytes count: a reconnect resumes after the log.
		if want := fmt.Sprintf("%d:4", size); lastID != want || evs[len(evs)-1].event != "end" {
			t.Errorf("stream %d: last line event's id %q, want %q, then an end event", i, lastID, want)
		}
	}
	if raw := fetchAll(t, b, jobURL+"/log.txt?ansi=1", 1)[0]; len(raw) != size || sha256.Sum256([]byte(raw)) != sum {
		t.Errorf("the raw log has %d bytes, want all %d as stored", len(raw), size)
	}
}

// A line cut at maxLineShown never ends in half a UTF-8 sequence or shows
// part of an escape sequence, however the output arrives; the lines after
// it keep their numbers and offsets.
func TestLogLineCutNeverSplitsARuneOrShowsPartOfAnEscape(t *testing.T) {
	for name, tt := range map[string]struct {
		shown int    // bytes before the tail, which maxLineShown cuts
		tail  string // what the cut falls into
	}{
		"rune":   {maxLineShown - 1, "ü" + strings.Repeat("x", 100)},
		"escape": {maxLineShown - 3, "\x1b[32mgreen\x1b[0m" + strings.Repeat("x", 100)},
	} {
		shown := strings.Repeat("a", tt.shown)
		log := "first\n" + shown + tt.tail + "\nlast\n"
		for _, piece := range []int{len(log), 1000, 7} {
			l := &lineRenderer{next: 1, rawURL: "/raw"}
			var html strings.Builder
			for p := log; p != ""; {
				k := min(len(p), piece)
				html.WriteString(l.write([]byte(p[:k]), nil))
				p = p[k:]
			}
			where := fmt.Sprintf("%s in pieces of %d", name, piece)
			lines := parse(t, html.String()).Find(logLine)
			if lines.Length() != 3 || shownText(lines.Eq(2)) != "last" || l.next != 4 || l.pos != int64(len(log)) {
				t.Fatalf("%s: %d lines, next L%d at %d of %d", where, lines.Length(), l.next, l.pos, len(log))
			}
			if text := shownText(lines.Eq(1)); text != shown {
				t.Errorf("%s: the cut line ends in %q", where, text[max(0, len(text)-10):])
			}
			if lines.Eq(1).Find("a."+lineCutClass).Length() != 1 {
				t.Errorf("%s: no marker", where)
			}
		}
	}
}

// A finished log of many long lines comes in pages of about logPageBytes
// of HTML, not in one page of a thousand lines, and loses no line.
func TestLogPagesOfLongLinesStayBounded(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	const lineCount, lineLen = 40, 60 << 10
	var log strings.Builder
	for i := 1; i <= lineCount; i++ {
		head := fmt.Sprintf("line %d ", i)
		log.WriteString(head + strings.Repeat("x", lineLen-len(head)) + "\n")
	}
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", log.String(), store.JobSuccess)
	next, pages, want := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log", p.ID, build.Number, job.ID), 0, 1
	for next != "" && pages <= lineCount {
		res, frag := b.do("GET", next, nil)
		if res.StatusCode != 200 || len(frag) > logPageBytes+4*maxLineShown {
			t.Fatalf("%s: %d, %d bytes", next, res.StatusCode, len(frag))
		}
		pages++
		doc := parse(t, frag)
		doc.Find(logLine).Each(func(_ int, l *goquery.Selection) {
			if text := shownText(l); l.AttrOr("id", "") != fmt.Sprintf("L%d", want) ||
				!strings.HasPrefix(text, fmt.Sprintf("line %d x", want)) || len(text) != lineLen {
				t.Fatalf("L%d: %s of %d bytes", want, l.AttrOr("id", ""), len(text))
			}
			want++
		})
		next = doc.Find("."+views.LogMoreClass).AttrOr("hx-get", "")
	}
	if want != lineCount+1 || pages < lineCount*lineLen/logPageBytes {
		t.Errorf("%d pages ending before L%d, want L%d in more than %d pages", pages, want, lineCount+1, lineCount*lineLen/logPageBytes)
	}
}

// liveLogFixture is a local server checking log streams' access every
// 10 ms, a git URL project of ann's with bob as a member, and a running job
// whose log has one line.
type liveLogFixture struct {
	s      *testServer
	p      store.Project
	job    store.Job
	stream string // the job's log stream
	bobID  int64
}

func newLiveLogFixture(t *testing.T) (f liveLogFixture, ann, bob *browser) {
	f.s = newTestServerWith(t, false, func(d *Deps) { d.AccessRecheck = 10 * time.Millisecond })
	annU, ann := signInLocal(t, f.s, "ann")
	bobU, bob := signInLocal(t, f.s, "bob")
	ctx := context.Background()
	var err error
	f.p, err = f.s.db.CreateProject(ctx, store.NewProject{OwnerID: annU.ID, Source: store.SourceGit, FullName: "team/app",
		GitURL: "https://git.example.com/team/app.git", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.db.SetMembership(ctx, store.Membership{ProjectID: f.p.ID, UserID: bobU.ID}); err != nil {
		t.Fatal(err)
	}
	var build store.Build
	build, f.job = buildWithLog(t, f.s, f.p, "refs/heads/main", "abc", "m", "one\n", store.JobRunning)
	f.stream = fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", f.p.ID, build.Number, f.job.ID)
	f.bobID = bobU.ID
	return f, ann, bob
}

// watch opens the job's log stream as b and reads its first line.
func (f liveLogFixture) watch(t *testing.T, b *browser) *eventReader {
	t.Helper()
	res, _ := openStream(t, b, f.stream, "")
	er := newEventReader(res.Body)
	if ev, ok := er.next(); !ok || ev.event != "line" || !strings.Contains(ev.data, "one") {
		t.Fatalf("the stream did not start with the log: %+v", ev)
	}
	return er
}

// checkAccessEnded checks that a stream says that access ended, then ends.
func checkAccessEnded(t *testing.T, who string, er *eventReader) {
	t.Helper()
	ev, ok := er.next()
	if !ok || ev.event != "end" || !strings.Contains(ev.data, `id="`+views.JobHeadID+`"`) || !strings.Contains(ev.data, "This live log stopped") {
		t.Fatalf("%s's stream: %+v, %t; want an end event saying the access ended", who, ev, ok)
	}
	if ev, ok := er.next(); ok {
		t.Errorf("%s's stream goes on after its end: %+v", who, ev)
	}
}

// checkStillOpen checks that a stream still follows the job: it ends with
// the job's result once the job is canceled.
func (f liveLogFixture) checkStillOpen(t *testing.T, who string, er *eventReader) {
	t.Helper()
	if err := f.s.jobs.Cancel(context.Background(), f.job.ID, "ann"); err != nil {
		t.Fatal(err)
	}
	if ev, ok := er.next(); !ok || ev.event != "end" || strings.Contains(ev.data, "This live log stopped") || !strings.Contains(ev.data, "error") {
		t.Errorf("%s's stream did not end with the job: %+v, %t", who, ev, ok)
	}
}

// An open live log ends, saying so, when its session ends: signed out in
// that browser, or everywhere from another. A stream of another session
// goes on.
func TestLiveLogEndsWhenSessionEnds(t *testing.T) {
	t.Run("sign out", func(t *testing.T) {
		f, ann, _ := newLiveLogFixture(t)
		other := newBrowser(t, f.s) // ann in a second browser
		if res, _ := other.do("POST", "/login", url.Values{"username": {"ann"}, "password": {"ann's password"}}); res.StatusCode != 303 {
			t.Fatalf("second sign-in: %d", res.StatusCode)
		}
		mine, theirs := f.watch(t, ann), f.watch(t, other)
		if res, _ := ann.do("POST", "/logout", nil); res.StatusCode != 303 {
			t.Fatalf("sign out: %d", res.StatusCode)
		}
		checkAccessEnded(t, "the signed-out browser", mine)
		f.checkStillOpen(t, "the other browser", theirs)
	})
	t.Run("sign out everywhere", func(t *testing.T) {
		f, ann, bob := newLiveLogFixture(t)
		other := newBrowser(t, f.s)
		if res, _ := other.do("POST", "/login", url.Values{"username": {"ann"}, "password": {"ann's password"}}); res.StatusCode != 303 {
			t.Fatalf("second sign-in: %d", res.StatusCode)
		}
		annStream, bobStream := f.watch(t, ann), f.watch(t, bob)
		if res, _ := other.do("POST", "/account/sessions/delete", nil); res.StatusCode != 303 {
			t.Fatalf("sign out everywhere: %d", res.StatusCode)
		}
		checkAccessEnded(t, "ann", annStream)
		f.checkStillOpen(t, "bob", bobStream)
		if !strings.Contains(f.s.logs.String(), "log stream ended: access ended") {
			t.Error("the end of access is not logged")
		}
	})
}

// An open live log ends, saying so, when its viewer is removed from the
// project; the owner's stream goes on.
func TestLiveLogEndsWhenAccessIsLost(t *testing.T) {
	f, ann, bob := newLiveLogFixture(t)
	bobStream, annStream := f.watch(t, bob), f.watch(t, ann)
	if res, _ := ann.do("POST", fmt.Sprintf("/projects/%d/members/%d/delete", f.p.ID, f.bobID), nil); res.StatusCode != 303 {
		t.Fatalf("remove bob: %d", res.StatusCode)
	}
	checkAccessEnded(t, "bob", bobStream)
	f.checkStillOpen(t, "ann", annStream)
	if f.s.accessRecheck != 10*time.Millisecond || newTestServer(t).accessRecheck != 30*time.Second {
		t.Errorf("access rechecked every %v, and %v without Deps.AccessRecheck; want 30s", f.s.accessRecheck, newTestServer(t).accessRecheck)
	}
}

// The raw log is plain text by default: colours, cursor codes, titles and
// hyperlinks are removed, also when a sequence is split between the stored
// chunks (and so between the reads that send the log), before and after the
// log is compressed; a string sequence that never ends takes no more than
// its line. With ?ansi=1 it is the log as stored, byte for byte.
func TestRawLogStripsEscapesUnlessAsked(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	ctx := context.Background()
	// Each chunk holds more than a read of the raw log (1 MiB), so that
	// every read ends where a chunk ends, inside a sequence.
	filler := func(tag string) string { return strings.Repeat(tag+" 0123456789abcdef\n", (1<<20)/20) }
	chunks := []string{
		"start \x1b[1;32mgreen\x1b[0m\n" + filler("one") + "\x1b[3",
		"1mred\x1b[0m\n" + filler("two") + "\x1b]8;;https://example.com/\x1b\\link\x1b]8;;\x1b",
		"\\ after\n\x1b(Bcharset \x1b]0;title\x07tail\x1b[?25l\r\nprogress 10%\rprogress 100%\n" +
			"\x1b]0;never ends\nvisible grün\n\x1b[31;1",
	}
	want := "start green\n" + filler("one") + "red\n" + filler("two") + "link after\ncharset tail\r\nprogress 10%\rprogress 100%\n" +
		"\nvisible grün\n"
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "", store.JobRunning)
	for _, c := range chunks {
		if _, err := s.db.AppendLog(ctx, job.ID, []byte(c), false); err != nil {
			t.Fatal(err)
		}
	}
	jobURL := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID)
	check := func(when string) {
		t.Helper()
		res, plain := b.do("GET", jobURL+"/log.txt", nil)
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: raw log %d, %q", when, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if plain != want {
			i := 0
			for i < min(len(plain), len(want)) && plain[i] == want[i] {
				i++
			}
			t.Errorf("%s: plain raw log (%d bytes, want %d) differs at byte %d: %q, want %q", when, len(plain), len(want), i,
				plain[max(0, i-20):min(len(plain), i+20)], want[max(0, i-20):min(len(want), i+20)])
		}
		if _, raw := b.do("GET", jobURL+"/log.txt?ansi=1", nil); raw != strings.Join(chunks, "") {
			t.Errorf("%s: with ?ansi=1 the raw log has %d bytes, not the %d stored", when, len(raw), len(strings.Join(chunks, "")))
		}
	}
	check("while running")
	s.db.UpdateJob(ctx, job.ID, store.JobUpdate{Status: store.JobSuccess})
	check("finished")
}
