package handlers

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"kozmic/internal/paths"
	"kozmic/internal/tmpfs"
	"kozmic/store"
)

// On a full disk a signed-in person still sees pages: the commit that only
// moves their session's idle expiry on is refused and let go, and they stay
// signed in. Signing in, which must store a new session, still fails
// rather than pretending to work.
func TestSignedInPagesShowWhenTheSessionCannotBeRefreshed(t *testing.T) {
	s, dir := newTmpfsServer(t, 8<<20, 0)
	_, ann := signInLocal(t, s, "ann")
	localUser(t, s, "bob", "bob's password")
	bob := newBrowser(t, s)
	// Long enough after ann signed in that her next page moves her session on.
	setClock(s, time.Now().Add(2*sessionTouchEvery))
	unfill := tmpfs.Fill(t, dir)

	doc, _ := fetchPage(t, ann, "/account", 200)
	checkSignedIn(t, "account on a full disk", doc, "ann")
	if !strings.Contains(s.logs.String(), "its idle expiry could not be moved on") {
		t.Errorf("no session was touched on the full disk; log:\n%s", s.logs.String())
	}
	if res, _ := bob.do("POST", "/login", url.Values{"username": {"bob"}, "password": {"bob's password"}}); res.StatusCode != 500 || signedIn(bob) {
		t.Errorf("sign-in on a full disk: %d, signed in %v; want 500 and not signed in", res.StatusCode, signedIn(bob))
	}

	unfill()
	doc, _ = fetchPage(t, ann, "/account", 200)
	checkSignedIn(t, "account with space again", doc, "ann")
}

// pageView is a GET a signed-in person's browser makes: a page, or an
// htmx poll of part of one.
type pageView struct {
	path string
	poll bool
}

// viewed is a test server with a project whose one build has a finished
// job with a log, a browser signed in as the project's owner, and every
// view that browser makes while its user watches them: the dashboard, the
// project, its settings, the build, the job, its log (page, stream and
// text), and the polls.
func viewed(tb testing.TB) (*testServer, *browser, []pageView) {
	tb.Helper()
	s := newTestServer(tb)
	br := newBrowser(tb, s)
	if res := br.signIn("/"); res.StatusCode != http.StatusSeeOther {
		tb.Fatalf("sign in: %d", res.StatusCode)
	}
	ctx := context.Background()
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", WebhookSecret: "s"})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
		tb.Fatal(err)
	}
	b, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: strings.Repeat("a", 40)})
	if err != nil {
		tb.Fatal(err)
	}
	j := jobs[0]
	if _, err := s.db.AppendLog(ctx, j.ID, []byte("\x1b[32mok\x1b[0m\n"), false); err != nil {
		tb.Fatal(err)
	}
	for _, st := range []store.JobStatus{store.JobRunning, store.JobSuccess} {
		if _, err := s.db.UpdateJob(ctx, j.ID, store.JobUpdate{Status: st}); err != nil {
			tb.Fatal(err)
		}
	}
	job := paths.Job(p.ID, b.Number, j.ID)
	return s, br, []pageView{
		{"/", false}, {"/", true},
		{paths.Project(p.ID), false}, {paths.Project(p.ID) + "/settings", false}, {"/account", false},
		{paths.Build(p.ID, b.Number), false}, {paths.Build(p.ID, b.Number), true},
		{job, false}, {job + "/log", false}, {job + "/log/stream", false}, {job + "/log.txt", false},
	}
}

// view makes v as br and says what the answer's status and Set-Cookie
// headers were.
func view(br *browser, v pageView) (status int, setCookie []string) {
	if v.poll {
		br.header.Set("HX-Request", "true")
		defer br.header.Del("HX-Request")
	}
	res, _ := br.do("GET", v.path, nil)
	return res.StatusCode, res.Header.Values("Set-Cookie")
}

// A signed-in person looking at pages, and their browser polling, write
// nothing to the database and are sent no cookie: only a session unused
// for a minute is stored again.
func TestSignedInPageViewWritesNothing(t *testing.T) {
	s, br, views := viewed(t)
	before := s.db.WriteTransactions()
	for range 3 {
		for _, v := range views {
			if status, cookies := view(br, v); status != 200 || len(cookies) != 0 {
				t.Errorf("GET %s (poll %v): status %d, Set-Cookie %q; want 200 and none", v.path, v.poll, status, cookies)
			}
		}
	}
	if n := s.db.WriteTransactions() - before; n != 0 {
		t.Errorf("%d views wrote %d transactions, want none", 3*len(views), n)
	}
}

