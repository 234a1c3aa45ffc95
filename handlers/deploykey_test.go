package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"kozmic/git"
	"kozmic/internal/fakegithub"
	"kozmic/store"
)

// A manager regenerates a private GitHub project's deploy key: the new key
// is added on GitHub before the old one is deleted there, it replaces the
// stored key, and the project page shows its fingerprint. When GitHub
// refuses the new key, the old one stays in use and GitHub's answer is
// shown.
func TestManagerRegeneratesDeployKeyOnGitHub(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	ctx := context.Background()
	owner := newBrowser(t, s)
	owner.signIn("/")
	owner.do("POST", "/projects", url.Values{"repo": {"octocat/Hello-World"}})
	old, err := s.db.DeployKeyOf(ctx, 1)
	if err != nil || old.GitHubKeyID != 1 {
		t.Fatalf("deploy key at creation: %+v, %v", old, err)
	}
	manager := newBrowser(t, s)
	signInAs(t, s, manager, 2, "hubot")
	if _, err := s.db.SyncMemberships(ctx, 1, []store.GitHubAccess{{GitHubID: 2, Manage: true}}); err != nil {
		t.Fatal(err)
	}

	// GitHub refuses the new key: nothing changes, and its answer is shown.
	s.github.Script("POST "+repoAPI+"/keys", fakegithub.Reply{Status: 403, Body: `{"message":"Must have admin rights to Repository."}`})
	res, page := manager.do("POST", "/projects/1/deploy-key/regenerate", url.Values{})
	if f := parse(t, page).Find("p.flash.flash-error"); res.StatusCode != 502 || textOf(f) != "GitHub answered: Must have admin rights to Repository." {
		t.Errorf("refused regeneration: %d, flash %q", res.StatusCode, textOf(f))
	}
	if k, _ := s.db.DeployKeyOf(ctx, 1); k.PrivateKey != old.PrivateKey || len(s.github.CallsTo("DELETE "+repoAPI+"/keys/1")) != 0 {
		t.Fatal("a refused regeneration replaced or deleted the old key")
	}

	s.github.Script("POST "+repoAPI+"/keys", fakegithub.Reply{Status: 201, Body: strings.Replace(s.github.Fixture("key.json"), `"id": 1,`, `"id": 2,`, 1)})
	s.github.Script("DELETE "+repoAPI+"/keys/1", fakegithub.Reply{Status: 204})
	res, _ = manager.do("POST", "/projects/1/deploy-key/regenerate", url.Values{})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/projects/1?deploy-key" {
		t.Fatalf("regenerate: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	k, err := s.db.DeployKeyOf(ctx, 1)
	if err != nil || k.GitHubKeyID != 2 || k.PrivateKey == old.PrivateKey || k.PublicKey == old.PublicKey {
		t.Fatalf("stored key after regeneration: id %d, changed %v, %v", k.GitHubKeyID, k.PublicKey != old.PublicKey, err)
	}
	adds, deletes := s.github.CallsTo("POST "+repoAPI+"/keys"), s.github.CallsTo("DELETE "+repoAPI+"/keys/1")
	var sent struct {
		Key      string
		ReadOnly bool `json:"read_only"`
	}
	json.Unmarshal(adds[len(adds)-1].Body, &sent)
	if len(deletes) != 1 || sent.Key != k.PublicKey || !sent.ReadOnly || deletes[0].At.Before(adds[len(adds)-1].At) {
		t.Errorf("on GitHub: sent %+v, %d deletions of the old key; want the new key added read-only, then the old one deleted", sent, len(deletes))
	}

	newFP, _ := git.Fingerprint(k.PublicKey)
	oldFP, _ := git.Fingerprint(old.PublicKey)
	doc, page := fetchPage(t, owner, "/projects/1?deploy-key", 200)
	if fp := textOf(doc.Find("code.fingerprint")); fp != newFP || strings.Contains(page, oldFP) {
		t.Errorf("page shows fingerprint %q, want %q (and not the old %q)", fp, newFP, oldFP)
	}
	if f := textOf(doc.Find("p.flash")); !strings.Contains(f, newFP) || !strings.Contains(f, "the old one is deleted there") {
		t.Errorf("flash %q", f)
	}

	// GitHub keeps the old key: the new one is in use, and the page says the old one is to be removed by hand.
	s.github.Script("DELETE "+repoAPI+"/keys/2", fakegithub.Reply{Status: 403, Body: `{"message":"Must have admin rights to Repository."}`})
	res, page = manager.do("POST", "/projects/1/deploy-key/regenerate", url.Values{})
	if again, _ := s.db.DeployKeyOf(ctx, 1); again.PublicKey == k.PublicKey || again.GitHubKeyID != 1 {
		t.Errorf("the new key was not stored when GitHub kept the old one")
	}
	if f := textOf(parse(t, page).Find("p.flash.flash-error")); res.StatusCode != 200 ||
		!strings.Contains(f, "did not let Kozmic delete the old one (GitHub answered: Must have admin rights to Repository.): remove it by hand") {
		t.Errorf("old key kept by GitHub: %d, flash %q", res.StatusCode, f)
	}
}

// Regenerating the deploy key of a project of an ssh git URL stores a new
// key and shows its public half, to give to the git server; a project
// fetched over https has no deploy key to regenerate.
func TestGitURLProjectRegeneratedKeyShowsNewPublicHalf(t *testing.T) {
	s := newLocalTestServer(t)
	ann := localUser(t, s, "ann", "ann's password")
	b := newBrowser(t, s)
	if code, _ := login(b, "ann", "ann's password", "/"); code != 303 {
		t.Fatalf("login: %d", code)
	}
	ctx := context.Background()
	private, public, err := git.GenerateDeployKey("kozmic ann/app")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "ann/app",
		GitURL: "ssh://git@git.example.com/ann/app.git", WebhookSecret: "whsec", DeployKey: &store.DeployKey{PrivateKey: private, PublicKey: public}})
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := fetchPage(t, b, "/projects/1", 200)
	if doc.Find(`form[action="/projects/1/deploy-key/regenerate"].confirm button`).Length() != 1 {
		t.Fatal("the project page offers no confirmed Regenerate deploy key")
	}

	res, _ := b.do("POST", "/projects/1/deploy-key/regenerate", url.Values{})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/projects/1?deploy-key" {
		t.Fatalf("regenerate: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	k, err := s.db.DeployKeyOf(ctx, p.ID)
	if err != nil || k.PublicKey == public || k.PrivateKey == private || !strings.HasSuffix(k.PublicKey, " kozmic ann/app") {
		t.Fatalf("stored key: %q, %v", k.PublicKey, err)
	}
	doc, page := fetchPage(t, b, "/projects/1?deploy-key", 200)
	if shown := strings.TrimSpace(doc.Find("pre.copy").First().Text()); shown != k.PublicKey || strings.Contains(page, public) {
		t.Errorf("public half shown %q, want the new %q and not the old one", shown, k.PublicKey)
	}
	if f := textOf(doc.Find("p.flash")); !strings.Contains(f, "in place of the old one") {
		t.Errorf("flash %q", f)
	}

	// Over https there is no key: 422, and nothing is stored.
	q, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "ann/web",
		GitURL: "https://git.example.com/ann/web.git", WebhookSecret: "whsec"})
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := b.do("POST", "/projects/2/deploy-key/regenerate", url.Values{}); res.StatusCode != 422 {
		t.Errorf("regenerate over https: %d, want 422", res.StatusCode)
	}
	if _, err := s.db.DeployKeyOf(ctx, q.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an https project got a deploy key: %v", err)
	}
}

