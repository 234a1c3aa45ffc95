package handlers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kozmic/gh"
	"kozmic/internal/sharedfixtures"
	"kozmic/store"
)

const (
	testSecret  = "webhook-test-secret"
	otherSecret = "the-other-projects-secret"
)

// readFixture reads one of our webhook payloads, kept with the parser in
// gh/testdata/webhooks.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "gh", "testdata", "webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// webhookProjects makes the fixtures' repository (lanternfish/harbor-lights)
// with one hook, and another project with its own secret.
func webhookProjects(t testing.TB, db *store.DB) (store.Project, store.Project) {
	t.Helper()
	ctx := context.Background()
	u, err := db.CreateLocalUser(ctx, "owner", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: u.ID, Source: store.SourceGitHub, GitHubID: 551203987,
		FullName: "lanternfish/harbor-lights", HTTPSCloneURL: "https://github.com/lanternfish/harbor-lights.git",
		IsPublic: true, WebhookSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh\n"}); err != nil {
		t.Fatal(err)
	}
	other, err := db.CreateProject(ctx, store.NewProject{OwnerID: u.ID, Source: store.SourceGit, FullName: "other/repo",
		GitURL: "/srv/other.git", WebhookSecret: otherSecret})
	if err != nil {
		t.Fatal(err)
	}
	return p, other
}

// deliver posts a webhook as GitHub sends it; signature "" means sign with
// secret, "-" means send no signature header.
func deliver(t testing.TB, h http.Handler, projectID int64, event string, body []byte, secret, signature, delivery string) (int, map[string]any) {
	t.Helper()
	if signature == "" {
		signature = gh.Sign([]byte(secret), body)
	}
	header := http.Header{}
	header.Set("X-GitHub-Event", event)
	header.Set("X-GitHub-Delivery", delivery)
	if signature != "-" {
		header.Set("X-Hub-Signature-256", signature)
	}
	return post(t, h, projectID, header, body)
}

// post posts a webhook body with the given headers (and a JSON content
// type), and returns the status and the decoded answer.
func post(t testing.TB, h http.Handler, projectID int64, header http.Header, body []byte) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/webhooks/%d", projectID), bytes.NewReader(body))
	r.Header = header.Clone()
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

// forgeHeaders are the headers Gitea sends with a delivery, and Forgejo
// too when forge is "Forgejo" (it adds its own names to Gitea's): the
// event, delivery and bare-hex signature under X-<forge>-, X-Gitea- and
// X-Gogs- names, GitHub's event and delivery headers, and X-Hub-Signature
// (SHA-1) and X-Hub-Signature-256.
func forgeHeaders(forge, event, delivery string, secret, body []byte) http.Header {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	sig256 := hex.EncodeToString(mac.Sum(nil))
	mac1 := hmac.New(sha1.New, secret)
	mac1.Write(body)
	h := http.Header{}
	names := []string{"Gitea", "Gogs"}
	if forge != "Gitea" {
		names = append([]string{forge}, names...)
	}
	for _, n := range names {
		h.Set("X-"+n+"-Delivery", delivery)
		h.Set("X-"+n+"-Event", event)
		h.Set("X-"+n+"-Event-Type", event)
		h.Set("X-"+n+"-Signature", sig256)
	}
	h.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(mac1.Sum(nil)))
	h.Set("X-Hub-Signature-256", "sha256="+sig256)
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Event-Type", event)
	h.Set("User-Agent", "Go-http-client/1.1")
	return h
}

