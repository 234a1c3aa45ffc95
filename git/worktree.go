package git

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
)

// Head is what a working tree has checked out.
type Head struct {
	SHA string // the commit HEAD names
	// Ref is the full name of the checked-out branch, such as
	// refs/heads/main; for a detached HEAD, the commit, as for a build of a
	// commit.
	Ref string
	// Origin is the URL of the remote "origin"; "" when there is none.
	Origin string
}

// ErrNoCommit is the error of WorkTreeHead for a directory that is not the
// top of a git working tree with a commit checked out.
var ErrNoCommit = errors.New("not the top of a git working tree with a commit checked out")

// WorkTreeHead reads what the repository at dir (dir itself, never one
// above it) has checked out, with the repository's own configuration only.
// Its error is ErrNoCommit, or a failure to run git.
func WorkTreeHead(ctx context.Context, dir string) (Head, error) {
	var h Head
	var err error
	if h.SHA, err = revParse(ctx, dir, "HEAD"); err != nil {
		if errors.As(err, new(*exec.ExitError)) {
			return Head{}, ErrNoCommit
		}
		return Head{}, err
	}
	// Both exit 1 for what is not there: a detached HEAD, no origin.
	if h.Ref, err = localOutput(ctx, dir, "symbolic-ref", "--quiet", "HEAD"); err != nil {
		return Head{}, err
	}
	if h.Ref == "" {
		h.Ref = h.SHA
	}
	if h.Origin, err = localOutput(ctx, dir, "config", "--get", "remote.origin.url"); err != nil {
		return Head{}, err
	}
	return h, nil
}

// localOutput is the trimmed output of a git command on the repository at
// dir; "" when git exits with 1, which these commands do for "none".
func localOutput(ctx context.Context, dir string, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(ctx, cmd{kind: local, dir: dir, stdout: &out, args: args})
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 1 {
		return "", nil
	}
	return strings.TrimSpace(out.String()), err
}
