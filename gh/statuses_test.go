package gh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"kozmic/internal/fakegithub"
	"kozmic/internal/testdb"
	"kozmic/store"
)

type statusFixture struct {
	db      *store.DB
	fake    *fakegithub.Server
	st      *Statuses
	project store.Project
	jobs    []store.Job
	key     string // the fake's statuses route for the build's commit
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	ctx := context.Background()
	db := testdb.Open(t)
	owner, err := db.UpsertGitHubUser(ctx, githubUserForTest())
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"lint", "test"} {
		if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	const sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
	_, jobs, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: sha})
	if err != nil {
		t.Fatal(err)
	}
	fake := fakegithub.New(t)
	key := "POST /api/v3/repos/octocat/Hello-World/statuses/" + sha
	fake.Route(key, 201, "create_status.json")
	base, _ := url.Parse("https://kozmic.example.com")
	st := NewStatuses(New(Config{WebURL: fake.WebURL(), BaseURL: base}), db, slog.New(slog.DiscardHandler))
	st.Backoff = 50 * time.Millisecond
	return &statusFixture{db: db, fake: fake, st: st, project: p, jobs: jobs, key: key}
}

func githubUserForTest() store.GitHubUser {
	return store.GitHubUser{ID: 583231, Login: "octocat", Name: "The Octocat", AccessToken: "gho_statuses_token"}
}

// move changes a job's status and tells the notifier, as the runner does.
func (f *statusFixture) move(t *testing.T, i int, s store.JobStatus, errMsg string) {
	t.Helper()
	ch, err := f.db.UpdateJob(context.Background(), f.jobs[i].ID, store.JobUpdate{Status: s, Error: errMsg})
	if err != nil {
		t.Fatal(err)
	}
	f.st.JobChanged(context.Background(), ch)
}

// buildStarted starts job 1 without telling Statuses, so that the build is
// pending already and a test's move of job 0 makes only the job's status.
func (f *statusFixture) buildStarted(t *testing.T) {
	t.Helper()
	if _, err := f.db.UpdateJob(context.Background(), f.jobs[1].ID, store.JobUpdate{Status: store.JobRunning}); err != nil {
		t.Fatal(err)
	}
}

// posted returns the statuses posted so far by context, the last of each.
func (f *statusFixture) posted(t *testing.T) map[string]postedStatus {
	t.Helper()
	m := map[string]postedStatus{}
	for _, c := range f.fake.CallsTo(f.key) {
		p := decode(t, c)
		m[p.Context] = p
	}
	return m
}

type postedStatus struct {
	State, Description, Context string
	TargetURL                   string `json:"target_url"`
}

