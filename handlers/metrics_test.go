package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"kozmic/gh"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/metrics"
	"kozmic/store"
)

// withMetrics gives the test server real metrics over its database, and
// the metrics token (empty: none).
func withMetrics(s *testServer, token string) *metrics.Metrics {
	m := metrics.New(s.db, slog.New(slog.NewTextHandler(s.logs, nil)))
	s.Handler.metrics, s.Handler.metricsToken = m, token
	return m
}

// scrape gets /metrics with the given Authorization header ("": none).
func scrape(t testing.TB, h http.Handler, auth string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Result(), rec.Body.String()
}

// sample is the value of one series ("name" or `name{label="value"}`) in
// a scrape; ok is false when the scrape lacks it.
func sample(body, series string) (v float64, ok bool) {
	for line := range strings.Lines(body) {
		if rest, found := strings.CutPrefix(line, series+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func mustSample(t testing.TB, body, series string) float64 {
	t.Helper()
	v, ok := sample(body, series)
	if !ok {
		t.Fatalf("the scrape has no %s:\n%s", series, body)
	}
	return v
}

func TestMetricsRoute(t *testing.T) {
	s := newTestServer(t)
	if res, _ := scrape(t, s, ""); res.StatusCode != 404 {
		t.Errorf("without metrics: %d, want 404", res.StatusCode)
	}

	withMetrics(s, "")
	res, body := scrape(t, s, "")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("public scrape: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, series := range []string{`kozmic_jobs_finished_total{status="success"}`, "kozmic_jobs_enqueued", "go_goroutines", "process_resident_memory_bytes"} {
		mustSample(t, body, series)
	}

	const token = "0123456789abcdef-metrics"
	withMetrics(s, token)
	for _, auth := range []string{"", "Bearer wrong-token-of-some-length", "Bearer " + token + "x", "Basic " + token, token} {
		res, body := scrape(t, s, auth)
		if res.StatusCode != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: %d, WWW-Authenticate %q; want 401 asking for a bearer token", auth, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
		var e map[string]string
		if json.Unmarshal([]byte(body), &e) != nil || e["error"] == "" || strings.Contains(body, "kozmic_") {
			t.Errorf("Authorization %q: body %q, want a JSON error and no metrics", auth, body)
		}
	}
	for _, auth := range []string{"Bearer " + token, "bearer " + token} {
		if res, body := scrape(t, s, auth); res.StatusCode != 200 || !strings.Contains(body, "kozmic_jobs_finished_total") {
			t.Errorf("Authorization %q: %d", auth, res.StatusCode)
		}
	}
}

// Every answer of the webhook route is counted by its result, and the
// build it creates shows in the queue (this runner never starts).
func TestWebhookMetrics(t *testing.T) {
	s := newTestServer(t)
	withMetrics(s, "")
	p, other := webhookProjects(t, s.db)
	_, before := scrape(t, s, "")
	for _, r := range metrics.WebhookResults {
		if v := mustSample(t, before, `kozmic_webhooks_received_total{result="`+r+`"}`); v != 0 {
			t.Errorf("%s before any webhook: %v", r, v)
		}
	}
	if v := mustSample(t, before, "kozmic_jobs_enqueued"); v != 0 {
		t.Errorf("queue before any webhook: %v", v)
	}

	push := readFixture(t, "push_with-new-branch.json")
	deliveries := []struct {
		name            string
		project         int64
		event           string
		body            []byte
		secret, sig, id string
		status          int
		result          string
	}{
		{"new build", p.ID, "push", push, testSecret, "", "d-1", 201, "created"},
		{"same commit", p.ID, "push", push, testSecret, "", "d-2", 200, "exists"},
		{"same delivery", p.ID, "push", push, testSecret, "", "d-2", 200, "seen"},
		{"ping", p.ID, "ping", readFixture(t, "ping.json"), testSecret, "", "d-3", 200, "no_build"},
		{"no hooks", other.ID, "push", push, otherSecret, "", "d-4", 200, "no_hooks"},
		{"unhandled event", p.ID, "delete", readFixture(t, "delete.json"), testSecret, "", "d-5", 204, "ignored"},
		{"wrong secret", p.ID, "push", push, otherSecret, "", "d-6", 401, "unauthorized"},
		{"no signature", p.ID, "push", push, testSecret, "-", "d-7", 401, "unauthorized"},
		{"not JSON", p.ID, "push", []byte("{"), testSecret, "", "d-8", 400, "malformed"},
		{"no such project", 999999, "push", push, testSecret, "", "d-9", 404, "not_found"},
		{"too large", p.ID, "push", bytes.Repeat([]byte(" "), maxWebhookBytes+1), testSecret, "-", "d-10", 413, "too_large"},
	}
	want := map[string]float64{}
	for _, d := range deliveries {
		if code, out := deliver(t, s, d.project, d.event, d.body, d.secret, d.sig, d.id); code != d.status {
			t.Errorf("%s: %d %v, want %d", d.name, code, out, d.status)
		}
		want[d.result]++
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/webhooks/not-a-number", strings.NewReader("{}")))
	if rec.Code != 404 {
		t.Errorf("/webhooks/not-a-number: %d", rec.Code)
	}
	want["not_found"]++

	_, after := scrape(t, s, "")
	for _, r := range metrics.WebhookResults {
		if got := mustSample(t, after, `kozmic_webhooks_received_total{result="`+r+`"}`); got != want[r] {
			t.Errorf("webhooks %s = %v, want %v", r, got, want[r])
		}
	}
	if v := mustSample(t, after, "kozmic_jobs_enqueued"); v != 1 {
		t.Errorf("queue after a build of one hook: %v, want 1", v)
	}

	// A database that fails: the webhook is an error, and the scrape still
	// answers, without the gauges it cannot read.
	s.db.Close()
	if code, _ := deliver(t, s, p.ID, "push", push, testSecret, "", "d-11"); code != 500 {
		t.Errorf("database closed: webhook %d, want 500", code)
	}
	res, failing := scrape(t, s, "")
	if res.StatusCode != 200 || mustSample(t, failing, `kozmic_webhooks_received_total{result="error"}`) != 1 {
		t.Errorf("database closed: scrape %d, error count %v", res.StatusCode, mustSample(t, failing, `kozmic_webhooks_received_total{result="error"}`))
	}
	if _, ok := sample(failing, "kozmic_jobs_enqueued"); ok {
		t.Error("database closed: the scrape shows a queue it could not read")
	}
	if !strings.Contains(s.logs.String(), "metrics: count jobs") {
		t.Error("the failed query was not logged")
	}
}

// A real job, run by the runner on the Docker engine, moves the job
// counters, histograms and log bytes; the queue is empty again after it.
func TestMetricsOfRealJobs(t *testing.T) {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run jobs on a Docker engine")
	}
	ctx := context.Background()
	srv := newLiveServer(t)
	scrapeLive := func() string {
		t.Helper()
		res, err := http.Get(srv.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("scrape: %d %s", res.StatusCode, body)
		}
		return string(body)
	}
	before := scrapeLive()
	for _, series := range []string{`kozmic_jobs_finished_total{status="success"}`, `kozmic_jobs_finished_total{status="failure"}`,
		"kozmic_job_duration_seconds_count", "kozmic_job_queue_wait_seconds_count", "kozmic_log_bytes_written_total",
		"kozmic_jobs_enqueued", "kozmic_jobs_running"} {
		if v := mustSample(t, before, series); v != 0 {
			t.Errorf("%s = %v before any job", series, v)
		}
	}

	repo := testrepo.New(t, nil)
	owner, err := srv.db.CreateLocalUser(ctx, "ann", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := srv.db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGit,
		FullName: "octocat/metrics", GitURL: repo.Path, WebhookSecret: "metrics-secret"})
	if err != nil {
		t.Fatal(err)
	}
	for title, script := range map[string]string{
		"passes": "#!/bin/sh\necho counted output\nsleep 1\n",
		"fails":  "#!/bin/sh\necho about to fail\nexit 3\n",
	} {
		if _, err := srv.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: testimage.Name, BuildScript: script}); err != nil {
			t.Fatal(err)
		}
	}
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"head_commit":{"message":"Count me","author":{"name":"Ann"}}}`, repo.Git("rev-parse", "HEAD"))
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/webhooks/%d", srv.url, p.ID), strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "metrics-1")
	req.Header.Set("X-Hub-Signature-256", gh.Sign([]byte("metrics-secret"), []byte(body)))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("webhook: %v %v", res, err)
	}
	res.Body.Close()

	// The counters move just after the store records each result: wait for them.
	var after string
	for deadline := time.Now().Add(90 * time.Second); ; {
		after = scrapeLive()
		if v, _ := sample(after, "kozmic_job_duration_seconds_count"); v == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the jobs never finished in the metrics:\n%s\nserver log:\n%s", after, srv.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Once more: that scrape may have counted the running jobs just before
	// the last one finished and counted its duration just after.
	after = scrapeLive()
	checks := map[string]float64{
		`kozmic_jobs_finished_total{status="success"}`:     1,
		`kozmic_jobs_finished_total{status="failure"}`:     1,
		`kozmic_jobs_finished_total{status="error"}`:       0,
		"kozmic_job_queue_wait_seconds_count":              2,
		`kozmic_webhooks_received_total{result="created"}`: 1,
		"kozmic_jobs_enqueued":                             0,
		"kozmic_jobs_running":                              0,
	}
	for series, want := range checks {
		if got := mustSample(t, after, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if took := mustSample(t, after, "kozmic_job_duration_seconds_sum"); took < 1 {
		t.Errorf("job durations add up to %vs; one job slept 1s", took)
	}
	var stored int
	jobs, err := srv.db.Jobs(ctx, 1)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("jobs = %v, %v", jobs, err)
	}
	for _, j := range jobs {
		log, err := srv.db.ReadLog(ctx, j.ID, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		stored += len(log)
	}
	if got := mustSample(t, after, "kozmic_log_bytes_written_total"); stored == 0 || got != float64(stored) {
		t.Errorf("log bytes = %v, want the %d bytes stored", got, stored)
	}
}
