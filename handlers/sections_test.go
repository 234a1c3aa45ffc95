package handlers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// sectionedLog is a job's log in four steps, as the runner splits it:
// fetch, image, install (skipped) and a failing build script.
var sectionedLog = []struct {
	name   store.StepName
	status store.StepStatus
	text   string
}{
	{store.StepFetch, store.StepSuccess, "==> Job 1\nfetching\n"},
	{store.StepImage, store.StepSuccess, "==> Using busybox\n"},
	{store.StepInstall, store.StepSkipped, "==> Skipping install script\n"},
	{store.StepBuild, store.StepFailure, "==> Running the build script\nbuild 1\nbuild 2\n==> The build script exited with 1\n"},
}

// sectionedJob makes a job of a project of s whose log and steps are
// sectionedLog's, ending as status, and returns its build and the job.
func sectionedJob(t *testing.T, s *testServer, p store.Project, status store.JobStatus) (store.Build, store.Job) {
	t.Helper()
	ctx := context.Background()
	b, j := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "", store.JobRunning)
	var off int64
	line := 1
	t0 := time.Now().Add(-time.Minute)
	for i, st := range sectionedLog {
		status := store.StepRunning
		if st.status == store.StepSkipped {
			status = st.status
		}
		if _, err := s.db.BeginJobStep(ctx, j.ID, store.JobStep{Name: st.name, Offset: off, Line: line, StartedAt: t0.Add(time.Duration(i) * time.Second), Status: status}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.AppendLog(ctx, j.ID, []byte(st.text), false); err != nil {
			t.Fatal(err)
		}
		off += int64(len(st.text))
		line += strings.Count(st.text, "\n")
	}
	if _, err := s.db.EndJobStep(ctx, j.ID, store.StepStatusOf(status), t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.UpdateJob(ctx, j.ID, store.JobUpdate{Status: status}); err != nil {
		t.Fatal(err)
	}
	return b, j
}

// A finished job's page shows each step as a section with its status (icon
// and word), name and duration, closed when it passed or was skipped and
// open where it failed; each section loads exactly its own lines.
func TestJobPageFoldsPassedStepsAndOpensTheFailedOne(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := sectionedJob(t, s, p, store.JobFailure)
	doc, _ := fetchPage(t, b, fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, job.ID), 200)
	secs := doc.Find("#log > details." + views.LogSectionClass)
	if secs.Length() != len(sectionedLog) {
		t.Fatalf("%d sections, want %d", secs.Length(), len(sectionedLog))
	}
	heads := []string{"✓ passed Fetch 1s", "✓ passed Image 1s", "↷ skipped Install 0s", "✗ failed Build script 7s"}
	firstLine := 1
	for i := range sectionedLog {
		sec := secs.Eq(i)
		_, open := sec.Attr("open")
		if wantOpen := i == 3; open != wantOpen {
			t.Errorf("section %d open = %v, want %v", i+1, open, wantOpen)
		}
		if got := textOf(sec.Find("summary")); got != heads[i] {
			t.Errorf("section %d reads %q, want %q", i+1, got, heads[i])
		}
		// Each section comes with its first page, all of its lines here.
		page := sec.Find("." + views.LogSectionBodyClass)
		n := strings.Count(sectionedLog[i].text, "\n")
		var ids []string
		page.Find("p[id]").Each(func(_ int, l *goquery.Selection) { ids = append(ids, attrOf(l, "id")) })
		want := make([]string, n)
		for k := range want {
			want[k] = "L" + strconv.Itoa(firstLine+k)
		}
		if strings.Join(ids, " ") != strings.Join(want, " ") || page.Find("."+views.LogMoreClass).Length() != 0 {
			t.Errorf("section %d shows lines %v, want %v and no more", i+1, ids, want)
		}
		firstLine += n
	}
}

// A finished job's stream opens each step's section before the step's
// lines, closed where the step passed; a stream resumed after a section
// opened does not open it again.
func TestLogStreamOpensEachStepsSectionBeforeItsLines(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := sectionedJob(t, s, p, store.JobFailure)
	stream := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", p.ID, build.Number, job.ID)
	var order []string
	var imageID string
	for _, ev := range readEvents(t, b, stream, "") {
		switch ev.event {
		case "section":
			doc := parse(t, ev.data)
			_, open := doc.Find("details").Attr("open")
			order = append(order, fmt.Sprintf("%s open=%v", attrOf(doc.Find("details"), "id"), open))
			if attrOf(doc.Find("details"), "id") == views.LogSectionID(2) {
				imageID = ev.id
			}
		case "line":
			doc := parse(t, ev.data)
			doc.Find("p[id]").Each(func(_ int, l *goquery.Selection) { order = append(order, attrOf(l, "id")) })
		}
	}
	want := "log-section-1 open=false L1 L2 log-section-2 open=false L3 log-section-3 open=false L4 log-section-4 open=true L5 L6 L7 L8"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("stream:\n%s\nwant\n%s", got, want)
	}
	order = nil
	for _, ev := range readEvents(t, b, stream, imageID) {
		if id := attrOf(parse(t, ev.data).Find("details"), "id"); ev.event == "section" && id != "<no id>" {
			order = append(order, id)
		}
	}
	if got := strings.Join(order, " "); got != "log-section-3 log-section-4" {
		t.Errorf("resumed after %q, the stream opened %q, want sections 3 and 4", imageID, got)
	}
}