// withField returns the JSON object body with its top-level field name set to value.
func withField(t testing.TB, body []byte, name, value string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m[name] = value
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rows(t testing.TB, db *store.DB, projectID int64) (builds int) {
	t.Helper()
	bs, err := db.Builds(context.Background(), projectID, store.BuildQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return len(bs)
}

// Each of our payloads from GitHub, Gitea and Forgejo makes the build it
// asks for, or none, with the status it should.
func TestWebhookFixtures(t *testing.T) {
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db)
	ctx := context.Background()
	steps := []struct {
		file, event string
		status      int
		builds      int // builds of the project afterwards
	}{
		{"ping.json", "ping", 200, 0},
		{"push_tag-deleted.json", "push", 200, 0},
		{"pull_request_closed.json", "pull_request", 200, 0},
		{"pull_request_labeled.json", "pull_request", 200, 0},
		{"create.json", "create", 204, 0},
		{"delete.json", "delete", 204, 0},
		{"push_with-new-branch.json", "push", 201, 1},
		{"pull_request_opened.json", "pull_request", 201, 2},
		{"pull_request_synchronize.json", "pull_request", 201, 3}, // a new head commit
		{"pull_request_reopened.json", "pull_request", 200, 3},    // the synchronized head: the same build
	}
	for i, st := range steps {
		code, out := deliver(t, s, p.ID, st.event, readFixture(t, st.file), testSecret, "", fmt.Sprintf("fixture-%d", i))
		if code != st.status {
			t.Errorf("%s: status %d (%v), want %d", st.file, code, out, st.status)
		}
		if n := rows(t, s.db, p.ID); n != st.builds {
			t.Errorf("%s: %d builds, want %d", st.file, n, st.builds)
		}
	}
	// Gitea and Forgejo send their own header names beside GitHub's.
	const giteaDelivery, forgejoDelivery = "b5ded9dd-ae30-4c6d-9138-677055361401", "c7cb82e9-fa75-4db5-b5d5-67bd5a5cbfee"
	gitea, forgejo := readFixture(t, "gitea_push.json"), readFixture(t, "forgejo_push.json")
	if code, out := post(t, s, p.ID, forgeHeaders("Gitea", "push", giteaDelivery, []byte(testSecret), gitea), gitea); code != 201 {
		t.Errorf("Gitea push: %d %v", code, out)
	}
	if code, out := post(t, s, p.ID, forgeHeaders("Forgejo", "push", forgejoDelivery, []byte(testSecret), forgejo), forgejo); code != 201 {
		t.Errorf("Forgejo push: %d %v", code, out)
	}
	// Without GitHub's names their own are read: the same delivery is seen
	// again, a new one of the same commit finds its build.
	for _, tt := range []struct{ delivery, result string }{
		{forgejoDelivery, "delivery seen before"},
		{"0ab74395-bf2f-4fd0-8f00-da0f456147c9", "build exists"},
	} {
		h := http.Header{}
		h.Set("X-Forgejo-Event", "push")
		h.Set("X-Forgejo-Delivery", tt.delivery)
		h.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), forgejo))
		if code, out := post(t, s, p.ID, h, forgejo); code != 200 || out["result"] != tt.result {
			t.Errorf("Forgejo's own headers, delivery %s: %d %v, want 200 %q", tt.delivery, code, out, tt.result)
		}
	}

	want := []store.Build{
		{Ref: "refs/heads/tide-tables", SHA: "a87336bc6ee7a9a14638b8f4f962dd83205ac97b", Author: "Mira Okafor", Message: "Add the tide table parser"},
		{Ref: "refs/pull/7/head", SHA: "722ef5e131cdbb0b1fa8045cb3a1d6d84995e669", Author: "mira-okafor", Message: "Read tide tables from the harbour feed"},
		{Ref: "refs/pull/7/head", SHA: "6200772f204a430d1991bfcbd14acd0e9deb2cc5", Author: "mira-okafor", Message: "Read tide tables from the harbour feed"},
		{Ref: "refs/heads/main", SHA: "c00a59055d4606f062751937fba2f40957dd3622", Author: "Jonas Reiter",
			Message: "Pin the lamp schedule to UTC\n\nThe harbour office publishes local times.\n"},
		{Ref: "refs/heads/release/1.2", SHA: "befaa25de150d9ec658b0b12897bff38af11cca2", Author: "Ana Ilić", Message: "Dim the breakwater lamp at dawn\n"},
	}
	for i, w := range want {
		b, err := s.db.BuildByNumber(ctx, p.ID, i+1)
		if err != nil {
			t.Fatalf("build #%d: %v", i+1, err)
		}
		if b.Ref != w.Ref || b.SHA != w.SHA || b.Author != w.Author || b.Message != w.Message || b.FromFork {
			t.Errorf("build #%d = %+v\nwant %+v", i+1, b, w)
		}
		if jobs, err := s.db.Jobs(ctx, b.ID); err != nil || len(jobs) != 1 {
			t.Errorf("build #%d: %d jobs, %v; want 1 (reopening and redelivering add none)", i+1, len(jobs), err)
		}
	}
	if got := s.jobs.n.Load(); got != int64(len(want)) {
		t.Errorf("runner woken %d times, want once per new build (%d)", got, len(want))
	}
}

