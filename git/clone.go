package git

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// source is the tree a job builds.
type source interface {
	// dir is the directory uploaded to /kozmic/src.
	dir() string
	// objectIDs identifies the content of each path: a file's blob or a
	// directory's tree. A missing path maps to "".
	objectIDs(paths []string) (map[string]string, error)
}

// gitSource is a clone checked out at one commit.
type gitSource struct {
	path string
	sha  string
}

func (g gitSource) dir() string { return g.path }

// objectIDs asks git for the object id of each path at the commit, all in
// one process.
func (g gitSource) objectIDs(paths []string) (map[string]string, error) {
	ids := make(map[string]string, len(paths))
	if len(paths) == 0 {
		return ids, nil
	}
	var in bytes.Buffer
	for _, p := range paths {
		fmt.Fprintf(&in, "%s:%s\n", g.sha, strings.TrimPrefix(p, "/"))
	}
	cmd := exec.Command("git", "-C", g.path, "cat-file", "--batch-check=%(objectname)")
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

// cloneSpec says what to fetch.
type cloneSpec struct {
	url, ref, sha string
	deployKey     string // private key for SSH URLs, unused for others; never enters a container
}

// clone fetches the commit into dir and checks it out, with git's output in
// out. It fetches the commit itself, and if the server refuses that, the ref.
// A URL that CheckGitURL refuses is an error before git runs.
func clone(ctx context.Context, c cloneSpec, dir string, out io.Writer) error {
	if err := CheckGitURL(c.url); err != nil {
		return err
	}
	env, cleanup, err := gitEnv(c.url, c.deployKey)
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
	if err := git("remote", "add", "origin", c.url); err != nil {
		return fmt.Errorf("git remote add: %w", err)
	}
	if err := git("fetch", "-q", "--no-tags", "--", "origin", c.sha); err != nil {
		if err := git("fetch", "-q", "--no-tags", "--", "origin", "+"+c.ref+":refs/kozmic/build"); err != nil {
			return fmt.Errorf("could not fetch %s or %s", c.sha, c.ref)
		}
	}
	if err := git("checkout", "-q", "--detach", c.sha); err != nil {
		return fmt.Errorf("could not check out %s", c.sha)
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

// dirSource is a working tree as it is on disk, uncommitted changes and all.
type dirSource struct{ path string }

func (d dirSource) dir() string { return d.path }

// objectIDs hashes each path's content: a file's bytes, or for a directory
// every file below it with its relative path.
func (d dirSource) objectIDs(paths []string) (map[string]string, error) {
	ids := make(map[string]string, len(paths))
	for _, p := range paths {
		root := filepath.Join(d.path, filepath.FromSlash(p))
		h := sha256.New()
		err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%q %d\n", rel, len(b))
			h.Write(b)
			return nil
		})
		switch {
		case errors.Is(err, fs.ErrNotExist):
			ids[p] = ""
		case err != nil:
			return nil, err
		default:
			ids[p] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return ids, nil
}
