package handlers

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"kozmic/internal/password"
	"kozmic/store"
)

// localUser makes a local account with the given password.
func localUser(t *testing.T, s *testServer, name, pw string) store.User {
	t.Helper()
	return newLocalUser(t, s, name, pw, false)
}

// localAdmin makes a local admin account with the given password.
func localAdmin(t *testing.T, s *testServer, name, pw string) store.User {
	t.Helper()
	return newLocalUser(t, s, name, pw, true)
}

func newLocalUser(t *testing.T, s *testServer, name, pw string, admin bool) store.User {
	t.Helper()
	hash, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.db.CreateLocalUser(context.Background(), name, hash, admin)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// parse reads a page, or a fragment of one, for goquery.
func parse(t *testing.T, page string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// signedIn reports whether b's session belongs to a user.
func signedIn(b *browser) bool {
	res, _ := b.do("GET", "/account", nil)
	return res.StatusCode == 200
}

func login(b *browser, name, pw, next string) (int, *goquery.Document) {
	res, page := b.do("POST", "/login", url.Values{"username": {name}, "password": {pw}, "next": {next}})
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(page))
	if res.StatusCode == 303 {
		doc.Find("body").SetAttr("data-location", res.Header.Get("Location"))
	}
	return res.StatusCode, doc
}

func TestLocalLogin(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	b := newBrowser(t, s)

	_, page := b.do("GET", "/login?next=/account", nil)
	doc := parse(t, page)
	form := doc.Find(`form[method="post"][action="/login"]`)
	if form.Length() != 1 || form.Find(`input[name="username"]`).Length() != 1 || form.Find(`input[name="password"][type="password"]`).Length() != 1 ||
		form.Find(`input[name="next"]`).AttrOr("value", "") != "/account" {
		t.Fatalf("login form:\n%s", page)
	}
	if doc.Find(`a[href^="/auth/github"]`).Length() != 0 {
		t.Error("a GitHub button on a server without GitHub")
	}

	b.do("GET", "/", nil)
	before := b.sessionCookie()
	for _, pw := range []string{"wrong", "", "ANN'S PASSWORD"} {
		code, doc := login(b, "ann", pw, "/account")
		if code != 401 || strings.TrimSpace(doc.Find(`[role="alert"]`).Text()) != "Wrong username or password." ||
			doc.Find(`input[name="username"]`).AttrOr("value", "") != "ann" {
			t.Errorf("password %q: %d %q", pw, code, doc.Find(`[role="alert"]`).Text())
		}
	}
	if code, _ := login(b, "nobody", "ann's password", ""); code != 401 {
		t.Errorf("unknown user: %d", code)
	}
	if signedIn(b) {
		t.Fatal("signed in after wrong passwords")
	}
	code, doc := login(b, "ANN", "ann's password", "/account")
	if code != 303 || doc.Find("body").AttrOr("data-location", "") != "/account" {
		t.Fatalf("right password: %d to %q", code, doc.Find("body").AttrOr("data-location", ""))
	}
	if !signedIn(b) || b.sessionCookie() == before {
		t.Error("not signed in, or the session token was not renewed")
	}
	if code, doc := login(newBrowser(t, s), "ann", "ann's password", "https://evil.example/"); code != 303 || doc.Find("body").AttrOr("data-location", "") != "/" {
		t.Errorf("a foreign next: %d", code)
	}

	// With GitHub set up there is no password login.
	g := newTestServer(t)
	localUser(t, g, "ann", "ann's password")
	if code, _ := login(newBrowser(t, g), "ann", "ann's password", ""); code != 404 {
		t.Errorf("password login beside GitHub: %d", code)
	}
}

func TestLocalLoginRateLimits(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	localUser(t, s, "bob", "bob's password")
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s.logins.now = func() time.Time { return now }
	b := newBrowser(t, s)
	for range failuresPerUser {
		if code, _ := login(b, "ann", "guess", ""); code != 401 {
			t.Fatalf("guess: %d", code)
		}
	}
	code, doc := login(b, "ann", "ann's password", "")
	if code != 429 || !strings.Contains(doc.Find(`[role="alert"]`).Text(), "Too many failed sign-ins. Try again in 16m") || signedIn(b) {
		t.Errorf("after %d failures the right password: %d %q", failuresPerUser, code, doc.Find(`[role="alert"]`).Text())
	}
	// Another account from the same address is not locked by ann's.
	if code, _ := login(newBrowser(t, s), "bob", "bob's password", ""); code != 303 {
		t.Errorf("bob: %d", code)
	}
	now = now.Add(loginWindow)
	if code, _ := login(b, "ann", "ann's password", ""); code != 303 {
		t.Errorf("after the window: %d", code)
	}

	// An address that guesses at many accounts is stopped too.
	for i := range failuresPerAddr {
		login(newBrowser(t, s), "user"+strings.Repeat("x", i), "guess", "")
	}
	if code, _ := login(newBrowser(t, s), "bob", "bob's password", ""); code != 429 {
		t.Errorf("after %d failures from one address: %d", failuresPerAddr, code)
	}
}

func TestChangePassword(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	b := newBrowser(t, s)
	login(b, "ann", "ann's password", "")
	_, page := b.do("GET", "/account", nil)
	if parse(t, page).Find(`form[action="/account/password"] input[type="password"]`).Length() != 3 {
		t.Fatal("no password form on a local user's account page")
	}
	for _, tt := range []struct{ current, next, confirm, want string }{
		{"wrong password", "a new password", "a new password", "The current password is wrong."},
		{"ann's password", "a new password", "another one", "The new passwords differ."},
		{"ann's password", "short", "short", "That password cannot be used: a password needs at least 8 characters."},
	} {
		res, page := b.do("POST", "/account/password", url.Values{"current": {tt.current}, "new": {tt.next}, "confirm": {tt.confirm}})
		if got := strings.TrimSpace(parse(t, page).Find(`[role="alert"]`).Text()); res.StatusCode != 422 || got != tt.want {
			t.Errorf("%+v: %d %q", tt, res.StatusCode, got)
		}
	}
	res, _ := b.do("POST", "/account/password", url.Values{"current": {"ann's password"}, "new": {"a new password"}, "confirm": {"a new password"}})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/account?password-changed" {
		t.Fatalf("change: %d", res.StatusCode)
	}
	if code, _ := login(newBrowser(t, s), "ann", "ann's password", ""); code != 401 {
		t.Error("the old password still works")
	}
	if code, _ := login(newBrowser(t, s), "ann", "a new password", ""); code != 303 {
		t.Error("the new password does not work")
	}
}

