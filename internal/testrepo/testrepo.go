// Package testrepo makes real git repositories in a test's temporary
// directory, for tests of what fetches and builds them.
package testrepo

import (
	"fmt"
	"io"
	"net"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Repo is a git repository with a working tree in a temporary directory.
type Repo struct {
	t    testing.TB
	Path string
}

// Init makes a repository with no commit; its branch is main.
func Init(t testing.TB) *Repo {
	t.Helper()
	r := &Repo{t: t, Path: t.TempDir()}
	r.Git("init", "-q", "-b", "main")
	return r
}

// New makes a repository whose branch main has one commit of files (names
// relative to the repository, contents).
func New(t testing.TB, files map[string]string) *Repo {
	t.Helper()
	r := Init(t)
	r.Commit(files, nil)
	return r
}

// Git runs git in the repository as a fixed author, ignoring the user's
// global configuration, and returns its trimmed output; failing fails the test.
func (r *Repo) Git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.Path}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes files, removes the paths in remove, commits everything and
// returns the new commit's SHA.
func (r *Repo) Commit(files map[string]string, remove []string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Path, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	for _, name := range remove {
		r.Git("rm", "-q", "-r", name)
	}
	r.Git("add", "-A")
	// The time in the message keeps two commits of the same tree apart.
	r.Git("commit", "-q", "--allow-empty", "-m", fmt.Sprintf("commit %d", time.Now().UnixNano()))
	return r.Git("rev-parse", "HEAD")
}

// Silent is a git server that never answers: it listens on 127.0.0.1,
// accepts connections and sends each to Accepted, and reads and writes
// nothing. The listener and connections are closed at the end of the test.
type Silent struct {
	Addr     string        // its host:port, for a server other than git's (a registry, say)
	URL      string        // an http:// git URL on it
	Accepted chan net.Conn // buffered for 64 connections
}

// NewSilent starts a Silent server.
func NewSilent(t testing.TB) *Silent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Silent{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String() + "/acme/app.git", Accepted: make(chan net.Conn, 64)}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			s.Accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return s
}

// ServeHTTP serves the repositories under root over git's smart HTTP
// protocol, with git http-backend, on 127.0.0.1 until the end of the test,
// and returns the server's URL: the repository root/team/app.git is
// URL/team/app.git.
func ServeHTTP(t testing.TB, root string) string {
	t.Helper()
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_GLOBAL=/dev/null"},
		Stderr: io.Discard}) // its complaints reach the client
	t.Cleanup(srv.Close)
	return srv.URL
}
