package handlers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"kozmic/store"
	"kozmic/views"
)

// timedWrite is output that arrived at a time after the job's log began.
type timedWrite struct {
	text string
	at   time.Duration
}

// timedLogJob makes a finished job of p whose log is writes (see
// writeTimedLog). It returns the build and the job as stored.
func timedLogJob(t testing.TB, s *testServer, p store.Project, writes []timedWrite, batch int) (store.Build, store.Job) {
	t.Helper()
	ctx := context.Background()
	if hooks, _ := s.db.Hooks(ctx, p.ID); len(hooks) == 0 {
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	b, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: fmt.Sprintf("%040d", time.Now().UnixNano()), Message: "m"})
	if err != nil {
		t.Fatal(err)
	}
	writeTimedLog(t, s.db, jobs[0].ID, writes, batch)
	j, err := s.db.JobByID(ctx, jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return b, j
}

// writeTimedLog runs the job jobID (marked running, then success) with the
// log writes, stored as the runner stores output: frames with arrival times,
// in batches of at most batch writes.
func writeTimedLog(t testing.TB, db *store.DB, jobID int64, writes []timedWrite, batch int) {
	t.Helper()
	ctx := context.Background()
	db.UpdateJob(ctx, jobID, store.JobUpdate{Status: store.JobRunning})
	e := store.NewLogEncoder()
	var pos int64
	for len(writes) > 0 {
		n := min(batch, len(writes))
		var data []byte
		var marks []store.LogMark
		for _, w := range writes[:n] {
			marks = append(marks, store.LogMark{Offset: pos + int64(len(data)), At: w.at})
			data = append(data, w.text...)
		}
		if _, err := db.AppendLogFrames(ctx, jobID, e.Encode(data, marks, false)); err != nil {
			t.Fatal(err)
		}
		pos += int64(len(data))
		writes = writes[n:]
	}
	db.UpdateJob(ctx, jobID, store.JobUpdate{Status: store.JobSuccess})
}

// timesShown reads the data-t and data-ts of every log line in doc, by id.
func timesShown(doc *goquery.Document) (ts, texts map[string]string) {
	ts, texts = map[string]string{}, map[string]string{}
	doc.Find(logLine).Each(func(_ int, l *goquery.Selection) {
		if v, ok := l.Attr("data-t"); ok {
			ts[attrOf(l, "id")] = v
		}
		if v, ok := l.Attr("data-ts"); ok {
			texts[attrOf(l, "id")] = v
		}
	})
	return ts, texts
}

