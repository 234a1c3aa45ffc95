package handlers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"kozmic/store"
	"kozmic/views"
)

// buildWithLog makes a build of p with one job, the given log, finished as s.
func buildWithLog(t *testing.T, s *testServer, p store.Project, ref, sha, message, log string, st store.JobStatus) (store.Build, store.Job) {
	t.Helper()
	ctx := context.Background()
	if hooks, _ := s.db.Hooks(ctx, p.ID); len(hooks) == 0 {
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	b, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: ref, SHA: sha, Author: "Ann", Message: message})
	if err != nil {
		t.Fatal(err)
	}
	if log != "" {
		if _, err := s.db.AppendLog(ctx, jobs[0].ID, []byte(log), false); err != nil {
			t.Fatal(err)
		}
	}
	if st != store.JobEnqueued {
		s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
		if st != store.JobRunning {
			s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: st})
		}
	}
	b, _ = s.db.BuildByID(ctx, b.ID)
	return b, jobs[0]
}

const hostileLog = "\x1b[32mgreen\x1b[0m <script>alert('log')</script>\n" +
	"\x1b]8;;javascript:alert(1)\x1b\\click me\x1b]8;;\x1b\\\n" +
	"\x1b]1337;File=name=eC5zdmc=;inline=1:PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+\x07\n" +
	"progress 10%\rprogress 50%\rprogress 100%\n" +
	"last line without a newline"

func TestProjectBuildsList(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	for i := 1; i <= 30; i++ {
		ref := "refs/heads/main"
		if i%10 == 0 {
			ref = "refs/heads/feature"
		}
		buildWithLog(t, s, p, ref, fmt.Sprintf("%040d", i), fmt.Sprintf("change %d <b>bold</b>\n\nsecond-paragraph-text", i), "", store.JobSuccess)
	}
	res, page := b.do("GET", fmt.Sprintf("/projects/%d", p.ID), nil)
	if res.StatusCode != 200 {
		t.Fatalf("project page: %d", res.StatusCode)
	}
	if n := strings.Count(page, `class="build"`); n != 25 {
		t.Errorf("first page rows = %d, want 25", n)
	}
	if !strings.Contains(page, "#30") || strings.Contains(page, ">#5<") || !strings.Contains(page, "?before=6") {
		t.Errorf("first page is not builds 30..6 with a link to older ones")
	}
	if strings.Contains(page, "<b>bold</b>") || !strings.Contains(page, "&lt;b&gt;bold&lt;/b&gt;") || strings.Contains(page, "second-paragraph-text") {
		t.Error("commit messages are not escaped, or more than their first line is shown")
	}
	// The list, after the insights (whose rows have times of their own).
	list := page[strings.Index(page, `<ul class="rows builds"`):]
	if strings.Contains(page, "@timeAgo") || strings.Count(list, "<time title=") != 25 {
		t.Error("the builds list shows template code instead of times")
	}
	if !strings.Contains(page, "/badges/octocat/Hello-World.svg") {
		t.Error("no badge Markdown")
	}
	_, page = b.do("GET", fmt.Sprintf("/projects/%d?before=6", p.ID), nil)
	if n := strings.Count(page, `class="build"`); n != 5 || strings.Contains(page, "Older builds") {
		t.Errorf("second page rows = %d", n)
	}
	_, page = b.do("GET", fmt.Sprintf("/projects/%d?branch=feature", p.ID), nil)
	list = page[strings.Index(page, `<ul class="rows builds"`):]
	if n := strings.Count(list, `class="build"`); n != 3 || !strings.Contains(list, "#30") || strings.Contains(list, ">#29<") {
		t.Errorf("feature builds = %d", n)
	}
	_, page = b.do("GET", fmt.Sprintf("/projects/%d?branch=nothing", p.ID), nil)
	if !strings.Contains(page, "No builds of nothing") {
		t.Error("no empty state for an unknown branch")
	}
}

