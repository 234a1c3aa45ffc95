package gh

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// GitHub's published example: https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
func TestVerifySignatureWithGitHubsTestVector(t *testing.T) {
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(secret, body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if err := VerifySignature(secret, want, body); err != nil {
		t.Errorf("valid signature refused: %v", err)
	}
	for _, bad := range []string{"", "sha256=", "sha256=zz", want[:len(want)-1] + "0",
		"sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"} {
		if err := VerifySignature(secret, bad, body); !errors.Is(err, ErrBadSignature) {
			t.Errorf("signature %q accepted", bad)
		}
	}
	if err := VerifySignature([]byte("another secret"), want, body); !errors.Is(err, ErrBadSignature) {
		t.Error("a signature under another secret was accepted")
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "fixtures", "github-webhooks", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseWebhookFixtures(t *testing.T) {
	const prSHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	tests := []struct {
		file, event string
		want        Trigger
	}{
		{"push_with-new-branch.json", "push", Trigger{Build: true, Ref: "refs/heads/master",
			SHA: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Author: "Codertocat", Message: "Initial commit"}},
		{"push_tag-deleted.json", "push", Trigger{Reason: "the ref was deleted"}},
		{"pull_request_opened.json", "pull_request", Trigger{Build: true, Ref: "refs/pull/2/head", SHA: prSHA,
			Author: "Codertocat", Message: "Update the README with new information."}},
		{"pull_request_synchronize.json", "pull_request", Trigger{Build: true, Ref: "refs/pull/2/head", SHA: prSHA,
			Author: "Codertocat", Message: "Update the README with new information."}},
		{"pull_request_reopened.json", "pull_request", Trigger{Build: true, Ref: "refs/pull/2/head", SHA: prSHA,
			Author: "Codertocat", Message: "Update the README with new information."}},
		{"pull_request_closed.json", "pull_request", Trigger{Reason: "pull request closed"}},
		{"ping.json", "ping", Trigger{Reason: "pong"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseWebhook(tt.event, fixture(t, tt.file))
			if err != nil || got != tt.want {
				t.Errorf("ParseWebhook = %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
	if _, err := ParseWebhook("delete", fixture(t, "delete.json")); !errors.Is(err, ErrUnhandledEvent) {
		t.Errorf("delete event: err = %v, want ErrUnhandledEvent", err)
	}
	if _, err := ParseWebhook("push", []byte(`{"ref": 12`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("broken JSON: err = %v, want ErrMalformed", err)
	}
}

func TestParseWebhookSkipsAndForks(t *testing.T) {
	for _, msg := range []string{"fix typo [ci skip]", "docs [SKIP CI]\n\nmore"} {
		body := []byte(`{"ref":"refs/heads/main","after":"abc","head_commit":{"message":` + strconv.Quote(msg) + `}}`)
		if got, err := ParseWebhook("push", body); err != nil || got.Build {
			t.Errorf("%q: %+v, %v; want no build", msg, got, err)
		}
	}
	fork := []byte(`{"action":"opened","pull_request":{"number":9,"title":"t","user":{"login":"eve"},
		"head":{"sha":"f00","repo":{"id":2,"full_name":"eve/Hello-World"}},
		"base":{"sha":"b00","repo":{"id":1,"full_name":"Codertocat/Hello-World"}}}}`)
	got, err := ParseWebhook("pull_request", fork)
	if err != nil || !got.Build || !got.FromFork || got.Ref != "refs/pull/9/head" {
		t.Errorf("fork pull request = %+v, %v", got, err)
	}
	same, err := ParseWebhook("pull_request", fixture(t, "pull_request_opened.json"))
	if err != nil || same.FromFork {
		t.Errorf("same-repository pull request marked as a fork: %+v, %v", same, err)
	}
}
