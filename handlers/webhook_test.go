package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"kozmic/gh"
	"kozmic/store"
)

const (
	testSecret  = "webhook-test-secret"
	otherSecret = "the-other-projects-secret"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "github-webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// webhookProjects makes the fixtures' repository (Codertocat/Hello-World)
// with one hook, and another project with its own secret.
func webhookProjects(t testing.TB, db *store.DB) (store.Project, store.Project) {
	t.Helper()
	ctx := context.Background()
	u, err := db.CreateLocalUser(ctx, "owner", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: u.ID, Source: store.SourceGitHub, GitHubID: 186853002,
		FullName: "Codertocat/Hello-World", HTTPSCloneURL: "https://github.com/Codertocat/Hello-World.git",
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

// deliver posts a webhook; signature "" means sign with secret, "-" means
// send no signature header.
func deliver(t testing.TB, h http.Handler, projectID int64, event string, body []byte, secret, signature, delivery string) (int, map[string]any) {
	t.Helper()
	if signature == "" {
		signature = gh.Sign([]byte(secret), body)
	}
	r := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/webhooks/%d", projectID), bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", event)
	r.Header.Set("X-GitHub-Delivery", delivery)
	if signature != "-" {
		r.Header.Set("X-Hub-Signature-256", signature)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func rows(t testing.TB, db *store.DB, projectID int64) (builds int) {
	t.Helper()
	bs, err := db.Builds(context.Background(), projectID, store.BuildQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return len(bs)
}

// Every example payload does what ../shared/README.md says it must.
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
		{"delete.json", "delete", 204, 0},
		{"push_with-new-branch.json", "push", 201, 1},
		{"pull_request_opened.json", "pull_request", 201, 2},
		{"pull_request_synchronize.json", "pull_request", 200, 2}, // same head SHA: the same build
		{"pull_request_reopened.json", "pull_request", 200, 2},
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
	push, err := s.db.BuildByNumber(ctx, p.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if push.Ref != "refs/heads/master" || push.SHA != "6113728f27ae82c7b1a177c8d03f9e96e0adf246" ||
		push.Author != "Codertocat" || push.Message != "Initial commit" || push.FromFork {
		t.Errorf("push build = %+v", push)
	}
	pr, _ := s.db.BuildByNumber(ctx, p.ID, 2)
	if pr.Ref != "refs/pull/2/head" || pr.SHA != "ec26c3e57ca3a959ca5aad62de7213c562f8c821" {
		t.Errorf("pull request build = %+v", pr)
	}
	jobs, _ := s.db.Jobs(ctx, pr.ID)
	if len(jobs) != 1 {
		t.Errorf("pull request jobs = %d, want 1 (synchronize and reopen add none)", len(jobs))
	}
	if got := s.jobs.n.Load(); got != 2 {
		t.Errorf("runner woken %d times, want once per new build (2)", got)
	}
	// Gitea and Forgejo send their own header names.
	body := []byte(`{"ref":"refs/heads/main","after":"aaaa","head_commit":{"message":"from gitea","author":{"name":"Gi Tea"}}}`)
	r := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/webhooks/%d", p.ID), bytes.NewReader(body))
	r.Header.Set("X-Gitea-Event", "push")
	r.Header.Set("X-Gitea-Delivery", "gitea-1")
	r.Header.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), body))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	if rec.Code != 201 {
		t.Errorf("Gitea push: %d %s", rec.Code, rec.Body)
	}
}

// Forged, unsigned and misdirected webhooks are refused before anything is written.
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
