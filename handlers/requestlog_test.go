package handlers

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"kozmic/internal/syncbuf"
	"kozmic/static"
	"kozmic/store"
)

// generatedID is what a request id made by Kozmic looks like (crypto/rand.Text).
var generatedID = regexp.MustCompile(`^[A-Z2-7]{26}$`)

// getWithID gets path with the given X-Request-ID ("": none).
func getWithID(t *testing.T, h http.Handler, path, id string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if id != "" {
		r.Header.Set("X-Request-ID", id)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Result(), rec.Body.String()
}

func TestRequestID(t *testing.T) {
	s := newTestServer(t)
	res1, _ := getWithID(t, s, "/healthz", "")
	res2, _ := getWithID(t, s, "/healthz", "")
	id1, id2 := res1.Header.Get("X-Request-ID"), res2.Header.Get("X-Request-ID")
	if !generatedID.MatchString(id1) || !generatedID.MatchString(id2) || id1 == id2 {
		t.Errorf("generated ids %q and %q, want two different random ones", id1, id2)
	}
	for _, sane := range []string{"abc-123", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "Root=1-5759e988;Parent=53995c3f", strings.Repeat("x", 128)} {
		if res, _ := getWithID(t, s, "/healthz", sane); res.Header.Get("X-Request-ID") != sane {
			t.Errorf("sane id %q answered with %q", sane, res.Header.Get("X-Request-ID"))
		}
	}
	for _, insane := range []string{"has space", "tab\there", "line\nbreak", "ünïcode", "\x7f", strings.Repeat("x", 129)} {
		if got := requestID(&http.Request{Header: http.Header{"X-Request-Id": {insane}}}); !generatedID.MatchString(got) {
			t.Errorf("id %q became %q, want a generated one", insane, got)
		}
		// Through the server too, where the header reaches the handler as sent.
		if res, _ := getWithID(t, s, "/healthz", insane); !generatedID.MatchString(res.Header.Get("X-Request-ID")) {
			t.Errorf("id %q answered with %q", insane, res.Header.Get("X-Request-ID"))
		}
	}
}

// requestLine finds the log line of the request with the given id.
func requestLine(logs, id string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, " msg=request ") && strings.HasSuffix(strings.TrimSpace(line), " request_id="+id) {
			return line
		}
	}
	return ""
}

func TestRequestLogLine(t *testing.T) {
	s := newTestServer(t)
	res, body := getWithID(t, s, "/no/such/page?code=secret-login-code", "req-404")
	if res.StatusCode != 404 {
		t.Fatalf("status %d", res.StatusCode)
	}
	line := requestLine(s.logs.String(), "req-404")
	want := regexp.MustCompile(`level=INFO msg=request method=GET path=/no/such/page status=404 duration=[0-9.]+(ns|µs|ms|s) bytes=(\d+) request_id=req-404$`)
	m := want.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		t.Fatalf("request line %q\nlog:\n%s", line, s.logs)
	}
	if n, _ := strconv.Atoi(m[2]); n != len(body) || n == 0 {
		t.Errorf("logged %s bytes, the body has %d", m[2], len(body))
	}
	if strings.Contains(s.logs.String(), "secret-login-code") {
		t.Error("the query string was logged")
	}

	// A handler's own lines for the request name it, as the 500 does.
	s.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	if res, _ := getWithID(t, s, "/boom", "req-500"); res.StatusCode != 500 {
		t.Fatalf("panic: %d", res.StatusCode)
	}
	var panicked bool
	for line := range strings.Lines(s.logs.String()) {
		if strings.Contains(line, `msg="handler panicked"`) {
			panicked = strings.Contains(line, "request_id=req-500")
		}
	}
	if !panicked {
		t.Errorf("the panic's line does not name the request:\n%s", s.logs)
	}
	if line := requestLine(s.logs.String(), "req-500"); !strings.Contains(line, "level=INFO") || !strings.Contains(line, " status=500 ") {
		t.Errorf("the failed request's line: %q", line)
	}
}

// Health checks, scrapes and static files that succeed are logged at
// debug level only; when they fail, at info level.
func TestQuietPaths(t *testing.T) {
	s := newTestServer(t)
	withMetrics(s, "")
	for i, path := range []string{"/healthz", "/metrics", static.Path("kozmic.css")} {
		id := fmt.Sprintf("quiet-%d", i)
		if res, _ := getWithID(t, s, path, id); res.StatusCode != 200 {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
		if line := requestLine(s.logs.String(), id); line != "" {
			t.Errorf("%s logged at info level: %q", path, line)
		}
	}
	getWithID(t, s, "/login", "loud")
	if requestLine(s.logs.String(), "loud") == "" {
		t.Errorf("GET /login was not logged:\n%s", s.logs)
	}

	debug := &syncbuf.Buffer{}
	s.Handler.log = slog.New(withRequestID{slog.NewTextHandler(debug, &slog.HandlerOptions{Level: slog.LevelDebug})})
	getWithID(t, s, "/healthz", "debug-ok")
	if line := requestLine(debug.String(), "debug-ok"); !strings.Contains(line, "level=DEBUG") || !strings.Contains(line, " status=200 ") {
		t.Errorf("at debug level, /healthz logs %q", line)
	}
	s.db.Close()
	if res, _ := getWithID(t, s, "/healthz", "unhealthy"); res.StatusCode != 503 {
		t.Fatalf("database closed: healthz %d", res.StatusCode)
	}
	if line := requestLine(debug.String(), "unhealthy"); !strings.Contains(line, "level=INFO") || !strings.Contains(line, " status=503 ") {
		t.Errorf("a failing /healthz logs %q", line)
	}
}

// The live log stream flushes through the request log's writer: what is
// stored arrives while the job still runs (scs's writer would swallow a
// failed flush, so only a stream that stays open shows it). Its request is
// logged when the client leaves.
func TestLogStreamThroughRequestLog(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	build, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", "one\ntwo\n", store.JobRunning)
	res, cancel := openStream(t, b, fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", p.ID, build.Number, job.ID), "stream-1")
	if res.StatusCode != 200 || res.Header.Get("X-Request-ID") != "stream-1" {
		t.Fatalf("stream: %d, X-Request-ID %q", res.StatusCode, res.Header.Get("X-Request-ID"))
	}
	sc := bufio.NewScanner(res.Body)
	for !strings.HasPrefix(sc.Text(), "data: ") || !strings.Contains(sc.Text(), "two") {
		if !sc.Scan() {
			t.Fatalf("the stored log did not arrive while the job runs: %v", sc.Err())
		}
	}
	cancel() // the client leaves; the handler ends
	for deadline := time.Now().Add(30 * time.Second); requestLine(s.logs.String(), "stream-1") == ""; {
		if time.Now().After(deadline) {
			t.Fatalf("the stream's request was never logged:\n%s", s.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if line := requestLine(s.logs.String(), "stream-1"); !strings.Contains(line, " status=200 ") || strings.Contains(line, " bytes=0 ") {
		t.Errorf("the stream's request line %q", line)
	}
}
