// Package sharedfixtures finds the conformance material every developer and
// CI run has at ../shared beside the repository (see its README.md), for
// tests that check Kozmic against it. A fresh clone has no ../shared.
package sharedfixtures

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Required is the environment variable that makes a missing ../shared a
// failure instead of a skip; .ci/run sets it.
const Required = "KOZMIC_TEST_SHARED"

// Dir returns the absolute path of ../shared/fixtures/<name> as seen from
// the module's root (the nearest directory above the test's working
// directory with a go.mod). When that directory is absent it skips the
// test, or fails it when KOZMIC_TEST_SHARED=1.
func Dir(t testing.TB, name string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("shared fixtures: %v", err)
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "fixtures", name)
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		if os.Getenv(Required) == "1" {
			t.Fatalf("shared fixtures: %s is absent and %s=1 requires it", dir, Required)
		}
		t.Skipf("shared fixtures: %s is absent (a fresh clone has no ../shared); set %s=1 to require it", dir, Required)
	}
	return dir
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod.
func moduleRoot() (string, error) {
	start, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := start; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod at or above %s: %w", start, os.ErrNotExist)
		}
		dir = parent
	}
}