func decode(t *testing.T, c fakegithub.Call) postedStatus {
	t.Helper()
	var p postedStatus
	if err := json.Unmarshal(c.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStatusesFollowJobs(t *testing.T) {
	f := newStatusFixture(t)
	ctx := context.Background()
	f.move(t, 0, store.JobRunning, "")
	f.move(t, 0, store.JobSuccess, "") // replaces the unposted "running"
	f.move(t, 1, store.JobRunning, "")
	f.st.postDue(ctx)
	calls := f.fake.CallsTo(f.key)
	if len(calls) != 3 {
		t.Fatalf("posted %d statuses, want 3 (one per context)", len(calls))
	}
	posted := f.posted(t)
	lint, test := posted["kozmic/lint"], posted["kozmic/test"]
	if lint.State != "success" || lint.Context != "kozmic/lint" || lint.Description != "Build #1 passed in 0s" ||
		lint.TargetURL != fmt.Sprintf("https://kozmic.example.com/projects/%d/builds/1/jobs/%d", f.project.ID, f.jobs[0].ID) {
		t.Errorf("lint status = %+v", lint)
	}
	if test.State != "pending" || test.Context != "kozmic/test" || test.Description != "Build #1 is running" {
		t.Errorf("test status = %+v", test)
	}
	if calls[0].Auth != "Bearer gho_statuses_token" {
		t.Errorf("Authorization = %q", calls[0].Auth)
	}
	f.move(t, 1, store.JobError, strings.Repeat("the engine broke ", 20))
	f.st.postDue(ctx)
	if last := f.posted(t)["kozmic/test"]; last.State != "error" || len([]rune(last.Description)) != 140 ||
		!strings.HasPrefix(last.Description, "Build #1 errored: the engine broke") {
		t.Errorf("error status = %+v (%d characters)", last, len([]rune(last.Description)))
	}
	if due, _ := f.db.DueStatuses(ctx, time.Now().Add(time.Hour), 10); len(due) != 0 {
		t.Errorf("outbox not empty after posting: %+v", due)
	}
}

func TestStatusRetriesAndRateLimits(t *testing.T) {
	f := newStatusFixture(t)
	f.buildStarted(t)
	reset := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
	f.fake.Script(f.key,
		fakegithub.Reply{Status: 500, Body: `{"message":"Server Error"}`},
		fakegithub.Reply{Status: 403, Headers: map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
			"X-RateLimit-Reset": fmt.Sprint(reset.Unix())}, Body: `{"message":"API rate limit exceeded for user ID 1."}`},
		fakegithub.Reply{Status: 403, Headers: map[string]string{"Retry-After": "1"}, Body: `{"message":"You have exceeded a secondary rate limit.",
			"documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#secondary-rate-limits"}`},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go f.st.Run(ctx)
	f.move(t, 0, store.JobRunning, "")
	// Done when nothing waits in the outbox, not at the fourth call: the
	// fake records a call before it answers, so the fourth can be seen
	// before Run has recorded its success.
	for {
		pending, failed, err := f.db.StatusCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			if failed != 0 {
				t.Errorf("outbox: %d failed; want the status posted", failed)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("outbox: %d pending after %d calls; want it posted", pending, len(f.fake.CallsTo(f.key)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	calls := f.fake.CallsTo(f.key)
	if len(calls) != 4 {
		t.Fatalf("calls = %d, want 4 (500, rate limit, secondary limit, success)", len(calls))
	}
	// The outbox keeps times to the millisecond: a retry may come due up to 1 ms early.
	if gap := calls[1].At.Sub(calls[0].At); gap < f.st.Backoff-time.Millisecond {
		t.Errorf("retry after a 500 came %s later, before the backoff", gap)
	}
	if calls[2].At.Before(reset) {
		t.Errorf("retry after the rate limit at %s, before its reset at %s", calls[2].At.Format(time.StampMilli), reset.Format(time.StampMilli))
	}
	if gap := calls[3].At.Sub(calls[2].At); gap < time.Second-time.Millisecond {
		t.Errorf("retry after Retry-After: 1 came %s later", gap)
	}
}

func TestStatusGivesUpOn422(t *testing.T) {
	f := newStatusFixture(t)
	f.buildStarted(t)
	ctx := context.Background()
	f.fake.Script(f.key, fakegithub.Reply{Status: 422, Body: `{"message":"Validation Failed","errors":[{"resource":"Status","code":"custom","message":"This SHA and context has reached the maximum number of statuses."}]}`})
	f.move(t, 0, store.JobRunning, "")
	f.st.postDue(ctx)
	f.st.postDue(ctx)
	if n := len(f.fake.CallsTo(f.key)); n != 1 {
		t.Errorf("calls = %d, want 1: no retry after a 422", n)
	}
	if pending, failed, _ := f.db.StatusCounts(ctx); pending != 0 || failed != 1 {
		t.Errorf("outbox: %d pending, %d failed; want the status kept as failed", pending, failed)
	}
}

func TestStatusesSurviveARestart(t *testing.T) {
	f := newStatusFixture(t)
	f.buildStarted(t)
	f.move(t, 0, store.JobRunning, "") // enqueued, never posted: the server stops here
	if n := len(f.fake.CallsTo(f.key)); n != 0 {
		t.Fatalf("posted before Run: %d", n)
	}
	base, _ := url.Parse("https://kozmic.example.com")
	again := NewStatuses(New(Config{WebURL: f.fake.WebURL(), BaseURL: base}), f.db, slog.New(slog.DiscardHandler))
	again.postDue(context.Background())
	if calls := f.fake.CallsTo(f.key); len(calls) != 1 || decode(t, calls[0]).State != "pending" {
		t.Errorf("after the restart: %d calls", len(calls))
	}
}

func TestBuildPostsAggregateKozmicStatus(t *testing.T) {
	f := newStatusFixture(t)
	ctx := context.Background()
	buildURL := fmt.Sprintf("https://kozmic.example.com/projects/%d/builds/1", f.project.ID)
	check := func(when, state, description string) {
		t.Helper()
		f.st.postDue(ctx)
		got, ok := f.posted(t)[AggregateContext]
		if !ok || got.State != state || got.Description != description || got.TargetURL != buildURL {
			t.Errorf("%s: the kozmic status is %+v (posted: %v), want %s, %q", when, got, ok, state, description)
		}
	}
	f.move(t, 0, store.JobRunning, "")
	check("one job running", "pending", "Build #1 is running")
	f.move(t, 0, store.JobSuccess, "")
	check("one job passed, one enqueued", "pending", "Build #1 is running")
	f.move(t, 1, store.JobRunning, "")
	f.move(t, 1, store.JobFailure, "")
	check("one job failed", "failure", "Build #1 failed in 0s")

	// A restarted job makes the build pending again, then its result is the build's.
	ch, err := f.db.RestartJob(ctx, f.jobs[1].ID, store.User{})
	if err != nil {
		t.Fatal(err)
	}
	f.st.JobChanged(ctx, ch)
	check("a job restarted", "pending", "Build #1 is running") // its other job has run
	again := ch.Job.ID
	for _, s := range []store.JobStatus{store.JobRunning, store.JobError} {
		ch, err := f.db.UpdateJob(ctx, again, store.JobUpdate{Status: s, Error: "no such image"})
		if err != nil {
			t.Fatal(err)
		}
		f.st.JobChanged(ctx, ch)
	}
	check("the restarted job errored", "error", "Build #1 errored")

	// Only a move of the build posts its status: GitHub keeps at most 1000 per commit.
	contexts := map[string]int{}
	for _, c := range f.fake.CallsTo(f.key) {
		contexts[decode(t, c).Context]++
	}
	if contexts[AggregateContext] != 4 {
		t.Errorf("posted the kozmic status %d times, want 4 (pending, failure, pending, error): %v", contexts[AggregateContext], contexts)
	}
}

// logTo makes the fixture's Statuses log as text into a buffer it returns.
func (f *statusFixture) logTo() *bytes.Buffer {
	var buf bytes.Buffer
	f.st.log = slog.New(slog.NewTextHandler(&buf, nil))
	return &buf
}

func TestStatusGivesUpAfterMaxAttempts(t *testing.T) {
	f := newStatusFixture(t)
	f.buildStarted(t)
	ctx := context.Background()
	logs := f.logTo()
	f.st.Backoff, f.st.MaxAttempts = 0, 3 // each retry is due at once
	serverError := fakegithub.Reply{Status: 502, Body: `{"message":"Server Error"}`}
	f.fake.Script(f.key, serverError, serverError, serverError) // a fourth attempt would succeed
	f.move(t, 0, store.JobRunning, "")
	f.st.postDue(ctx)
	f.st.postDue(ctx)
	if n := len(f.fake.CallsTo(f.key)); n != 3 {
		t.Errorf("calls = %d, want MaxAttempts (3)", n)
	}
	if pending, failed, err := f.db.StatusCounts(ctx); err != nil || pending != 0 || failed != 1 {
		t.Errorf("outbox: %d pending, %d failed, %v; want the status kept as failed", pending, failed, err)
	}
	if got := logs.String(); strings.Count(got, "commit status: will retry") != 2 ||
		!strings.Contains(got, `msg="commit status: giving up" repo=octocat/Hello-World`) || !strings.Contains(got, "attempts=3") {
		t.Errorf("log:\n%s", got)
	}
}

func TestStatusGivesUpWithoutAToken(t *testing.T) {
	f := newStatusFixture(t)
	f.buildStarted(t)
	ctx := context.Background()
	logs := f.logTo()
	// The owner signs in again with no token to show (as after revoking it).
	gu := githubUserForTest()
	gu.AccessToken = ""
	if _, err := f.db.UpsertGitHubUser(ctx, gu); err != nil {
		t.Fatal(err)
	}
	f.move(t, 0, store.JobRunning, "")
	f.st.postDue(ctx)
	if n := len(f.fake.CallsTo(f.key)); n != 0 {
		t.Errorf("calls = %d, want none without a token", n)
	}
	if pending, failed, err := f.db.StatusCounts(ctx); err != nil || pending != 0 || failed != 1 {
		t.Errorf("outbox: %d pending, %d failed, %v; want the status given up at once", pending, failed, err)
	}
	if got := logs.String(); !strings.Contains(got, "commit status: giving up") || !strings.Contains(got, "attempts=1") ||
		!strings.Contains(got, errNoToken.Error()) {
		t.Errorf("log:\n%s", got)
	}
}

// TestStatusStateAndDescription pins each job status's commit status: a
// state GitHub accepts, and its description.
func TestStatusStateAndDescription(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		status             store.JobStatus
		state, description string
	}{
		{store.JobEnqueued, "pending", "Build #12 is waiting for a worker"},
		{store.JobRunning, "pending", "Build #12 is running"},
		{store.JobSuccess, "success", "Build #12 passed in 1m03s"},
		{store.JobFailure, "failure", "Build #12 failed in 1m03s"},
		{store.JobError, "error", "Build #12 errored: no such image"},
	} {
		j := store.Job{Status: tt.status, StartedAt: start, FinishedAt: start.Add(63 * time.Second), Error: "no such image"}
		if got := statusState(tt.status); got != tt.state {
			t.Errorf("statusState(%s) = %q, want %q", tt.status, got, tt.state)
		}
		if got := StatusDescription(12, j); got != tt.description {
			t.Errorf("StatusDescription of %s = %q, want %q", tt.status, got, tt.description)
		}
	}
}
