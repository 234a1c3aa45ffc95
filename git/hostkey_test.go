package git

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"kozmic/internal/testrepo"
	"kozmic/internal/testsshd"
)

// The GitHub host keys built in are the ones GitHub publishes, by the
// fingerprints its documentation lists, and they apply to github.com over
// SSH only.
func TestGitHubHostKeysAreThePublishedOnes(t *testing.T) {
	var got []string
	for _, k := range gitHubHostKeys {
		fp, err := Fingerprint(k)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fp)
	}
	want := []string{"SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU", "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
		"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"}
	if !slices.Equal(got, want) {
		t.Errorf("fingerprints %v, want %v", got, want)
	}
	for u, want := range map[string]bool{
		"git@github.com:acme/app.git":         true,
		"ssh://git@GitHub.com/acme/app.git":   true,
		"ssh://git@github.com:2222/acme/app":  false,
		"https://github.com/acme/app.git":     false,
		"git@ghe.example.com:acme/app.git":    false,
		"git@github.com.evil.test:acme/x.git": false,
	} {
		if GitHubSSH(u) != want {
			t.Errorf("GitHubSSH(%q) = %v", u, !want)
		}
	}
}

// authorized is k in authorized_keys form, as Pin is given it.
func authorized(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// Over SSH, the first successful fetch hands the server's host key to Pin;
// with that key pinned the same server is fetched from again, and a server
// that shows another key is refused, by Clone and ResolveRef, with both
// fingerprints named and nothing pinned.
func TestCloneOverSSHPinsTheFirstHostKeyAndRefusesAnother(t *testing.T) {
	rp := testrepo.New(t, map[string]string{"README": "one"})
	sha := rp.Git("rev-parse", "HEAD")
	private, public, err := GenerateDeployKey("kozmic-test")
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := testsshd.NewHostKey(t), testsshd.NewHostKey(t)
	root := filepath.Dir(rp.Path)
	srv := testsshd.Start(t, "127.0.0.1:0", keyA, public, root)
	var pinned []string
	remote := Remote{URL: srv.URL(rp.Path), DeployKey: private, Pin: func(k string) error {
		pinned = append(pinned, k)
		return nil
	}}
	clone := func() error {
		var out bytes.Buffer
		err := Clone(context.Background(), CloneSpec{Remote: remote, Ref: "refs/heads/main", SHA: sha}, t.TempDir(), &out)
		if err != nil {
			t.Logf("git said: %s", out.String())
		}
		return err
	}

	if err := clone(); err != nil {
		t.Fatalf("first clone: %v", err)
	}
	if !slices.Equal(pinned, []string{authorized(keyA.PublicKey())}) {
		t.Fatalf("pinned %q, want key A", pinned)
	}
	remote.HostKey = pinned[0]
	if err := clone(); err != nil || len(pinned) != 1 {
		t.Fatalf("clone with key A pinned: %v, pinned %d keys", err, len(pinned))
	}

	srv.Close()
	testsshd.Start(t, srv.Addr, keyB, public, root)
	fpA, fpB := ssh.FingerprintSHA256(keyA.PublicKey()), ssh.FingerprintSHA256(keyB.PublicKey())
	_, _, resolveErr := ResolveRef(context.Background(), remote, "main")
	for name, err := range map[string]error{"Clone": clone(), "ResolveRef": resolveErr} {
		var hk *HostKeyError
		if !errors.As(err, &hk) || !strings.Contains(err.Error(), "pinned "+fpA) ||
			!strings.Contains(err.Error(), "the server now offers "+fpB) {
			t.Errorf("%s against key B: %v", name, err)
		}
	}
	if len(pinned) != 1 {
		t.Errorf("pinned %d keys", len(pinned))
	}
}
