package handlers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"kozmic/store"
)

// bigLogJob makes a finished job of p with a 32 MiB log of 80-byte build
// lines (one in ten coloured, one in 5,000 holding "needle"), stored as the
// runner stores a job's output: 512 KiB batches of frames with the arrival
// time of every 100th line. It returns the job's page and how many lines
// the log has.
func bigLogJob(b *testing.B, s *testServer, p store.Project) (string, int) {
	b.Helper()
	ctx := context.Background()
	build, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc"})
	if err != nil {
		b.Fatal(err)
	}
	s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
	e := store.NewLogEncoder()
	var pos int64
	var batch []byte
	var marks []store.LogMark
	line := 0
	for pos+int64(len(batch)) < 32<<20 {
		line++
		if line%100 == 1 {
			marks = append(marks, store.LogMark{Offset: pos + int64(len(batch)), At: time.Duration(line) * time.Millisecond})
		}
		switch {
		case line%5000 == 0:
			batch = fmt.Appendf(batch, "step %7d: the needle of this build, found where it was left: ok %28s\n", line, "")
		case line%10 == 0:
			batch = fmt.Appendf(batch, "\x1b[32mok\x1b[0m  kozmic/handlers  step %7d ran the whole suite of tests in 1.234s\n", line)
		default:
			batch = fmt.Appendf(batch, "building step %7d: compiling packages, linking binaries, running tests\n", line)
		}
		if len(batch) >= 512<<10 {
			if _, err := s.db.AppendLogFrames(ctx, jobs[0].ID, e.Encode(batch, marks, false)); err != nil {
				b.Fatal(err)
			}
			pos += int64(len(batch))
			batch, marks = batch[:0], nil
		}
	}
	if _, err := s.db.AppendLogFrames(ctx, jobs[0].ID, e.Encode(batch, marks, false)); err != nil {
		b.Fatal(err)
	}
	s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess})
	return fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, build.Number, jobs[0].ID), line
}

// BenchmarkBigLog measures a job with a 32 MiB log (bigLogJob) in a project
// with 100,000 builds before it, through the real handler, session and
// store, in ms/op: its page (which holds the
// log's first page), the log's last page as scrolling or a search's link
// loads it (log?at=OFFSET:LINE), the job's page opened by a link to a line
// near the end (?line=N, which counts lines in the stored log), and a
// search of the whole log (the target: under 300 ms).
func BenchmarkBigLog(b *testing.B) {
	s, br, p := benchProject(b)
	benchBuilds(b, s, p, 100_000)
	jobURL, lines := bigLogJob(b, s, p)
	last := int64((lines-1)/logPageLines*logPageLines + 1)
	job := jobURL[strings.LastIndex(jobURL, "/")+1:]
	var jobID int64
	fmt.Sscan(job, &jobID)
	at, err := s.db.LineStart(context.Background(), jobID, last)
	if err != nil {
		b.Fatal(err)
	}
	for _, bench := range []struct {
		name, path, want string
	}{
		{"job-page", jobURL, `<p id=L1000`},
		{"last-page", fmt.Sprintf("%s/log?at=%d:%d", jobURL, at, last), fmt.Sprintf(`<p id=L%d`, lines)},
		{"line-link", fmt.Sprintf("%s?line=%d", jobURL, lines-10), fmt.Sprintf(`<p id=L%d`, lines)},
		{"search", jobURL + "/log/search?q=" + url.QueryEscape("NEEDLE of this"), fmt.Sprintf(`data-count="%d"`, lines/5000)},
	} {
		b.Run(bench.name, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				res, page := br.do("GET", bench.path, nil)
				if res.StatusCode != 200 || !strings.Contains(page, bench.want) {
					b.Fatalf("%s: status %d, no %q", bench.path, res.StatusCode, bench.want)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}