// Through the signed ingress, pull requests from Gitea and Forgejo (an AGit
// one without a fork, one from a fork) and a Gitea body delivered without
// Gitea's headers build without the project's secrets and outside its
// install cache, each AGit pull request in the scope of its own ref, while
// GitHub's pull request from a branch of the same repository stays trusted.
func TestGiteaPullRequestsRunWithoutTheProjectsSecrets(t *testing.T) {
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db)
	ctx := context.Background()
	if err := s.db.SetSecret(ctx, p.ID, store.Secret{Name: "DEPLOY_TOKEN", Value: "hunter2"}); err != nil {
		t.Fatal(err)
	}
	agit := readFixture(t, "gitea_pull_request_agit.json")
	var m map[string]any
	if err := json.Unmarshal(agit, &m); err != nil {
		t.Fatal(err)
	}
	pr := m["pull_request"].(map[string]any)
	pr["number"] = 5
	pr["head"].(map[string]any)["sha"] = strings.Repeat("5", 40)
	unheaded, _ := json.Marshal(m)
	signed := http.Header{}
	signed.Set("X-GitHub-Event", "pull_request")
	signed.Set("X-GitHub-Delivery", "unheaded")
	signed.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), unheaded))
	for _, tt := range []struct {
		name    string
		header  http.Header
		body    []byte
		scope   store.CacheScope
		secrets int
	}{
		{"Gitea, AGit", forgeHeaders("Gitea", "pull_request", "agit", []byte(testSecret), agit), agit, "fork-ref:refs/pull/4/head", 0},
		{"Forgejo, from a fork", forgeHeaders("Forgejo", "pull_request", "fork", []byte(testSecret), readFixture(t, "forgejo_pull_request_fork.json")),
			readFixture(t, "forgejo_pull_request_fork.json"), "fork-id:58", 0},
		{"Gitea's body under GitHub's headers alone", signed, unheaded, "fork-ref:refs/pull/5/head", 0},
		{"GitHub, same repository", func() http.Header {
			h := http.Header{}
			h.Set("X-GitHub-Event", "pull_request")
			h.Set("X-GitHub-Delivery", "github")
			h.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), readFixture(t, "pull_request_opened.json")))
			return h
		}(), readFixture(t, "pull_request_opened.json"), store.CacheScopeProject, 1},
	} {
		code, out := post(t, s, p.ID, tt.header, tt.body)
		if code != 201 {
			t.Errorf("%s: %d %v, want 201", tt.name, code, out)
			continue
		}
		b, err := s.db.BuildByNumber(ctx, p.ID, int(out["build"].(float64)))
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := s.db.Jobs(ctx, b.ID)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("%s: jobs %v, %v", tt.name, jobs, err)
		}
		run, err := s.db.JobRunOf(ctx, jobs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.CacheScope() != tt.scope || len(run.Secrets) != tt.secrets {
			t.Errorf("%s: build %s in scope %q with %d secrets, want scope %q and %d secrets", tt.name, b.Ref, b.CacheScope(),
				len(run.Secrets), tt.scope, tt.secrets)
		}
	}
}

