package git

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, u := range []string{
		"https://github.com/acme/widget.git",
		"https://kozmic:token@git.example.com/acme/widget",
		"http://git.example.com:8080/acme/widget.git",
		"ssh://git@github.com/acme/widget.git",
		"ssh://git@git.example.com:2222/acme/widget.git",
		"ssh://git@[::1]:22/acme/widget.git",
		"git://git.example.com/acme/widget.git",
		"file:///srv/git/widget.git",
		"git@github.com:acme/widget.git",
		"deploy@git.example.com:/srv/git/widget.git",
		"git.example.com:acme/widget.git",
		"/srv/git/widget.git",
		"/srv/git/with space.git",
	} {
		if err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", u, err)
		}
	}
	for u, want := range map[string]string{
		"":                                  "empty",
		"   ":                               "empty",
		"-uhoh":                             "cannot start with -",
		"--upload-pack=touch /tmp/x":        "cannot start with -",
		"ext::sh -c touch% /tmp/x":          "remote helpers",
		"fd::17":                            "remote helpers",
		"transport::https://x.example/y":    "remote helpers",
		"ftp://git.example.com/widget.git":  "https://, http://, ssh://, git:// and file:// only",
		"HTTPS://git.example.com/w.git":     "https://, http://, ssh://, git:// and file:// only",
		"git+ssh://git.example.com/w.git":   "https://, http://, ssh://, git:// and file:// only",
		"relative/path":                     "not a git URL",
		"./widget":                          "not a git URL",
		"widget":                            "not a git URL",
		"https:///widget.git":               "no valid host name",
		"ssh://-oProxyCommand=touch/w":      "no valid host name",
		"ssh://-oProxyCommand=x@host/w.git": "user name starts with -",
		"git@:acme/widget.git":              "no valid host name",
		"-oProxyCommand=x:acme/widget.git":  "cannot start with -",
		"git@git.example.com:":              "no repository path",
		"@git.example.com:acme/w.git":       "invalid user name",
		"https://git.example.com/w.git\n":   "control character",
		"/srv/git/w.git\x00":                "control character",
		"file://host/srv/git/w.git":         "file:///absolute/path",
		"file://relative":                   "file:///absolute/path",
	} {
		err := CheckURL(u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckURL(%q) = %v, want an error saying %q", u, err, want)
		}
	}
}

// An ext:: URL never runs its command: Clone and ResolveRef refuse it, and
// git itself refuses it in the environment they give it even where git's
// configuration would allow it.
func TestExtTransportNeverRuns(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	ext := "ext::sh -c touch% " + marker
	ran := func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}
	// A configuration that lets ext run, so only Kozmic's own guards stop it.
	t.Setenv("GIT_CONFIG_COUNT", "1")
	t.Setenv("GIT_CONFIG_KEY_0", "protocol.ext.allow")
	t.Setenv("GIT_CONFIG_VALUE_0", "always")

	err := Clone(context.Background(), CloneSpec{Remote: Remote{URL: ext}, Ref: "refs/heads/main", SHA: strings.Repeat("a", 40)}, t.TempDir(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "remote helpers") || ran() {
		t.Errorf("Clone: err = %v, ran = %v", err, ran())
	}
	if _, _, _, err := ResolveRef(context.Background(), Remote{URL: ext}, "main"); err == nil || !strings.Contains(err.Error(), "remote helpers") || ran() {
		t.Errorf("ResolveRef: err = %v, ran = %v", err, ran())
	}

	if exec.Command("git", "ls-remote", "--", ext).Run(); !ran() {
		t.Fatal("git did not run the ext command even when allowed to: this test shows nothing")
	}
	os.Remove(marker)
	tr, err := newTransport(Remote{URL: ext})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	// run drops the configuration of Kozmic's environment: given to it
	// explicitly, it still lets ext run as far as configuration goes.
	var stderr bytes.Buffer
	run(context.Background(), cmd{kind: resolving, stderr: &stderr, args: []string{"ls-remote", "--", ext},
		env: append(tr.env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=protocol.ext.allow", "GIT_CONFIG_VALUE_0=always")})
	if ran() || !strings.Contains(stderr.String(), "transport 'ext' not allowed") {
		t.Errorf("in the environment of git commands git ran the ext command (%v) or said:\n%s", ran(), stderr.String())
	}
}

func TestFirstComplaint(t *testing.T) {
	for stderr, want := range map[string]string{
		"fatal: '/x' does not appear to be a git repository\nfatal: Could not read from remote repository.\n":                                                              "'/x' does not appear to be a git repository",
		"Warning: Permanently added 'h' (ED25519) to the list of known hosts.\r\ngit@h: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n": "git@h: Permission denied (publickey).",
		"fatal: unable to connect to h:\nh[0: 10.0.0.1]: errno=Connection refused\n":                                                                                       "unable to connect to h: h[0: 10.0.0.1]: errno=Connection refused",
		"": "",
	} {
		if got := firstComplaint(stderr); got != want {
			t.Errorf("firstComplaint(%q) = %q, want %q", stderr, got, want)
		}
	}
}

// OnServer tells the URLs that reach into this machine's file system,
// which only admins may make projects of, from those of git servers.
func TestOnServerTellsPathsAndFileURLs(t *testing.T) {
	for u, want := range map[string]bool{
		"/srv/git/widget.git":                true,
		"file:///srv/git/widget.git":         true,
		"https://github.com/acme/widget.git": false,
		"git@github.com:acme/widget.git":     false,
		"ssh://git@host/srv/git/widget.git":  false,
		"ext::sh -c id":                      false,
		"relative/path":                      false,
	} {
		if got := OnServer(u); got != want {
			t.Errorf("OnServer(%q) = %v, want %v", u, got, want)
		}
	}
}

func TestRemoteHostPath(t *testing.T) {
	for u, want := range map[string][2]string{
		"https://github.com/acme/widget.git":            {"github.com", "acme/widget.git"},
		"https://kozmic:token@GitHub.com:443/acme/w":    {"GitHub.com", "acme/w"},
		"http://127.0.0.1:8080/acme/widget":             {"127.0.0.1", "acme/widget"},
		"ssh://git@github.com:22/acme/widget.git":       {"github.com", "acme/widget.git"},
		"git://git.example.com/acme/widget.git":         {"git.example.com", "acme/widget.git"},
		"git@github.com:acme/widget.git":                {"github.com", "acme/widget.git"},
		"github.com:/acme/widget.git":                   {"github.com", "acme/widget.git"},
		"https://github.com/acme/..%2F..%2Fother/x.git": {"github.com", "acme/..%2F..%2Fother/x.git"},
	} {
		host, path, ok := RemoteHostPath(u)
		if !ok || host != want[0] || path != want[1] {
			t.Errorf("RemoteHostPath(%q) = %q, %q, %v; want %q, %q", u, host, path, ok, want[0], want[1])
		}
	}
	for _, u := range []string{"/srv/git/widget.git", "file:///srv/git/widget.git", "ext::sh -c id", "",
		"https://github.com/acme/widget.git?x=1", "https://github.com/acme/widget.git#main"} {
		if host, path, ok := RemoteHostPath(u); ok {
			t.Errorf("RemoteHostPath(%q) = %q, %q, true; want not ok", u, host, path)
		}
	}
}
