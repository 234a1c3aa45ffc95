package gh

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"kozmic/git"
	"kozmic/internal/fakegithub"
)

const (
	repoPath = "/api/v3/repos/octocat/Hello-World"
	hookURL  = "https://kozmic.example.com/webhooks/7"
)

func newTestGitHub(t *testing.T) (*GitHub, *fakegithub.Server) {
	fake := fakegithub.New(t)
	base, _ := url.Parse("https://kozmic.example.com")
	return New(Config{WebURL: fake.WebURL(), BaseURL: base}), fake
}

func TestRepo(t *testing.T) {
	g, fake := newTestGitHub(t)
	fake.Route("GET "+repoPath, 200, "repo.json")
	r, err := g.Repo(context.Background(), "tok", "octocat/Hello-World")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != 1296269 || !r.Private || !r.Admin || r.SSHURL != "git@github.com:octocat/Hello-World.git" ||
		r.HTTPSURL != "https://github.com/octocat/Hello-World.git" {
		t.Errorf("repo = %+v", r)
	}
	if _, err := g.Repo(context.Background(), "tok", "octocat/missing"); err == nil {
		t.Error("a missing repository was read")
	}
}

// RepoOfURL names a repository only for URLs on this GitHub whose path is
// exactly an owner and a name, so that what git fetches is the repository
// whose admin rights were checked.
func TestRepoOfURL(t *testing.T) {
	g, fake := newTestGitHub(t)
	host := fake.WebURL().Host // 127.0.0.1:port
	hostname := fake.WebURL().Hostname()
	for u, want := range map[string]string{
		"http://" + host + "/octocat/Hello-World.git":       "octocat/Hello-World",
		"https://" + hostname + "/octocat/Hello-World":      "octocat/Hello-World",
		"https://" + hostname + "/octocat/Hello-World/":     "octocat/Hello-World",
		"git@" + hostname + ":octocat/Hello-World.git":      "octocat/Hello-World",
		"ssh://git@" + hostname + "/octocat/hello.world":    "octocat/hello.world",
		"https://" + hostname + "/octocat/Hello-World.git/": "octocat/Hello-World",
	} {
		if got, ok := g.RepoOfURL(u); !ok || got != want {
			t.Errorf("RepoOfURL(%q) = %q, %v; want %q", u, got, ok, want)
		}
	}
	for _, u := range []string{
		"https://gitlab.example.com/octocat/Hello-World.git",
		"https://" + hostname + ".evil.example/octocat/Hello-World.git",
		"https://" + hostname + "/octocat",
		"https://" + hostname + "/octocat/Hello-World/tree/main",
		"https://" + hostname + "/octocat/..",
		"https://" + hostname + "/octocat/%2E%2E%2Fother",
		"https://" + hostname + "/octocat/Hello-World.git?ref=x",
		"file:///octocat/Hello-World.git",
		"/octocat/Hello-World.git",
	} {
		if got, ok := g.RepoOfURL(u); ok {
			t.Errorf("RepoOfURL(%q) = %q, want none", u, got)
		}
	}
}

type sentHook struct {
	Name   string
	Active bool
	Events []string
	Config map[string]string
}

func TestEnsureWebhookCreatesOrRepairs(t *testing.T) {
	ctx := context.Background()
	g, fake := newTestGitHub(t)
	fake.Route("POST "+repoPath+"/hooks", 201, "hook.json")
	fake.Route("PATCH "+repoPath+"/hooks/12345678", 200, "hook.json")

	// None yet (another service's hook is left alone): one is created.
	fake.Script("GET "+repoPath+"/hooks", fakegithub.Reply{Status: 200,
		Body: `[{"id": 99, "name": "web", "active": true, "events": ["push"], "config": {"url": "https://other.example.com/hook", "content_type": "form"}}]`})
	id, err := g.EnsureWebhook(ctx, "tok", "octocat/Hello-World", hookURL, "s3cret")
	if err != nil || id != 12345678 {
		t.Fatalf("EnsureWebhook = %d, %v", id, err)
	}
	created := fake.CallsTo("POST " + repoPath + "/hooks")
	if len(created) != 1 {
		t.Fatalf("created %d hooks", len(created))
	}
	var h sentHook
	json.Unmarshal(created[0].Body, &h)
	if h.Name != "web" || !h.Active || strings.Join(h.Events, ",") != "push,pull_request" ||
		h.Config["url"] != hookURL || h.Config["content_type"] != "json" || h.Config["secret"] != "s3cret" || h.Config["insecure_ssl"] != "0" {
		t.Errorf("created hook = %+v", h)
	}
	if len(fake.CallsTo("PATCH "+repoPath+"/hooks/99")) != 0 {
		t.Error("another service's hook was changed")
	}

	// Ours exists but was broken by hand (form, push only, inactive): repaired, not duplicated.
	fake.Script("GET "+repoPath+"/hooks", fakegithub.Reply{Status: 200,
		Body: `[{"id": 12345678, "name": "web", "active": false, "events": ["push"], "config": {"url": "` + hookURL + `", "content_type": "form"}}]`})
	if id, err := g.EnsureWebhook(ctx, "tok", "octocat/Hello-World", hookURL, "s3cret"); err != nil || id != 12345678 {
		t.Fatalf("repair = %d, %v", id, err)
	}
	repaired := fake.CallsTo("PATCH " + repoPath + "/hooks/12345678")
	if len(repaired) != 1 || len(fake.CallsTo("POST "+repoPath+"/hooks")) != 1 {
		t.Fatalf("repair: %d edits, %d creations", len(repaired), len(fake.CallsTo("POST "+repoPath+"/hooks")))
	}
	json.Unmarshal(repaired[0].Body, &h)
	if !h.Active || strings.Join(h.Events, ",") != "push,pull_request" || h.Config["content_type"] != "json" || h.Config["secret"] != "s3cret" {
		t.Errorf("repaired hook = %+v", h)
	}
}

