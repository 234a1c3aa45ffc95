package git

import (
	"context"
	"fmt"
	"strings"
)

// Commit is what pages show of a commit: its author's name and its subject.
type Commit struct {
	Author  string // at most MaxAuthor bytes
	Subject string // the message's first paragraph on one line, at most MaxSubject bytes
}

// The bounds of a Commit's parts: a commit's author and message are
// chosen by whoever made it, and are kept in the database and shown.
const (
	MaxAuthor  = 256
	MaxSubject = 1024
)

// CommitOf reads the author and subject of commit sha in the repository at
// dir, such as a job's checkout. It waits for a slot as long as ctx lasts
// and runs for localTimeout at most; git's failure is the error.
func CommitOf(ctx context.Context, dir, sha string) (Commit, error) {
	return commitOf(ctx, local, dir, sha)
}

// LocalCommit reads the author and subject of commit sha when the
// repository at url is on this machine (an absolute path or a file:// URL),
// as ResolveRef reads its refs: waiting Limits.Wait at most for a slot (else
// ErrBusy) and running for Limits.ResolveTimeout at most. ok is false, with
// no error, for any other URL: ls-remote tells nothing of a commit but its
// id, so the commit's author and subject are known once a job has fetched it.
func LocalCommit(ctx context.Context, url, sha string) (c Commit, ok bool, err error) {
	dir, local := localRepo(url)
	if !local {
		return Commit{}, false, nil
	}
	c, err = commitOf(ctx, resolving, dir, sha)
	return c, err == nil, err
}

func commitOf(ctx context.Context, k kind, dir, sha string) (Commit, error) {
	if !ValidSHA(sha) {
		return Commit{}, fmt.Errorf("%q is not a commit SHA", sha)
	}
	// The output is bounded: a subject is a whole first paragraph, however long.
	out := &headBuffer{max: MaxAuthor + MaxSubject + 8<<10}
	err := run(ctx, cmd{kind: k, dir: dir, stdout: out,
		args: []string{"log", "-1", "--no-show-signature", "--format=%an%x00%s", "--end-of-options", sha, "--"}})
	if err != nil {
		return Commit{}, fmt.Errorf("git log %.12s: %w", sha, err)
	}
	author, subject, _ := strings.Cut(strings.TrimSuffix(out.String(), "\n"), "\x00")
	return Commit{Author: cut(author, MaxAuthor), Subject: cut(subject, MaxSubject)}, nil
}

// cut is s in at most n bytes of valid UTF-8, marked "…" if it was longer.
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-len("…")], "") + "…"
}