func TestBuildAndJobPages(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	ctx := context.Background()
	build, job := buildWithLog(t, s, p, "refs/heads/main", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "<img src=x onerror=alert(1)>", hostileLog, store.JobFailure)
	buildURL := fmt.Sprintf("/projects/%d/builds/%d", p.ID, build.Number)
	jobURL := fmt.Sprintf("%s/jobs/%d", buildURL, job.ID)

	res, page := b.do("GET", buildURL, nil)
	if res.StatusCode != 200 || !strings.Contains(page, "failed") || !strings.Contains(page, "Re-run failed jobs") ||
		strings.Contains(page, "<img src=x") || !strings.Contains(page, "/octocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246") {
		t.Errorf("build page: %d", res.StatusCode)
	}
	if strings.Contains(page, "every 2s") {
		t.Error("a finished build still polls")
	}
	if strings.Contains(page, "@timeAgo") || !strings.Contains(page, "<time title=") {
		t.Error("the build page shows template code instead of the time")
	}
	res, page = b.do("GET", jobURL, nil)
	if res.StatusCode != 200 || !strings.Contains(page, `<p id=L1>`) || !strings.Contains(page, "Restart") || strings.Contains(page, ">Cancel<") {
		t.Errorf("job page: %d", res.StatusCode)
	}

	res, raw := b.do("GET", jobURL+"/log.txt?ansi=1", nil)
	if res.StatusCode != 200 || raw != hostileLog || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("raw log: %d, %d bytes", res.StatusCode, len(raw))
	}

	// Re-run: a second attempt, enqueued; the build polls again and offers to cancel.
	if res, _ := b.do("POST", buildURL+"/rerun", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("re-run: %d", res.StatusCode)
	}
	jobs, _ := s.db.Jobs(ctx, build.ID)
	if len(jobs) != 2 || jobs[1].Attempt != 2 || jobs[1].Status != store.JobEnqueued {
		t.Fatalf("jobs after re-run = %+v", jobs)
	}
	_, page = b.do("GET", buildURL, nil)
	if !strings.Contains(page, `hx-trigger="every 2s"`) || !strings.Contains(page, "attempt 2") {
		t.Error("the re-run build does not poll, or hides its new attempt")
	}
	second := fmt.Sprintf("%s/jobs/%d", buildURL, jobs[1].ID)
	if _, page := b.do("GET", second, nil); !strings.Contains(page, ">Cancel<") || !strings.Contains(page, "Attempts:") ||
		!strings.Contains(page, `sse-connect="`+second+`/log/stream"`) {
		t.Error("the enqueued attempt's page offers no Cancel, no attempt history or no live log")
	}
	if res, _ := b.do("POST", second+"/cancel", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("cancel: %d", res.StatusCode)
	}
	if j, _ := s.db.JobByID(ctx, jobs[1].ID); j.Status != store.JobError || j.Error != "canceled by octocat" {
		t.Errorf("canceled job = %s %q", j.Status, j.Error)
	}
	if res, _ := b.do("POST", second+"/restart", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("restart: %d", res.StatusCode)
	}
	if jobs, _ := s.db.Jobs(ctx, build.ID); len(jobs) != 3 {
		t.Errorf("attempts after restart = %d, want 3", len(jobs))
	}
	// A job is only reachable through its own build.
	other, _ := buildWithLog(t, s, p, "refs/heads/main", "abcdef", "other", "", store.JobSuccess)
	if res, _ := b.do("GET", fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, other.Number, job.ID), nil); res.StatusCode != 404 {
		t.Errorf("job through another build: %d", res.StatusCode)
	}
}

type sseEvent struct{ id, event, data string }

// openStream opens the live log stream of a job at path as b, with the
// X-Request-ID id when it is not empty. Calling cancel, or the end of the
// test, closes it; a deadline of 30s only keeps a broken stream from
// hanging the test.
func openStream(t *testing.T, b *browser, path, id string) (res *http.Response, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", b.base+path, nil)
	if id != "" {
		req.Header.Set("X-Request-ID", id)
	}
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res, cancel
}

