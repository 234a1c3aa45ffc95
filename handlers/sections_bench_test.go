package handlers

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"kozmic/store"
	"kozmic/views"
)

// BenchmarkJobPageSections serves, through the real handler, session and
// store, the page of a finished job whose log has four steps, the last a
// build script of 100,000 lines (4 MB), and the first page of that step's
// section, as a reader who opens it gets: ms/page is the server's time for
// each, and the two sub-benchmarks say which.
func BenchmarkJobPageSections(b *testing.B) {
	s, br, p := benchProject(b)
	ctx := context.Background()
	build, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc"})
	if err != nil {
		b.Fatal(err)
	}
	id := jobs[0].ID
	s.db.UpdateJob(ctx, id, store.JobUpdate{Status: store.JobRunning})
	steps := []struct {
		name  store.StepName
		lines int
	}{{store.StepFetch, 3}, {store.StepImage, 2}, {store.StepInstall, 50}, {store.StepBuild, 100_000}}
	var off int64
	line := 1
	for _, st := range steps {
		if _, err := s.db.BeginJobStep(ctx, id, store.JobStep{Name: st.name, Offset: off, Line: line, StartedAt: time.Now(), Status: store.StepRunning}); err != nil {
			b.Fatal(err)
		}
		var log bytes.Buffer
		for i := 1; i <= st.lines; i++ {
			fmt.Fprintf(&log, "\x1b[36m%s\x1b[0m %d of a very long build\n", st.name, i)
		}
		for data := log.Bytes(); len(data) > 0; {
			n := min(len(data), 64<<10)
			if _, err := s.db.AppendLog(ctx, id, data[:n], false); err != nil {
				b.Fatal(err)
			}
			data = data[n:]
		}
		off += int64(log.Len())
		line += st.lines
	}
	if _, err := s.db.EndJobStep(ctx, id, store.StepFailure, time.Now()); err != nil {
		b.Fatal(err)
	}
	s.db.UpdateJob(ctx, id, store.JobUpdate{Status: store.JobFailure})
	page := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, id)
	_, body := br.do("GET", page, nil)
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	last := attrOf(doc.Find("#log > details."+views.LogSectionClass).Last().Find("."+views.LogMoreClass), "hx-get")
	for _, c := range []struct {
		name, path string
		ok         func(string) bool
	}{
		{"page", page, func(body string) bool { return strings.Count(body, `<details class="log-section"`) == len(steps) }},
		{"section", last, func(body string) bool { return strings.Count(body, `<p id=L`) == logPageLines }},
	} {
		b.Run(c.name, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				res, body := br.do("GET", c.path, nil)
				if res.StatusCode != 200 || !c.ok(body) {
					b.Fatalf("GET %s: status %d", c.path, res.StatusCode)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}
