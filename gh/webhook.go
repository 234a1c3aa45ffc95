// Package gh is everything Kozmic does with GitHub (and with Gitea and
// Forgejo, which send the same webhooks): reading webhooks, and the API
// calls behind login, projects, roles and commit statuses.
package gh

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// Forge is the kind of server a webhook comes from.
type Forge int

const (
	// ForgeGitHub is GitHub, where only people with write access can open a
	// pull request from a branch of the repository itself.
	ForgeGitHub Forge = iota
	// ForgeGitea is Gitea or Forgejo. Both send GitHub's shapes, but let
	// anyone who can read a repository open a pull request whose head is
	// that repository (AGit: git push origin HEAD:refs/for/main), so a head
	// repository equal to the base one proves nothing there.
	ForgeGitea
)

// Trigger is what a webhook asks of Kozmic.
type Trigger struct {
	Build   bool   // false: nothing to build, for Reason
	Reason  string // why there is nothing to build
	Ref     string
	SHA     string
	Author  string
	Message string
	// PR is a pull request's number; 0 for a push.
	PR int
	// By is the login of the event's sender, who pushed or opened or
	// updated the pull request; empty when the body names none (a
	// post-receive hook's); at most store.MaxTriggerUser bytes.
	By string
	// FromFork is a pull request Kozmic does not trust: one from another
	// repository, any from Gitea or Forgejo, and one whose head or base
	// repository has no id. It runs without the project's secrets, in an
	// install cache scope of its fork repository or of its ref.
	FromFork bool
	// ForkRepoID is the id of a fork's repository, which names its install
	// cache scope; 0 when it is unknown (a deleted fork) or the project's
	// own repository (a Gitea or Forgejo pull request without a fork).
	ForkRepoID int64
	// ForkRepo is the full name (owner/name) of the repository of
	// ForkRepoID, shown to people; empty without ForkRepoID.
	ForkRepo string
	// DefaultBranch is the repository's default branch as the webhook
	// tells it (repository.default_branch, such as main), also when there
	// is nothing to build; empty when it does not say.
	DefaultBranch string
}

