package gh

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"kozmic/store"
)

// GitHub's published example: https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
func TestVerifySignatureWithGitHubsTestVector(t *testing.T) {
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(secret, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if err := VerifySignature(secret, want, bytes.NewReader(body)); err != nil {
		t.Errorf("valid signature refused: %v", err)
	}
	for _, bad := range []string{"", "sha256=", "sha256=zz", want[:len(want)-1] + "0",
		"sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"} {
		if err := VerifySignature(secret, bad, bytes.NewReader(body)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("signature %q accepted", bad)
		}
	}
	if err := VerifySignature([]byte("another secret"), want, bytes.NewReader(body)); !errors.Is(err, ErrBadSignature) {
		t.Error("a signature under another secret was accepted")
	}
}

// fixture reads one of our webhook payloads in testdata/webhooks, which
// the handlers' tests deliver too.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseWebhookFixtures(t *testing.T) {
	const title = "Read tide tables from the harbour feed"
	tests := []struct {
		file, event string
		forge       Forge
		want        Trigger
	}{
		{"push_with-new-branch.json", "push", ForgeGitHub, Trigger{Build: true, Ref: "refs/heads/tide-tables",
			SHA: "a87336bc6ee7a9a14638b8f4f962dd83205ac97b", Author: "Mira Okafor", Message: "Add the tide table parser", By: "mira-okafor"}},
		{"push_tag-deleted.json", "push", ForgeGitHub, Trigger{Reason: "the ref was deleted"}},
		{"pull_request_opened.json", "pull_request", ForgeGitHub, Trigger{Build: true, Ref: "refs/pull/7/head",
			SHA: "722ef5e131cdbb0b1fa8045cb3a1d6d84995e669", Author: "mira-okafor", Message: title, PR: 7, By: "mira-okafor"}},
		{"pull_request_labeled.json", "pull_request", ForgeGitHub, Trigger{Reason: "pull request labeled"}},
		{"pull_request_synchronize.json", "pull_request", ForgeGitHub, Trigger{Build: true, Ref: "refs/pull/7/head",
			SHA: "6200772f204a430d1991bfcbd14acd0e9deb2cc5", Author: "mira-okafor", Message: title, PR: 7, By: "mira-okafor"}},
		{"pull_request_closed.json", "pull_request", ForgeGitHub, Trigger{Reason: "pull request closed"}},
		{"pull_request_reopened.json", "pull_request", ForgeGitHub, Trigger{Build: true, Ref: "refs/pull/7/head",
			SHA: "6200772f204a430d1991bfcbd14acd0e9deb2cc5", Author: "mira-okafor", Message: title, PR: 7, By: "mira-okafor"}},
		{"ping.json", "ping", ForgeGitHub, Trigger{Reason: "pong"}},
		// Gitea and Forgejo send GitHub's push shape with fields of their own.
		{"gitea_push.json", "push", ForgeGitea, Trigger{Build: true, Ref: "refs/heads/main", SHA: "c00a59055d4606f062751937fba2f40957dd3622",
			Author: "Jonas Reiter", Message: "Pin the lamp schedule to UTC\n\nThe harbour office publishes local times.\n", By: "jonas"}},
		{"forgejo_push.json", "push", ForgeGitea, Trigger{Build: true, Ref: "refs/heads/release/1.2", SHA: "befaa25de150d9ec658b0b12897bff38af11cca2",
			Author: "Ana Ilić", Message: "Dim the breakwater lamp at dawn\n", By: "ana"}},
		// Their pull requests are never trusted: one without a fork has the
		// scope of its ref, one from a fork that of the fork's repository id.
		{"gitea_pull_request_agit.json", "pull_request", ForgeGitea, Trigger{Build: true, Ref: "refs/pull/4/head",
			SHA: "5b1e0d7c9f2a4b6e8d0c1a3f5e7b9d2c4a6f8e01", Author: "kai", Message: "Let the lamps blink in colour", PR: 4, By: "kai", FromFork: true}},
		{"forgejo_pull_request_fork.json", "pull_request", ForgeGitea, Trigger{Build: true, Ref: "refs/pull/12/head",
			SHA: "9d4c2b7a1e3f5a6b8c0d2e4f6a8b0c1d3e5f7a92", Author: "lena", Message: "Dim the harbour lamps in fog", PR: 12, By: "lena",
			FromFork: true, ForkRepoID: 58, ForkRepo: "lena/harbor-lights"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseWebhook(tt.forge, tt.event, fixture(t, tt.file))
			if tt.event != "ping" {
				tt.want.DefaultBranch = "main" // every fixture's repository's
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseWebhook = %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
	for _, unhandled := range []string{"create", "delete"} {
		if _, err := ParseWebhook(ForgeGitHub, unhandled, fixture(t, unhandled+".json")); !errors.Is(err, ErrUnhandledEvent) {
			t.Errorf("%s event: err = %v, want ErrUnhandledEvent", unhandled, err)
		}
	}
	if _, err := ParseWebhook(ForgeGitHub, "push", []byte(`{"ref": 12`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("broken JSON: err = %v, want ErrMalformed", err)
	}
}

func TestParseWebhookSkipsAndForks(t *testing.T) {
	for _, msg := range []string{"fix typo [ci skip]", "docs [SKIP CI]\n\nmore"} {
		body := []byte(`{"ref":"refs/heads/main","after":"abc","head_commit":{"message":` + strconv.Quote(msg) + `}}`)
		if got, err := ParseWebhook(ForgeGitHub, "push", body); err != nil || got.Build {
			t.Errorf("%q: %+v, %v; want no build", msg, got, err)
		}
	}
	fork := []byte(`{"action":"opened","pull_request":{"number":9,"title":"t","user":{"login":"eve"},
		"head":{"sha":"f00f00f00f00f00f00f00f00f00f00f00f00f00f","repo":{"id":2,"full_name":"eve/harbor-lights"}},
		"base":{"sha":"b00","repo":{"id":1,"full_name":"lanternfish/harbor-lights"}}}}`)
	got, err := ParseWebhook(ForgeGitHub, "pull_request", fork)
	if err != nil || !got.Build || !got.FromFork || got.ForkRepoID != 2 || got.ForkRepo != "eve/harbor-lights" || got.Ref != "refs/pull/9/head" {
		t.Errorf("fork pull request = %+v, %v", got, err)
	}
	// A deleted fork: GitHub sends no head repository.
	deleted := []byte(`{"action":"reopened","pull_request":{"number":9,"title":"t","user":{"login":"eve"},
		"head":{"sha":"f00f00f00f00f00f00f00f00f00f00f00f00f00f","repo":null},
		"base":{"sha":"b00","repo":{"id":1,"full_name":"lanternfish/harbor-lights"}}}}`)
	if got, err := ParseWebhook(ForgeGitHub, "pull_request", deleted); err != nil || !got.FromFork || got.ForkRepoID != 0 || got.ForkRepo != "" {
		t.Errorf("pull request from a deleted fork = %+v, %v", got, err)
	}
	// The fork's name is shown on pages and in logs: nothing else than owner/name passes.
	for _, name := range []string{"eve", "eve/x/y", "eve/<b>", "eve/" + strings.Repeat("x", 300)} {
		odd := strings.Replace(string(fork), `"eve/harbor-lights"`, strconv.Quote(name), 1)
		if got, err := ParseWebhook(ForgeGitHub, "pull_request", []byte(odd)); !errors.Is(err, ErrMalformed) {
			t.Errorf("fork named %.40q: %+v, %v; want ErrMalformed", name, got, err)
		}
	}
	same, err := ParseWebhook(ForgeGitHub, "pull_request", fixture(t, "pull_request_opened.json"))
	if err != nil || same.FromFork || same.ForkRepoID != 0 {
		t.Errorf("same-repository pull request marked as a fork: %+v, %v", same, err)
	}
}

// A build whose SHA is not a full object name, or whose ref git would not
// take as a ref, is ErrMalformed, from a push and from a pull request alike.
func TestParseWebhookRefusesSHAsAndRefsGitWouldMisread(t *testing.T) {
	sha := strings.Repeat("a", 40)
	for _, tt := range []struct{ event, body string }{
		{"push", `{"ref":"refs/heads/main","after":"--orphan=pwn"}`},
		{"push", `{"ref":"refs/heads/main","after":"refs/heads/main"}`},
		{"push", `{"ref":"refs/heads/a..b","after":"` + sha + `"}`},
		{"push", `{"ref":"refs/heads/a\rdata: x","after":"` + sha + `"}`},
		{"push", `{"ref":"--upload-pack=x","after":"` + sha + `"}`},
		{"pull_request", `{"action":"opened","pull_request":{"number":9,"head":{"sha":"f00"}}}`},
		// The default branch names what a public badge shows.
		{"push", `{"ref":"refs/heads/main","after":"` + sha + `","repository":{"default_branch":"a..b"}}`},
		{"push", `{"ref":"refs/heads/main","deleted":true,"repository":{"default_branch":"-x"}}`},
		{"push", `{"ref":"refs/heads/main","after":"` + sha + `","repository":{"default_branch":"` + strings.Repeat("b", store.MaxBranch+1) + `"}}`},
	} {
		if got, err := ParseWebhook(ForgeGitHub, tt.event, []byte(tt.body)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s %s: %+v, %v; want ErrMalformed", tt.event, tt.body, got, err)
		}
	}
}

// A webhook tells the repository's default branch, also when it builds nothing.
func TestParseWebhookTellsTheDefaultBranch(t *testing.T) {
	for _, tt := range []struct{ file, event, want string }{
		{"push_with-new-branch.json", "push", "main"},
		{"pull_request_opened.json", "pull_request", "main"},
		{"pull_request_closed.json", "pull_request", "main"},
		{"gitea_push.json", "push", "main"},
	} {
		got, err := ParseWebhook(ForgeGitHub, tt.event, fixture(t, tt.file))
		if err != nil || got.DefaultBranch != tt.want {
			t.Errorf("%s: default branch %q, %v; want %q", tt.file, got.DefaultBranch, err, tt.want)
		}
	}
}

// On Gitea and Forgejo anyone who can read a repository can open a pull
// request whose head is that repository (AGit flow, no fork): such a pull
// request is untrusted, with the install cache scope of its own ref, and so
// it stays when the delivery comes without Gitea's headers, as the body
// (Gitea's repo_id in its head) still tells where it is from.
func TestGiteaSameRepoPullRequestBuildsUntrusted(t *testing.T) {
	agit := fixture(t, "gitea_pull_request_agit.json")
	for _, forge := range []Forge{ForgeGitea, ForgeGitHub} {
		got, err := ParseWebhook(forge, "pull_request", agit)
		if err != nil || !got.Build || !got.FromFork || got.ForkRepoID != 0 || got.ForkRepo != "" || got.Ref != "refs/pull/4/head" {
			t.Errorf("AGit pull request, forge %d: %+v, %v; want an untrusted build of refs/pull/4/head without a fork repository", forge, got, err)
		}
	}
	// GitHub's same-repository pull request, had Gitea sent it.
	got, err := ParseWebhook(ForgeGitea, "pull_request", fixture(t, "pull_request_opened.json"))
	if err != nil || !got.FromFork || got.ForkRepoID != 0 {
		t.Errorf("same-repository pull request from Gitea: %+v, %v; want untrusted", got, err)
	}
}

// Trust needs both repositories' ids: a pull request whose head or base
// repository carries none (0 == 0 would read as "the same repository") is
// untrusted, with the scope of its ref.
func TestPullRequestWithoutRepoIDsIsUntrusted(t *testing.T) {
	const pr = `{"action":"opened","pull_request":{"number":9,"title":"t","user":{"login":"eve"},
		"head":{"sha":"f00f00f00f00f00f00f00f00f00f00f00f00f00f","repo":%s},
		"base":{"sha":"b00","repo":%s}}}`
	for _, tt := range []struct{ head, base string }{
		{`{"full_name":"lanternfish/harbor-lights"}`, `{"full_name":"lanternfish/harbor-lights"}`},
		{`{"id":0,"full_name":"lanternfish/harbor-lights"}`, `{"id":0,"full_name":"lanternfish/harbor-lights"}`},
		{`{"full_name":"lanternfish/harbor-lights"}`, `{"id":1,"full_name":"lanternfish/harbor-lights"}`},
		{`{"id":1,"full_name":"lanternfish/harbor-lights"}`, `{"full_name":"lanternfish/harbor-lights"}`},
		{`{"id":1,"full_name":"lanternfish/harbor-lights"}`, `null`},
	} {
		got, err := ParseWebhook(ForgeGitHub, "pull_request", fmt.Appendf(nil, pr, tt.head, tt.base))
		if err != nil || !got.Build || !got.FromFork || got.ForkRepoID != 0 || got.ForkRepo != "" {
			t.Errorf("head %s, base %s: %+v, %v; want an untrusted build in its ref's scope", tt.head, tt.base, got, err)
		}
	}
	trusted, err := ParseWebhook(ForgeGitHub, "pull_request", fmt.Appendf(nil, pr, `{"id":1}`, `{"id":1}`))
	if err != nil || trusted.FromFork {
		t.Errorf("same repository with its id on both sides: %+v, %v; want trusted", trusted, err)
	}
}

func TestWebhookSenderOverItsBoundIsMalformed(t *testing.T) {
	body := bytes.ReplaceAll(fixture(t, "push_with-new-branch.json"), []byte(`"mira-okafor"`),
		[]byte(`"`+strings.Repeat("m", store.MaxTriggerUser+1)+`"`))
	if got, err := ParseWebhook(ForgeGitHub, "push", body); !errors.Is(err, ErrMalformed) {
		t.Errorf("a push with a %d-byte sender = %+v, %v; want ErrMalformed", store.MaxTriggerUser+1, got, err)
	}
}