// In a live log, the section of a step that begins opens where the log
// reaches it, and the head of the step before comes again with its result,
// marked to fold when it passed: even when the bytes before and after the
// step's start come in one chunk.
func TestLiveSectionsFollowTheRunnersSteps(t *testing.T) {
	p, bd, j := store.Project{ID: 1}, store.Build{Number: 1}, store.Job{ID: 1}
	lines := newLineRenderer(p, bd, j, 0, 1)
	secs := newLiveSections(0, -1)
	var events []sseEvent
	send := func(b []byte) error {
		events = append(events, parseEvents(strings.NewReader(string(b)))...)
		return nil
	}
	t0 := time.Now()
	fetch := store.JobStep{Seq: 1, Name: store.StepFetch, Line: 1, StartedAt: t0, Status: store.StepRunning}
	image := store.JobStep{Seq: 2, Name: store.StepImage, Offset: 4, Line: 3, StartedAt: t0, Status: store.StepRunning}
	ctx := context.Background()
	pass := func(c runner.Chunk) {
		t.Helper()
		if err := secs.pass(ctx, c, lines, send, func(int) {}); err != nil {
			t.Fatal(err)
		}
	}
	pass(runner.Chunk{Steps: []store.JobStep{fetch}})
	fetchDone := fetch
	fetchDone.Status, fetchDone.FinishedAt = store.StepSuccess, t0.Add(time.Second)
	pass(runner.Chunk{Steps: []store.JobStep{fetchDone, image}}) // known before the log reaches it
	pass(runner.Chunk{Offset: 0, Data: []byte("a\nb\nc\n")})
	var got []string
	for _, ev := range events {
		doc := parse(t, ev.data)
		doc.Find("details, summary[hx-swap-oob], p[id]").Each(func(_ int, e *goquery.Selection) {
			switch {
			case e.Is("details"):
				_, open := e.Attr("open")
				got = append(got, fmt.Sprintf("open %s %v", attrOf(e, "id"), open))
			case e.Is("summary"):
				got = append(got, fmt.Sprintf("head %s fold=%s", attrOf(e, "id"), attrOf(e, "data-fold")))
			default:
				got = append(got, attrOf(e, "id"))
			}
		})
	}
	want := "open log-section-1 true head log-section-1-head fold=1 L1 L2 open log-section-2 true L3"
	if strings.Join(got, " ") != want {
		t.Errorf("events make\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if id := events[len(events)-2].id; id != "4:3:2" {
		t.Errorf("the image section's event id = %q, want 4:3:2", id)
	}
	// The last step passes: its head says so, and it stays open.
	imageDone := image
	imageDone.Status, imageDone.FinishedAt = store.StepSuccess, t0.Add(2*time.Second)
	events = nil
	pass(runner.Chunk{Offset: 6, Steps: []store.JobStep{fetchDone, imageDone}})
	if len(events) != 1 {
		t.Fatalf("the last step's end made %d events", len(events))
	}
	head := parse(t, events[0].data).Find("summary")
	if attrOf(head, "id") != "log-section-2-head" || attrOf(head, "data-fold") != "<no data-fold>" || !strings.Contains(textOf(head), "passed") {
		t.Errorf("the last step's new head: %s", events[0].data)
	}
}

// Beside a job's log, the build's jobs are listed with their status and
// title, each linking to its page, the job shown marked as the current
// one; the list polls for itself, answered alone, until the build has
// finished.
func TestJobPageListsTheBuildsJobsUntilTheBuildFinishes(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	ctx := context.Background()
	for _, title := range []string{"lint", "unit"} {
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	build, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc"})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("build: %v %v", jobs, err)
	}
	moveJob(t, s, jobs[0].ID, store.JobSuccess, store.CacheNone)
	moveJob(t, s, jobs[1].ID, store.JobRunning, store.CacheNone)
	page := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, jobs[1].ID)
	check := func(doc *goquery.Selection, polls bool) {
		t.Helper()
		var rows []string
		doc.Find("#" + views.JobListID + " li a").Each(func(_ int, a *goquery.Selection) {
			// Its duration is the last word, which a slow run may make 1s.
			text := textOf(a)
			if i := strings.LastIndexByte(text, ' '); i >= 0 && durationRE.MatchString(text[i+1:]) {
				text = text[:i] + " (duration)"
			}
			rows = append(rows, fmt.Sprintf("%s %s %s", attrOf(a, "href"), attrOf(a, "aria-current"), text))
		})
		want := []string{
			fmt.Sprintf("/projects/%d/builds/%d/jobs/%d <no aria-current> passed lint (duration)", p.ID, build.Number, jobs[0].ID),
			fmt.Sprintf("%s page running unit (duration)", page),
		}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") {
			t.Errorf("the list of jobs:\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
		}
		if got := attrOf(doc.Find("#"+views.JobListID), "hx-get"); (got == page) != polls {
			t.Errorf("the list polls %q; want polling %v", got, polls)
		}
	}
	doc, _ := fetchPage(t, b, page, 200)
	check(doc.Selection, true)
	check(fetchPoll(t, b, page, views.JobListID).Selection, true)
	if _, err := s.db.UpdateJob(ctx, jobs[1].ID, store.JobUpdate{Status: store.JobFailure}); err != nil {
		t.Fatal(err)
	}
	doc = fetchPoll(t, b, page, views.JobListID)
	if attrOf(doc.Find("#"+views.JobListID), "hx-get") != "<no hx-get>" || !strings.Contains(textOf(doc.Find("a[aria-current]")), "failed unit") {
		t.Errorf("once the build has finished, the list reads %q and polls %q", textOf(doc.Selection), attrOf(doc.Find("#"+views.JobListID), "hx-get"))
	}
}
