package runner

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"kozmic/git"
	"kozmic/internal/testrepo"
	"kozmic/internal/testsshd"
	"kozmic/store"
)

// A job's fetch over SSH pins the server's host key at the first contact;
// once the server shows another key, the job fails with an error naming
// both fingerprints, and the pinned key stays.
func TestJobFetchOverSSHPinsTheHostKeyAndRefusesAChangedOne(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	rp := testrepo.New(t, map[string]string{"README": "one"})
	private, public, err := git.GenerateDeployKey("kozmic acme/ssh")
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := testsshd.NewHostKey(t), testsshd.NewHostKey(t)
	root := filepath.Dir(rp.Path)
	srv := testsshd.Start(t, "127.0.0.1:0", keyA, public, root)
	owner, err := h.db.CreateLocalUser(ctx, "owner", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGit, FullName: "acme/ssh",
		GitURL: srv.URL(rp.Path), WebhookSecret: "whsec", DeployKey: &store.DeployKey{PrivateKey: private, PublicKey: public}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testImage, BuildScript: "#!/bin/sh\ncat README"}); err != nil {
		t.Fatal(err)
	}
	pinned := func() string {
		p, err := h.db.ProjectByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p.SSHHostKey
	}
	keyOf := func(k ssh.Signer) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey()))) }

	b, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	if got := h.waitBuild(b); got.Status != store.BuildSuccess || pinned() != keyOf(keyA) {
		t.Fatalf("first build %s, pinned %q; log:\n%s", got.Status, pinned(), h.logOf(jobs[0].ID))
	}

	srv.Close()
	testsshd.Start(t, srv.Addr, keyB, public, root)
	b, jobs = h.build(p, "refs/heads/main", rp.Commit(map[string]string{"README": "two"}, nil))
	got := h.waitBuild(b)
	j, _ := h.db.JobByID(ctx, jobs[0].ID)
	fpA, fpB := ssh.FingerprintSHA256(keyA.PublicKey()), ssh.FingerprintSHA256(keyB.PublicKey())
	if got.Status != store.BuildError || !strings.Contains(j.Error, "pinned "+fpA) || !strings.Contains(j.Error, "offers "+fpB) {
		t.Errorf("build against key B: %s, job error %q", got.Status, j.Error)
	}
	if pinned() != keyOf(keyA) {
		t.Error("the pinned key changed without a reset")
	}
}
