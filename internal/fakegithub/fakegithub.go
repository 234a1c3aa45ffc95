// Package fakegithub is an in-test GitHub: an HTTP server on 127.0.0.1 that
// answers the API (at /api/v3/, as GitHub Enterprise serves it) and the OAuth
// endpoints from scripts and from GitHub's documented example responses in
// testdata/, and records every call, so tests can drive the real go-github
// and oauth2 clients against it.
package fakegithub

import (
	"embed"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

//go:embed testdata
var testdata embed.FS

// Server is a fake GitHub.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	calls   []Call
	scripts map[string][]Reply // by "METHOD /path"
	routes  map[string]Reply   // the answer once the script is used up
}

// Call is a request the server received.
type Call struct {
	Method, Path, Query, Auth string
	Body                      []byte
	At                        time.Time
}

// Reply is a scripted answer.
type Reply struct {
	Status  int
	Headers map[string]string
	Body    string
}

// New starts a server that lives until the test ends. It answers the OAuth
// authorization (agreeing at once), the code exchange, and the authenticated
// user's profile and e-mail addresses from testdata/ from the start.
func New(t testing.TB) *Server {
	f := &Server{t: t, scripts: map[string][]Reply{}, routes: map[string]Reply{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.Route("POST /login/oauth/access_token", 200, "access_token.json")
	f.Route("GET /api/v3/user", 200, "user.json")
	f.Route("GET /api/v3/user/emails", 200, "user_emails.json")
	return f
}

// WebURL is the server's address as KOZMIC_GITHUB_URL would name it.
func (f *Server) WebURL() *url.URL {
	u, _ := url.Parse(f.srv.URL)
	return u
}

// Route answers key ("POST /api/v3/…") with status and a file of testdata/.
func (f *Server) Route(key string, status int, file string) {
	body := f.Fixture(file)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[key] = Reply{Status: status, Body: body}
}

// Fixture returns the body of a file of testdata/, for scripted replies.
func (f *Server) Fixture(file string) string {
	b, err := testdata.ReadFile("testdata/" + file)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// Script queues replies for key, given before the route's own answer.
func (f *Server) Script(key string, replies ...Reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[key] = append(f.scripts[key], replies...)
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/login/oauth/authorize" {
		// The person agrees at once: back to the app with a code and its state.
		q := r.URL.Query()
		back, err := url.Parse(q.Get("redirect_uri"))
		if err != nil {
			http.Error(w, "bad redirect_uri", http.StatusBadRequest)
			return
		}
		v := back.Query()
		v.Set("code", "code-from-the-fake")
		v.Set("state", q.Get("state"))
		back.RawQuery = v.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.calls = append(f.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Body: body, At: time.Now()})
	rep, scripted := Reply{}, false
	if q := f.scripts[key]; len(q) > 0 {
		rep, f.scripts[key], scripted = q[0], q[1:], true
	}
	if !scripted {
		var ok bool
		if rep, ok = f.routes[key]; !ok {
			rep = Reply{Status: http.StatusNotFound, Body: `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`}
		}
	}
	f.mu.Unlock()
	for k, v := range rep.Headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rep.Status)
	io.WriteString(w, rep.Body)
}

// CallsTo returns the calls to key ("METHOD /path"), oldest first.
func (f *Server) CallsTo(key string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if c.Method+" "+c.Path == key {
			out = append(out, c)
		}
	}
	return out
}