// Forged, unsigned and misdirected webhooks are refused before anything is written.
// Refused webhooks answer their status and write no build: bad signatures, an
// unknown project, malformed or oversize bodies, and SHAs or refs git would
// not take as such.
func TestWebhookRefusals(t *testing.T) {
	s := newTestServer(t)
	p, other := webhookProjects(t, s.db)
	body := readFixture(t, "push_with-new-branch.json")
	sha1 := "sha1=" + strings.Repeat("ab", 20)
	tests := []struct {
		name      string
		project   int64
		event     string
		body      []byte
		secret    string
		signature string
		status    int
	}{
		{"missing signature", p.ID, "push", body, "", "-", 401},
		{"empty signature", p.ID, "push", body, "", "sha256=", 401},
		{"wrong signature", p.ID, "push", body, "", "sha256=" + strings.Repeat("0", 64), 401},
		{"SHA-1 only", p.ID, "push", body, "", sha1, 401},
		{"another project's secret", p.ID, "push", body, otherSecret, "", 401},
		{"signed for this project, sent to another", other.ID, "push", body, testSecret, "", 401},
		{"unknown project", 9999, "push", body, testSecret, "", 404},
		{"malformed JSON", p.ID, "push", []byte(`{"ref": "refs/heads/main", "after": `), testSecret, "", 400},
		{"oversize", p.ID, "push", bytes.Repeat([]byte(" "), maxWebhookBytes+1), testSecret, "", 413},
		{"SHA that reads as an option", p.ID, "push", withField(t, body, "after", "--orphan=pwn"), testSecret, "", 400},
		{"ref name a..b", p.ID, "push", withField(t, body, "ref", "refs/heads/a..b"), testSecret, "", 400},
		{"ref with a carriage return", p.ID, "push", withField(t, body, "ref", "refs/heads/a\rid: 1"), testSecret, "", 400},
		{"ref that is not under refs/", p.ID, "push", withField(t, body, "ref", "main"), testSecret, "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := deliver(t, s, tt.project, tt.event, tt.body, tt.secret, tt.signature, "refused-"+tt.name)
			if code != tt.status {
				t.Errorf("status %d, want %d", code, tt.status)
			}
			if msg, _ := out["error"].(string); msg == "" || strings.Contains(msg, "sql") {
				t.Errorf("error body = %v", out)
			}
		})
	}
	for _, id := range []int64{p.ID, other.ID} {
		if n := rows(t, s.db, id); n != 0 {
			t.Errorf("project %d: %d builds written by refused webhooks", id, n)
		}
	}
	if code, _ := deliver(t, s, p.ID, "push", body, testSecret, "", "after-refusals"); code != 201 {
		t.Fatalf("a good delivery after the refusals: %d", code)
	}
	bs, _ := s.db.Builds(context.Background(), p.ID, store.BuildQuery{})
	if len(bs) != 1 {
		t.Errorf("builds after one good delivery = %d", len(bs))
	}
}

func TestWebhookSameDeliveryInParallel(t *testing.T) {
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db)
	body := readFixture(t, "push_with-new-branch.json")
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for range 10 {
		wg.Go(func() {
			code, _ := deliver(t, s, p.ID, "push", body, testSecret, "", "the-same-delivery")
			codes <- code
		})
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		switch c {
		case 201:
			created++
		case 200:
		default:
			t.Errorf("status %d", c)
		}
	}
	if created != 1 || rows(t, s.db, p.ID) != 1 {
		t.Errorf("created %d, builds %d; want exactly one", created, rows(t, s.db, p.ID))
	}
	jobs, _ := s.db.Jobs(context.Background(), 1)
	if len(jobs) != 1 {
		t.Errorf("jobs = %d, want 1", len(jobs))
	}
}

// backupSize is the size of a backup of db: the bytes its data takes,
// without pages that are free or only in the WAL.
func backupSize(t testing.TB, db *store.DB) int64 {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A webhook's build keeps what pages, re-runs and commit statuses use of
// the webhook in its own columns, and no copy of the body: a signed push
// of a megabyte grows the database by a few pages.
func TestWebhookBuildKeepsNoCopyOfItsBody(t *testing.T) {
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db)
	body := withField(t, readFixture(t, "push_with-new-branch.json"), "padding", strings.Repeat("x", 1<<20))
	before := backupSize(t, s.db)
	if code, out := deliver(t, s, p.ID, "push", body, testSecret, "", "big"); code != 201 {
		t.Fatalf("status %d %v", code, out)
	}
	if grew := backupSize(t, s.db) - before; grew > 64<<10 {
		t.Errorf("the database grew by %d bytes for a build of a %d-byte webhook", grew, len(body))
	}
	b, err := s.db.BuildByNumber(context.Background(), p.ID, 1)
	if err != nil || b.Author != "Mira Okafor" || b.Message != "Add the tide table parser" || b.Trigger.User == "" {
		t.Errorf("build = %+v, %v", b, err)
	}
}

