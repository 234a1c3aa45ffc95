package handlers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"kozmic/store"
)

// A branch with URL syntax in its name keeps it in the link to older builds.
func TestOlderBuildsLinkKeepsBranch(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	for i := range buildsPerPage + 2 {
		buildWithLog(t, s, p, "refs/heads/fix+1&x#y", fmt.Sprintf("%040d", i), "m", "", store.JobSuccess)
	}
	_, page := b.do("GET", fmt.Sprintf("/projects/%d?branch=%s", p.ID, url.QueryEscape("fix+1&x#y")), nil)
	older, ok := parse(t, page).Find(`a:contains("Older builds")`).Attr("href")
	if !ok {
		t.Fatal("no link to older builds")
	}
	_, page = b.do("GET", older, nil)
	if n := parse(t, page).Find("span.build").Length(); n != 2 {
		t.Errorf("%s lists %d builds, want the 2 older ones", older, n)
	}
}

// A script that starts with blank lines comes back in the form as it was.
func TestHookFormKeepsLeadingNewlines(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	hk, err := s.db.CreateHook(context.Background(), store.Hook{ProjectID: p.ID, Title: "t", DockerImage: "i",
		InstallScript: "\n\necho install\n", BuildScript: "\n#!/bin/sh\n"})
	if err != nil {
		t.Fatal(err)
	}
	_, page := b.do("GET", fmt.Sprintf("/projects/%d/hooks/%d", p.ID, hk.ID), nil)
	doc := parse(t, page)
	if got := doc.Find("textarea#install").Text(); got != "\n\necho install\n" {
		t.Errorf("install script in the form = %q", got)
	}
	if got := doc.Find("textarea#build").Text(); got != "\n#!/bin/sh\n" {
		t.Errorf("build script in the form = %q", got)
	}
	res, page := b.do("POST", fmt.Sprintf("/projects/%d/hooks/%d", p.ID, hk.ID), url.Values{"title": {""}, "image": {"i"}, "build": {"#!/bin/sh"}})
	if h1 := parse(t, page).Find("main h1").Text(); res.StatusCode != 422 || h1 != "Edit hook" {
		t.Errorf("refused edit: %d, h1 %q", res.StatusCode, h1)
	}
}

// Error pages know who is signed in; the login page sends them on.
func TestErrorPagesKnowTheUser(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	b.signIn("/")
	for _, path := range []string{"/no/such/page", "/projects/999"} {
		res, page := b.do("GET", path, nil)
		if a := parse(t, page).Find(`header.top a[href="/account"]`).Text(); res.StatusCode != 404 || a != "octocat" {
			t.Errorf("%s: %d, account link %q", path, res.StatusCode, a)
		}
	}
	if res, _ := b.do("GET", "/login?next=/account", nil); res.StatusCode != 303 || res.Header.Get("Location") != "/account" {
		t.Errorf("login page when signed in: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

// Only Kozmic and GitHub's avatar hosts may serve images: a log's image
// escape cannot make a viewer's browser call elsewhere.
func TestImagesOnlyFromKozmicAndGitHub(t *testing.T) {
	s := newTestServer(t)
	res, _ := get(t, s, "/login")
	csp := res.Header.Get("Content-Security-Policy")
	img := ""
	for _, d := range strings.Split(csp, ";") {
		if f := strings.Fields(d); len(f) > 0 && f[0] == "img-src" {
			img = strings.Join(f[1:], " ")
		}
	}
	if img != "'self' data: https://avatars.githubusercontent.com "+s.github.WebURL().Scheme+"://"+s.github.WebURL().Host {
		t.Errorf("img-src = %q", img)
	}
}
