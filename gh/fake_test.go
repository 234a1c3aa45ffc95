package gh

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeGitHub is an in-test GitHub API (at /api/v3/, as GitHub Enterprise
// serves it) that records the calls it gets and answers each route from a
// script, then with the documented example response from testdata/.
type fakeGitHub struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	calls   []apiCall
	scripts map[string][]reply // by "METHOD /path"
	routes  map[string]reply   // the answer once the script is used up
}

type apiCall struct {
	Method, Path, Auth string
	Body               []byte
	At                 time.Time
}

type reply struct {
	status  int
	headers map[string]string
	body    string
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	f := &fakeGitHub{t: t, scripts: map[string][]reply{}, routes: map[string]reply{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// webURL is the fake's address as KOZMIC_GITHUB_URL would name it.
func (f *fakeGitHub) webURL() *url.URL {
	u, _ := url.Parse(f.srv.URL)
	return u
}

// route answers key ("POST /api/v3/…") with status and a testdata file.
func (f *fakeGitHub) route(key string, status int, file string) {
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[key] = reply{status: status, body: string(b)}
}

// script queues replies for key, used before the route's own answer.
func (f *fakeGitHub) script(key string, replies ...reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[key] = append(f.scripts[key], replies...)
}

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.calls = append(f.calls, apiCall{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: body, At: time.Now()})
	rep, scripted := reply{}, false
	if q := f.scripts[key]; len(q) > 0 {
		rep, f.scripts[key], scripted = q[0], q[1:], true
	}
	if !scripted {
		var ok bool
		if rep, ok = f.routes[key]; !ok {
			rep = reply{status: http.StatusNotFound, body: `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`}
		}
	}
	f.mu.Unlock()
	for k, v := range rep.headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (f *fakeGitHub) callsTo(key string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if c.Method+" "+c.Path == key {
			out = append(out, c)
		}
	}
	return out
}