// readEvents reads a finished event stream.
func readEvents(t *testing.T, b *browser, path, lastID string) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("stream: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	return parseEvents(res.Body)
}

// parseEvents reads events from a stream until it ends.
func parseEvents(r io.Reader) []sseEvent {
	var evs []sseEvent
	for er := newEventReader(r); ; {
		ev, ok := er.next()
		if !ok {
			return evs
		}
		evs = append(evs, ev)
	}
}

// eventReader reads the events of a stream one at a time, skipping comments.
type eventReader struct{ sc *bufio.Scanner }

func newEventReader(r io.Reader) *eventReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &eventReader{sc}
}

// next returns the next event, or false when the stream has ended.
func (er *eventReader) next() (sseEvent, bool) {
	var ev sseEvent
	for er.sc.Scan() {
		line := er.sc.Text()
		switch {
		case line == "":
			if ev.event != "" {
				return ev, true
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[6:]
		}
	}
	return sseEvent{}, false
}

func TestLogStream(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", hostileLog, store.JobFailure)
	stream := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", p.ID, build.Number, job.ID)

	evs := readEvents(t, b, stream, "")
	if len(evs) < 2 || evs[len(evs)-1].event != "end" || !strings.Contains(evs[len(evs)-1].data, "failed") ||
		!strings.Contains(evs[len(evs)-1].data, "Restart") || strings.Contains(evs[len(evs)-1].data, ">Cancel<") {
		t.Fatalf("events = %+v", evs)
	}
	var all strings.Builder
	for _, e := range evs[:len(evs)-1] {
		all.WriteString(e.data)
	}
	html := all.String()
	for _, want := range []string{`id=L1>`, `id=L5>`, `<span class="term-fg32">green</span>`, "&lt;script&gt;", "progress 100%", "last line without a newline"} {
		if !strings.Contains(html, want) {
			t.Errorf("stream lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>", "javascript:", "onload", "progress 10%", `id=L6>`} {
		if strings.Contains(html, bad) {
			t.Errorf("stream contains %q", bad)
		}
	}

	// Resuming after the first event gives exactly the rest, numbered on.
	first := evs[0]
	rest := readEvents(t, b, stream, first.id)
	var resumed strings.Builder
	for _, e := range rest[:len(rest)-1] {
		resumed.WriteString(e.data)
	}
	if first.data+resumed.String() != html {
		t.Errorf("first event + resumed stream differ from the whole stream\nfirst: %q\nid: %s", first.data, first.id)
	}
	if len(rest) < 2 || strings.Contains(resumed.String(), `id=L1>`) {
		t.Error("the resumed stream repeats the first line")
	}
}

// A \r in a log line or in the job head (here the job's error, which can
// quote a ref) cannot start a field of the event stream: read as a browser
// reads it, with \r, \n and \r\n all ending a line, the stream has only the
// server's own ids and event types.
func TestLogStreamCarriageReturnInjectsNoField(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	inject := "\rid: injected\revent: injected\r\rdata: injected\r"
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "before"+inject+"after\n", store.JobRunning)
	if _, err := s.db.UpdateJob(context.Background(), job.ID, store.JobUpdate{Status: store.JobError,
		Error: "could not fetch abc or refs/heads/a" + inject}); err != nil {
		t.Fatal(err)
	}
	stream := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", p.ID, build.Number, job.ID)
	res, err := b.c.Get(b.base + stream)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var ends int
	for line := range strings.SplitSeq(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(body)), "\n") {
		field, value, _ := strings.Cut(line, ": ")
		switch {
		case line == "", strings.HasPrefix(line, ":"), field == "data":
		case field == "id" && regexp.MustCompile(`^\d+:\d+$`).MatchString(value):
		case field == "event" && value == "line":
		case field == "event" && value == "end":
			ends++
		default:
			t.Errorf("stream line %q is not the server's own", line)
		}
	}
	if ends != 1 || !strings.Contains(string(body), "could not fetch") {
		t.Errorf("the stream has %d end events, or lacks the job's error:\n%s", ends, body)
	}
}

// An idle stream of a running job says it is alive every Deps.Heartbeat.
func TestLogStreamHeartbeat(t *testing.T) {
	s := newTestServerWith(t, true, func(d *Deps) { d.Heartbeat = 10 * time.Millisecond })
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "one\n", store.JobRunning)
	res, _ := openStream(t, b, fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", p.ID, build.Number, job.ID), "")
	sc := bufio.NewScanner(res.Body)
	for sc.Text() != ": heartbeat" {
		if !sc.Scan() {
			t.Fatalf("no heartbeat before the stream ended: %v", sc.Err())
		}
	}
	if def := newTestServer(t).heartbeat; def != 15*time.Second {
		t.Errorf("heartbeat without Deps.Heartbeat = %v, want 15s", def)
	}
}

func TestBadge(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	pub, _ := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 77,
		FullName: "octocat/Public", IsPublic: true, DefaultBranch: "main", WebhookSecret: "s"})
	buildWithLog(t, s, pub, "refs/heads/main", "a1", "m", "", store.JobSuccess)
	buildWithLog(t, s, pub, "refs/heads/dev", "a2", "m", "", store.JobFailure)
	buildWithLog(t, s, p, "refs/heads/main", "a3", "m", "", store.JobSuccess)
	anon := newBrowser(t, s)
	for path, want := range map[string]string{
		"/badges/octocat/Public.svg":          "passing", // the default branch's, not dev's later one
		"/badges/octocat/Public.svg?ref=main": "passing",
		"/badges/octocat/Public.svg?ref=nope": "unknown",
		"/badges/octocat/Hello-World.svg":     "unknown", // private: tells nothing
		"/badges/nobody/nothing.svg":          "unknown",
	} {
		res, body := anon.do("GET", path, nil)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "image/svg+xml" ||
			res.Header.Get("Cache-Control") != "no-cache, no-store, max-age=0" || !strings.Contains(body, ">"+want+"<") {
			t.Errorf("%s: %d %q, want %s", path, res.StatusCode, body, want)
		}
	}
}

