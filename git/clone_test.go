package git

import (
	"bytes"
	"context"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kozmic/internal/testrepo"
)

// A fetch over SSH gets the deploy key from a file only its owner can read,
// and the file is gone afterwards. git runs for real; the ssh it calls is a
// script that records what it was given and fails, so nothing leaves the
// machine.
func TestCloneUsesDeployKeyOverSSH(t *testing.T) {
	bin, record := t.TempDir(), filepath.Join(t.TempDir(), "record")
	fake := `#!/bin/sh
key=""
while [ $# -gt 0 ]; do
  case "$1" in -i) key="$2"; shift;; esac
  shift
done
{ echo "key=$key"; stat -c 'mode=%a' "$key"; echo "content=$(cat "$key")"; } > ` + record + `
exit 255
`
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	err := Clone(context.Background(), CloneSpec{Remote: Remote{URL: "ssh://git@git.example.invalid/acme/private.git", DeployKey: testKey},
		Ref: "refs/heads/main", SHA: strings.Repeat("a", 40)}, t.TempDir(), io.Discard)
	if err == nil {
		t.Fatal("clone through a failing ssh succeeded")
	}
	checkKeyUsedAndGone(t, record)
}

// testKey is the deploy key the tests' fake ssh is given.
const testKey = "-----BEGIN KEY-----\nsecret-key-material"

// checkKeyUsedAndGone checks what a fake ssh recorded in the file record:
// that it was given testKey in a file only its owner could read, and that
// the file is gone now.
func checkKeyUsedAndGone(t *testing.T, record string) {
	t.Helper()
	got, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("ssh was never given the deploy key: %v", err)
	}
	rec := string(got)
	if !strings.Contains(rec, "mode=600") || !strings.Contains(rec, "content="+testKey) {
		t.Errorf("ssh saw:\n%s", rec)
	}
	keyFile := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(rec, "key="), "\n", 2)[0])
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("key file %s still exists after git ended (%v)", keyFile, err)
	}
}

// Clone checks out the commit it is given, not the ref's tip; a commit the
// repository lacks is an error, with git's complaint in out in \r\n lines.
func TestCloneChecksOutTheCommit(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"README": "one"})
	first := rp.Git("rev-parse", "HEAD")
	rp.Commit(map[string]string{"README": "two"}, nil)
	dir := t.TempDir()
	var out bytes.Buffer
	if err := Clone(context.Background(), CloneSpec{Remote: Remote{URL: rp.Path}, Ref: "refs/heads/main", SHA: first}, dir, &out); err != nil {
		t.Fatalf("Clone: %v\n%s", err, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "README")); err != nil || string(b) != "one" {
		t.Errorf("README = %q, %v; want the first commit's", b, err)
	}
	head, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil || strings.TrimSpace(string(head)) != first {
		t.Errorf("HEAD = %q, %v; want %s", head, err, first)
	}

	out.Reset()
	missing := strings.Repeat("0", 40)
	err = Clone(context.Background(), CloneSpec{Remote: Remote{URL: "file://" + rp.Path}, Ref: "refs/heads/gone", SHA: missing}, t.TempDir(), &out)
	if err == nil || err.Error() != "could not fetch "+missing+" or refs/heads/gone" {
		t.Errorf("Clone of a missing commit: %v", err)
	}
	if log := out.String(); !strings.Contains(log, "\r\n") || strings.Contains(strings.ReplaceAll(log, "\r\n", ""), "\n") {
		t.Errorf("git's output is not in \\r\\n lines: %q", log)
	}
}

// ObjectIDs names a file's blob and a directory's tree at the commit asked
// for, not at the branch's tip, and "" for a path the commit lacks.
func TestObjectIDs(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"deps.txt": "v1", "vendor/lib.txt": "lib"})
	first := rp.Git("rev-parse", "HEAD")
	rp.Commit(map[string]string{"deps.txt": "v2"}, nil)
	ids, err := ObjectIDs(rp.Path, first, []string{"deps.txt", "/vendor", "gone.txt"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"deps.txt": rp.Git("rev-parse", first+":deps.txt"),
		"/vendor":  rp.Git("rev-parse", first+":vendor"),
		"gone.txt": "",
	}
	if !maps.Equal(ids, want) || ids["deps.txt"] == rp.Git("rev-parse", "HEAD:deps.txt") {
		t.Errorf("ObjectIDs = %v, want %v", ids, want)
	}
	if _, err := ObjectIDs(t.TempDir(), first, []string{"deps.txt"}); err == nil {
		t.Error("ObjectIDs outside a repository succeeded")
	}
}

// A SHA or ref that reads as an option reaches git only as an argument:
// Clone with SHA "--orphan=pwn" fails, and no branch pwn is made.
func TestCloneTakesNoOptionFromTheSpec(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"README": "one"})
	dir := t.TempDir()
	var out bytes.Buffer
	err := Clone(context.Background(), CloneSpec{Remote: Remote{URL: rp.Path}, Ref: "refs/heads/main", SHA: "--orphan=pwn"}, dir, &out)
	if err == nil {
		t.Fatalf("Clone with SHA --orphan=pwn succeeded:\n%s", out.String())
	}
	if branches, err := exec.Command("git", "-C", dir, "branch", "--list", "pwn").Output(); err != nil || len(branches) != 0 {
		t.Errorf("branch pwn: %q, %v", branches, err)
	}
	if refs, err := exec.Command("git", "-C", dir, "rev-parse", "--verify", "--quiet", "refs/kozmic/build").Output(); err != nil || len(refs) == 0 {
		t.Errorf("the fallback fetch of the ref did not run, so the switch was never tried: %q, %v", refs, err)
	}
}
