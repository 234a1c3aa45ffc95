package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"kozmic/git"
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

func (g gitSource) objectIDs(paths []string) (map[string]string, error) {
	return git.ObjectIDs(g.path, g.sha, paths)
}

// dirSource is a working tree as it is on disk, uncommitted changes and all.
type dirSource struct{ path string }

func (d dirSource) dir() string { return d.path }

// objectIDs hashes each path's content: a file's bytes, or for a directory
// every file below it with its relative path, leaving out git's own files
// (a .git below the path), which are no part of a commit: "." is the whole
// working tree as a commit of it would hold it.
func (d dirSource) objectIDs(paths []string) (map[string]string, error) {
	ids := make(map[string]string, len(paths))
	for _, p := range paths {
		root := filepath.Join(d.path, filepath.FromSlash(p))
		h := sha256.New()
		err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() && e.Name() == ".git" && path != root {
				// git rewrites its index and logs on its own, which would
				// make every run miss the cache.
				return fs.SkipDir
			}
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
