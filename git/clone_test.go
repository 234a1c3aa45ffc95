package git

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

	err := clone(context.Background(), cloneSpec{url: "ssh://git@git.example.invalid/acme/private.git",
		ref: "refs/heads/main", sha: strings.Repeat("a", 40), deployKey: "-----BEGIN KEY-----\nsecret-key-material"}, t.TempDir(), io.Discard)
	if err == nil {
		t.Fatal("clone through a failing ssh succeeded")
	}
	got, rerr := os.ReadFile(record)
	if rerr != nil {
		t.Fatalf("ssh was never called with the key: %v", rerr)
	}
	rec := string(got)
	if !strings.Contains(rec, "mode=600") || !strings.Contains(rec, "content=-----BEGIN KEY-----\nsecret-key-material") {
		t.Errorf("ssh saw:\n%s", rec)
	}
	keyFile := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(rec, "key="), "\n", 2)[0])
	if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
		t.Errorf("key file %s still exists after the fetch (%v)", keyFile, err)
	}
}
