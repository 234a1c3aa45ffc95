package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"kozmic/store"
	"kozmic/views"
)

// annotatedLog has nested groups and annotations, a hostile one among them,
// and lines that look like commands but are text.
const annotatedLog = "before\n" +
	"::group::Outer " + xssImg + "\n" +
	"inside outer\n" +
	"::group::Inner\r\n" +
	"inside inner\n" +
	"::error file=app.go,line=12,col=3,title=Bad " + xssImg + "::broken " + xssScript + "%0Asecond line\n" +
	"::endgroup::\n" +
	"::endgroup::\n" +
	"::warning::careful\n" +
	"\x1b[31m::error::coloured is text\x1b[0m\n" +
	"  ::notice::indented is text\n" +
	"::notice::last"

// annotatedJob is a finished job of a new build of p with annotatedLog, its
// annotations stored as the runner stores them, and more counted than kept.
func annotatedJob(t *testing.T, s *testServer, p store.Project, sha string) (store.Build, store.Job) {
	t.Helper()
	b, j := buildWithLog(t, s, p, "refs/heads/main", sha, "m", annotatedLog, store.JobFailure)
	notes := []store.Annotation{
		{LogLine: 6, Level: store.AnnotationError, File: "app.go", Line: 12, Col: 3, Title: "Bad " + xssImg, Message: "broken " + xssScript + "\nsecond line"},
		{LogLine: 9, Level: store.AnnotationWarning, Message: "careful"},
		{LogLine: 12, Level: store.AnnotationNotice, Message: "last"},
	}
	if err := s.db.AddAnnotations(context.Background(), j.ID, notes, store.AnnotationCounts{Errors: 1, Warnings: 3, Notices: 1}); err != nil {
		t.Fatal(err)
	}
	return b, j
}

// checkAnnotatedLines checks the lines of annotatedLog as rendered, by a
// page or by the stream: marker lines are headers, empty end rows and
// annotation rows, never their text; everything keeps its number.
func checkAnnotatedLines(t *testing.T, where string, doc *goquery.Document, body string) {
	t.Helper()
	checkLogInert(t, where, doc, body)
	if n := doc.Find(logLine).Length(); n != 12 {
		t.Errorf("%s: %d lines, want 12", where, n)
	}
	for _, command := range []string{"::group::", "::endgroup::", "::error file=", "::warning::", "::notice::last"} {
		if strings.Contains(body, command) {
			t.Errorf("%s: shows the command %q as text", where, command)
		}
	}
	for _, w := range []struct{ id, class, text string }{
		{"L1", "", "before"},
		{"L2", views.GroupStartClass, "Outer " + xssImg},
		{"L3", "", "inside outer"},
		{"L4", views.GroupStartClass, "Inner"},
		{"L6", "annotation annotation-error", "✖\uFE0E error Bad " + xssImg + " broken " + xssScript + "second line app.go:12:3"},
		{"L7", views.GroupEndClass, ""},
		{"L8", views.GroupEndClass, ""},
		{"L9", "annotation annotation-warning", "⚠\uFE0E warning careful"},
		{"L10", "", "::error::coloured is text"},
		{"L11", "", "  ::notice::indented is text"},
		{"L12", "annotation annotation-notice", "ℹ\uFE0E notice last"},
	} {
		l := doc.Find("#" + w.id)
		if attrOf(l, "class") != w.class && !(w.class == "" && attrOf(l, "class") == "<no class>") || shownText(l) != w.text {
			t.Errorf("%s: %s class %q reads %q; want class %q reading %q", where, w.id, attrOf(l, "class"), shownText(l), w.class, w.text)
		}
	}
	if got := textOf(doc.Find("#L2 span.group-title")); got != "Outer "+xssImg {
		t.Errorf("%s: the group's title is %q", where, got)
	}
	if doc.Find("#L6 br").Length() != 1 || textOf(doc.Find("#L6 code.annotation-where")) != "app.go:12:3" || textOf(doc.Find("#L6 b.annotation-title")) != "Bad "+xssImg {
		t.Errorf("%s: the error's line break, place or title is lost: %s", where, body)
	}
}