func TestDashboard(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	res, _ := b.do("GET", "/", nil)
	if res.StatusCode != 303 || res.Header.Get("Location") != "/login" {
		t.Errorf("anonymous dashboard: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	_, page := b.do("GET", "/", nil)
	if !strings.Contains(page, "octocat/Hello-World") || !strings.Contains(page, "no builds") || !strings.Contains(page, `hx-trigger="every 5s"`) {
		t.Errorf("dashboard without builds:\n%s", page)
	}
	buildWithLog(t, s, p, "refs/heads/main", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "m", "", store.JobSuccess)
	_, page = b.do("GET", "/", nil)
	if !strings.Contains(page, "passed") || !strings.Contains(page, "6113728f") || !strings.Contains(page, ">main<") {
		t.Errorf("dashboard with a build:\n%s", page)
	}
	other := newBrowser(t, s)
	signInAs(t, s, other, 9, "stranger")
	if _, page := other.do("GET", "/", nil); strings.Contains(page, "octocat/Hello-World") || !strings.Contains(page, "No projects yet") {
		t.Error("a stranger's dashboard shows a private project, or no empty state")
	}
}

// A finished log comes a page at a time, each ending with a placeholder
// for the next; followed to the end they hold every line once, in order.
func TestLogPages(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	var log strings.Builder
	for i := 1; i <= 2*logPageLines+500; i++ {
		fmt.Fprintf(&log, "\x1b[33mline %d\x1b[0m <b>\n", i)
	}
	log.WriteString("the end, without a newline")
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", log.String(), store.JobSuccess)
	jobURL := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID)

	_, page := b.do("GET", jobURL, nil)
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Find("[sse-connect]").Length() != 0 || doc.Find("#follow").Length() != 0 {
		t.Error("a finished job's page streams its log or offers to follow it")
	}
	// The job's page holds the first page, and the placeholder for the next.
	more := doc.Find("#" + views.LogID + " > ." + views.LogMoreClass)
	if next, _ := more.Attr("hx-get"); !strings.HasPrefix(next, jobURL+"/log?at=") || !strings.HasSuffix(next, ":1001") ||
		more.AttrOr("hx-trigger", "") != "intersect once" || doc.Find("#"+views.LogID+" "+logLine).Length() != logPageLines {
		t.Fatalf("log placeholder = %q %q after %d lines", next, more.AttrOr("hx-trigger", ""), doc.Find("#"+views.LogID+" "+logLine).Length())
	}

	next, pages, want := jobURL+"/log", 0, 1
	for next != "" {
		res, frag := b.do("GET", next, nil)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", next, res.StatusCode)
		}
		pages++
		doc, _ := goquery.NewDocumentFromReader(strings.NewReader(frag))
		lines := doc.Find(logLine)
		if lines.Length() > logPageLines {
			t.Errorf("page %d has %d lines", pages, lines.Length())
		}
		lines.Each(func(_ int, l *goquery.Selection) {
			text := shownText(l)
			if id := l.AttrOr("id", ""); id != fmt.Sprintf("L%d", want) {
				t.Fatalf("line %s where L%d was due", id, want)
			}
			if want <= 2*logPageLines+500 && text != fmt.Sprintf("line %d <b>", want) {
				t.Fatalf("L%d reads %q", want, text)
			}
			want++
		})
		if l := doc.Find("span.term-fg33"); lines.Length() > 0 && l.Length() == 0 {
			t.Errorf("page %d lost its colours", pages)
		}
		next = doc.Find("."+views.LogMoreClass).AttrOr("hx-get", "")
		if next != "" && doc.Find("."+views.LogMoreClass).AttrOr("hx-trigger", "") != "intersect once" {
			t.Error("the next page does not load as it scrolls into view")
		}
		if pages > 5 {
			t.Fatal("the pages do not end")
		}
	}
	if want != 2*logPageLines+502 || pages != 3 {
		t.Errorf("%d pages ending before L%d, want 3 pages of 2,501 lines", pages, want)
	}

	// While the job runs, its unfinished last line waits for its newline.
	_, running := buildWithLog(t, s, p, "refs/heads/main", "def", "m", "one\ntwo, half", store.JobRunning)
	_, frag := b.do("GET", fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log", p.ID, build.Number+1, running.ID), nil)
	if !strings.Contains(frag, "one") || strings.Contains(frag, "two, half") {
		t.Errorf("running job's page = %q", frag)
	}
}

// A job whose log retention deleted says so on its page.
func TestJobPageSaysLogWasDeleted(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "old output\n", store.JobSuccess)
	jobURL := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID)
	if _, page := b.do("GET", jobURL, nil); strings.Contains(page, "was deleted") {
		t.Fatal("a kept log is said to be deleted")
	}
	if n, err := s.db.DeleteLogsBefore(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteLogsBefore = %d, %v", n, err)
	}
	_, page := b.do("GET", jobURL, nil)
	if note := parse(t, page).Find("main p.muted").Text(); !strings.Contains(note, "log was deleted") {
		t.Errorf("no word that the log was deleted: %q", note)
	}
	if _, frag := b.do("GET", jobURL+"/log", nil); strings.Contains(frag, "old output") {
		t.Error("the deleted log is still served")
	}
}

