package gh

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/go-github/v60/github"

	"kozmic/git"
)

// Repo is a GitHub repository as Kozmic needs it, with the permissions of
// the user who read it.
type Repo struct {
	ID       int64
	FullName string
	SSHURL   string
	HTTPSURL string
	Private  bool
	Admin    bool // the user may administer it: make it a project
	Push     bool
	// DefaultBranch is the repository's default branch, such as main.
	DefaultBranch string
}

func repoOf(r *github.Repository) Repo {
	p := r.GetPermissions()
	return Repo{ID: r.GetID(), FullName: r.GetFullName(), SSHURL: r.GetSSHURL(), HTTPSURL: r.GetCloneURL(),
		Private: r.GetPrivate(), Admin: p["admin"], Push: p["push"] || p["admin"], DefaultBranch: r.GetDefaultBranch()}
}

func splitName(fullName string) (owner, repo string, err error) {
	owner, repo, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || repo == "" {
		return "", "", fmt.Errorf("%q is not owner/name", fullName)
	}
	return owner, repo, nil
}

// repoPart is an owner or repository name as GitHub allows it.
var repoPart = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// RepoOfURL returns the full name (owner/name) of the repository on this
// GitHub that gitURL names, such as https://github.com/owner/name.git or
// git@github.com:owner/name, if it names one: its host is this GitHub's
// and its path is exactly an owner and a name.
func (g *GitHub) RepoOfURL(gitURL string) (string, bool) {
	host, path, ok := git.RemoteHostPath(gitURL)
	if !ok || !strings.EqualFold(host, g.cfg.WebURL.Hostname()) {
		return "", false
	}
	owner, name, ok := strings.Cut(strings.TrimSuffix(strings.TrimSuffix(path, "/"), ".git"), "/")
	if !ok || !repoPart.MatchString(owner) || !repoPart.MatchString(name) || name == "." || name == ".." {
		return "", false
	}
	return owner + "/" + name, true
}

// Repo reads a repository as the user whose token this is sees it.
func (g *GitHub) Repo(ctx context.Context, token, fullName string) (Repo, error) {
	owner, name, err := splitName(fullName)
	if err != nil {
		return Repo{}, err
	}
	r, _, err := g.client(ctx, token).Repositories.Get(ctx, owner, name)
	if err != nil {
		return Repo{}, fmt.Errorf("read repository %s: %w", fullName, err)
	}
	return repoOf(r), nil
}

// webhookEvents are the events a Kozmic webhook sends.
var webhookEvents = []string{"push", "pull_request"}

// EnsureWebhook makes sure the repository has a working Kozmic webhook at
// url: JSON, events push and pull_request, active, signed with secret. A
// hook already pointing at url is repaired in place (GitHub never shows a
// secret, so it is always set again); otherwise one is created. It returns
// the hook's id.
func (g *GitHub) EnsureWebhook(ctx context.Context, token, fullName, url, secret string) (int64, error) {
	owner, name, err := splitName(fullName)
	if err != nil {
		return 0, err
	}
	c := g.client(ctx, token)
	hook := &github.Hook{
		Config: &github.HookConfig{URL: &url, ContentType: github.String("json"), Secret: &secret, InsecureSSL: github.String("0")},
		Events: webhookEvents,
		Active: github.Bool(true),
	}
	hooks, err := all(func(o github.ListOptions) ([]*github.Hook, *github.Response, error) {
		return c.Repositories.ListHooks(ctx, owner, name, &o)
	})
	if err != nil {
		return 0, fmt.Errorf("list webhooks of %s: %w", fullName, err)
	}
	for _, h := range hooks {
		if h.GetConfig().GetURL() == url {
			edited, _, err := c.Repositories.EditHook(ctx, owner, name, h.GetID(), hook)
			if err != nil {
				return 0, fmt.Errorf("repair the webhook of %s: %w", fullName, err)
			}
			return edited.GetID(), nil
		}
	}
	hook.Name = github.String("web")
	created, _, err := c.Repositories.CreateHook(ctx, owner, name, hook)
	if err != nil {
		return 0, fmt.Errorf("create the webhook of %s: %w", fullName, err)
	}
	return created.GetID(), nil
}