// GitHub's own example payloads in the shared corpus (../shared, see its
// README.md) do what that README's table says, signed with a test secret.
// It skips without ../shared, unless KOZMIC_TEST_SHARED=1.
func TestWebhookSharedCorpus(t *testing.T) {
	dir := sharedfixtures.Dir(t, "github-webhooks")
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db)
	ctx := context.Background()
	type payload struct {
		After      string `json:"after"`
		HeadCommit struct {
			Message string `json:"message"`
			Author  struct {
				Name string `json:"name"`
			} `json:"author"`
		} `json:"head_commit"`
		PullRequest struct {
			Number int `json:"number"`
			Head   struct {
				SHA string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
	}
	payloads := map[string]payload{}
	steps := []struct {
		file, event string
		builds      int // builds of the project afterwards
	}{
		{"ping.json", "ping", 0},
		{"push_tag-deleted.json", "push", 0},
		{"pull_request_closed.json", "pull_request", 0},
		{"delete.json", "delete", 0},
		{"push_with-new-branch.json", "push", 1},
		{"pull_request_opened.json", "pull_request", 2},
		{"pull_request_synchronize.json", "pull_request", 2},
		{"pull_request_reopened.json", "pull_request", 2},
	}
	for i, st := range steps {
		body, err := os.ReadFile(filepath.Join(dir, st.file))
		if err != nil {
			t.Fatal(err)
		}
		var pl payload
		if err := json.Unmarshal(body, &pl); err != nil {
			t.Fatalf("%s: %v", st.file, err)
		}
		payloads[st.file] = pl
		code, out := deliver(t, s, p.ID, st.event, body, testSecret, "", fmt.Sprintf("shared-%d", i))
		if code < 200 || code > 299 {
			t.Errorf("%s: status %d (%v), want 2xx", st.file, code, out)
		}
		if n := rows(t, s.db, p.ID); n != st.builds {
			t.Errorf("%s: %d builds, want %d", st.file, n, st.builds)
		}
	}

	push, pr := payloads["push_with-new-branch.json"], payloads["pull_request_opened.json"]
	for _, f := range []string{"pull_request_synchronize.json", "pull_request_reopened.json"} {
		if sha := payloads[f].PullRequest.Head.SHA; sha != pr.PullRequest.Head.SHA {
			t.Errorf("%s: head %s, but the corpus promises the opened pull request's %s", f, sha, pr.PullRequest.Head.SHA)
		}
	}
	want := []store.Build{
		{Ref: "refs/heads/master", SHA: push.After, Author: push.HeadCommit.Author.Name, Message: push.HeadCommit.Message},
		{Ref: fmt.Sprintf("refs/pull/%d/head", pr.PullRequest.Number), SHA: pr.PullRequest.Head.SHA},
	}
	for i, w := range want {
		b, err := s.db.BuildByNumber(ctx, p.ID, i+1)
		if err != nil {
			t.Fatalf("build #%d: %v", i+1, err)
		}
		if b.Ref != w.Ref || b.SHA != w.SHA || (w.Author != "" && (b.Author != w.Author || b.Message != w.Message)) {
			t.Errorf("build #%d = %+v\nwant %+v", i+1, b, w)
		}
		if jobs, err := s.db.Jobs(ctx, b.ID); err != nil || len(jobs) != 1 {
			t.Errorf("build #%d: %d jobs, %v; want 1", i+1, len(jobs), err)
		}
	}
}

// readRecorder is a request body that records whether anything read it.
type readRecorder struct {
	r    io.Reader
	read atomic.Bool
}

func (rr *readRecorder) Read(p []byte) (int, error) {
	rr.read.Store(true)
	return rr.r.Read(p)
}

// A webhook to a project that does not exist is 404 before a byte of its
// body is read, whether it declares its length or not.
func TestWebhookUnknownProjectBodyIsNeverRead(t *testing.T) {
	s := newTestServer(t)
	body := readFixture(t, "push_with-new-branch.json")
	for _, length := range []int64{int64(len(body)), -1} {
		rr := &readRecorder{r: bytes.NewReader(body)}
		r := httptest.NewRequest(http.MethodPost, "/webhooks/9999", rr)
		r.ContentLength = length
		r.Header.Set("X-GitHub-Event", "push")
		r.Header.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if rec.Code != 404 || rr.read.Load() {
			t.Errorf("length %d: status %d, body read: %v; want 404 unread", length, rec.Code, rr.read.Load())
		}
	}
}

// While webhook bodies being received fill Deps.WebhookBudget, another
// body, of declared length or not, is 503 with Retry-After; when the first
// is done its bytes are free again and the same delivery succeeds.
func TestWebhookBodiesBeyondTheBudgetAre503(t *testing.T) {
	const budget = 1 << 20
	s := newTestServerWith(t, true, func(d *Deps) { d.WebhookBudget = budget })
	p, _ := webhookProjects(t, s.db)
	// Trailing spaces keep the JSON valid and make each body 70% of the budget.
	body := readFixture(t, "push_with-new-branch.json")
	body = append(body, bytes.Repeat([]byte(" "), budget*7/10-len(body))...)
	request := func(body io.Reader, length int64, delivery string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/webhooks/%d", p.ID), body)
		r.ContentLength = length
		r.Header.Set("X-GitHub-Event", "push")
		r.Header.Set("X-GitHub-Delivery", delivery)
		return r
	}
	signature := gh.Sign([]byte(testSecret), body)

	// The first delivery is half sent: its declared length is reserved.
	pr, pw := io.Pipe()
	first := request(pr, int64(len(body)), "first")
	first.Header.Set("X-Hub-Signature-256", signature)
	firstDone := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, first)
		firstDone <- rec.Code
	}()
	// A pipe write returns once the handler has read it, after reserving.
	if _, err := pw.Write(body[:1024]); err != nil {
		t.Fatal(err)
	}

	for _, length := range []int64{int64(len(body)), -1} {
		r := request(bytes.NewReader(body), length, "second")
		r.Header.Set("X-Hub-Signature-256", signature)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
			t.Errorf("length %d beyond the budget: %d, Retry-After %q; want 503 with Retry-After", length, rec.Code, rec.Header().Get("Retry-After"))
		}
	}

	if _, err := pw.Write(body[1024:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-firstDone; code != 201 {
		t.Fatalf("the first delivery: %d, want 201", code)
	}
	if left := s.webhookBudget.left; left != budget {
		t.Errorf("budget left after every request ended: %d, want %d", left, budget)
	}
	// Another commit, so that the retried delivery makes a build of its own.
	body = withField(t, body, "after", strings.Repeat("b", 40))
	if code, out := deliver(t, s, p.ID, "push", body, testSecret, "", "second"); code != 201 {
		t.Errorf("the second delivery, retried: %d %v", code, out)
	}
}

// A hundred unsigned 25 MiB bodies posted at once to a project that exists,
// each from an address of its own (so that they may fill the whole budget),
// are all refused (401, or 503 beyond the webhook budget), while the
// server's resident memory grows by less than 128 MiB: the budget's 64 MiB
// of pooled chunks and the senders' buffers. Reading each body whole grew
// it by 1.27 GB; growing one buffer per body, by up to 195 MiB of garbage.
func TestForgedWebhookFloodStaysWithinTheBudget(t *testing.T) {
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db)
	srv := httptest.NewServer(atManyPeers(s))
	defer srv.Close()
	url := fmt.Sprintf("%s/webhooks/%d", srv.URL, p.ID)
	for _, chunked := range []bool{false, true} {
		var codes map[int]int
		grew := peakRSSGrowth(t, func() { codes = floodWebhooks(t, url, 100, 25<<20, chunked) })
		t.Logf("chunked %v: %v, resident memory grew by %.1f MiB at its peak", chunked, codes, float64(grew)/(1<<20))
		if grew > 128<<20 {
			t.Errorf("chunked %v: the flood grew the resident memory by %d MiB, want < 128", chunked, grew>>20)
		}
		if codes[401]+codes[503]+codes[0] != 100 || codes[503] == 0 {
			t.Errorf("chunked %v: answers %v, want only 401 and 503 (some of them 503)", chunked, codes)
		}
	}
	if left := s.webhookBudget.left; left != defaultWebhookBudget {
		t.Errorf("budget left after the flood: %d, want all %d", left, defaultWebhookBudget)
	}
	if bs, err := s.db.Builds(context.Background(), p.ID, store.BuildQuery{}); err != nil || len(bs) != 0 {
		t.Errorf("builds after the flood: %d, %v; want none", len(bs), err)
	}
}

