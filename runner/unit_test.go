package runner

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"kozmic/internal/testdb"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

// These tests need no Docker engine.

// The cache id depends on the image, the install script and every tracked
// path's object id, and on nothing else: not on the order a map yields them.
func TestCacheID(t *testing.T) {
	const img, install = "sha256:1111", "#!/bin/sh\napt-get install -y make\n"
	tracked := map[string]string{"deps.txt": "aaaa", "vendor": "bbbb", "gone.txt": ""}
	base := cacheID(img, install, tracked)
	// Each range over a map starts at a random place: many tries meet other orders.
	for range 50 {
		if got := cacheID(img, install, maps.Clone(tracked)); got != base {
			t.Fatalf("the same inputs gave %s and %s", base, got)
		}
	}
	changed := map[string]string{
		"image":                     cacheID("sha256:2222", install, tracked),
		"install script":            cacheID(img, install+"echo more\n", tracked),
		"tracked file's id":         cacheID(img, install, with(tracked, "deps.txt", "cccc")),
		"tracked file removed":      cacheID(img, install, with(tracked, "deps.txt", "")),
		"missing file added":        cacheID(img, install, with(tracked, "gone.txt", "dddd")),
		"another tracked path":      cacheID(img, install, with(tracked, "go.sum", "eeee")),
		"ids swapped between paths": cacheID(img, install, with(with(tracked, "deps.txt", "bbbb"), "vendor", "aaaa")),
		// The script's length is hashed, so a script cannot pass for paths.
		"a path moved into the script": cacheID(img, install+"\npath \"deps.txt\" aaaa", without(tracked, "deps.txt")),
	}
	seen := map[string]string{base: "the base"}
	for what, id := range changed {
		if other, ok := seen[id]; ok {
			t.Errorf("%s: cache id %s, the same as %s", what, id, other)
		}
		seen[id] = what
	}
}

// with is a copy of m with k set to v.
func with(m map[string]string, k, v string) map[string]string {
	c := maps.Clone(m)
	c[k] = v
	return c
}

// without is a copy of m without k.
func without(m map[string]string, k string) map[string]string {
	c := maps.Clone(m)
	delete(c, k)
	return c
}

func TestSplitRef(t *testing.T) {
	for ref, want := range map[string][2]string{
		"busybox":                           {"busybox", "latest"},
		"busybox:1.36":                      {"busybox", "1.36"},
		"library/busybox:1.36-musl":         {"library/busybox", "1.36-musl"},
		"localhost:5000/x/y:tag":            {"localhost:5000/x/y", "tag"},
		"localhost:5000/x/y":                {"localhost:5000/x/y", "latest"},
		"kozmic-cache/0a1b:inst-7":          {"kozmic-cache/0a1b", "inst-7"},
		"x@sha256:" + sha64:                 {"x@sha256:" + sha64, ""},
		"busybox:1.36@sha256:" + sha64:      {"busybox:1.36@sha256:" + sha64, ""},
		"localhost:5000/x@sha256:" + sha64:  {"localhost:5000/x@sha256:" + sha64, ""},
		"registry.example.com/team/app:2.0": {"registry.example.com/team/app", "2.0"},
	} {
		if repo, tag := splitRef(ref); repo != want[0] || tag != want[1] {
			t.Errorf("splitRef(%q) = %q, %q; want %q, %q", ref, repo, tag, want[0], want[1])
		}
	}
}

