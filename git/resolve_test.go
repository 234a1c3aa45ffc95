package git

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kozmic/internal/testrepo"
)

// refRepo is a repository with two commits on main, a branch, an annotated
// and a lightweight tag, and a branch and a tag of the same name.
type refRepo struct {
	*testrepo.Repo
	first, second string // commits; main is at second
	annotated     string // the object id of the annotated tag v1.0
}

func newRefRepo(t *testing.T) refRepo {
	rp := testrepo.New(t, map[string]string{"README": "one"})
	r := refRepo{Repo: rp, first: rp.Git("rev-parse", "HEAD")}
	rp.Git("branch", "feature")
	rp.Git("tag", "-a", "v1.0", "-m", "release 1.0")
	rp.Git("tag", "light")
	rp.Git("tag", "both")
	r.annotated = rp.Git("rev-parse", "v1.0")
	r.second = rp.Commit(map[string]string{"README": "two"}, nil)
	rp.Git("branch", "both")
	return r
}

type refCase struct{ ref, fullRef, sha string }

func checkResolve(t *testing.T, url, key string, cases []refCase) {
	t.Helper()
	for _, c := range cases {
		fullRef, sha, head, err := ResolveRef(context.Background(), Remote{URL: url, DeployKey: key}, c.ref)
		if err != nil || fullRef != c.fullRef || sha != c.sha || head != "main" {
			t.Errorf("ResolveRef(%s, %q) = %q, %.12s, default branch %q, %v; want %q, %.12s, main", url, c.ref, fullRef, sha, head, err, c.fullRef, c.sha)
		}
	}
}

// resolveFails checks that ResolveRef fails with a message containing each of want.
func resolveFails(t *testing.T, url, ref string, want ...string) {
	t.Helper()
	fullRef, sha, _, err := ResolveRef(context.Background(), Remote{URL: url}, ref)
	if err == nil {
		t.Errorf("ResolveRef(%s, %q) = %q, %q; want an error", url, ref, fullRef, sha)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("ResolveRef(%s, %q) error %q lacks %q", url, ref, err, w)
		}
	}
}

func TestResolveRefInLocalRepository(t *testing.T) {
	r := newRefRepo(t)
	if r.annotated == r.first {
		t.Fatal("v1.0 is not an annotated tag")
	}
	cases := []refCase{
		{"", "refs/heads/main", r.second},
		{"HEAD", "refs/heads/main", r.second},
		{"main", "refs/heads/main", r.second},
		{"  main\n", "refs/heads/main", r.second},
		{"feature", "refs/heads/feature", r.first},
		{"v1.0", "refs/tags/v1.0", r.first}, // peeled to the commit
		{"light", "refs/tags/light", r.first},
		{"both", "refs/heads/both", r.second}, // the branch before the tag
		{"refs/tags/both", "refs/tags/both", r.first},
		{"refs/heads/feature", "refs/heads/feature", r.first},
		{"refs/tags/v1.0", "refs/tags/v1.0", r.first},
		{r.first, r.first, r.first},
		{strings.ToUpper(r.first), r.first, r.first},
		// Only a local repository answers these.
		{r.first[:8], r.first, r.first},
		{"main~1", r.first, r.first},
	}
	checkResolve(t, r.Path, "", cases)
	checkResolve(t, "file://"+r.Path, "", cases)

	resolveFails(t, r.Path, "nope", "no branch, tag or commit nope in "+r.Path)
	resolveFails(t, r.Path, "refs/heads/nope", "no ref refs/heads/nope in "+r.Path)
	resolveFails(t, r.Path, strings.Repeat("0", 40), "no branch, tag or commit 0000000000")
	resolveFails(t, r.Path, "--upload-pack=touch x", "cannot start with -")

	missing := filepath.Join(t.TempDir(), "missing")
	resolveFails(t, missing, "main", "could not reach "+missing+": '"+missing+"' does not appear to be a git repository")
	resolveFails(t, "relative/path", "main", "not a git URL")

	empty := testrepo.Init(t).Path
	resolveFails(t, empty, "", empty+" has no commit on its default branch")
	resolveFails(t, empty, "main", "no branch, tag or commit main in "+empty)
}

