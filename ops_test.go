package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
)

func TestMetricsTokenSetting(t *testing.T) {
	const good = "0123456789abcdef0123456789abcdef"
	c, err := parseConfig("serve", nil, env(t, nil), io.Discard)
	if err != nil || c.MetricsToken != "" {
		t.Fatalf("unset: %q, %v", c.MetricsToken, err)
	}
	c, err = parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_METRICS_TOKEN": good}), io.Discard)
	if err != nil || c.MetricsToken != good {
		t.Fatalf("set: %q, %v", c.MetricsToken, err)
	}
	for _, bad := range []string{"short-token", "a token with spaces in it", "token-with-ünicode-chars", "tab\tseparated-token-value"} {
		_, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_METRICS_TOKEN": bad}), io.Discard)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Setting != "KOZMIC_METRICS_TOKEN" {
			t.Errorf("%q: %v, want a ConfigError naming KOZMIC_METRICS_TOKEN", bad, err)
			continue
		}
		if strings.Contains(err.Error(), bad) {
			t.Errorf("%q: the error shows the secret: %v", bad, err)
		}
	}
	// A secret has no flag, so that it never shows in the process list.
	if _, err := parseConfig("serve", []string{"-metrics-token", good}, env(t, nil), io.Discard); err == nil {
		t.Error("-metrics-token is accepted as a flag")
	}
	code, _, errOut := runKozmic(context.Background(), nil, env(t, map[string]string{"KOZMIC_METRICS_TOKEN": "short"}))
	if code != 2 || !strings.HasPrefix(errOut, "kozmic: KOZMIC_METRICS_TOKEN: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("bad token: exit %d, %q", code, errOut)
	}
}

// The binary's operations side: a healthy /healthz, /metrics behind its
// token counting a real build, and a request log line per request that
// carries the request id.
func TestEndToEndOperations(t *testing.T) {
	needTestImage(t)
	const token = "metrics-token-for-the-e2e-test"
	s := startServer(t, kozmicBinary(t), "KOZMIC_METRICS_TOKEN="+token, "KOZMIC_LOG_FORMAT=json")

	res, err := http.Get(s.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !regexp.MustCompile(`^\{"status":"ok","database":"ok","docker":"ok","writes":"ok","disk":"ok","disk_free_bytes":[1-9][0-9]*,`+
		`"engines":\[\{"name":"local","status":"ok","busy":0,"slots":[1-9][0-9]*\}\]\}$`).
		MatchString(strings.TrimSpace(string(health))) || res.StatusCode != 200 {
		t.Errorf("healthz = %d %s", res.StatusCode, health)
	}

	scrape := func(auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.url+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := scrape(""); code != 401 {
		t.Errorf("scrape without the token: %d, want 401", code)
	}
	if code, _ := scrape("Bearer not-the-token"); code != 401 {
		t.Errorf("scrape with a wrong token: %d, want 401", code)
	}

	c := newClient(t, s)
	if code := c.signIn("admin's password"); code != 303 {
		t.Fatalf("sign in: %d", code)
	}
	r := testrepo.Init(t)
	repo := r.Path
	sha := r.Commit(map[string]string{"src.txt": "src-v1"}, nil)
	id := c.createProject(repo, "team/ops", url.Values{"title": {"test"}, "image": {testimage.Name},
		"build": {"#!/bin/sh\necho \"building $(cat src.txt)\"\n"}})
	_, page := c.do("GET", fmt.Sprintf("/projects/%d", id), nil)
	m := secretInPage.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no webhook secret on the project page:\n%s", page)
	}
	if code := webhook(t, s, id, "not the secret", sha, "forged"); code != 401 {
		t.Errorf("forged webhook: %d", code)
	}
	if code := webhook(t, s, id, m[1], sha, "d-1"); code != 201 {
		t.Fatalf("webhook: %d", code)
	}
	if status, log := c.waitBuild(s, id, 1); status != "passed" {
		t.Fatalf("build %s; log:\n%s", status, log)
	}

	// The counter moves just after the store records the result.
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; {
		var code int
		code, body = scrape("Bearer " + token)
		if code != 200 {
			t.Fatalf("scrape with the token: %d %s", code, body)
		}
		if strings.Contains(body, "\nkozmic_jobs_finished_total{status=\"success\"} 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job never counted:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for series, want := range map[string]string{
		`kozmic_webhooks_received_total{result="created"}`:      "1",
		`kozmic_webhooks_received_total{result="unauthorized"}`: "1",
		"kozmic_job_duration_seconds_count":                     "1",
		"kozmic_job_queue_wait_seconds_count":                   "1",
		"kozmic_jobs_enqueued":                                  "0",
		"kozmic_jobs_running":                                   "0",
		"kozmic_commit_statuses_pending":                        "0",
		`kozmic_engine_up{engine="local"}`:                      "1",
		`kozmic_engine_jobs_started_total{engine="local"}`:      "1",
		`kozmic_engine_jobs_failed_total{engine="local"}`:       "0",
	} {
		if !strings.Contains(body, "\n"+series+" "+want+"\n") {
			t.Errorf("the scrape lacks %s %s", series, want)
		}
	}
	var logBytes float64
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "kozmic_log_bytes_written_total "); ok {
			logBytes, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if logBytes == 0 {
		t.Error("no log bytes counted")
	}

	// One JSON line per request, with the id the client gave.
	req, _ := http.NewRequest("GET", s.url+"/badges/team/ops.svg", nil)
	req.Header.Set("X-Request-ID", "e2e-request-1")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("X-Request-ID"); got != "e2e-request-1" {
		t.Errorf("X-Request-ID = %q", got)
	}
	// The server's output reaches s.logs through a pipe: wait for the line.
	var line map[string]any
	for deadline := time.Now().Add(30 * time.Second); line == nil; time.Sleep(20 * time.Millisecond) {
		for l := range strings.Lines(s.logs.String()) {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "request" && rec["request_id"] == "e2e-request-1" {
				line = rec
			}
		}
		if line == nil && time.Now().After(deadline) {
			t.Fatalf("no request line for e2e-request-1 in the log:\n%s", s.logs)
		}
	}
	bytes, _ := line["bytes"].(float64)
	took, _ := line["duration"].(float64)
	if line["level"] != "INFO" || line["method"] != "GET" || line["path"] != "/badges/team/ops.svg" || line["status"] != float64(200) || bytes <= 0 || took <= 0 {
		t.Errorf("request line %v", line)
	}
}
