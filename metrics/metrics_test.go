package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/store"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// value is the value of one series in a scrape; the test fails without it.
func value(t *testing.T, body, series string) float64 {
	t.Helper()
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return v
		}
	}
	t.Fatalf("the scrape has no %s:\n%s", series, body)
	return 0
}

func TestEventsAreCounted(t *testing.T) {
	m := New(testdb.Open(t), slog.New(slog.DiscardHandler))
	before := scrape(t, m)
	for _, s := range []string{`kozmic_jobs_finished_total{status="success"}`, `kozmic_jobs_finished_total{status="failure"}`,
		`kozmic_jobs_finished_total{status="error"}`, "kozmic_job_duration_seconds_count", "kozmic_job_queue_wait_seconds_count",
		"kozmic_log_bytes_written_total", `kozmic_webhooks_received_total{result="too_large"}`} {
		if v := value(t, before, s); v != 0 {
			t.Errorf("%s = %v at the start", s, v)
		}
	}
	for _, s := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		value(t, before, s)
	}

	m.JobStarted(2 * time.Second)
	m.JobStarted(40 * time.Minute)
	m.JobFinished(store.JobSuccess, 90*time.Second)
	m.JobFinished(store.JobError, 500*time.Millisecond)
	m.LogBytes(100)
	m.LogBytes(23)
	m.Webhook("created")
	m.Webhook("created")
	m.Webhook("unauthorized")
	after := scrape(t, m)
	want := map[string]float64{
		`kozmic_jobs_finished_total{status="success"}`:          1,
		`kozmic_jobs_finished_total{status="failure"}`:          0,
		`kozmic_jobs_finished_total{status="error"}`:            1,
		"kozmic_job_duration_seconds_count":                     2,
		"kozmic_job_duration_seconds_sum":                       90.5,
		`kozmic_job_duration_seconds_bucket{le="1"}`:            1,
		`kozmic_job_duration_seconds_bucket{le="60"}`:           1,
		`kozmic_job_duration_seconds_bucket{le="120"}`:          2,
		"kozmic_job_queue_wait_seconds_count":                   2,
		"kozmic_job_queue_wait_seconds_sum":                     2402,
		`kozmic_job_queue_wait_seconds_bucket{le="5"}`:          1,
		`kozmic_job_queue_wait_seconds_bucket{le="3600"}`:       2,
		"kozmic_log_bytes_written_total":                        123,
		`kozmic_webhooks_received_total{result="created"}`:      2,
		`kozmic_webhooks_received_total{result="unauthorized"}`: 1,
		`kozmic_webhooks_received_total{result="seen"}`:         0,
	}
	for s, w := range want {
		if v := value(t, after, s); v != w {
			t.Errorf("%s = %v, want %v", s, v, w)
		}
	}
}

// The queue, running jobs and the status outbox are read from the database
// at each scrape.
func TestDatabaseGauges(t *testing.T) {
	ctx := context.Background()
	db := testdb.Open(t)
	m := New(db, slog.New(slog.DiscardHandler))
	gauges := func(when string, enqueued, running, pending, failed float64) {
		t.Helper()
		body := scrape(t, m)
		for s, w := range map[string]float64{"kozmic_jobs_enqueued": enqueued, "kozmic_jobs_running": running,
			"kozmic_commit_statuses_pending": pending, "kozmic_commit_statuses_failed": failed} {
			if v := value(t, body, s); v != w {
				t.Errorf("%s: %s = %v, want %v", when, s, v, w)
			}
		}
	}
	gauges("empty", 0, 0, 0, 0)

	u, err := db.CreateLocalUser(ctx, "ann", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: u.ID, Source: store.SourceGit, FullName: "ann/app",
		GitURL: "/srv/app.git", WebhookSecret: "whsec"})
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"lint", "test", "build"} {
		if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: "busybox", BuildScript: "#!/bin/sh\n"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc"}); err != nil {
		t.Fatal(err)
	}
	gauges("a build of three hooks", 3, 0, 0, 0)
	if _, ok, err := db.ClaimJob(ctx); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	gauges("one claimed", 2, 1, 0, 0)

	for _, c := range []string{"kozmic/lint", "kozmic/test"} {
		if err := db.EnqueueStatus(ctx, store.Status{ProjectID: p.ID, Repo: "ann/app", SHA: "abc", Context: c, State: "pending"}); err != nil {
			t.Fatal(err)
		}
	}
	due, err := db.DueStatuses(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("due = %v, %v", due, err)
	}
	if err := db.StatusFailed(ctx, due[0].ID, time.Time{}, "HTTP 422"); err != nil {
		t.Fatal(err)
	}
	gauges("one status given up", 2, 1, 1, 1)
}