// Each line carries its arrival time where it changes (data-t, ms), on
// pages and in the stream; ?times= renders them as text on every line, as
// the offset from the job's start or the time of day (UTC).
func TestLogLinesCarryTheirArrivalTimesAsOffsetsOrWallTime(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := timedLogJob(t, s, p, []timedWrite{
		{"one\ntwo\n", 0}, {"three\n", 1500 * time.Millisecond}, {"four ", 62 * time.Second}, {"still four\nfive\n", 63 * time.Second},
		{"six\n", time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond},
	}, 2)
	jobURL := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID)
	wantT := map[string]string{"L1": "0", "L3": "1500", "L4": "62000", "L5": "63000", "L6": "3723004"}

	doc, _ := fetchPage(t, b, jobURL, 200)
	ts, texts := timesShown(doc)
	if fmt.Sprint(ts) != fmt.Sprint(wantT) || len(texts) != 0 || doc.Find("#"+views.LogID+".log-timed").Length() != 0 {
		t.Errorf("job page: data-t %v, want %v; data-ts %v, want none", ts, wantT, texts)
	}
	// The stream, from the store, and from the middle of the log: its first
	// line has its time although the write that brought it came earlier.
	for _, from := range []string{"", "4:2"} {
		var ev strings.Builder
		for _, e := range readEvents(t, b, jobURL+"/log/stream", from) {
			if e.event == "line" {
				ev.WriteString(e.data)
			}
		}
		ts, _ := timesShown(parse(t, ev.String()))
		want := map[string]string{"L2": "0", "L3": "1500", "L4": "62000", "L5": "63000", "L6": "3723004"}
		if from == "" {
			want = wantT
		}
		if fmt.Sprint(ts) != fmt.Sprint(want) {
			t.Errorf("stream from %q: data-t %v, want %v", from, ts, want)
		}
	}

	doc, _ = fetchPage(t, b, jobURL+"?times=offset", 200)
	_, texts = timesShown(doc)
	wantOffsets := map[string]string{"L1": "+0:00.000", "L2": "+0:00.000", "L3": "+0:01.500", "L4": "+1:02.000", "L5": "+1:03.000", "L6": "+1:02:03.004"}
	if fmt.Sprint(texts) != fmt.Sprint(wantOffsets) || doc.Find("#"+views.LogID+".log-timed").Length() != 1 ||
		attrOf(doc.Find("#"+views.LogTimesID+" option[selected]"), "value") != "offset" {
		t.Errorf("?times=offset: data-ts %v, want %v", texts, wantOffsets)
	}
	doc, _ = fetchPage(t, b, jobURL+"?times=wall", 200)
	_, texts = timesShown(doc)
	wall := func(d time.Duration) string { return job.StartedAt.Add(d).UTC().Format("15:04:05.000") }
	wantWall := map[string]string{"L1": wall(0), "L2": wall(0), "L3": wall(1500 * time.Millisecond), "L4": wall(62 * time.Second),
		"L5": wall(63 * time.Second), "L6": wall(time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond)}
	if fmt.Sprint(texts) != fmt.Sprint(wantWall) || job.StartedAt.IsZero() {
		t.Errorf("?times=wall: data-ts %v, want %v", texts, wantWall)
	}
	if attrOf(doc.Find("#"+views.LogToolsID), "data-started") != fmt.Sprint(job.StartedAt.UnixMilli()) {
		t.Errorf("the log tools' start %q, want %d", attrOf(doc.Find("#"+views.LogToolsID), "data-started"), job.StartedAt.UnixMilli())
	}
	// Anything else shows none; a log stored without times has none.
	doc, _ = fetchPage(t, b, jobURL+"?times=%22%3E", 200)
	if _, texts = timesShown(doc); len(texts) != 0 {
		t.Errorf("?times=\"> shows times %v", texts)
	}
	_, untimed := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "a\nb\n", store.JobSuccess)
	doc, _ = fetchPage(t, b, fmt.Sprintf("/projects/%d/builds/%d/jobs/%d?times=offset", p.ID, build.Number+1, untimed.ID), 200)
	if ts, texts := timesShown(doc); len(ts)+len(texts) != 0 || doc.Find(logLine).Length() != 2 {
		t.Errorf("a log without times: data-t %v, data-ts %v", ts, texts)
	}
}

// searchFixture is a finished job whose log has matches for "NeedLE" in
// many forms, over several segments, and the users to search it.
type searchFixture struct {
	s      *testServer
	owner  *browser
	team   map[string]*browser
	jobURL string
	lines  []int64 // the matching lines
}

func newSearchFixture(t *testing.T, extra int) searchFixture {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	var writes []timedWrite
	var lines []int64
	n := int64(0)
	add := func(text string, match bool) {
		n++
		if match {
			lines = append(lines, n)
		}
		writes = append(writes, timedWrite{text + "\n", time.Duration(n) * time.Millisecond})
	}
	add("a needle first", true)
	for i := range 40_000 { // about 1.4 MB: several segments
		add(fmt.Sprintf("filler line %d of the build", i), false)
		switch i {
		case 9_999:
			add("\x1b[1mNEE\x1b[0mDLE broken by colours", true)
		case 19_999:
			add("the needle's case: NeEdLe", true)
		case 29_999:
			add("\x1b]0;needle in a title only\x07 not here", false)
		}
	}
	for range extra {
		add("needle", true)
	}
	writes = append(writes, timedWrite{"last needle without a line end", time.Minute})
	lines = append(lines, n+1)
	build, job := timedLogJob(t, s, p, writes, 5000)
	team := signInTeam(t, s, p)
	// eve is a member of a project of her own, not of this one.
	other := ownedProject(t, s, owner, "octocat/Other", 42)
	if _, err := s.db.SyncMemberships(context.Background(), other.ID, []store.GitHubAccess{{GitHubID: 4}}); err != nil {
		t.Fatal(err)
	}
	return searchFixture{s: s, owner: owner, team: team, jobURL: fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID), lines: lines}
}

