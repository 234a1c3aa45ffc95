package git

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"kozmic/internal/testrepo"
	"kozmic/internal/testsshd"
	"kozmic/internal/tmpfs"
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

// GitHub's published host keys, and they alone, are trusted for every
// spelling of its SSH servers that reaches them: ssh.github.com on the
// HTTPS port (443), a host name in capitals or with DNS's final dot, a port
// written with a leading zero. ssh checks them strictly (never trusting on
// first use), and a pinned key does not replace GitHub's.
func TestGitHubsPublishedKeysCoverSSHOverHTTPSPort(t *testing.T) {
	other := authorized(testsshd.NewHostKey(t).PublicKey())
	want := ""
	for _, k := range gitHubHostKeys {
		want += hostKeyAlias + " " + k + "\n"
	}
	for u, github := range map[string]bool{
		"ssh://git@ssh.github.com:443/acme/app.git": true,
		"ssh://git@SSH.GitHub.com:443/acme/app.git": true,
		"ssh://git@ssh.github.com.:443/acme/app":    true,
		"git@github.com.:acme/app.git":              true,
		"git@GITHUB.COM.:acme/app.git":              true,
		"ssh://git@github.com.:22/acme/app.git":     true,
		"ssh://git@github.com:022/acme/app.git":     true,
		"ssh://git@github.com:443/acme/app.git":     false, // not GitHub's SSH server
		"ssh://git@ssh.github.com:2222/acme/app":    false,
		"git@ssh.github.com.evil.test:acme/app.git": false,
		"git@github.com..:acme/app.git":             false,
		"git@evilgithub.com:acme/app.git":           false,
	} {
		if GitHubSSH(u) != github {
			t.Errorf("GitHubSSH(%q) = %v", u, !github)
		}
		tr, err := newTransport(Remote{URL: u, HostKey: other})
		if err != nil {
			t.Fatal(err)
		}
		known, err := os.ReadFile(tr.knownHosts())
		tr.close()
		if err != nil {
			t.Fatal(err)
		}
		if github && (string(known) != want || !strings.Contains(tr.env[0], "StrictHostKeyChecking=yes")) {
			t.Errorf("%s trusts\n%s\nwith %s; want GitHub's keys alone", u, known, tr.env[0])
		}
		if !github && string(known) != hostKeyAlias+" "+other+"\n" {
			t.Errorf("%s trusts\n%s\nwant the pinned key alone", u, known)
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
	_, _, _, resolveErr := ResolveRef(context.Background(), remote, "main")
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

// ownHomeEnv marks the run of the test binary that
// TestSSHIgnoresTheOperatorsSSHConfig starts in a mount namespace of its
// own, where the account's home directory is an empty tmpfs.
const ownHomeEnv = "KOZMIC_TEST_OWN_HOME"

// The ssh configuration and keys of the account Kozmic runs as never apply
// to a project's fetch: not its default key, an IdentityFile or the keys of
// its agent (a server that lets that account in refuses the project, with
// or without a deploy key of its own), nor a ProxyCommand; the deploy key
// still works.
func TestSSHIgnoresTheOperatorsSSHConfig(t *testing.T) {
	if os.Getenv(ownHomeEnv) == "" {
		// ssh finds ~/.ssh by the account's entry in /etc/passwd, not by
		// HOME, so the test runs again where that directory is its own: a
		// mount namespace with an empty home mounted over the account's.
		// That takes root, as the tmpfs tests do (CI has it).
		if os.Getenv(tmpfs.Env) == "" {
			t.Skip("set " + tmpfs.Env + "=1 (as root) to run tests that mount")
		}
		c := exec.Command("unshare", "--mount", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
		c.Env = append(os.Environ(), ownHomeEnv+"=1")
		out, err := c.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
			t.Fatalf("in a mount namespace of its own (unshare --mount; %s is set, so root is expected): %v\n%s", tmpfs.Env, err, out)
		}
		return
	}
	account, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", account.HomeDir, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatalf("mount an empty home over %s: %v", account.HomeDir, err)
	}
	rp := testrepo.New(t, map[string]string{"README": "one"})
	sha := rp.Git("rev-parse", "HEAD")
	operatorKey, operatorPublic, err := GenerateDeployKey("operator")
	if err != nil {
		t.Fatal(err)
	}
	deployKey, deployPublic, err := GenerateDeployKey("deploy")
	if err != nil {
		t.Fatal(err)
	}
	hostKey := testsshd.NewHostKey(t)
	pinned := authorized(hostKey.PublicKey())
	root := filepath.Dir(rp.Path)
	operatorOnly := testsshd.Start(t, "127.0.0.1:0", hostKey, operatorPublic, root)
	deployOnly := testsshd.Start(t, "127.0.0.1:0", hostKey, deployPublic, root)

	// The account's ssh: its default key and another named in its
	// configuration are the key operatorOnly lets in, so is its agent's, and
	// connections to deployOnly go through a ProxyCommand that notes it ran.
	proxied := filepath.Join(t.TempDir(), "proxied")
	_, deployPort, _ := net.SplitHostPort(deployOnly.Addr)
	dotSSH := filepath.Join(account.HomeDir, ".ssh")
	for name, content := range map[string]string{
		"id_ed25519": operatorKey,
		"operator":   operatorKey,
		"config": "Host *\n\tIdentityFile ~/.ssh/operator\n" +
			"Match exec \"test %p = " + deployPort + "\"\n\tProxyCommand sh -c 'echo ran >> " + proxied + "'\n",
	} {
		if err := os.MkdirAll(dotSSH, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dotSSH, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := ssh.ParseRawPrivateKey([]byte(operatorKey))
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", serveAgent(t, keyring))

	// By hand, git and ssh do use all that: the test can fail.
	byHand := func(u string) error {
		c := exec.Command("git", "ls-remote", u, "HEAD")
		c.Env = append(os.Environ(), "GIT_SSH_COMMAND=ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null")
		return c.Run()
	}
	if err := byHand(operatorOnly.URL(rp.Path)); err != nil {
		t.Fatalf("the account's own ssh is not let in by the server (%v): this test shows nothing", err)
	}
	if byHand(deployOnly.URL(rp.Path)); !exists(proxied) {
		t.Fatal("the account's own ssh does not run the ProxyCommand: this test shows nothing")
	}
	os.Remove(proxied)

	for name, r := range map[string]Remote{
		"without a deploy key": {URL: operatorOnly.URL(rp.Path), HostKey: pinned},
		"with a deploy key":    {URL: operatorOnly.URL(rp.Path), HostKey: pinned, DeployKey: deployKey},
	} {
		if _, got, _, err := ResolveRef(context.Background(), r, "main"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
			t.Errorf("%s, a server that lets in only the account's key answered: %.12s, %v", name, got, err)
		}
	}
	r := Remote{URL: deployOnly.URL(rp.Path), HostKey: pinned, DeployKey: deployKey}
	if _, got, _, err := ResolveRef(context.Background(), r, "main"); err != nil || got != sha {
		t.Errorf("with the deploy key: %.12s, %v; want %.12s", got, err, sha)
	}
	if exists(proxied) {
		t.Error("the account's ProxyCommand ran")
	}
}

// serveAgent serves keyring as an ssh agent on a unix socket until the end
// of the test, and returns the socket's path.
func serveAgent(t *testing.T, keyring agent.Agent) string {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(keyring, c) }()
		}
	}()
	return sock
}

// exists says whether there is a file at path.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