func TestEnsureDeployKey(t *testing.T) {
	ctx := context.Background()
	g, fake := newTestGitHub(t)
	fake.Route("POST "+repoPath+"/keys", 201, "key.json")
	_, pub, err := git.GenerateDeployKey("kozmic")
	if err != nil {
		t.Fatal(err)
	}
	fake.Script("GET "+repoPath+"/keys", fakegithub.Reply{Status: 200, Body: `[{"id": 5, "key": "ssh-ed25519 AAAAC3Nza-someone-else", "title": "laptop", "read_only": false}]`})
	if id, err := g.EnsureDeployKey(ctx, "tok", "octocat/Hello-World", "Kozmic", pub); err != nil || id != 1 {
		t.Fatalf("EnsureDeployKey = %d, %v", id, err)
	}
	added := fake.CallsTo("POST " + repoPath + "/keys")
	var k struct {
		Title, Key string
		ReadOnly   bool `json:"read_only"`
	}
	json.Unmarshal(added[0].Body, &k)
	if len(added) != 1 || k.Key != pub || !k.ReadOnly || k.Title != "Kozmic" {
		t.Errorf("added key = %+v", k)
	}
	// Already there (GitHub drops the comment): nothing added.
	fake.Script("GET "+repoPath+"/keys", fakegithub.Reply{Status: 200, Body: `[{"id": 77, "key": "` + keyBody(pub) + `", "title": "Kozmic", "read_only": true}]`})
	if id, err := g.EnsureDeployKey(ctx, "tok", "octocat/Hello-World", "Kozmic", pub); err != nil || id != 77 {
		t.Errorf("existing key = %d, %v; want 77", id, err)
	}
	if n := len(fake.CallsTo("POST " + repoPath + "/keys")); n != 1 {
		t.Errorf("keys added = %d, want still 1", n)
	}
}

func TestDeleteWebhookAndKey(t *testing.T) {
	ctx := context.Background()
	g, fake := newTestGitHub(t)
	fake.Script("DELETE "+repoPath+"/hooks/1", fakegithub.Reply{Status: 204})
	fake.Script("DELETE "+repoPath+"/keys/2", fakegithub.Reply{Status: 204})
	if err := g.DeleteWebhook(ctx, "tok", "octocat/Hello-World", 1); err != nil {
		t.Errorf("delete hook: %v", err)
	}
	if err := g.DeleteDeployKey(ctx, "tok", "octocat/Hello-World", 2); err != nil {
		t.Errorf("delete key: %v", err)
	}
	// Already gone on GitHub (the fake answers 404 for anything unscripted): fine.
	if err := g.DeleteWebhook(ctx, "tok", "octocat/Hello-World", 3); err != nil {
		t.Errorf("delete a missing hook: %v", err)
	}
	if err := g.DeleteDeployKey(ctx, "tok", "octocat/Hello-World", 4); err != nil {
		t.Errorf("delete a missing key: %v", err)
	}
	fake.Script("DELETE "+repoPath+"/hooks/5", fakegithub.Reply{Status: 403, Body: `{"message":"Must have admin rights to Repository."}`})
	if err := g.DeleteWebhook(ctx, "tok", "octocat/Hello-World", 5); err == nil || !strings.Contains(err.Error(), "admin rights") {
		t.Errorf("refused delete: %v; want GitHub's message", err)
	}
}