// EnsureDeployKey makes sure publicKey is a read-only deploy key of the
// repository, adding it if it is missing, and returns its id.
func (g *GitHub) EnsureDeployKey(ctx context.Context, token, fullName, title, publicKey string) (int64, error) {
	owner, name, err := splitName(fullName)
	if err != nil {
		return 0, err
	}
	c := g.client(ctx, token)
	want := keyBody(publicKey)
	keys, err := all(func(o github.ListOptions) ([]*github.Key, *github.Response, error) {
		return c.Repositories.ListKeys(ctx, owner, name, &o)
	})
	if err != nil {
		return 0, fmt.Errorf("list deploy keys of %s: %w", fullName, err)
	}
	for _, k := range keys {
		if keyBody(k.GetKey()) == want {
			return k.GetID(), nil
		}
	}
	return g.AddDeployKey(ctx, token, fullName, title, publicKey)
}

// AddDeployKey adds publicKey as a new read-only deploy key of the
// repository, titled title, and returns its id.
func (g *GitHub) AddDeployKey(ctx context.Context, token, fullName, title, publicKey string) (int64, error) {
	owner, name, err := splitName(fullName)
	if err != nil {
		return 0, err
	}
	k, _, err := g.client(ctx, token).Repositories.CreateKey(ctx, owner, name, &github.Key{Title: &title, Key: &publicKey, ReadOnly: github.Bool(true)})
	if err != nil {
		return 0, fmt.Errorf("add the deploy key to %s: %w", fullName, err)
	}
	return k.GetID(), nil
}

// HasDeployKey reports whether the repository lists the deploy key id, in
// one call; GitHub's 404 is false, any other failure an error.
func (g *GitHub) HasDeployKey(ctx context.Context, token, fullName string, id int64) (bool, error) {
	owner, name, err := splitName(fullName)
	if err != nil {
		return false, err
	}
	_, _, err = g.client(ctx, token).Repositories.GetKey(ctx, owner, name, id)
	switch {
	case statusCode(err) == http.StatusNotFound:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read deploy key %d of %s: %w", id, fullName, err)
	}
	return true, nil
}

// keyBody is a public key's type and data, without its comment.
func keyBody(k string) string {
	f := strings.Fields(k)
	if len(f) < 2 {
		return k
	}
	return f[0] + " " + f[1]
}

// DeleteWebhook removes a webhook; one already gone is fine.
func (g *GitHub) DeleteWebhook(ctx context.Context, token, fullName string, id int64) error {
	return g.deleteGone(ctx, token, fullName, "the webhook", func(c *github.Client, owner, name string) (*github.Response, error) {
		return c.Repositories.DeleteHook(ctx, owner, name, id)
	})
}

// DeleteDeployKey removes a deploy key; one already gone is fine.
func (g *GitHub) DeleteDeployKey(ctx context.Context, token, fullName string, id int64) error {
	return g.deleteGone(ctx, token, fullName, "the deploy key", func(c *github.Client, owner, name string) (*github.Response, error) {
		return c.Repositories.DeleteKey(ctx, owner, name, id)
	})
}

// deleteGone runs a deletion on a repository, taking a 404 as done.
func (g *GitHub) deleteGone(ctx context.Context, token, fullName, what string, del func(c *github.Client, owner, name string) (*github.Response, error)) error {
	owner, name, err := splitName(fullName)
	if err != nil {
		return err
	}
	if _, err := del(g.client(ctx, token), owner, name); err != nil && statusCode(err) != http.StatusNotFound {
		return fmt.Errorf("delete %s of %s: %w", what, fullName, err)
	}
	return nil
}