// The search finds the lines that show the query, ignoring case and
// escapes, across segments, to the last line without a line end; each
// match links its line and the page that starts at it. htmx gets the
// results alone, a form without scripts the job's page with them.
func TestLogSearchFindsLinesAcrossSegmentsIgnoringCaseAndEscapes(t *testing.T) {
	f := newSearchFixture(t, 0)
	search := f.jobURL + "/log/search?q=" + url.QueryEscape("NeedLE")
	for _, login := range []string{"", "monalisa"} {
		b := f.owner
		if login != "" {
			b = f.team[login]
		}
		doc := fetchPoll(t, b, search, views.LogSearchResultsID)
		box := doc.Find("#" + views.LogSearchResultsID)
		if attrOf(box, "data-count") != fmt.Sprint(len(f.lines)) || attrOf(box, "data-query") != "NeedLE" ||
			!strings.Contains(textOf(box), fmt.Sprintf("%d matching lines for “NeedLE”", len(f.lines))) {
			t.Errorf("as %q: results %q, data-count %q", login, textOf(box), attrOf(box, "data-count"))
		}
		links := box.Find("a[data-line]")
		if links.Length() != len(f.lines) {
			t.Fatalf("as %q: %d links, want %d", login, links.Length(), len(f.lines))
		}
		links.Each(func(i int, a *goquery.Selection) {
			n := f.lines[i]
			if attrOf(a, "href") != fmt.Sprintf("%s?line=%d#L%d", f.jobURL, n, n) || attrOf(a, "data-line") != fmt.Sprint(n) {
				t.Errorf("match %d: href %q data-line %q, want line %d", i, attrOf(a, "href"), attrOf(a, "data-line"), n)
			}
			// It shows the line's text, without escapes.
			if want := shownText(parse(t, fetchBody(t, b, attrOf(a, "data-page"))).Find(logLine).First()); textOf(a.Parent()) != textOf(a)+" "+want {
				t.Errorf("match %d reads %q, want its line's %q", i, textOf(a.Parent()), want)
			}
			// The page at the match's position starts with its line.
			page := parse(t, fetchBody(t, b, attrOf(a, "data-page")))
			if first := page.Find(logLine).First(); attrOf(first, "id") != fmt.Sprintf("L%d", n) ||
				!strings.Contains(strings.ToLower(shownText(first)), "needle") {
				t.Errorf("match %d: its page starts with %s %q", i, attrOf(first, "id"), shownText(first))
			}
		})
	}
	// Without scripts: the job's page, with the query kept and the list.
	doc, _ := fetchPage(t, f.owner, search, 200)
	if attrOf(doc.Find("#"+views.LogSearchInputID), "value") != "NeedLE" || doc.Find("#"+views.LogSearchResultsID+" a[data-line]").Length() != len(f.lines) ||
		doc.Find("#"+views.LogID+" "+logLine).Length() != logPageLines {
		t.Errorf("search page: query %q, %d links, %d log lines", attrOf(doc.Find("#"+views.LogSearchInputID), "value"),
			doc.Find("#"+views.LogSearchResultsID+" a[data-line]").Length(), doc.Find("#"+views.LogID+" "+logLine).Length())
	}
	if l := doc.Find("form[role=search]"); attrOf(l, "action") != f.jobURL+"/log/search" || attrOf(l, "method") != "get" ||
		l.Find("label[for="+views.LogSearchInputID+"]").Length() != 1 {
		t.Errorf("search form: action %q method %q", attrOf(l, "action"), attrOf(l, "method"))
	}
}

// fetchBody GETs path as htmx does and returns the body of a 200 answer.
func fetchBody(t *testing.T, b *browser, path string) string {
	t.Helper()
	res, body := b.do("GET", path, nil)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, res.StatusCode)
	}
	return body
}