// BenchmarkSignedInPageView makes every view of a signed-in person in turn
// (pages and htmx polls, see viewed) through the real handler, session and
// store, and reports the write transactions per view (writes/op).
func BenchmarkSignedInPageView(b *testing.B) {
	s, br, views := viewed(b)
	before := s.db.WriteTransactions()
	i := 0
	for b.Loop() {
		v := views[i%len(views)]
		i++
		if status, _ := view(br, v); status != 200 {
			b.Fatalf("GET %s: status %d", v.path, status)
		}
	}
	b.ReportMetric(float64(s.db.WriteTransactions()-before)/float64(i), "writes/op")
}

// setClock makes the sessions' clock of s read t, until it is set again.
func setClock(s *testServer, t time.Time) {
	at := new(atomic.Int64) // requests read it on the server's goroutines
	at.Store(t.UnixNano())
	s.now = func() time.Time { return time.Unix(0, at.Load()) }
}

// commitLog is the real session store, noting the expiry of every session
// it commits.
type commitLog struct {
	scs.CtxStore
	mu       sync.Mutex
	expiries []time.Time
}

func (c *commitLog) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	c.mu.Lock()
	c.expiries = append(c.expiries, expiry)
	c.mu.Unlock()
	return c.CtxStore.CommitCtx(ctx, token, b, expiry)
}

// since returns the expiries committed after the first n.
func (c *commitLog) since(n int) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.expiries[n:])
}

// A session in use has its idle expiry moved on (stored again, its cookie
// sent again) by the first request a minute or more after the last time,
// and by no request in between; however often it is used, it ends when
// its lifetime does.
func TestSessionInUseIsTouchedOnceAMinute(t *testing.T) {
	commits := &commitLog{}
	s := newTestServerWith(t, true, func(d *Deps) { commits.CtxStore = d.Sessions; d.Sessions = commits })
	br := newBrowser(t, s)
	signedInAt := time.Now()
	setClock(s, signedInAt)
	if res := br.signIn("/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", res.StatusCode)
	}
	if c := commits.since(0); len(c) == 0 || !c[len(c)-1].Equal(signedInAt.Add(sessionIdleTimeout)) {
		t.Fatalf("sign-in stored expiries %v, the last want %v", c, signedInAt.Add(sessionIdleTimeout))
	}
	for _, step := range []struct {
		after   time.Duration
		touched bool
	}{{0, false}, {sessionTouchEvery - time.Second, false}, {sessionTouchEvery, true}, {sessionTouchEvery + time.Second, false},
		{2*sessionTouchEvery + time.Second, true}} {
		at := signedInAt.Add(step.after)
		setClock(s, at)
		n, writes := len(commits.since(0)), s.db.WriteTransactions()
		status, cookies := view(br, pageView{path: "/account"})
		c, wrote := commits.since(n), s.db.WriteTransactions()-writes
		switch {
		case status != 200:
			t.Errorf("%s after sign-in: status %d", step.after, status)
		case !step.touched && (len(c) != 0 || wrote != 0 || len(cookies) != 0):
			t.Errorf("%s after sign-in: stored %v in %d writes, Set-Cookie %q; want nothing", step.after, c, wrote, cookies)
		case step.touched && (len(c) != 1 || !c[0].Equal(at.Add(sessionIdleTimeout)) || wrote != 1 || len(cookies) != 1):
			t.Errorf("%s after sign-in: stored %v in %d writes, Set-Cookie %q; want the expiry %v in 1 and a cookie",
				step.after, c, wrote, cookies, at.Add(sessionIdleTimeout))
		}
	}

	// The session's idle expiry is never moved past its end of life.
	setClock(s, signedInAt.Add(sessionLifetime+time.Hour))
	n := len(commits.since(0))
	view(br, pageView{path: "/account"})
	if c := commits.since(n); len(c) != 1 || c[0].After(time.Now().Add(sessionLifetime)) || c[0].Before(signedInAt.Add(sessionLifetime)) {
		t.Errorf("a touch after the session's lifetime stored %v, want its end of life, %v", c, signedInAt.Add(sessionLifetime))
	}
}

// A session unused for sessionIdleTimeout has ended: its browser is not
// signed in.
func TestSessionUnusedForItsIdleTimeoutEnds(t *testing.T) {
	s := newLocalTestServer(t)
	setClock(s, time.Now().Add(-sessionIdleTimeout-time.Minute))
	_, idle := signInLocal(t, s, "ann")
	setClock(s, time.Now().Add(-sessionIdleTimeout+time.Minute))
	_, recent := signInLocal(t, s, "bob")
	setClock(s, time.Now())
	if signedIn(idle) {
		t.Error("a session last used over a week ago is still signed in")
	}
	if !signedIn(recent) {
		t.Error("a session used just under a week ago is signed out")
	}
}