// paddedPush is the push fixture with trailing spaces, which keep the JSON
// valid, to n bytes.
func paddedPush(t testing.TB, n int) []byte {
	t.Helper()
	body := readFixture(t, "push_with-new-branch.json")
	return append(body, bytes.Repeat([]byte(" "), n-len(body))...)
}

// A delivery that declares its length and never sends its body is
// answered 400 once Deps.WebhookBodyTimeout has passed, and its
// reservation (70% of the budget) returns: a real delivery as large is
// received next. Without a deadline it held the budget for as long as its
// sender kept the connection open.
func TestStalledWebhookBodyReleasesTheBudget(t *testing.T) {
	const budget = 1 << 20
	s := newTestServerWith(t, true, func(d *Deps) {
		d.WebhookBudget = budget
		d.WebhookBodyTimeout = 100 * time.Millisecond
	})
	p, _ := webhookProjects(t, s.db)
	srv := httptest.NewServer(s)
	defer srv.Close()
	body := paddedPush(t, budget*7/10)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhooks/%d HTTP/1.1\r\nHost: kozmic.test\r\nContent-Type: application/json\r\n"+
		"X-GitHub-Event: push\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n",
		p.ID, gh.Sign([]byte(testSecret), body), len(body))
	if _, err := conn.Write(body[:1024]); err != nil {
		t.Fatal(err)
	}
	// Not a measure of speed: it ends the test if the server never answers.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the stalled delivery was not answered: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("the stalled delivery: %d, want 400", res.StatusCode)
	}
	if left := s.webhookBudget.left; left != budget {
		t.Errorf("budget left after the stalled delivery was answered: %d, want %d", left, budget)
	}
	if code, out := deliver(t, srv.Config.Handler, p.ID, "push", body, testSecret, "", "real"); code != 201 {
		t.Errorf("a real delivery after the stalled one: %d %v", code, out)
	}
}