// A search is bounded: it lists the first 1,000 matches and counts them
// all, refuses a query too long with a note that keeps it, searches nothing
// for an empty query, and is no one's but the project's members'.
func TestLogSearchIsBoundedAndForMembersOnly(t *testing.T) {
	f := newSearchFixture(t, searchMatchesMax)
	doc := fetchPoll(t, f.owner, f.jobURL+"/log/search?q=needle", views.LogSearchResultsID)
	box := doc.Find("#" + views.LogSearchResultsID)
	if n := box.Find("a[data-line]").Length(); n != searchMatchesMax || attrOf(box, "data-count") != fmt.Sprint(len(f.lines)) ||
		!strings.Contains(textOf(box), "The first 1000 matches are listed.") {
		t.Errorf("many matches: %d links, count %q, %q", n, attrOf(box, "data-count"), textOf(box))
	}
	long := strings.Repeat("n", searchQueryMax+1)
	doc = fetchPoll(t, f.owner, f.jobURL+"/log/search?q="+long, views.LogSearchResultsID)
	if box := doc.Find("#" + views.LogSearchResultsID); box.Find("a").Length() != 0 || textOf(box) != "A search takes up to 200 characters." {
		t.Errorf("a query of %d bytes: %q", len(long), textOf(box))
	}
	if doc, _ := fetchPage(t, f.owner, f.jobURL+"/log/search?q="+long, 200); attrOf(doc.Find("#"+views.LogSearchInputID), "value") != long {
		t.Error("the page of a query too long lost it")
	}
	// Out of time: what it found so far (here, nothing), and why.
	f.s.searchTimeout = time.Nanosecond
	doc = fetchPoll(t, f.owner, f.jobURL+"/log/search?q=needle", views.LogSearchResultsID)
	if box := doc.Find("#" + views.LogSearchResultsID); textOf(box) != "0 matching lines for “needle”The search stopped after 1ns, at line 0." {
		t.Errorf("a search out of time: %q", textOf(box))
	}
	f.s.searchTimeout = searchTimeout
	doc = fetchPoll(t, f.owner, f.jobURL+"/log/search?q=", views.LogSearchResultsID)
	if box := doc.Find("#" + views.LogSearchResultsID); textOf(box) != "" || attrOf(box, "data-count") != "0" {
		t.Errorf("an empty query: %q", textOf(box))
	}
	for _, path := range []string{f.jobURL + "/log/search?q=needle", f.jobURL + "?line=2", f.jobURL + "/log?line=2"} {
		if res, body := f.team["eve"].do("GET", path, nil); res.StatusCode != 404 || strings.Contains(body, "needle") {
			t.Errorf("%s as a member of another project: %d", path, res.StatusCode)
		}
	}
}

