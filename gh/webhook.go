// Package gh is everything Kozmic does with GitHub (and with Gitea and
// Forgejo, which send the same webhooks): reading webhooks, and the API
// calls behind login, projects, roles and commit statuses.
package gh

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/google/go-github/v60/github"

	"kozmic/git"
	"kozmic/store"
)

var (
	// ErrBadSignature means X-Hub-Signature-256 is missing or does not match
	// the body signed with the project's secret.
	ErrBadSignature = errors.New("webhook signature missing or wrong")
	// ErrMalformed means the body is not the JSON the event promises.
	ErrMalformed = errors.New("webhook payload malformed")
	// ErrUnhandledEvent means Kozmic does nothing with this kind of event.
	ErrUnhandledEvent = errors.New("webhook event not handled")
)

// VerifySignature checks header, the X-Hub-Signature-256 value
// ("sha256=<hex>"), against the HMAC-SHA256 of body (read to its end) under
// secret, in constant time. SHA-1 signatures are not accepted. A body that
// cannot be read fails with its read error.
func VerifySignature(secret []byte, header string, body io.Reader) error {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, secret)
	if _, err := io.Copy(mac, body); err != nil {
		return fmt.Errorf("read webhook body: %w", err)
	}
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// Sign returns the X-Hub-Signature-256 value for body under secret, as
// GitHub computes it.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Trigger is what a webhook asks of Kozmic.
type Trigger struct {
	Build   bool   // false: nothing to build, for Reason
	Reason  string // why there is nothing to build
	Ref     string
	SHA     string
	Author  string
	Message string
	// FromFork is a pull request whose head lives in another repository:
	// it runs without the project's secrets, in that repository's own
	// install cache scope.
	FromFork bool
	// ForkRepo is the full name (owner/name) of a fork's repository; empty
	// when GitHub no longer knows it (a deleted fork).
	ForkRepo string
}

// ParseWebhook reads a webhook's body for its event (the X-GitHub-Event
// header): a push makes a build of its ref at "after", unless the ref was
// deleted or the head commit asks to skip CI; a pull request opened,
// synchronized or reopened makes a build of its head commit on
// refs/pull/N/head; ping makes nothing. Other events are ErrUnhandledEvent;
// a body that does not parse is ErrMalformed, and so is a build whose SHA is
// not 40 or 64 hex digits or whose ref git.ValidRef refuses, and a fork
// whose repository's full name is not owner/name (store.ValidFullName, at
// most store.MaxForkRepo bytes).
func ParseWebhook(event string, body []byte) (Trigger, error) {
	switch event {
	case "ping":
		return Trigger{Reason: "pong"}, nil
	case "push", "pull_request":
	default:
		return Trigger{}, ErrUnhandledEvent
	}
	parsed, err := github.ParseWebHook(event, body)
	if err != nil {
		return Trigger{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var t Trigger
	switch e := parsed.(type) {
	case *github.PushEvent:
		t, err = pushTrigger(e)
	case *github.PullRequestEvent:
		t, err = pullRequestTrigger(e)
	default:
		return Trigger{}, ErrUnhandledEvent
	}
	switch {
	case err != nil || !t.Build:
		return t, err
	// Both reach git's command line and the log stream: nothing else may pass.
	case !git.ValidSHA(t.SHA):
		return Trigger{}, fmt.Errorf("%w: %q is not a commit SHA", ErrMalformed, t.SHA)
	case !git.ValidRef(t.Ref):
		return Trigger{}, fmt.Errorf("%w: %q is not a valid ref", ErrMalformed, t.Ref)
	// It names the fork's install cache scope and shows on pages.
	case t.ForkRepo != "" && (!store.ValidFullName(t.ForkRepo) || len(t.ForkRepo) > store.MaxForkRepo):
		return Trigger{}, fmt.Errorf("%w: %.300q is not a repository's full name", ErrMalformed, t.ForkRepo)
	}
	return t, nil
}

const zeroSHA = "0000000000000000000000000000000000000000"

func pushTrigger(e *github.PushEvent) (Trigger, error) {
	if e.GetRef() == "" {
		return Trigger{}, fmt.Errorf("%w: push without ref", ErrMalformed)
	}
	if e.GetDeleted() || e.GetAfter() == zeroSHA || e.GetAfter() == "" {
		return Trigger{Reason: "the ref was deleted"}, nil
	}
	hc := e.GetHeadCommit()
	msg := hc.GetMessage()
	if lower := strings.ToLower(msg); strings.Contains(lower, "[ci skip]") || strings.Contains(lower, "[skip ci]") {
		return Trigger{Reason: "the head commit asks to skip CI"}, nil
	}
	author := hc.GetAuthor().GetName()
	if author == "" {
		author = hc.GetAuthor().GetLogin()
	}
	return Trigger{Build: true, Ref: e.GetRef(), SHA: e.GetAfter(), Author: author, Message: msg}, nil
}

func pullRequestTrigger(e *github.PullRequestEvent) (Trigger, error) {
	switch e.GetAction() {
	case "opened", "synchronize", "reopened":
	default:
		return Trigger{Reason: "pull request " + e.GetAction()}, nil
	}
	pr := e.GetPullRequest()
	sha := pr.GetHead().GetSHA()
	if pr == nil || pr.GetNumber() == 0 || sha == "" {
		return Trigger{}, fmt.Errorf("%w: pull request without number or head", ErrMalformed)
	}
	head, base := pr.GetHead().GetRepo(), pr.GetBase().GetRepo()
	fork := head == nil || head.GetID() != base.GetID()
	t := Trigger{
		Build:   true,
		Ref:     "refs/pull/" + strconv.Itoa(pr.GetNumber()) + "/head",
		SHA:     sha,
		Author:  pr.GetUser().GetLogin(),
		Message: pr.GetTitle(),
		// A deleted fork has no head repository: treat it as a fork.
		FromFork: fork,
	}
	if fork {
		t.ForkRepo = head.GetFullName()
	}
	return t, nil
}
