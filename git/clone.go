package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// ObjectIDs is the object id of each of paths (relative to the repository's
// root; a leading / is ignored) at commit sha of the repository at dir: a
// file's blob or a directory's tree, "" for a path the commit lacks. One git
// process answers for all of them; its failure is the error.
func ObjectIDs(dir, sha string, paths []string) (map[string]string, error) {
	ids := make(map[string]string, len(paths))
	if len(paths) == 0 {
		return ids, nil
	}
	var in bytes.Buffer
	for _, p := range paths {
		fmt.Fprintf(&in, "%s:%s\n", sha, strings.TrimPrefix(p, "/"))
	}
	cmd := exec.Command("git", "-C", dir, "cat-file", "--batch-check=%(objectname)")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
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
	URL       string // any URL that CheckURL accepts
	Ref       string // the full ref the commit was found on, such as refs/heads/main
	SHA       string // the commit
	DeployKey string // private key for SSH URLs, unused for others
}

// Clone fetches the commit c.SHA into the empty directory dir and checks it
// out (detached), with git's output in out, its line ends as \r\n. It
// fetches the commit itself, and if the server refuses that, c.Ref. A URL
// that CheckURL refuses is an error before git runs; otherwise the error
// says which step failed, and git's own words are in out.
func Clone(ctx context.Context, c CloneSpec, dir string, out io.Writer) error {
	if err := CheckURL(c.URL); err != nil {
		return err
	}
	env, cleanup, err := gitEnv(c.URL, c.DeployKey)
	if err != nil {
		return err
	}
	defer cleanup()
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir, "-c", "advice.detachedHead=false"}, args...)...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = crlf{out}, crlf{out}
		return cmd.Run()
	}
	if err := git("init", "-q"); err != nil {
		return fmt.Errorf("git init: %w", err)
	}
	if err := git("remote", "add", "--end-of-options", "origin", c.URL); err != nil {
		return fmt.Errorf("git remote add: %w", err)
	}
	if err := git("fetch", "-q", "--no-tags", "--end-of-options", "origin", c.SHA); err != nil {
		if err := git("fetch", "-q", "--no-tags", "--end-of-options", "origin", "+"+c.Ref+":refs/kozmic/build"); err != nil {
			return fmt.Errorf("could not fetch %s or %s", c.SHA, c.Ref)
		}
	}
	// switch, not checkout: git checkout before 2.43 takes --end-of-options for a path.
	if err := git("switch", "-q", "--detach", "--end-of-options", c.SHA); err != nil {
		return fmt.Errorf("could not check out %s", c.SHA)
	}
	return nil
}

// writeKeyFile writes a private key to a file only its owner can read.
func writeKeyFile(key string) (string, error) {
	f, err := os.CreateTemp("", "kozmic-deploy-key-*")
	if err != nil {
		return "", fmt.Errorf("deploy key: %w", err)
	}
	if !strings.HasSuffix(key, "\n") {
		key += "\n" // ssh refuses a key without its final newline
	}
	_, werr := f.WriteString(key)
	if err := errors.Join(werr, f.Chmod(0o600), f.Close()); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("deploy key: %w", err)
	}
	return f.Name(), nil
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