// When GitHub refuses to remove a project's webhook, the deletion shows
// GitHub's answer and offers Delete anyway, with a confirmation; that
// deletes the project and names what stayed on GitHub, with the settings
// page where it can be removed by hand.
func TestDeleteAnywayAfterGitHubRefuses(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	b := newBrowser(t, s)
	b.signIn("/")
	b.do("POST", "/projects", url.Values{"repo": {"octocat/Hello-World"}})
	ctx := context.Background()

	refusal := fakegithub.Reply{Status: 403, Body: `{"message":"Must have admin rights to Repository."}`}
	s.github.Script("DELETE "+repoAPI+"/hooks/12345678", refusal, refusal)
	res, page := b.do("POST", "/projects/1/delete", url.Values{})
	doc := parse(t, page)
	if f := doc.Find("p.flash.flash-error"); res.StatusCode != 502 || textOf(f) != "GitHub answered: Must have admin rights to Repository." {
		t.Errorf("refused delete: %d, flash %q", res.StatusCode, textOf(f))
	}
	anyway := doc.Find(`form.confirm[action="/projects/1/delete/anyway"]`)
	if textOf(anyway.Find("button")) != "Delete anyway" || !strings.Contains(anyway.AttrOr("data-confirm", ""), "Delete octocat/Hello-World anyway?") {
		t.Fatalf("no confirmed Delete anyway after GitHub refused:\n%s", page)
	}
	if _, err := s.db.ProjectByID(ctx, 1); err != nil {
		t.Fatalf("project deleted although GitHub refused: %v", err)
	}

	// GitHub still refuses the webhook, and lets the key go.
	s.github.Script("DELETE "+repoAPI+"/keys/1", fakegithub.Reply{Status: 204})
	res, page = b.do("POST", "/projects/1/delete/anyway", url.Values{})
	if _, err := s.db.ProjectByID(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete anyway: %d, project still there (%v)", res.StatusCode, err)
	}
	doc = parse(t, page)
	left := doc.Find("ul.leftovers li")
	hooks := s.github.WebURL().String() + "/octocat/Hello-World/settings/hooks"
	if res.StatusCode != 200 || left.Length() != 1 || !strings.HasPrefix(textOf(left), "the webhook:") || left.Find("a").AttrOr("href", "") != hooks {
		t.Errorf("after Delete anyway: %d, left on GitHub %q (want the webhook at %s)", res.StatusCode, textOf(left), hooks)
	}
	if f := textOf(doc.Find("p.flash.flash-error")); !strings.Contains(f, "these stay on GitHub: remove them by hand") {
		t.Errorf("flash %q", f)
	}
	if n := len(s.github.CallsTo("DELETE " + repoAPI + "/keys/1")); n != 1 {
		t.Errorf("deploy key deletions = %d, want 1", n)
	}
}
