package runner

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"kozmic/gh"
	"kozmic/internal/fakegithub"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/internal/testsshd"
	"kozmic/store"
)

// Before a job of a private GitHub project fetches, a deploy key GitHub no
// longer lists is re-created: a new key is added on GitHub and stored, and
// the job fetches with it from a git server that lets in only the keys
// GitHub was given last. The check is one call per job; a key GitHub still
// lists is used as it is, and when GitHub cannot answer the job runs with
// the stored key. Jobs that find the key missing together add one new key.
func TestMissingDeployKeyIsRecreatedBeforeAPrivateJob(t *testing.T) {
	needDocker(t)
	h := openHarness(t)
	ctx := context.Background()
	const repoAPI = "/api/v3/repos/octocat/Hello-World"
	fake := fakegithub.New(t)
	base, _ := url.Parse("https://kozmic.example.com")
	keys := gh.NewProjects(gh.New(gh.Config{WebURL: fake.WebURL(), BaseURL: base}), h.db, slog.New(slog.DiscardHandler))
	var err error
	if h.dc, err = NewDockerClient(testimage.Host()); err != nil {
		t.Fatal(err)
	}
	h.start(Config{Workers: 2, DeployKeys: keys})

	// The git server lets in the key last added to the repository on GitHub.
	added := func() (string, int) {
		calls := fake.CallsTo("POST " + repoAPI + "/keys")
		if len(calls) == 0 {
			return "", 0
		}
		var k struct{ Key string }
		if err := json.Unmarshal(calls[len(calls)-1].Body, &k); err != nil {
			t.Fatal(err)
		}
		return k.Key, len(calls)
	}
	allow := func(k ssh.PublicKey) bool {
		key, _ := added()
		given, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
		return err == nil && string(given.Marshal()) == string(k.Marshal())
	}
	rp := testrepo.New(t, map[string]string{"README": "private"})
	srv := testsshd.StartAllowing(t, "127.0.0.1:0", testsshd.NewHostKey(t), allow, filepath.Dir(rp.Path))
	owner, err := h.db.UpsertGitHubUser(ctx, store.GitHubUser{ID: 1, Login: "octocat", AccessToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", SSHCloneURL: srv.URL(rp.Path), WebhookSecret: "whsec"})
	if err != nil {
		t.Fatal(err)
	}
	// Kozmic holds key 7, which someone deleted on GitHub: asking for it is 404.
	const oldPrivate = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key GitHub lists\n-----END OPENSSH PRIVATE KEY-----\n"
	if err := h.db.SetDeployKey(ctx, store.DeployKey{ProjectID: p.ID, GitHubKeyID: 7, PrivateKey: oldPrivate, PublicKey: "ssh-ed25519 AAAAold kozmic"}); err != nil {
		t.Fatal(err)
	}
	// A key added is key 1, which GitHub lists from then on.
	fake.Route("POST "+repoAPI+"/keys", 201, "key.json")
	fake.Route("GET "+repoAPI+"/keys/1", 200, "key.json")
	// Two hooks: the first build's two jobs start together and find the key missing both.
	for _, title := range []string{"test", "lint"} {
		if _, err := h.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: testImage, BuildScript: "#!/bin/sh\ncat README"}); err != nil {
			t.Fatal(err)
		}
	}
	stored := func() store.DeployKey {
		k, err := h.db.DeployKeyOf(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	b, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	got := h.waitBuild(b)
	k := stored()
	key, posts := added()
	if got.Status != store.BuildSuccess || posts != 1 || k.PublicKey != key || k.GitHubKeyID != 1 || k.PrivateKey == oldPrivate {
		t.Fatalf("build %s with %d keys added; stored key %d %q, added %q; log:\n%s", got.Status, posts, k.GitHubKeyID, k.PublicKey, key, h.logOf(jobs[0].ID))
	}
	lookups := func() int {
		return len(fake.CallsTo("GET "+repoAPI+"/keys/7")) + len(fake.CallsTo("GET "+repoAPI+"/keys/1"))
	}
	if n := lookups(); n != 2 {
		t.Errorf("the stored key was looked up %d times by two jobs, want 2", n)
	}
	// Which of the two finds the key missing depends on timing; one does.
	if a, b := h.logOf(jobs[0].ID), h.logOf(jobs[1].ID); !strings.Contains(a+b, "deploy key was missing on GitHub") {
		t.Errorf("no job's log says the key was re-created:\n%s\n%s", a, b)
	}

	// GitHub lists key 1: the next jobs use it as stored, adding nothing.
	b, jobs = h.build(p, "refs/heads/main", rp.Commit(map[string]string{"README": "two"}, nil))
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Fatalf("build with a listed key: %s; log:\n%s", got.Status, h.logOf(jobs[0].ID))
	}
	// GitHub fails: the job runs with the stored key all the same.
	fake.Script("GET "+repoAPI+"/keys/1", fakegithub.Reply{Status: 502, Body: `{"message":"Server Error"}`},
		fakegithub.Reply{Status: 502, Body: `{"message":"Server Error"}`})
	b, jobs = h.build(p, "refs/heads/main", rp.Commit(map[string]string{"README": "three"}, nil))
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Fatalf("build while GitHub fails: %s; log:\n%s", got.Status, h.logOf(jobs[0].ID))
	}
	if _, posts := added(); posts != 1 || stored().PrivateKey != k.PrivateKey {
		t.Errorf("keys added %d times, want only the first job's; stored key replaced: %v", posts, stored().PrivateKey != k.PrivateKey)
	}
	if n := lookups(); n != 6 {
		t.Errorf("the key was looked up %d times by six jobs, want 6", n)
	}
}