// A repository behind an SSH URL is resolved by ls-remote alone, through a
// fake ssh that runs git's command here; it gets the deploy key, which is
// removed afterwards.
func TestResolveRefOverSSH(t *testing.T) {
	r := newRefRepo(t)
	bin, record := t.TempDir(), filepath.Join(t.TempDir(), "record")
	fake := `#!/bin/sh
key="" host="" cmd=""
while [ $# -gt 0 ]; do
  case "$1" in
    -i) key="$2"; shift;;
    -o|-p|-F) shift;;
    -*) ;;
    *) if [ -z "$host" ]; then host="$1"; else cmd="$1"; fi;;
  esac
  shift
done
if [ "$host" = "git@down.invalid" ]; then
  echo "ssh: connect to host down.invalid port 22: Connection refused" >&2
  echo "fatal: Could not read from remote repository." >&2
  exit 255
fi
if [ -n "$key" ]; then { echo "key=$key"; stat -c 'mode=%a' "$key"; echo "content=$(cat "$key")"; } > ` + record + `; fi
exec sh -c "$cmd"
`
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, v := range []string{"GIT_SSH_COMMAND", "GIT_SSH"} {
		t.Setenv(v, "") // restored afterwards
		os.Unsetenv(v)
	}

	url := "git@fake.invalid:" + r.Path
	checkResolve(t, url, "", []refCase{
		{"", "refs/heads/main", r.second},
		{"main", "refs/heads/main", r.second},
		{"v1.0", "refs/tags/v1.0", r.first},
		{"light", "refs/tags/light", r.first},
		{"both", "refs/heads/both", r.second},
		{"refs/tags/both", "refs/tags/both", r.first},
		{r.first, r.first, r.first},
		// Not checked: the build's checkout fails if the remote lacks it.
		{strings.Repeat("ab", 20), strings.Repeat("ab", 20), strings.Repeat("ab", 20)},
	})
	resolveFails(t, url, "nope", "no branch or tag nope in "+url)
	resolveFails(t, url, "refs/heads/nope", "no ref refs/heads/nope in "+url)
	resolveFails(t, url, r.first[:8], "no branch or tag "+r.first[:8], "full 40-character SHA")
	resolveFails(t, url, "main~1", "no branch or tag main~1 in "+url)
	resolveFails(t, "git@down.invalid:acme/x.git", "main",
		"could not reach git@down.invalid:acme/x.git: ssh: connect to host down.invalid port 22: Connection refused")

	checkResolve(t, "ssh://git@fake.invalid"+r.Path, testKey,
		[]refCase{{"feature", "refs/heads/feature", r.first}})
	checkKeyUsedAndGone(t, record)
}

// An unreachable server is reported with git's reason, and a password in
// the URL is not repeated.
func TestResolveRefUnreachable(t *testing.T) {
	resolveFails(t, "git://127.0.0.1:1/acme/x.git", "main",
		"could not reach git://127.0.0.1:1/acme/x.git: unable to connect to 127.0.0.1: ", "Connection refused")
	_, _, _, err := ResolveRef(context.Background(), Remote{URL: "https://kozmic:s3cret@127.0.0.1:1/acme/x.git"}, "main")
	if err == nil || !strings.Contains(err.Error(), "could not reach https://kozmic:xxxxx@127.0.0.1:1/acme/x.git: ") ||
		strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v", err)
	}
}

// git may quote the URL it was given in its complaint: the password in it,
// as typed or escaped, is masked before the complaint is shown.
func TestWhatGitSaidNeverShowsTheURLsPassword(t *testing.T) {
	const u = "https://ann:p@ss:w0rd@git.example.com/acme/x.git"
	for _, said := range []string{
		"repository '" + u + "' not found",
		"repository 'https://ann:p%40ss%3Aw0rd@git.example.com/acme/x.git/' not found",
	} {
		if got := maskPassword(said, u); strings.Contains(got, "w0rd") || !strings.Contains(got, "ann:xxxxx@git.example.com/acme/x.git") {
			t.Errorf("maskPassword(%q) = %q", said, got)
		}
	}
}