// A database that cannot be read leaves its gauges out, logged, and the
// rest is still served.
func TestScrapeWithoutDatabase(t *testing.T) {
	db := testdb.Open(t)
	logs := &syncbuf.Buffer{}
	m := New(db, slog.New(slog.NewTextHandler(logs, nil)))
	m.LogBytes(7)
	db.Close()
	body := scrape(t, m)
	if v := value(t, body, "kozmic_log_bytes_written_total"); v != 7 {
		t.Errorf("log bytes = %v", v)
	}
	for _, s := range []string{"kozmic_jobs_enqueued", "kozmic_commit_statuses_pending"} {
		if strings.Contains(body, "\n"+s+" ") {
			t.Errorf("the scrape shows %s, which it could not read", s)
		}
	}
	for _, msg := range []string{"metrics: count jobs", "metrics: count commit statuses"} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("%q was not logged:\n%s", msg, logs)
		}
	}
}

// engineLines are a scrape's lines of the engines' series, HELP and TYPE
// lines left out.
func engineLines(body string) []string {
	var lines []string
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "kozmic_engine_") {
			lines = append(lines, strings.TrimSuffix(line, "\n"))
		}
	}
	return lines
}

// Each scrape reports every engine the runner has, as it is at that
// moment, labelled with its name escaped as the text format wants; before
// SetEngines, none.
func TestEngineSeriesAreReadAtEachScrape(t *testing.T) {
	m := New(testdb.Open(t), slog.New(slog.DiscardHandler))
	if lines := engineLines(scrape(t, m)); len(lines) != 0 {
		t.Errorf("engines before SetEngines: %q", lines)
	}
	engines := []Engine{{Name: "local", Slots: 2, Busy: 1, Up: true, Started: 7, Failed: 2},
		{Name: "builder \"2\"\\b\nx", Slots: 4, Busy: 0, Up: false, Started: 3, Failed: 3}}
	m.SetEngines(func() []Engine { return engines })
	want := []string{
		`kozmic_engine_jobs_failed_total{engine="builder \"2\"\\b\nx"} 3`,
		`kozmic_engine_jobs_failed_total{engine="local"} 2`,
		`kozmic_engine_jobs_started_total{engine="builder \"2\"\\b\nx"} 3`,
		`kozmic_engine_jobs_started_total{engine="local"} 7`,
		`kozmic_engine_slots{engine="builder \"2\"\\b\nx"} 4`,
		`kozmic_engine_slots{engine="local"} 2`,
		`kozmic_engine_slots_in_use{engine="builder \"2\"\\b\nx"} 0`,
		`kozmic_engine_slots_in_use{engine="local"} 1`,
		`kozmic_engine_up{engine="builder \"2\"\\b\nx"} 0`,
		`kozmic_engine_up{engine="local"} 1`,
	}
	body := scrape(t, m)
	if got := engineLines(body); !slices.Equal(got, want) {
		t.Errorf("engine series:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, typ := range []string{"# TYPE kozmic_engine_slots gauge", "# TYPE kozmic_engine_slots_in_use gauge", "# TYPE kozmic_engine_up gauge",
		"# TYPE kozmic_engine_jobs_started_total counter", "# TYPE kozmic_engine_jobs_failed_total counter"} {
		if !strings.Contains(body, typ+"\n") {
			t.Errorf("the scrape has no %q", typ)
		}
	}

	// The next scrape reads the engines again.
	engines[0].Busy, engines[1].Up = 2, true
	body = scrape(t, m)
	if v := value(t, body, `kozmic_engine_slots_in_use{engine="local"}`); v != 2 {
		t.Errorf("slots in use after a change = %v, want 2", v)
	}
	if v := value(t, body, `kozmic_engine_up{engine="builder \"2\"\\b\nx"}`); v != 1 {
		t.Errorf("up after a change = %v, want 1", v)
	}
}