// ?line=N opens the job's page at the page holding line N, led by a link
// to the page before it, which loads exactly the lines up to it (and so on
// to the first); a number the log does not have opens it at its start.
func TestLineLinkOpensThePageHoldingTheLine(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	var writes []timedWrite
	for i := 1; i <= 3500; i++ {
		writes = append(writes, timedWrite{fmt.Sprintf("\x1b[36mline\x1b[0m %d\n", i), time.Duration(i) * time.Second})
	}
	build, job := timedLogJob(t, s, p, writes, 700)
	jobURL := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID)
	checkLines := func(where string, doc *goquery.Document, first, last int) {
		t.Helper()
		lines := doc.Find("#" + views.LogID + " " + logLine)
		if doc.Find("#"+views.LogID).Length() == 0 {
			lines = doc.Find(logLine)
		}
		if lines.Length() != last-first+1 || attrOf(lines.First(), "id") != fmt.Sprintf("L%d", first) ||
			attrOf(lines.Last(), "id") != fmt.Sprintf("L%d", last) || shownText(lines.Last()) != fmt.Sprintf("line %d", last) {
			t.Errorf("%s: %d lines, %s to %s, want L%d to L%d", where, lines.Length(), attrOf(lines.First(), "id"), attrOf(lines.Last(), "id"), first, last)
		}
		// A page's first line has its time, wherever the page starts.
		if attrOf(lines.First(), "data-t") != fmt.Sprint(first*1000) {
			t.Errorf("%s: first line's data-t %q", where, attrOf(lines.First(), "data-t"))
		}
	}
	doc, _ := fetchPage(t, b, jobURL+"?line=2345", 200)
	checkLines("?line=2345", doc, 2001, 3000)
	earlier := doc.Find("#" + views.LogID + " > ." + views.LogEarlierClass + " a")
	if attrOf(earlier, "href") != jobURL+"?line=1001#L1001" || attrOf(earlier, "hx-get") != jobURL+"/log?line=1001&before=2001" ||
		textOf(earlier) != "Show lines 1001–2000" || doc.Find("#"+views.LogID+" > ."+views.LogMoreClass).Length() != 1 {
		t.Errorf("the link to earlier lines: href %q hx-get %q %q", attrOf(earlier, "href"), attrOf(earlier, "hx-get"), textOf(earlier))
	}
	page := parse(t, fetchBody(t, b, attrOf(earlier, "hx-get")))
	checkLines("the page before", page, 1001, 2000)
	if n := page.Find("." + views.LogMoreClass).Length(); n != 0 {
		t.Errorf("the page before has %d placeholders: it must end where the page after begins", n)
	}
	first := page.Find("." + views.LogEarlierClass + " a")
	if attrOf(first, "hx-get") != jobURL+"/log?at=0:1&before=1001" {
		t.Errorf("the page before leads to %q", attrOf(first, "hx-get"))
	}
	page = parse(t, fetchBody(t, b, attrOf(first, "hx-get")))
	checkLines("the first page", page, 1, 1000)
	if page.Find("."+views.LogEarlierClass).Length() != 0 {
		t.Error("the first page links to lines before it")
	}
	// Times chosen without scripts stay with the link.
	doc, _ = fetchPage(t, b, jobURL+"?line=3500&times=offset", 200)
	checkLines("?line=3500", doc, 3001, 3500)
	if href := attrOf(doc.Find("."+views.LogEarlierClass+" a"), "href"); href != jobURL+"?line=2001&times=offset#L2001" {
		t.Errorf("earlier link with times: %q", href)
	}
	// A page from a search's position, with ?earlier=1, is led the same way.
	at, _ := s.db.LineStart(context.Background(), job.ID, 1500)
	page = parse(t, fetchBody(t, b, fmt.Sprintf("%s/log?at=%d:1500&earlier=1", jobURL, at)))
	if attrOf(page.Find("."+views.LogEarlierClass+" a"), "hx-get") != jobURL+"/log?line=1001&before=1500" {
		t.Errorf("page at 1500 with earlier: %q", attrOf(page.Find("."+views.LogEarlierClass+" a"), "hx-get"))
	}
	for _, bad := range []string{"3501", "0", "x"} {
		doc, _ := fetchPage(t, b, jobURL+"?line="+bad, 200)
		checkLines("?line="+bad, doc, 1, 1000)
	}
	if res, _ := b.do("GET", jobURL+"/log?line=3501", nil); res.StatusCode != 404 {
		t.Errorf("log?line= past the end: %d, want 404", res.StatusCode)
	}
	if res, _ := b.do("GET", jobURL+"/log?line=x", nil); res.StatusCode != 422 {
		t.Errorf("log?line=x: %d, want 422", res.StatusCode)
	}
	// Where long lines end the page holding line 1 early, line 700 is
	// sought on its own: the page starts at it.
	var long []timedWrite
	for i := 1; i <= 800; i++ {
		long = append(long, timedWrite{fmt.Sprintf("%s %d\n", strings.Repeat("x", 4<<10), i), time.Duration(i) * time.Second})
	}
	build, job = timedLogJob(t, s, p, long, 100)
	doc, _ = fetchPage(t, b, fmt.Sprintf("/projects/%d/builds/%d/jobs/%d?line=700", p.ID, build.Number, job.ID), 200)
	if first := doc.Find("#" + views.LogID + " " + logLine).First(); attrOf(first, "id") != "L700" {
		t.Errorf("?line=700 of long lines starts at %s", attrOf(first, "id"))
	}
}