// A password change ends ann's session in every other browser; the
// browser that changed it stays signed in.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	localUser(t, s, "bob", "bob's password")
	here, there, bob := newBrowser(t, s), newBrowser(t, s), newBrowser(t, s)
	for _, b := range []*browser{here, there} {
		if code, _ := login(b, "ann", "ann's password", ""); code != 303 {
			t.Fatalf("login: %d", code)
		}
	}
	login(bob, "bob", "bob's password", "")
	res, page := here.do("POST", "/account/password", url.Values{"current": {"ann's password"}, "new": {"a new password"}, "confirm": {"a new password"}})
	if res.StatusCode != 303 {
		t.Fatalf("change: %d\n%s", res.StatusCode, page)
	}
	if !signedIn(here) {
		t.Error("the browser that changed the password was signed out")
	}
	if signedIn(there) {
		t.Error("ann's other session still works after the password change")
	}
	if !signedIn(bob) {
		t.Error("bob's session ended with ann's password change")
	}
}

// Sign out everywhere ends every session of the user, the one that asked
// too: even its old cookie, replayed, is refused.
func TestSignOutEverywhereEndsAllSessions(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	here, there := newBrowser(t, s), newBrowser(t, s)
	login(here, "ann", "ann's password", "")
	login(there, "ann", "ann's password", "")
	old := here.sessionCookie()
	_, page := here.do("GET", "/account", nil)
	if parse(t, page).Find(`form[action="/account/sessions/delete"][data-confirm] button`).Text() != "Sign out everywhere" {
		t.Fatal("no confirmed Sign out everywhere form on the account page")
	}
	res, _ := here.do("POST", "/account/sessions/delete", url.Values{})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/login" {
		t.Fatalf("sign out everywhere: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if signedIn(here) || signedIn(there) {
		t.Errorf("still signed in: here %v, there %v", signedIn(here), signedIn(there))
	}
	replay := newBrowser(t, s)
	replay.header.Set("Cookie", "kozmic_session="+old)
	if signedIn(replay) {
		t.Error("the old session cookie still signs in")
	}
}
