package handlers

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
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

// Thirty wrong guesses at ann's password sent at once from one address are
// counted as they arrive, before any password is checked: no more than the
// limit reach a password check (401); the rest are refused (429).
func TestParallelSignInGuessesAreCountedBeforeTheyAreChecked(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	srv := httptest.NewServer(s)
	defer srv.Close()
	const guesses = 30
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range guesses {
		wg.Go(func() {
			res, err := srv.Client().PostForm(srv.URL+"/login", url.Values{"username": {"ann"}, "password": {fmt.Sprintf("guess %d", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			mu.Lock()
			codes[res.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[401] != failuresPerUser || codes[429] != guesses-failuresPerUser {
		t.Errorf("%d parallel guesses: %v, want %d checked (401) and the rest 429", guesses, codes, failuresPerUser)
	}
}

// Once the limiter tracks as many keys as it may, all of them recent (five
// hundred addresses, each with nineteen accounts' counts and its own), a
// sign-in from an address it does not track is still checked and counted:
// a wrong password is 401, the right one signs in. Refusing new keys when
// full let those addresses lock everyone else out.
func TestFullLimiterNeverRefusesAnUntrackedAddress(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	for a := 0; len(s.logins.failures) < loginLimiterSize; a++ {
		from := fmt.Sprintf("198.51.%d.%d", a/256, a%256)
		for u := range failuresPerAddr - 1 {
			s.logins.attempt(limitKey{fmt.Sprintf("user:u%d from %s", u, from), failuresPerUser}, limitKey{"addr:" + from, failuresPerAddr})
		}
	}
	b := newBrowser(t, s)
	if code, doc := login(b, "ann", "guess", ""); code != 401 {
		t.Errorf("a wrong password from an untracked address, the limiter full: %d %q", code, doc.Find(`[role="alert"]`).Text())
	}
	if code, doc := login(b, "ann", "ann's password", ""); code != 303 || !signedIn(b) {
		t.Errorf("the right password from an untracked address, the limiter full: %d %q", code, doc.Find(`[role="alert"]`).Text())
	}
	if n := len(s.logins.failures); n > loginLimiterSize {
		t.Errorf("tracked keys: %d, more than %d", n, loginLimiterSize)
	}
}

// Sign-ins that succeed are taken back from their address's count: more
// people than the address may fail for sign in from it (an office behind
// one address), and its failures still count after them.
func TestSuccessfulSignInsDoNotCountAgainstTheAddress(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	for i := range failuresPerAddr + 1 {
		if code, _ := login(newBrowser(t, s), "ann", "ann's password", ""); code != 303 {
			t.Fatalf("sign-in %d from one address: %d", i+1, code)
		}
	}
	if code, _ := login(newBrowser(t, s), "ann", "guess", ""); code != 401 {
		t.Errorf("a wrong password after the sign-ins: %d", code)
	}
	if n := len(s.logins.failures["addr:127.0.0.1"]); n != 1 {
		t.Errorf("attempts counted against the address: %d, want the one failure", n)
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

// trusting makes a test server believe X-Forwarded-For from these proxies.
func trusting(proxies ...string) func(*Deps) {
	return func(d *Deps) {
		for _, p := range proxies {
			d.TrustedProxies = append(d.TrustedProxies, netip.MustParsePrefix(p))
		}
	}
}

func TestFailedSignInsFromOneAddressDoNotLockOutAccountElsewhere(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "bob", "bob's password")
	attacker := newBrowserFrom(t, s, "198.51.100.7:40000")
	for i := range failuresPerAddr {
		name := "bob"
		if i%2 == 1 {
			name = "BOB" // one account, however it is spelt
		}
		login(attacker, name, "guess", "")
	}
	if code, _ := login(attacker, "bob", "bob's password", ""); code != 429 {
		t.Errorf("the guessing address with bob's password: %d, want 429", code)
	}
	bob := newBrowserFrom(t, s, "203.0.113.5:51000")
	if code, doc := login(bob, "bob", "bob's password", ""); code != 303 || !signedIn(bob) {
		t.Errorf("bob from his own address after %d guesses elsewhere: %d %q", failuresPerAddr, code, doc.Find(`[role="alert"]`).Text())
	}
}

func TestForwardedForIgnoredFromUntrustedPeer(t *testing.T) {
	s := newTestServerWith(t, false, trusting("10.0.0.0/8"))
	localUser(t, s, "bob", "bob's password")
	attacker := newBrowserFrom(t, s, "198.51.100.7:40000")
	for i := range failuresPerAddr {
		// A new address each time, and finally bob's: believed, they would
		// give the attacker fresh counts, and lock bob out.
		attacker.header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d, 203.0.113.5", i))
		login(attacker, fmt.Sprintf("user%d", i), "guess", "")
	}
	attacker.header.Set("X-Forwarded-For", "192.0.2.200")
	if code, _ := login(attacker, "bob", "bob's password", ""); code != 429 {
		t.Errorf("after %d failures from one peer claiming other addresses: %d, want 429", failuresPerAddr, code)
	}
	if l := s.logs.String(); !strings.Contains(l, `msg="failed sign-in" username=user0 addr=198.51.100.7`) {
		t.Errorf("the failure is not logged with the peer's address:\n%s", l)
	}
	if code, _ := login(newBrowserFrom(t, s, "203.0.113.5:51000"), "bob", "bob's password", ""); code != 303 {
		t.Errorf("bob, whose address the attacker claimed: %d", code)
	}
}

func TestForwardedForUsedBehindTrustedProxy(t *testing.T) {
	s := newTestServerWith(t, false, trusting("10.0.0.0/8", "2001:db8:ffff::/48"))
	localUser(t, s, "bob", "bob's password")
	// The proxy appends the address it was called from to what the client
	// sent: the attacker's own claim to be bob stays on the left.
	attacker := newBrowserFrom(t, s, "10.0.0.2:40000")
	attacker.header.Set("X-Forwarded-For", "203.0.113.5, 198.51.100.7")
	for i := range failuresPerAddr {
		login(attacker, fmt.Sprintf("user%d", i), "guess", "")
	}
	if code, _ := login(attacker, "bob", "bob's password", ""); code != 429 {
		t.Errorf("the attacker behind the proxy after %d failures: %d, want 429", failuresPerAddr, code)
	}
	if l := s.logs.String(); !strings.Contains(l, `msg="failed sign-in" username=user0 addr=198.51.100.7`) {
		t.Errorf("the failure is not logged with the client's address:\n%s", l)
	}
	// Bob comes through the same proxy, after another trusted one.
	bob := newBrowserFrom(t, s, "10.0.0.2:40001")
	bob.header.Set("X-Forwarded-For", "203.0.113.5, 2001:db8:ffff::9")
	if code, _ := login(bob, "bob", "bob's password", ""); code != 303 {
		t.Errorf("bob through the same proxy: %d, want 303", code)
	}
}

func TestAddressesOfOneIPv6Slash64ShareTheSignInLimit(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "bob", "bob's password")
	for i := range failuresPerAddr {
		login(newBrowserFrom(t, s, fmt.Sprintf("[2001:db8:1:2::%x]:40000", i+1)), fmt.Sprintf("user%d", i), "guess", "")
	}
	if code, _ := login(newBrowserFrom(t, s, "[2001:db8:1:2:ffff::1]:40000"), "bob", "bob's password", ""); code != 429 {
		t.Errorf("another address of the guessing /64: %d, want 429", code)
	}
	if code, _ := login(newBrowserFrom(t, s, "[2001:db8:1:3::1]:40000"), "bob", "bob's password", ""); code != 303 {
		t.Errorf("an address of the next /64: %d, want 303", code)
	}
}