// ParseWebhook reads a webhook's body for its event (the X-GitHub-Event
// header) from forge: a push makes a build of its ref at "after", unless
// the ref was deleted or the head commit asks to skip CI; a pull request
// opened, synchronized or reopened makes a build of its head commit on
// refs/pull/N/head, trusted only from GitHub with its head repository's id
// equal to its base repository's, both present (a body with Gitea's
// repo_id in its head is Gitea's, whatever forge says); ping makes nothing.
// Other events are ErrUnhandledEvent; a body that does not parse is
// ErrMalformed, and so is a build whose SHA is not 40 or 64 hex digits or
// whose ref git.ValidRef refuses, and a fork whose repository's full name
// is not owner/name (store.ValidFullName, at most store.MaxForkRepo bytes),
// or a default branch that is no branch name (at most store.MaxBranch bytes).
func ParseWebhook(forge Forge, event string, body []byte) (Trigger, error) {
	var t Trigger
	var err error
	var defaultBranch string
	switch event {
	case "ping":
		return Trigger{Reason: "pong"}, nil
	case "push":
		var e github.PushEvent
		if err := json.Unmarshal(body, &e); err != nil {
			return Trigger{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		t, err = pushTrigger(&e)
		defaultBranch = e.GetRepo().GetDefaultBranch()
	case "pull_request":
		var pb pullRequestBody
		if err := json.Unmarshal(body, &pb); err != nil {
			return Trigger{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		e, giteaShaped := pb.event()
		// The headers naming the forge are not signed; the body is.
		if giteaShaped {
			forge = ForgeGitea
		}
		t, err = pullRequestTrigger(forge, e)
		defaultBranch = e.GetRepo().GetDefaultBranch()
	default:
		return Trigger{}, ErrUnhandledEvent
	}
	if err != nil {
		return t, err
	}
	// It names the ref a public badge shows.
	if defaultBranch != "" && !validBranch(defaultBranch) {
		return Trigger{}, fmt.Errorf("%w: %.300q is not a branch name", ErrMalformed, defaultBranch)
	}
	t.DefaultBranch = defaultBranch
	switch {
	case !t.Build:
		return t, nil
	// Both reach git's command line and the log stream: nothing else may pass.
	case !git.ValidSHA(t.SHA):
		return Trigger{}, fmt.Errorf("%w: %q is not a commit SHA", ErrMalformed, t.SHA)
	case !git.ValidRef(t.Ref):
		return Trigger{}, fmt.Errorf("%w: %q is not a valid ref", ErrMalformed, t.Ref)
	// It is shown on pages and in logs.
	case t.ForkRepo != "" && (!store.ValidFullName(t.ForkRepo) || len(t.ForkRepo) > store.MaxForkRepo):
		return Trigger{}, fmt.Errorf("%w: %.300q is not a repository's full name", ErrMalformed, t.ForkRepo)
	case len(t.By) > store.MaxTriggerUser:
		return Trigger{}, fmt.Errorf("%w: the sender's login is over %d bytes", ErrMalformed, store.MaxTriggerUser)
	}
	return t, nil
}

// validBranch says whether a default branch GitHub tells is one Kozmic
// stores: a branch name git accepts, of at most store.MaxBranch bytes.
func validBranch(b string) bool {
	return len(b) <= store.MaxBranch && git.ValidRef("refs/heads/"+b)
}

// pullRequestBody is a pull request event's body from GitHub, Gitea or
// Forgejo, read in one pass: go-github's event, and the repo_id that only
// Gitea's and Forgejo's head branch carries (the outer fields take the
// names "pull_request" and "head" from the embedded ones).
type pullRequestBody struct {
	github.PullRequestEvent
	PullRequest *struct {
		github.PullRequest
		Head *struct {
			github.PullRequestBranch
			RepoID *int64 `json:"repo_id"`
		} `json:"head"`
	} `json:"pull_request"`
}

// event returns the body as go-github's event, and whether it is Gitea's
// or Forgejo's: their head branch carries repo_id, GitHub's never does.
func (b *pullRequestBody) event() (e *github.PullRequestEvent, giteaShaped bool) {
	e = &b.PullRequestEvent
	if b.PullRequest == nil {
		return e, false
	}
	e.PullRequest = &b.PullRequest.PullRequest
	if h := b.PullRequest.Head; h != nil {
		e.PullRequest.Head = &h.PullRequestBranch
		giteaShaped = h.RepoID != nil
	}
	return e, giteaShaped
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
	return Trigger{Build: true, Ref: e.GetRef(), SHA: e.GetAfter(), Author: author, Message: msg, By: e.GetSender().GetLogin()}, nil
}

func pullRequestTrigger(forge Forge, e *github.PullRequestEvent) (Trigger, error) {
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
	// A deleted fork has no head repository, and a repository without an
	// id cannot be told apart from another: neither is trusted.
	headID, baseID := pr.GetHead().GetRepo().GetID(), pr.GetBase().GetRepo().GetID()
	known := headID > 0 && baseID > 0
	t := Trigger{
		Build:    true,
		Ref:      "refs/pull/" + strconv.Itoa(pr.GetNumber()) + "/head",
		SHA:      sha,
		Author:   pr.GetUser().GetLogin(),
		Message:  pr.GetTitle(),
		PR:       pr.GetNumber(),
		By:       e.GetSender().GetLogin(),
		FromFork: forge != ForgeGitHub || !known || headID != baseID,
	}
	// Only another repository than the project's has a scope of its own: on
	// Gitea and Forgejo, pull requests without a fork share the project's
	// repository, and each gets the scope of its ref.
	if known && headID != baseID {
		t.ForkRepoID, t.ForkRepo = headID, pr.GetHead().GetRepo().GetFullName()
	}
	return t, nil
}