const sha64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// jobEnv, with the job run as the store gathers it: a build of a branch
// gets the project's secrets, a pull request from a fork does not, and both
// get the KOZMIC_* variables of their own build.
func TestJobEnv(t *testing.T) {
	ctx := context.Background()
	db := testdb.Open(t)
	owner, err := db.CreateLocalUser(ctx, "ann", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGit,
		FullName: "acme/widget", GitURL: "/srv/git/widget.git", WebhookSecret: "whsec"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetSecret(ctx, p.ID, store.Secret{Name: "API_TOKEN", Value: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testImage, BuildScript: "#!/bin/sh\n"}); err != nil {
		t.Fatal(err)
	}
	envOf := func(nb store.NewBuild) (store.Build, store.Job, []string) {
		t.Helper()
		nb.ProjectID = p.ID
		b, jobs, err := db.CreateBuild(ctx, nb)
		if err != nil {
			t.Fatal(err)
		}
		run, err := db.JobRunOf(ctx, jobs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		return b, jobs[0], jobEnv(run)
	}
	common := func(b store.Build, j store.Job, sha, ref string) []string {
		return []string{"CI=true", "KOZMIC=true", "KOZMIC_PROJECT=acme/widget",
			"KOZMIC_BUILD_NUMBER=" + strconv.Itoa(b.Number), "KOZMIC_BUILD_ID=" + strconv.FormatInt(b.ID, 10),
			"KOZMIC_JOB_ID=" + strconv.FormatInt(j.ID, 10), "KOZMIC_COMMIT_SHA=" + sha, "KOZMIC_REF=" + ref}
	}

	shaA, shaB := sha64[:40], sha64[24:]
	b, j, env := envOf(store.NewBuild{Ref: "refs/heads/main", SHA: shaA})
	want := append(common(b, j, shaA, "refs/heads/main"), "KOZMIC_BRANCH=main", "API_TOKEN=s3cret")
	if !slices.Equal(env, want) || b.Number != 1 {
		t.Errorf("trusted build #%d: env\n%q\nwant\n%q", b.Number, env, want)
	}

	b, j, env = envOf(store.NewBuild{Ref: "refs/pull/7/head", SHA: shaB, FromFork: true})
	want = append(common(b, j, shaB, "refs/pull/7/head"), "KOZMIC_BRANCH=refs/pull/7/head", "KOZMIC_PULL_REQUEST=7")
	if !slices.Equal(env, want) || b.Number != 2 {
		t.Errorf("fork build #%d: env\n%q\nwant\n%q", b.Number, env, want)
	}

	// A pull request from the repository itself is trusted.
	_, _, env = envOf(store.NewBuild{Ref: "refs/pull/8/head", SHA: shaB})
	if !slices.Contains(env, "API_TOKEN=s3cret") || !slices.Contains(env, "KOZMIC_PULL_REQUEST=8") {
		t.Errorf("pull request from a branch of the repository: env %q", env)
	}
}

// The upload holds kozmic/ and kozmic/src/, the script executable at
// kozmic/script, and the source tree under kozmic/src/ with its modes and
// symbolic links, owned by root; a named pipe is left out.
func TestWriteUpload(t *testing.T) {
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"README": 0o644, "bin/run.sh": 0o755} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte("content of "+name), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, name), mode) // whatever the umask
	}
	if err := os.Symlink("README", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	const script = "#!/bin/sh\necho building\n"

	type entry struct {
		typ      byte
		mode     int64
		body     string
		link     string
		uid, gid int
		owner    string
	}
	read := func(dir string) map[string]entry {
		t.Helper()
		var buf bytes.Buffer
		if err := writeUpload(&buf, dir, script); err != nil {
			t.Fatal(err)
		}
		got := map[string]entry{}
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(tr)
			got[h.Name] = entry{h.Typeflag, h.Mode & int64(fs.ModePerm), string(body), h.Linkname, h.Uid, h.Gid, h.Uname + h.Gname}
		}
	}
	dirEntry := entry{typ: tar.TypeDir, mode: 0o755}
	want := map[string]entry{
		"kozmic/":               dirEntry,
		"kozmic/src/":           dirEntry,
		"kozmic/script":         {typ: tar.TypeReg, mode: 0o755, body: script},
		"kozmic/src/README":     {typ: tar.TypeReg, mode: 0o644, body: "content of README"},
		"kozmic/src/bin/":       dirEntry,
		"kozmic/src/bin/run.sh": {typ: tar.TypeReg, mode: 0o755, body: "content of bin/run.sh"},
		"kozmic/src/link":       {typ: tar.TypeSymlink, mode: 0o777, link: "README"},
	}
	got := read(dir)
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s = %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected entry %s", name)
		}
	}

	// No source tree: the directories and the script alone.
	got = read("")
	if len(got) != 3 || got["kozmic/script"].body != script || got["kozmic/src/"] != dirEntry {
		t.Errorf("upload without a tree = %+v", got)
	}
}

// A tracked path "." (or "./", or "/") stands for the whole repository: a
// change to any file, however deep, gives another cache id, and a commit
// of the same tree the same one.
func TestTrackedDotFollowsTheWholeRepository(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"go.mod": "module x\n", "internal/deep/code.go": "package deep\n"})
	id := func(sha string, tracked ...string) string {
		t.Helper()
		ids, err := gitSource{path: rp.Path, sha: sha}.objectIDs(tracked)
		if err != nil {
			t.Fatal(err)
		}
		for p, oid := range ids {
			if oid == "" {
				t.Fatalf("tracked path %q reads as missing at %s", p, sha)
			}
		}
		return cacheID("sha256:1111", "#!/bin/sh\nmake deps\n", ids)
	}
	first := rp.Git("rev-parse", "HEAD")
	same := rp.Commit(nil, nil) // another commit, the same tree
	deep := rp.Commit(map[string]string{"internal/deep/code.go": "package deep // changed\n"}, nil)
	added := rp.Commit(map[string]string{"docs/new.md": "new\n"}, nil)
	for _, dot := range []string{".", "./", "/"} {
		if id(same, dot) != id(first, dot) {
			t.Errorf("%q: a commit of the same tree gave another cache id", dot)
		}
		if id(deep, dot) == id(same, dot) || id(added, dot) == id(deep, dot) {
			t.Errorf("%q: changing or adding a file deep in the repository kept the cache id", dot)
		}
	}
}

// kozmic exec hashes a working tree as it is on disk: a tracked "." there
// follows every file but git's own, which git rewrites by itself.
func TestTrackedDotInAWorkingTreeLeavesOutGitsOwnFiles(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"go.mod": "module x\n", "internal/deep/code.go": "package deep\n"})
	id := func() string {
		t.Helper()
		ids, err := dirSource{path: rp.Path}.objectIDs([]string{"."})
		if err != nil {
			t.Fatal(err)
		}
		return cacheID("sha256:1111", "#!/bin/sh\nmake deps\n", ids)
	}
	before := id()
	rp.Commit(nil, nil) // rewrites .git's index, logs and refs, not the tree
	if id() != before {
		t.Error("a commit of the same tree changed the cache id of the working tree")
	}
	if err := os.WriteFile(filepath.Join(rp.Path, "internal", "deep", "code.go"), []byte("package deep // changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if id() == before {
		t.Error("changing a file deep in the working tree kept the cache id")
	}
}
