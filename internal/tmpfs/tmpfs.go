// Package tmpfs mounts small, real filesystems for tests of what Kozmic
// does when its disk fills up.
package tmpfs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Env is the environment variable that turns on the tests that mount
// (these, and the git test that mounts an empty home). Mounting needs root,
// which CI has (.ci/run sets it); a developer's machine may not.
const Env = "KOZMIC_TEST_TMPFS"

// Mount mounts a tmpfs of size bytes on a new temporary directory, returns
// that directory, and unmounts it when the test ends (after the test's
// later cleanups, such as closing a database in it). The test is skipped
// while KOZMIC_TEST_TMPFS is unset; once it is set, a failed mount fails it.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Getenv(Env) == "" {
		t.Skip("set " + Env + "=1 (as root) to run tests on a small tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("kozmic-test", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV,
		"size="+strconv.FormatInt(size, 10)+",mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs on %s (%s is set; mounting needs root): %v", dir, Env, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Something still holds a file there: detach it now, and it
			// goes once that is closed.
			t.Logf("unmount %s: %v; detaching it", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// Fill writes a file into dir until its filesystem has no space left
// (ENOSPC) and returns a function that removes the file again.
func Fill(t testing.TB, dir string) (unfill func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", dir, err)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}
