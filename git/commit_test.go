package git

import (
	"context"
	"strings"
	"testing"

	"kozmic/internal/testrepo"
)

func TestCommitOfReadsAuthorAndSubject(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"README": "one"})
	rp.Git("commit", "-q", "--allow-empty", "--author", "Ann Lee <ann@example.com>", "-m", "Fix the login page\n\nThe body is not shown.")
	sha := rp.Git("rev-parse", "HEAD")
	want := Commit{Author: "Ann Lee", Subject: "Fix the login page"}
	if c, err := CommitOf(context.Background(), rp.Path, sha); err != nil || c != want {
		t.Errorf("CommitOf = %+v, %v; want %+v", c, err, want)
	}
	if c, ok, err := LocalCommit(context.Background(), "file://"+rp.Path, sha); err != nil || !ok || c != want {
		t.Errorf("LocalCommit = %+v, %v, %v; want %+v", c, ok, err, want)
	}
	if _, ok, err := LocalCommit(context.Background(), "https://git.example.com/acme/app.git", sha); ok || err != nil {
		t.Errorf("LocalCommit of a remote URL = %v, %v; want false and no error", ok, err)
	}
}

func TestCommitOfBoundsALongSubject(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"README": "one"})
	rp.Git("commit", "-q", "--allow-empty", "-m", strings.Repeat("é", MaxSubject))
	c, err := CommitOf(context.Background(), rp.Path, rp.Git("rev-parse", "HEAD"))
	if err != nil || len(c.Subject) > MaxSubject || !strings.HasSuffix(c.Subject, "…") || !strings.HasPrefix(c.Subject, "éé") {
		t.Errorf("CommitOf a long subject = %d bytes %.20q…, %v; want at most %d, cut with …", len(c.Subject), c.Subject, err, MaxSubject)
	}
}