func TestGroupAndAnnotationLinesRenderAsTheirParts(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	b, j := annotatedJob(t, s, p, "abc")
	job := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, b.Number, j.ID)
	_, body := fetchPage(t, owner, job+"/log", 200)
	checkAnnotatedLines(t, "log page", parse(t, body), body)

	var all strings.Builder
	for _, e := range readEvents(t, owner, job+"/log/stream", "") {
		if e.event == "line" {
			all.WriteString(e.data)
		}
	}
	checkAnnotatedLines(t, "log stream", parse(t, all.String()), all.String())
}

func TestJobPageListsAnnotationsLinkingToTheirLines(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	b, j := annotatedJob(t, s, p, "abc")
	job := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, b.Number, j.ID)
	doc, body := fetchPage(t, owner, job, 200)
	checkInert(t, "job", doc, body)
	list := doc.Find("section#" + views.AnnotationsID)
	if list.Length() != 1 || textOf(list.Find("h2")) != "Annotations" {
		t.Fatalf("job page: %d annotation lists", list.Length())
	}
	if got := textOf(list.Find("p.muted")); got != "✖\uFE0E 1 error ⚠\uFE0E 3 warnings ℹ\uFE0E 1 notice 2 not listed: only the first 1000 of a job are kept, with its log" {
		t.Errorf("counts read %q", got)
	}
	rows := list.Find("li")
	want := []struct{ line, text string }{
		{"6", "✖\uFE0E error Bad " + xssImg + " broken " + xssScript + "\nsecond line app.go:12:3 line 6"},
		{"9", "⚠\uFE0E warning careful line 9"},
		{"12", "ℹ\uFE0E notice last line 12"},
	}
	if rows.Length() != len(want) {
		t.Fatalf("%d rows, want %d", rows.Length(), len(want))
	}
	rows.Each(func(i int, row *goquery.Selection) {
		a := row.Find("a")
		if href := attrOf(a, "href"); href != job+"?line="+want[i].line+"#L"+want[i].line {
			t.Errorf("row %d links %q", i, href)
		}
		if got := strings.Join(strings.Fields(strings.ReplaceAll(a.Text(), "\n", " \\n ")), " "); got != strings.Join(strings.Fields(strings.ReplaceAll(want[i].text, "\n", " \\n ")), " ") {
			t.Errorf("row %d reads %q, want %q", i, got, want[i].text)
		}
	})

	// A job without annotations has no list.
	_, plain := buildWithLog(t, s, p, "refs/heads/main", "def", "m", "::notice without its end\n", store.JobSuccess)
	doc, _ = fetchPage(t, owner, fmt.Sprintf("/projects/%d/builds/2/jobs/%d", p.ID, plain.ID), 200)
	if n := doc.Find("#" + views.AnnotationsID + " li").Length(); n != 0 {
		t.Errorf("a job without annotations has %d lists", n)
	}
}

func TestBuildPageCountsEachJobsAnnotations(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	if _, err := s.db.CreateHook(context.Background(), store.Hook{ProjectID: p.ID, Title: "quiet", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	b, j := annotatedJob(t, s, p, "abc")
	build := fmt.Sprintf("/projects/%d/builds/%d", p.ID, b.Number)
	doc, body := fetchPage(t, owner, build, 200)
	checkInert(t, "build", doc, body)
	counts := doc.Find("#" + views.JobsTableID + " a.annotation-counts")
	if counts.Length() != 1 {
		t.Fatalf("%d jobs show annotation counts, want the one that has any", counts.Length())
	}
	if href := attrOf(counts, "href"); href != fmt.Sprintf("%s/jobs/%d#%s", build, j.ID, views.AnnotationsID) {
		t.Errorf("the counts link %q", href)
	}
	if got := textOf(counts); got != "✖\uFE0E 1 error ⚠\uFE0E 3 warnings ℹ\uFE0E 1 notice" {
		t.Errorf("the counts read %q", got)
	}
	// The poll of the jobs table shows them too.
	if got := textOf(fetchPoll(t, owner, build, views.JobsTableID).Find("a.annotation-counts")); got != textOf(counts) {
		t.Errorf("the polled table's counts read %q", got)
	}
}
