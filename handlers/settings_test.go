package handlers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"kozmic/runner"
	"kozmic/store"
)

// ownedProject signs b in as octocat and gives them a private GitHub project.
func ownedProject(t *testing.T, s *testServer, b *browser, name string, githubID int64) store.Project {
	t.Helper()
	b.signIn("/")
	p, err := s.db.CreateProject(context.Background(), store.NewProject{OwnerID: 1, Source: store.SourceGitHub,
		GitHubID: githubID, FullName: name, WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHookSettings(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	other := ownedProject(t, s, b, "octocat/Other", 42)
	ctx := context.Background()
	settings := fmt.Sprintf("/projects/%d/settings", p.ID)

	res, page := b.do("GET", settings, nil)
	if res.StatusCode != 200 || !strings.Contains(page, "No hooks yet") {
		t.Fatalf("empty settings: %d", res.StatusCode)
	}
	form := url.Values{"title": {"unit <tests>"}, "image": {"golang:1.26"}, "install": {"#!/bin/sh\r\ngo mod download\r\n"},
		"tracked": {"go.mod\r\ngo.sum\r\n\r\n"}, "build": {"#!/bin/sh\r\ngo test ./...\r\n"}}
	res, _ = b.do("POST", fmt.Sprintf("/projects/%d/hooks", p.ID), form)
	if res.StatusCode != 303 || res.Header.Get("Location") != settings+"?flash=hook-saved" {
		t.Fatalf("create hook: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	hooks, _ := s.db.Hooks(ctx, p.ID)
	if len(hooks) != 1 || hooks[0].BuildScript != "#!/bin/sh\ngo test ./...\n" || hooks[0].InstallScript != "#!/bin/sh\ngo mod download\n" ||
		strings.Join(hooks[0].TrackedFiles, ",") != "go.mod,go.sum" {
		t.Fatalf("stored hook = %+v", hooks)
	}
	hk := hooks[0]
	res, page = b.do("GET", settings+"?flash=hook-saved", nil)
	if !strings.Contains(page, "Hook saved.") || !strings.Contains(page, "unit &lt;tests&gt;") || strings.Contains(page, "unit <tests>") {
		t.Errorf("settings after save: %d, title escaped? %v", res.StatusCode, strings.Contains(page, "&lt;tests&gt;"))
	}

	// Refusals keep what was typed and say why.
	form.Set("title", "")
	res, page = b.do("POST", fmt.Sprintf("/projects/%d/hooks", p.ID), form)
	if res.StatusCode != 422 || !strings.Contains(page, "A hook needs a title.") || !strings.Contains(page, "go mod download") {
		t.Errorf("untitled hook: %d", res.StatusCode)
	}
	form.Set("title", "unit <tests>")
	res, page = b.do("POST", fmt.Sprintf("/projects/%d/hooks", p.ID), form)
	if res.StatusCode != 422 || !strings.Contains(page, "already has that title") {
		t.Errorf("duplicate title: %d", res.StatusCode)
	}

	// Edit.
	res, page = b.do("GET", fmt.Sprintf("/projects/%d/hooks/%d", p.ID, hk.ID), nil)
	if res.StatusCode != 200 || !strings.Contains(page, "go.mod\ngo.sum") {
		t.Errorf("edit form: %d", res.StatusCode)
	}
	form.Set("image", "golang:1.27")
	if res, _ := b.do("POST", fmt.Sprintf("/projects/%d/hooks/%d", p.ID, hk.ID), form); res.StatusCode != 303 {
		t.Errorf("update: %d", res.StatusCode)
	}
	if got, _ := s.db.HookByID(ctx, hk.ID); got.DockerImage != "golang:1.27" {
		t.Errorf("image after update = %q", got.DockerImage)
	}
	// A hook is only reachable through its own project.
	for _, path := range []string{fmt.Sprintf("/projects/%d/hooks/%d", other.ID, hk.ID), fmt.Sprintf("/projects/%d/hooks/999", p.ID)} {
		if res, _ := b.do("GET", path, nil); res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
	if res, _ := b.do("POST", fmt.Sprintf("/projects/%d/hooks/%d/delete", other.ID, hk.ID), url.Values{}); res.StatusCode != 404 {
		t.Errorf("deleting through another project: %d", res.StatusCode)
	}
	if res, _ := b.do("POST", fmt.Sprintf("/projects/%d/hooks/%d/delete", p.ID, hk.ID), url.Values{}); res.StatusCode != 303 {
		t.Errorf("delete: %d", res.StatusCode)
	}
	if hooks, _ := s.db.Hooks(ctx, p.ID); len(hooks) != 0 {
		t.Errorf("hooks after delete = %d", len(hooks))
	}
}

func TestSecretSettings(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	const value = "the-value-nobody-sees"
	res, _ := b.do("POST", fmt.Sprintf("/projects/%d/secrets", p.ID), url.Values{"name": {"DEPLOY_TOKEN"}, "value": {value}})
	if res.StatusCode != 303 {
		t.Fatalf("set secret: %d", res.StatusCode)
	}
	_, page := b.do("GET", fmt.Sprintf("/projects/%d/settings", p.ID), nil)
	if !strings.Contains(page, "DEPLOY_TOKEN") || strings.Contains(page, value) {
		t.Errorf("settings: name shown %v, value shown %v", strings.Contains(page, "DEPLOY_TOKEN"), strings.Contains(page, value))
	}
	res, page = b.do("POST", fmt.Sprintf("/projects/%d/secrets", p.ID), url.Values{"name": {"1BAD"}, "value": {"x"}})
	if res.StatusCode != 422 || !strings.Contains(page, "A secret name uses letters") {
		t.Errorf("bad name: %d", res.StatusCode)
	}
	secrets, _ := s.db.Secrets(context.Background(), p.ID)
	if len(secrets) != 1 || secrets[0].Value != value {
		t.Errorf("secrets = %+v", secrets)
	}
	if res, _ := b.do("POST", fmt.Sprintf("/projects/%d/secrets/DEPLOY_TOKEN/delete", p.ID), url.Values{}); res.StatusCode != 303 {
		t.Errorf("delete secret: %d", res.StatusCode)
	}
	if names, _ := s.db.SecretNames(context.Background(), p.ID); len(names) != 0 {
		t.Errorf("secrets after delete = %v", names)
	}
}

func TestClearCacheForm(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	path := fmt.Sprintf("/projects/%d/settings", p.ID)
	_, page := b.do("GET", path, nil)
	form := parse(t, page).Find(`form[action="/projects/` + fmt.Sprint(p.ID) + `/cache/clear"]`)
	if form.Length() != 1 || form.AttrOr("method", "") != "post" || !strings.Contains(form.AttrOr("data-confirm", ""), "install script again") {
		t.Fatalf("no confirmed Clear install cache form")
	}
	// This server's runner has no Docker engine: the page says it could not.
	res, page := b.do("POST", fmt.Sprintf("/projects/%d/cache/clear", p.ID), url.Values{})
	if res.StatusCode != 409 || !strings.Contains(parse(t, page).Find(`[role="alert"]`).Text(), "could not be removed") {
		t.Errorf("clear without Docker: %d", res.StatusCode)
	}
	stranger := newBrowser(t, s)
	signInAs(t, s, stranger, 9, "stranger")
	if res, _ := stranger.do("POST", fmt.Sprintf("/projects/%d/cache/clear", p.ID), url.Values{}); res.StatusCode != 404 {
		t.Errorf("a stranger clears the cache: %d", res.StatusCode)
	}
}

// A script without a #! line cannot run, but the hook is still saved (the
// typed text is never lost) and the settings page says what to fix.
func TestHookWithoutShebangIsSavedWithAWarning(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	settings := fmt.Sprintf("/projects/%d/settings", p.ID)
	for _, c := range []struct {
		title, install, build string
		warns                 []string // the scripts the warning names
	}{
		{"build only", "", "echo hi\n", []string{"build script"}},
		{"install only", "go mod download\n", "#!/bin/sh\necho hi\n", []string{"install script"}},
		{"both", " apt-get update\n", "\n#!/bin/sh\necho hi\n", []string{"build and install scripts"}},
		{"neither", "#!/bin/sh\necho deps\n", "#!/bin/sh\necho hi\n", nil},
	} {
		form := url.Values{"title": {c.title}, "image": {"alpine"}, "install": {c.install}, "build": {c.build}}
		res, _ := b.do("POST", fmt.Sprintf("/projects/%d/hooks", p.ID), form)
		if res.StatusCode != 303 {
			t.Fatalf("%s: save answered %d", c.title, res.StatusCode)
		}
		hooks, err := s.db.Hooks(context.Background(), p.ID)
		if err != nil {
			t.Fatal(err)
		}
		saved := false
		for _, hk := range hooks {
			saved = saved || (hk.Title == c.title && hk.BuildScript == c.build && hk.InstallScript == c.install)
		}
		if !saved {
			t.Errorf("%s: hook not saved as typed: %+v", c.title, hooks)
		}
		doc, _ := fetchPage(t, b, res.Header.Get("Location"), 200)
		if got := textOf(doc.Find("p.flash.flash-ok")); !strings.HasPrefix(got, "Hook saved.") {
			t.Errorf("%s: flash %q", c.title, got)
		}
		warn := doc.Find(`p.flash.flash-warn[role="alert"]`)
		if c.warns == nil {
			if warn.Length() != 0 {
				t.Errorf("%s: scripts with #! lines warned about: %q", c.title, textOf(warn))
			}
			continue
		}
		if text := textOf(warn); warn.Length() != 1 || !strings.Contains(text, "Its "+c.warns[0]) || !strings.Contains(text, "#!/bin/sh") {
			t.Errorf("%s: %d warnings %q, want one about the %s", c.title, warn.Length(), text, c.warns[0])
		}
	}
	// The warning is only what the server's own keys say.
	doc, _ := fetchPage(t, b, settings+"?flash=hook-saved&warn=<b>hi</b>", 200)
	if n := doc.Find("p.flash-warn").Length(); n != 0 {
		t.Errorf("an unknown warning key shows %d warnings", n)
	}
}

// engineStates is a runner whose engines are as given.
type engineStates struct {
	Jobs
	states []runner.EngineState
}

func (e engineStates) Engines() []runner.EngineState { return e.states }

// A Clear that left images says why: the engines that do not answer, by
// name when there are several, or else a running job's use of them.
func TestClearCacheFailureNamesTheEnginesThatDoNotAnswer(t *testing.T) {
	s := newTestServer(t)
	up, down := runner.EngineState{Name: "local"}, runner.EngineState{Name: "builder2", Down: true}
	other := runner.EngineState{Name: "builder3", Down: true}
	for _, tc := range []struct {
		states []runner.EngineState
		want   string
	}{
		{[]runner.EngineState{up}, "a running job uses them"},
		{[]runner.EngineState{{Name: "local", Down: true}}, "Docker is unreachable"},
		{[]runner.EngineState{up, down}, "the Docker engine builder2 is not reachable"},
		{[]runner.EngineState{up, down, other}, "the Docker engines builder2, builder3 are not reachable"},
	} {
		h := *s.Handler
		h.jobs = engineStates{Jobs: s.Handler.jobs, states: tc.states}
		if got := h.whyNotCleared(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.states, got, tc.want)
		}
	}
}
