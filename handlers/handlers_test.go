package handlers

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"kozmic/gh"
	"kozmic/internal/fakegithub"
	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/runner"
	"kozmic/static"
	"kozmic/store"
)

// wakeCounter is the real runner, not started (so no Docker is needed),
// counting its wake-ups.
type wakeCounter struct {
	*runner.Runner
	n atomic.Int64
}

func (c *wakeCounter) Enqueued() { c.n.Add(1); c.Runner.Enqueued() }

// testServer is a Handler over a real database in a temporary directory.
type testServer struct {
	*Handler
	db     *store.DB
	jobs   *wakeCounter
	logs   *syncbuf.Buffer
	github *fakegithub.Server
	deps   Deps // what Handler was made of
}

func newTestServer(t testing.TB) *testServer { return newTestServerWith(t, true) }

// testOrg is the GitHub organization whose members a test server with
// GitHub sign-in admits.
const testOrg = "github"

// newLocalTestServer is a testServer without GitHub login: local accounts.
func newLocalTestServer(t testing.TB) *testServer { return newTestServerWith(t, false) }

// newTestServerWith is a testServer with or without GitHub login, its Deps
// changed by opts.
func newTestServerWith(t testing.TB, withGitHub bool, opts ...func(*Deps)) *testServer {
	t.Helper()
	db := testdb.Open(t)
	s := &testServer{db: db, logs: &syncbuf.Buffer{}, github: fakegithub.New(t)}
	log := slog.New(slog.NewTextHandler(s.logs, nil))
	s.jobs = &wakeCounter{Runner: runner.New(runner.Config{}, db, nil, nil, log)}
	base, _ := url.Parse("http://kozmic.test")
	gc := gh.Config{WebURL: s.github.WebURL(), BaseURL: base}
	if withGitHub {
		gc.ClientID, gc.ClientSecret = "client-id", "client-secret"
		// Every account the fake signs in is an active member of the
		// organization the server admits.
		gc.SignIn = gh.SignIn{Orgs: []string{testOrg}}
		s.github.Route("GET /api/v3/user/memberships/orgs/"+testOrg, 200, "org_membership.json")
	}
	g := gh.New(gc)
	d := Deps{DB: db, Jobs: s.jobs, GitHub: g, Sessions: db.Sessions(), BaseURL: base, GitHubURL: s.github.WebURL(), Log: log}
	for _, o := range opts {
		o(&d)
	}
	s.deps = d
	s.Handler = New(d)
	return s
}

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestHealthz(t *testing.T) {
	s := newTestServer(t)
	res, body := get(t, s, "/healthz")
	if hl := healthOf(t, body); res.StatusCode != 200 || hl.without() != (healthParts{Status: "ok", Database: "ok", Docker: "ok", Writes: "ok", Disk: "ok"}) ||
		hl.DiskFree == nil || *hl.DiskFree == 0 {
		t.Errorf("healthy: %d %s", res.StatusCode, body)
	}
	s.db.Close()
	res, body = get(t, s, "/healthz")
	if hl := healthOf(t, body); res.StatusCode != 503 || hl.without() != (healthParts{Status: "unavailable", Database: "unavailable", Docker: "ok", Writes: "ok", Disk: "ok"}) {
		t.Errorf("database down: %d %s", res.StatusCode, body)
	}
	if strings.Contains(body, "closed") {
		t.Error("healthz shows the internal error")
	}
	if !strings.Contains(s.logs.String(), "database is closed") {
		t.Error("the database error was not logged")
	}
}

func TestNotFoundPage(t *testing.T) {
	h := newTestServer(t)
	res, body := get(t, h, "/projects/<script>alert(1)</script>")
	if res.StatusCode != 404 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("status %d, type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Find("h1").Text(); got != "Page not found" {
		t.Errorf("h1 = %q", got)
	}
	if got := doc.Find("title").Text(); got != "Page not found · Kozmic" {
		t.Errorf("title = %q", got)
	}
	if href, _ := doc.Find(`link[rel="stylesheet"]`).Attr("href"); href != static.Path("kozmic.css") {
		t.Errorf("stylesheet = %q, want %q", href, static.Path("kozmic.css"))
	}
	if strings.Contains(body, "<script>") {
		t.Error("the page echoes markup from the URL")
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for _, js := range []string{"htmx.min.js", "htmx-ext-sse.min.js"} {
		if src, ok := doc.Find(`script[src="` + static.Path(js) + `"]`).Attr("src"); !ok || src == "" {
			t.Errorf("the layout does not load %s", js)
		}
	}
}

func TestFailMapsErrorsWithoutShowingThem(t *testing.T) {
	tests := []struct {
		err    error
		status int
		logged bool
	}{
		{store.ErrNotFound, 404, false},
		{errors.Join(errors.New("get build: sql: no rows"), store.ErrNotFound), 404, false},
		{store.ErrConflict, 409, false},
		{store.ErrInvalid, 422, false},
		{errors.New("insert build: database is locked (internal detail)"), 500, true},
	}
	for _, tt := range tests {
		h := newTestServer(t)
		rec := httptest.NewRecorder()
		h.fail(rec, httptest.NewRequest(http.MethodPost, "/x", nil), tt.err)
		body := rec.Body.String()
		if rec.Code != tt.status {
			t.Errorf("%v: status %d, want %d", tt.err, rec.Code, tt.status)
		}
		if strings.Contains(body, "internal detail") || strings.Contains(body, "sql:") {
			t.Errorf("%v: the page shows the error text", tt.err)
		}
		if got := strings.Contains(h.logs.String(), "request failed"); got != tt.logged {
			t.Errorf("%v: logged = %v, want %v", tt.err, got, tt.logged)
		}
	}
}

func TestPanicBecomes500Page(t *testing.T) {
	h := newTestServer(t)
	h.mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("secret panic detail") })
	res, body := get(t, h, "/boom")
	if res.StatusCode != 500 || !strings.Contains(body, "Something went wrong") || strings.Contains(body, "secret panic detail") {
		t.Errorf("panic: %d %q", res.StatusCode, body)
	}
	if !strings.Contains(h.logs.String(), "secret panic detail") {
		t.Error("the panic was not logged")
	}
}

func TestStaticFiles(t *testing.T) {
	h := newTestServer(t)
	res, body := get(t, h, static.Path("kozmic.css"))
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, "--success") {
		t.Errorf("versioned css: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("versioned Cache-Control = %q", cc)
	}
	res, _ = get(t, h, "/static/kozmic.css?v=old")
	if cc := res.Header.Get("Cache-Control"); res.StatusCode != 200 || cc != "no-cache" {
		t.Errorf("stale version: %d, Cache-Control %q", res.StatusCode, cc)
	}
	res, body = get(t, h, static.Path("htmx.min.js"))
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Type"), "javascript") || !strings.Contains(body, "htmx") {
		t.Errorf("htmx: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/static/nope.css", "/static/..%2fmain.go", "/static/"} {
		if res, _ := get(t, h, p); res.StatusCode != 404 {
			t.Errorf("%s: status %d, want 404", p, res.StatusCode)
		}
	}
}