// While one client address holds its part of the webhook budget (at the
// default budget: one 25 MiB body, whose sender stalls), its other
// deliveries, and those of the rest of its IPv6 /64, are 503 though most
// of the budget is left; another address's delivery is received, and the
// first address's once its body is released.
func TestOneAddressCannotHoldTheWholeWebhookBudget(t *testing.T) {
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db)
	body := readFixture(t, "push_with-new-branch.json")

	pr, pw := io.Pipe()
	held := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/webhooks/%d", p.ID), pr)
	held.RemoteAddr = "[2001:db8::1]:4711"
	held.ContentLength = maxWebhookBytes
	held.Header.Set("X-GitHub-Event", "push")
	heldDone := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, held)
		heldDone <- rec.Code
	}()
	// A pipe write returns once the handler has read it, after reserving.
	if _, err := pw.Write(bytes.Repeat([]byte(" "), 1024)); err != nil {
		t.Fatal(err)
	}
	if left := s.webhookBudget.left; left < defaultWebhookBudget/2 {
		t.Fatalf("budget left beside the held body: %d, want more than half", left)
	}

	for _, peer := range []string{"[2001:db8::1]:4712", "[2001:db8::ffff]:4711"} {
		if code, out := deliver(t, atPeer(s, peer), p.ID, "push", body, testSecret, "", "from "+peer); code != 503 {
			t.Errorf("from %s beside the held body: %d %v, want 503", peer, code, out)
		}
	}
	if code, out := deliver(t, atPeer(s, "198.51.100.7:4711"), p.ID, "push", body, testSecret, "", "another address"); code != 201 {
		t.Errorf("from another address: %d %v, want 201", code, out)
	}

	pw.CloseWithError(io.ErrUnexpectedEOF)
	if code := <-heldDone; code != 400 {
		t.Errorf("the held body, cut off: %d, want 400", code)
	}
	if left := s.webhookBudget.left; left != defaultWebhookBudget {
		t.Errorf("budget left after every request ended: %d, want %d", left, defaultWebhookBudget)
	}
	body = withField(t, body, "after", strings.Repeat("b", 40))
	if code, out := deliver(t, atPeer(s, "[2001:db8::1]:4712"), p.ID, "push", body, testSecret, "", "released"); code != 201 {
		t.Errorf("from the first address once its body is released: %d %v, want 201", code, out)
	}
}
