package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kozmic/gh"
	"kozmic/store"
)

// webhookSenders is how many senders BenchmarkWebhookIngest runs at once.
const webhookSenders = 64

// BenchmarkWebhookIngest sends signed push webhooks for distinct commits
// over HTTP on 127.0.0.1 through the real handler and store (a project of
// one hook), from webhookSenders concurrent senders, and reports
// webhooks/s, the median and 99th percentile latency, the answers other
// than 201 (errors) and how much the database (as a compacted backup)
// grew per build. The requests are built and signed before the timer
// starts: only sending them and their handling are timed.
func BenchmarkWebhookIngest(b *testing.B) {
	s := newTestServer(b)
	p, _ := webhookProjects(b, s.db)
	srv := httptest.NewServer(s)
	defer srv.Close()
	template := readFixture(b, "push_with-new-branch.json")
	const sha = "a87336bc6ee7a9a14638b8f4f962dd83205ac97b" // the push fixture's after
	url := fmt.Sprintf("%s/webhooks/%d", srv.URL, p.ID)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: webhookSenders}}
	defer client.CloseIdleConnections()

	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		body := bytes.ReplaceAll(template, []byte(sha), fmt.Appendf(nil, "%040x", i+1))
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", i+1))
		req.Header.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), body))
		reqs[i] = req
	}
	sizeBefore := backupSize(b, s.db)
	var next, errs atomic.Int64
	latencies := make([]time.Duration, b.N)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range webhookSenders {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				start := time.Now()
				res, err := client.Do(reqs[i])
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusCreated {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				latencies[i] = time.Since(start)
				if err != nil && errs.Add(1) == 1 {
					b.Logf("webhook %d: %v", i+1, err)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	ms := func(q int) float64 { return float64(latencies[len(latencies)*q/100].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "webhooks/s")
	b.ReportMetric(ms(50), "p50-ms")
	b.ReportMetric(ms(99), "p99-ms")
	b.ReportMetric(float64(errs.Load()), "errors")
	b.ReportMetric(float64(backupSize(b, s.db)-sizeBefore)/float64(b.N), "db-bytes/build")
}

// benchProject is a signed-in browser on a test server with a project of
// one hook.
func benchProject(b *testing.B) (*testServer, *browser, store.Project) {
	s := newTestServer(b)
	br := newBrowser(b, s)
	br.signIn("/")
	ctx := context.Background()
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", WebhookSecret: "s"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
		b.Fatal(err)
	}
	return s, br, p
}

// benchBuilds adds n builds of main to p, from four writers at once.
func benchBuilds(b *testing.B, s *testServer, p store.Project, n int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				if _, _, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main",
					SHA: fmt.Sprintf("%040x", i), Author: "Ann", Message: "a change"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkProjectPage renders a project's page (its first page of builds)
// for a project with 100,000 builds, through the real handler, session and
// store.
func BenchmarkProjectPage(b *testing.B) {
	s, br, p := benchProject(b)
	benchBuilds(b, s, p, 100_000)
	path := fmt.Sprintf("/projects/%d", p.ID)
	b.ResetTimer()
	for b.Loop() {
		res, page := br.do("GET", path, nil)
		if res.StatusCode != 200 || strings.Count(page, `class="build"`) != buildsPerPage {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkBuildPage renders the page of a finished build in the middle of
// a project's 100,000 builds, its job with annotations, through the real
// handler, session and store; ms/page is the server's time per page.
func BenchmarkBuildPage(b *testing.B) {
	s, br, p := benchProject(b)
	benchBuilds(b, s, p, 100_000)
	ctx := context.Background()
	build, err := s.db.BuildByNumber(ctx, p.ID, 50_000)
	if err != nil {
		b.Fatal(err)
	}
	jobs, err := s.db.Jobs(ctx, build.ID)
	if err != nil {
		b.Fatal(err)
	}
	for _, st := range []store.JobStatus{store.JobRunning, store.JobFailure} {
		if _, err := s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: st}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.db.AppendLog(ctx, jobs[0].ID, []byte(strings.Repeat("output\n", 10)), false); err != nil {
		b.Fatal(err)
	}
	notes := []store.Annotation{{LogLine: 3, Level: store.AnnotationError, Message: "broken"}, {LogLine: 9, Level: store.AnnotationWarning, Message: "slow"}}
	if err := s.db.AddAnnotations(ctx, jobs[0].ID, notes, store.AnnotationCounts{Errors: 1, Warnings: 1}); err != nil {
		b.Fatal(err)
	}
	path := fmt.Sprintf("/projects/%d/builds/50000", p.ID)
	b.ResetTimer()
	for b.Loop() {
		res, page := br.do("GET", path, nil)
		if res.StatusCode != 200 || !strings.Contains(page, "1 error") {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
}

// BenchmarkLogPage serves one page (1,000 lines, with colours) from the
// middle of a finished 100,000-line log, through the real handler and store.
func BenchmarkLogPage(b *testing.B) {
	s, br, p := benchProject(b)
	ctx := context.Background()
	_, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc"})
	if err != nil {
		b.Fatal(err)
	}
	var log bytes.Buffer
	offsets := map[int]int{}
	for i := 1; i <= 100_000; i++ {
		offsets[i] = log.Len()
		fmt.Fprintf(&log, "\x1b[36mstep\x1b[0m %d of a very long build\n", i)
	}
	for data := log.Bytes(); len(data) > 0; {
		n := min(len(data), 64<<10)
		if _, err := s.db.AppendLog(ctx, jobs[0].ID, data[:n], false); err != nil {
			b.Fatal(err)
		}
		data = data[n:]
	}
	s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
	s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess})
	path := fmt.Sprintf("/projects/%d/builds/1/jobs/%d/log?at=%d:50001", p.ID, jobs[0].ID, offsets[50001])
	b.ResetTimer()
	for b.Loop() {
		res, page := br.do("GET", path, nil)
		if res.StatusCode != 200 || strings.Count(page, `<p id=L`) != logPageLines {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// BenchmarkLongLineLog renders a finished log whose middle line is 32 MiB
// long (stored and compressed as the runner stores it) through the real
// handler and store, as its page and as its stream, for one viewer and for
// four at once. An op is one render for each viewer; peak-RSS-MiB is how
// far the process's resident memory rose above where it stood before the
// run, at its peak.
func BenchmarkLongLineLog(b *testing.B) {
	for _, part := range []string{"log", "log/stream"} {
		for _, viewers := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/viewers=%d", part, viewers), func(b *testing.B) {
				s, br, p := benchProject(b)
				build, job, _, _ := longLineJob(b, s, p, 32<<20)
				path := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/%s", p.ID, build.Number, job.ID, part)
				grew := peakRSSGrowth(b, func() {
					for b.Loop() {
						for _, body := range fetchAll(b, br, path, viewers) {
							if !strings.Contains(body, lineCutClass) {
								b.Fatalf("%s: no cut line", path)
							}
						}
					}
				})
				b.ReportMetric(float64(grew)/(1<<20), "peak-RSS-MiB")
			})
		}
	}
}

// spaces is an endless body of blanks that costs its sender no memory.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// floodWebhooks posts senders unsigned webhook bodies of size bytes to url
// at once, as an anonymous attacker would, with declared lengths or
// chunked, and counts the answers by status (0: the server closed the
// connection before the body was sent).
func floodWebhooks(tb testing.TB, url string, senders, size int, chunked bool) map[int]int {
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: senders, MaxIdleConnsPerHost: senders}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, url, io.LimitReader(spaces{}, int64(size)))
			if err != nil {
				tb.Error(err)
				return
			}
			req.ContentLength = int64(size)
			if chunked {
				req.ContentLength = -1
			}
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
			code := 0
			if res, err := client.Do(req); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				code = res.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}

// BenchmarkWebhookFlood posts 100 unsigned 25 MiB webhook bodies at once
// over HTTP on 127.0.0.1 (see floodWebhooks), each as if from an address of
// its own, so that no address's part of the budget holds the flood back:
// to a project that does not exist and to one that does, with declared
// lengths and chunked. An op is
// one flood; peak-RSS-MiB is how far the process's resident memory (server
// and senders together) rose at its peak; status-N/op counts the answers.
// Issue 12 measured 1.27 GB before bodies were bounded.
func BenchmarkWebhookFlood(b *testing.B) {
	for _, target := range []string{"unknown", "known"} {
		for _, chunked := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/chunked=%v", target, chunked), func(b *testing.B) {
				s := newTestServer(b)
				p, _ := webhookProjects(b, s.db)
				srv := httptest.NewServer(atManyPeers(s))
				defer srv.Close()
				id := p.ID
				if target == "unknown" {
					id += 1000
				}
				url := fmt.Sprintf("%s/webhooks/%d", srv.URL, id)
				codes := map[int]int{}
				grew := peakRSSGrowth(b, func() {
					for b.Loop() {
						for code, n := range floodWebhooks(b, url, 100, 25<<20, chunked) {
							codes[code] += n
						}
					}
				})
				b.ReportMetric(float64(grew)/(1<<20), "peak-RSS-MiB")
				for code, n := range codes {
					b.ReportMetric(float64(n)/float64(b.N), fmt.Sprintf("status-%d/op", code))
				}
			})
		}
	}
}
