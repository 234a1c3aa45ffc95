package handlers

import (
	"strings"
	"testing"
)

// While the runner's last ping of Docker failed, /healthz is 503 and says
// so, without the runner's sentence (or the engine's address).
func TestHealthzDockerUnreachable(t *testing.T) {
	s := newTestServer(t)
	s.Handler.jobs = unreachableJobs{Jobs: s.Handler.jobs, msg: "Docker is not reachable at unix:///secret/docker.sock — jobs will wait"}
	res, body := get(t, s, "/healthz")
	if res.StatusCode != 503 || strings.TrimSpace(body) != `{"status":"unavailable","database":"ok","docker":"unreachable"}` {
		t.Errorf("Docker down: %d %s", res.StatusCode, body)
	}
	if strings.Contains(body, "secret") {
		t.Error("healthz shows the runner's message")
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", res.Header)
	}
	s.db.Close()
	if res, body := get(t, s, "/healthz"); res.StatusCode != 503 ||
		strings.TrimSpace(body) != `{"status":"unavailable","database":"unavailable","docker":"unreachable"}` {
		t.Errorf("both down: %d %s", res.StatusCode, body)
	}
}