// Cancel build ends every job of the build that has not finished, queued
// or running, as canceled by whoever asked, while a finished job keeps its
// result. Its managers and owner may, after a confirmation; a member may
// not, and their request changes nothing. (Before any job starts, the
// page shows how long the build has been queued, ticking.)
func TestCancelBuildEndsEveryUnfinishedJob(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	bs := signInTeam(t, s, p)
	for _, title := range []string{"done", "queued", "running"} {
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	build, created, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: strings.Repeat("c", 40)})
	if err != nil {
		t.Fatal(err)
	}
	job := map[string]int64{}
	for _, j := range created {
		job[j.HookTitle] = j.ID
	}
	buildURL := fmt.Sprintf("/projects/%d/builds/%d", p.ID, build.Number)
	// Nothing started yet: the build says how long it has been queued, ticking.
	doc, _ := fetchPage(t, owner, buildURL, 200)
	if q := doc.Find("#" + views.JobsTableID + " .head > span.queued time.elapsed"); attrOf(q, "data-since") == "<no data-since>" || !strings.HasPrefix(textOf(q.Parent()), "queued ") {
		t.Errorf("a build not started yet shows its queue time as %q (data-since %q)", textOf(q.Parent()), attrOf(q, "data-since"))
	}
	moveJob(t, s, job["done"], store.JobSuccess, "")
	moveJob(t, s, job["running"], store.JobRunning, "")
	statuses := func() map[string]string {
		jobs, err := s.db.Jobs(ctx, build.ID)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, j := range jobs {
			got[j.HookTitle] = string(j.Status) + " " + j.Error
		}
		return got
	}

	for _, tt := range []struct {
		login  string
		b      *browser
		cancel bool
	}{{"octocat", owner, true}, {"hubot", bs["hubot"], true}, {"monalisa", bs["monalisa"], false}} {
		doc, _ := fetchPage(t, tt.b, buildURL, 200)
		f := doc.Find("#" + views.JobsTableID + ` form[action$="/cancel"]`)
		if !tt.cancel {
			if f.Length() != 0 {
				t.Errorf("the build page offers %s, a member, to cancel the build", tt.login)
			}
			continue
		}
		checkForm(t, "build as "+tt.login, f, buildURL+"/cancel", "Cancel build")
		if !f.HasClass("confirm") || attrOf(f, "data-confirm") != "Cancel every job of this build that has not finished?" {
			t.Errorf("build as %s: cancelling the build is not confirmed: class %q", tt.login, attrOf(f, "class"))
		}
	}

	before := statuses()
	if res, _ := bs["monalisa"].do("POST", buildURL+"/cancel", url.Values{}); res.StatusCode != 403 {
		t.Errorf("a member's cancel: %d, want 403", res.StatusCode)
	}
	if got := statuses(); !maps.Equal(got, before) {
		t.Errorf("a member's refused cancel changed the jobs from %v to %v", before, got)
	}

	if res, _ := bs["hubot"].do("POST", buildURL+"/cancel", url.Values{}); res.StatusCode != 303 || res.Header.Get("Location") != buildURL {
		t.Fatalf("cancel: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	want := map[string]string{"done": "success ", "queued": "error canceled by hubot", "running": "error canceled by hubot"}
	if got := statuses(); !maps.Equal(got, want) {
		t.Errorf("after Cancel build the jobs are %v, want %v", got, want)
	}
	doc, _ = fetchPage(t, owner, buildURL, 200)
	if f := doc.Find("#" + views.JobsTableID + ` form[action$="/cancel"]`); f.Length() != 0 {
		t.Error("a finished build still offers to cancel it")
	}
	// Once more, with nothing left to cancel: nothing changes.
	if res, _ := owner.do("POST", buildURL+"/cancel", url.Values{}); res.StatusCode != 303 {
		t.Errorf("cancel of a finished build: %d", res.StatusCode)
	}
	if got := statuses(); !maps.Equal(got, want) {
		t.Errorf("a second Cancel build changed the jobs to %v", got)
	}
}

// The project page's builds list filters by event and status, with the
// branch, each filter keeping the others; its pages of older builds keep
// them all, the form shows them chosen, a filter nothing matches says so,
// and a value that is no option filters nothing.
func TestProjectBuildsFilterByEventAndStatus(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	// 30 manual builds of main that failed (1–30), then a push that passed
	// (31), a pull request that failed (32) and a push still queued (33).
	build := func(n int, ref string, tr store.Trigger, st store.JobStatus) {
		_, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: ref, SHA: fmt.Sprintf("%040d", n), Trigger: tr})
		if err != nil {
			t.Fatal(err)
		}
		if st != store.JobEnqueued {
			moveJob(t, s, jobs[0].ID, st, "")
		}
	}
	for n := 1; n <= 30; n++ {
		build(n, "refs/heads/main", store.Trigger{Kind: store.TriggerManual, User: "octocat"}, store.JobFailure)
	}
	build(31, "refs/heads/main", store.Trigger{Kind: store.TriggerPush}, store.JobSuccess)
	build(32, "refs/pull/9/head", store.Trigger{Kind: store.TriggerPullRequest, PR: 9}, store.JobFailure)
	build(33, "refs/heads/dev", store.Trigger{Kind: store.TriggerPush}, store.JobEnqueued)

	numbers := func(doc *goquery.Document) []string {
		var got []string
		doc.Find("ul.builds > li .build > a").Each(func(_ int, a *goquery.Selection) { got = append(got, textOf(a)) })
		return got
	}
	base := fmt.Sprintf("/projects/%d", p.ID)
	for _, tt := range []struct {
		query, event, status string
		first                []string // the first numbers listed
		n                    int      // how many on the first page
		older                string   // the older builds' link; "" for none
	}{
		{"?event=push", "push", "", []string{"#33", "#31"}, 2, ""},
		{"?status=failure", "", "failure", []string{"#32", "#30"}, 25, base + "?before=7&status=failure"},
		{"?event=manual&status=failure&branch=main", "manual", "failure", []string{"#30", "#29"}, 25, base + "?before=6&branch=main&event=manual&status=failure"},
		{"?before=6&branch=main&event=manual&status=failure", "manual", "failure", []string{"#5", "#4"}, 5, ""},
		{"?event=pull_request&status=success", "pull_request", "success", nil, 0, ""},
		{"?event=nonsense&status=%3Cb%3E", "", "", []string{"#33", "#32"}, 25, base + "?before=9"},
	} {
		doc, _ := fetchPage(t, b, base+tt.query, 200)
		got := numbers(doc)
		if len(got) != tt.n || (tt.n > 0 && !slices.Equal(got[:2], tt.first)) {
			t.Errorf("%s: %d builds starting %v, want %d starting %v", tt.query, len(got), got[:min(2, len(got))], tt.n, tt.first)
		}
		if ev := doc.Find(`select[name="event"] option[selected]`); attrOf(ev, "value") != tt.event {
			t.Errorf("%s: the event filter shows %q chosen, want %q", tt.query, attrOf(ev, "value"), tt.event)
		}
		if st := doc.Find(`select[name="status"] option[selected]`); attrOf(st, "value") != tt.status {
			t.Errorf("%s: the status filter shows %q chosen, want %q", tt.query, attrOf(st, "value"), tt.status)
		}
		older := doc.Find("a").FilterFunction(func(_ int, a *goquery.Selection) bool { return a.Text() == "Older builds" })
		if got := attrOf(older, "href"); tt.older == "" && older.Length() != 0 || tt.older != "" && got != tt.older {
			t.Errorf("%s: older builds link %q, want %q", tt.query, got, tt.older)
		}
		if tt.n == 0 && !strings.Contains(textOf(doc.Find("main")), "No builds match these filters.") {
			t.Errorf("%s: no builds, and no word that none match", tt.query)
		}
	}
	page, _ := fetchPage(t, b, base, 200)
	for _, sel := range []string{`select[name="event"]`, `select[name="status"]`} {
		if f := page.Find(sel); f.Length() != 1 || attrOf(f, "aria-label") == "<no aria-label>" {
			t.Errorf("%s: %d, without a label", sel, f.Length())
		}
	}
}
