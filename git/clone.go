package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ObjectIDs is the object id of each of paths (relative to the repository's
// root; a leading / is ignored, and "." and ".." steps are resolved within
// the repository) at commit sha of the repository at dir: a file's blob or
// a directory's tree, the commit's root tree for "." (or "/"), "" for a path
// the commit lacks. One git process answers for all of them, within the
// bound of Limits.Procs and for at most localTimeout; its failure is the
// error.
func ObjectIDs(dir, sha string, paths []string) (map[string]string, error) {
	ids := make(map[string]string, len(paths))
	if len(paths) == 0 {
		return ids, nil
	}
	var in bytes.Buffer
	for _, p := range paths {
		// git reads "<sha>:." as missing but "<sha>:" as the root tree.
		fmt.Fprintf(&in, "%s:%s\n", sha, strings.TrimPrefix(path.Clean("/"+p), "/"))
	}
	var out bytes.Buffer
	err := run(context.Background(), cmd{kind: local, dir: dir, stdin: &in, stdout: &out,
		args: []string{"cat-file", "--batch-check=%(objectname)"}})
	if err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	sc := bufio.NewScanner(&out)
	for _, p := range paths {
		if !sc.Scan() {
			return nil, errors.New("git cat-file: short answer")
		}
		if line := sc.Text(); !strings.HasSuffix(line, " missing") {
			ids[p] = line
		} else {
			ids[p] = ""
		}
	}
	return ids, nil
}

// CloneSpec says what to fetch.
type CloneSpec struct {
	Remote
	Ref string // the full ref the commit was found on, such as refs/heads/main
	SHA string // the commit
}

// stderrKept is how much of a git command's standard error is kept to tell
// why it failed; the rest only goes to the job's log.
const stderrKept = 64 << 10

// Clone fetches the commit c.SHA into the empty directory dir and checks it
// out (detached), with git's output in out, its line ends as \r\n. It
// fetches the commit itself, and if the server refuses that, c.Ref. Each git
// command waits for a slot as long as ctx lasts; a fetch then runs for
// Limits.FetchTimeout at most, and the others for localTimeout. Over SSH the
// server's host key is checked as Remote says: a key other than the trusted
// one is a *HostKeyError, and a first contact's key is handed to c.Pin once
// the fetch succeeded (its error is returned, wrapped). A URL that CheckURL
// refuses is an error before git runs; otherwise the error says which step
// failed or that the fetch timed out, and git's own words are in out.
func Clone(ctx context.Context, c CloneSpec, dir string, out io.Writer) error {
	if err := CheckURL(c.URL); err != nil {
		return err
	}
	t, err := newTransport(c.Remote)
	if err != nil {
		return err
	}
	defer t.close()
	git := func(k kind, args ...string) error {
		stderr := &headBuffer{max: stderrKept}
		err := run(ctx, cmd{kind: k, dir: dir, env: t.env, stdout: crlf{out}, stderr: io.MultiWriter(crlf{out}, stderr),
			args: append([]string{"-c", "advice.detachedHead=false"}, args...)})
		if err != nil {
			if hkErr := t.hostKeyError(ctx, stderr.String()); hkErr != nil {
				return hkErr
			}
		}
		return err
	}
	// No template: its sample hooks take half of what init costs.
	if err := git(local, "init", "-q", "--template="); err != nil {
		return fmt.Errorf("git init: %w", err)
	}
	if err := git(local, "remote", "add", "--end-of-options", "origin", c.URL); err != nil {
		return fmt.Errorf("git remote add: %w", err)
	}
	err = git(fetching, "fetch", "-q", "--no-tags", "--end-of-options", "origin", c.SHA)
	// A refused host key, a timeout or the job's end rule out a second try.
	if err != nil && !errors.As(err, new(*HostKeyError)) && !errors.As(err, new(timeoutError)) && ctx.Err() == nil {
		err = git(fetching, "fetch", "-q", "--no-tags", "--end-of-options", "origin", "+"+c.Ref+":refs/kozmic/build")
	}
	switch {
	case errors.As(err, new(*HostKeyError)) || ctx.Err() != nil:
		return err
	case errors.As(err, new(timeoutError)):
		return fmt.Errorf("could not fetch %s from %s: %w", c.SHA, redact(c.URL), err)
	case err != nil:
		return fmt.Errorf("could not fetch %s or %s", c.SHA, c.Ref)
	}
	if err := t.pin(); err != nil {
		return err
	}
	// switch, not checkout: git checkout before 2.43 takes --end-of-options for a path.
	if err := git(local, "switch", "-q", "--detach", "--end-of-options", c.SHA); err != nil {
		return fmt.Errorf("could not check out %s", c.SHA)
	}
	return nil
}

// headBuffer keeps the first max bytes written to it and takes the rest
// without keeping it.
type headBuffer struct {
	bytes.Buffer
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - h.Len(); room > 0 {
		h.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// crlf turns \n into \r\n, so git's output reads like the terminal output
// of the containers around it.
type crlf struct{ w io.Writer }

func (c crlf) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}
