package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"kozmic/gh"
	"kozmic/internal/fakegithub"
	"kozmic/store"
)

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	t      testing.TB
	c      *http.Client
	base   string
	header http.Header // sent with every request
}

func newBrowser(t testing.TB, s *testServer) *browser { return newBrowserVia(t, s) }

// newBrowserFrom is a browser whose connections reach s from peer (host:port),
// as if it were on another machine (see atPeer).
func newBrowserFrom(t testing.TB, s *testServer, peer string) *browser {
	return newBrowserVia(t, atPeer(s, peer))
}

// atPeer is h reached from peer (host:port), as if from another machine:
// only RemoteAddr differs, as it would.
func atPeer(h http.Handler, peer string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = peer
		h.ServeHTTP(w, r)
	})
}

// atManyPeers is h reached by each request from an IPv4 address of its
// own (in 10.0.0.0/8), as if from as many machines.
func atManyPeers(h http.Handler) http.Handler {
	var n atomic.Uint32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4711)
		atPeer(h, peer.String()).ServeHTTP(w, r)
	})
}

// newBrowserVia is a browser of the server h.
func newBrowserVia(t testing.TB, h http.Handler) *browser {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return newBrowserAt(t, srv.URL)
}

// newBrowserAt is a browser of the server at base.
func newBrowserAt(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, header: http.Header{}, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	page, _ := io.ReadAll(res.Body)
	return res, string(page)
}

func (b *browser) sessionCookie() string {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "kozmic_session" {
			return c.Value
		}
	}
	return ""
}

// signIn runs the GitHub login as a browser would, against the fake GitHub.
func (b *browser) signIn(next string) *http.Response {
	b.t.Helper()
	res, _ := b.do("GET", "/auth/github?next="+url.QueryEscape(next), nil)
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("/auth/github: %d", res.StatusCode)
	}
	auth, _ := url.Parse(res.Header.Get("Location"))
	res, _ = b.do("GET", "/auth/github/callback?code=a-code&state="+url.QueryEscape(auth.Query().Get("state")), nil)
	return res
}

func TestGitHubLogin(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	ctx := context.Background()

	res, page := b.do("GET", "/login", nil)
	if res.StatusCode != 200 || !strings.Contains(page, "Sign in with GitHub") {
		t.Fatalf("login page: %d", res.StatusCode)
	}
	res, _ = b.do("GET", "/auth/github?next=/account", nil)
	auth, _ := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != 303 || auth.Host != s.github.WebURL().Host || auth.Path != "/login/oauth/authorize" || len(auth.Query().Get("state")) != 64 {
		t.Fatalf("/auth/github: %d to %s", res.StatusCode, auth)
	}
	before := b.sessionCookie()
	res, _ = b.do("GET", "/auth/github/callback?code=a-code&state="+auth.Query().Get("state"), nil)
	if res.StatusCode != 303 || res.Header.Get("Location") != "/account" {
		t.Fatalf("callback: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if after := b.sessionCookie(); after == "" || after == before {
		t.Errorf("session token not renewed at login (%q -> %q)", before, after)
	}
	u, err := s.db.UserByID(ctx, 1)
	if err != nil || u.GitHubLogin != "octocat" || u.Email != "octocat@github.com" {
		t.Fatalf("stored user = %+v, %v", u, err)
	}
	if tok, _ := s.db.UserAccessToken(ctx, u.ID); tok != "gho_16C7e42F292c6912E7710c838347Ae178B4a" {
		t.Errorf("stored token = %q", tok)
	}

	res, page = b.do("GET", "/account", nil)
	if res.StatusCode != 200 || !strings.Contains(page, "octocat") || !strings.Contains(page, `value="octocat@github.com"`) {
		t.Errorf("account page: %d", res.StatusCode)
	}
	res, page = b.do("POST", "/account", url.Values{"email": {"not an address"}})
	if res.StatusCode != 422 || !strings.Contains(page, "not an e-mail address") {
		t.Errorf("bad address: %d", res.StatusCode)
	}
	res, _ = b.do("POST", "/account", url.Values{"email": {"builds@example.com"}})
	if u, _ := s.db.UserByID(ctx, 1); res.StatusCode != 303 || u.Email != "builds@example.com" {
		t.Errorf("saving the address: %d, stored %q", res.StatusCode, u.Email)
	}

	// A cross-site form post is refused, whatever it carries.
	b.header.Set("Sec-Fetch-Site", "cross-site")
	if res, _ := b.do("POST", "/logout", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site logout: %d, want 403", res.StatusCode)
	}
	b.header.Del("Sec-Fetch-Site")

	res, _ = b.do("POST", "/logout", url.Values{})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/login" {
		t.Errorf("logout: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	res, _ = b.do("GET", "/account", nil)
	if res.StatusCode != 303 || res.Header.Get("Location") != "/login?next=%2Faccount" {
		t.Errorf("account after logout: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestGitHubLoginRefusals(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	b.do("GET", "/auth/github", nil)
	res, page := b.do("GET", "/auth/github/callback?code=a-code&state=forged", nil)
	if res.StatusCode != 400 || !strings.Contains(page, "expired") {
		t.Errorf("forged state: %d", res.StatusCode)
	}
	// A callback without a login started here at all.
	other := newBrowser(t, s)
	if res, _ := other.do("GET", "/auth/github/callback?code=a-code&state=", nil); res.StatusCode != 400 {
		t.Errorf("callback with no state: %d", res.StatusCode)
	}
	if _, err := s.db.UserByID(context.Background(), 1); err == nil {
		t.Error("a refused login created a user")
	}
	if len(s.github.CallsTo("POST /login/oauth/access_token")) != 0 {
		t.Error("the code was exchanged despite a bad state")
	}

	// next= only ever leads to this server.
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		if res := b.signIn(next); res.Header.Get("Location") != "/" {
			t.Errorf("next=%q led to %q", next, res.Header.Get("Location"))
		}
	}
	if res := b.signIn("/account?tab=1"); res.Header.Get("Location") != "/account?tab=1" {
		t.Errorf("local next led to %q", res.Header.Get("Location"))
	}
}

func TestLocalPath(t *testing.T) {
	for p, want := range map[string]string{"/a/b?c=d": "/a/b?c=d", "": "", "a": "", "//x": "", "/\\x": "",
		"http://x/": "", "/ok#frag": "/ok#frag"} {
		if got := localPath(p); got != want {
			t.Errorf("localPath(%q) = %q, want %q", p, got, want)
		}
	}
}

// withSignIn gives a test server's GitHub sign-in the rules in.
func withSignIn(in gh.SignIn) func(*Deps) {
	return func(d *Deps) {
		d.GitHub = gh.New(gh.Config{WebURL: d.GitHubURL, ClientID: "client-id", ClientSecret: "client-secret", BaseURL: d.BaseURL, SignIn: in})
	}
}

// checkRefused checks that a sign-in was refused with 403 and a page that
// says so, and that it left no session behind.
func checkRefused(t *testing.T, b *browser, res *http.Response, page, says string) {
	t.Helper()
	if res.StatusCode != http.StatusForbidden || !strings.Contains(parse(t, page).Find(`[role="alert"]`).Text(), says) {
		t.Errorf("refused sign-in: %d %q, want 403 saying %q", res.StatusCode, parse(t, page).Find(`[role="alert"]`).Text(), says)
	}
	if signedIn(b) {
		t.Error("a refused sign-in has a session")
	}
}

// A GitHub account the server does not name is refused: a page says whom
// the server admits, and neither a user nor a session is made. Logins are
// compared without case, as GitHub compares them.
func TestGitHubSignInRefusesLoginOutsideAllowlist(t *testing.T) {
	s := newTestServerWith(t, true, withSignIn(gh.SignIn{Users: []string{"hubot"}}))
	b := newBrowser(t, s)
	res, _ := b.do("GET", "/auth/github", nil)
	auth, _ := url.Parse(res.Header.Get("Location"))
	res, page := b.do("GET", "/auth/github/callback?code=a-code&state="+auth.Query().Get("state"), nil)
	checkRefused(t, b, res, page, "This Kozmic server admits the GitHub accounts it names; octocat is not one of them. Ask an admin of this server to let you in.")
	if _, err := s.db.UserByID(context.Background(), 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused sign-in stored a user: %v", err)
	}
	if !strings.Contains(s.logs.String(), "GitHub sign-in refused") {
		t.Error("the refusal was not logged")
	}

	named := newTestServerWith(t, true, withSignIn(gh.SignIn{Users: []string{"hubot", "OctoCat"}}))
	nb := newBrowser(t, named)
	if res := nb.signIn("/"); res.StatusCode != http.StatusSeeOther || !signedIn(nb) {
		t.Errorf("a named login: %d", res.StatusCode)
	}
}

// Membership of an organization is asked of GitHub at every sign-in: a
// member who left, or whose invitation is still pending, is refused at
// their next sign-in, though Kozmic knows them from before.
func TestGitHubSignInRechecksOrgMembership(t *testing.T) {
	s := newTestServer(t) // admits members of testOrg
	b := newBrowser(t, s)
	if res := b.signIn("/"); res.StatusCode != http.StatusSeeOther || !signedIn(b) {
		t.Fatalf("a member: %d", res.StatusCode)
	}
	b.do("POST", "/logout", url.Values{})
	membership := "GET /api/v3/user/memberships/orgs/" + testOrg
	for name, reply := range map[string]fakegithub.Reply{
		"left":    {Status: 404, Body: `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user","status":"404"}`},
		"pending": {Status: 200, Body: s.github.Fixture("org_membership_pending.json")},
	} {
		s.github.Script(membership, reply)
		res, _ := b.do("GET", "/auth/github", nil)
		auth, _ := url.Parse(res.Header.Get("Location"))
		res, page := b.do("GET", "/auth/github/callback?code=a-code&state="+auth.Query().Get("state"), nil)
		checkRefused(t, b, res, page, "admits members of "+testOrg+" on GitHub")
		if t.Failed() {
			t.Fatalf("%s: not refused", name)
		}
	}
	if n := len(s.github.CallsTo(membership)); n != 3 {
		t.Errorf("membership asked %d times in three sign-ins", n)
	}
	if res := b.signIn("/"); res.StatusCode != http.StatusSeeOther || !signedIn(b) {
		t.Errorf("a member again: %d", res.StatusCode)
	}
}

// Someone who left the organization and tries to sign in again is refused,
// and the sessions they still had, in other browsers too, end with it.
func TestRefusedGitHubSignInEndsTheSessionsTheAccountHad(t *testing.T) {
	s := newTestServer(t) // admits members of testOrg
	laptop, phone := newBrowser(t, s), newBrowser(t, s)
	for _, b := range []*browser{laptop, phone} {
		if res := b.signIn("/"); res.StatusCode != http.StatusSeeOther || !signedIn(b) {
			t.Fatalf("a member: %d", res.StatusCode)
		}
	}
	s.github.Script("GET /api/v3/user/memberships/orgs/"+testOrg, fakegithub.Reply{Status: 404,
		Body: `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user","status":"404"}`})
	res, _ := phone.do("GET", "/auth/github", nil)
	auth, _ := url.Parse(res.Header.Get("Location"))
	res, page := phone.do("GET", "/auth/github/callback?code=a-code&state="+auth.Query().Get("state"), nil)
	checkRefused(t, phone, res, page, "admits members of "+testOrg+" on GitHub")
	if signedIn(laptop) {
		t.Error("the laptop's session outlived the refusal of its account")
	}
}

// KOZMIC_ADMINS makes a GitHub user a Kozmic admin at sign-in, and a
// sign-in after they were taken off the list makes them an ordinary user.
func TestGitHubSignInSetsAndClearsKozmicAdmin(t *testing.T) {
	s := newTestServerWith(t, true, withSignIn(gh.SignIn{Orgs: []string{testOrg}, Admins: []string{"OCTOCAT"}}))
	ctx := context.Background()
	if res := newBrowser(t, s).signIn("/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", res.StatusCode)
	}
	if u, err := s.db.UserByID(ctx, 1); err != nil || !u.IsAdmin {
		t.Fatalf("octocat after signing in as an admin: %+v, %v", u, err)
	}
	// The same database, served with octocat no longer an admin.
	withSignIn(gh.SignIn{Orgs: []string{testOrg}})(&s.deps)
	s.Handler = New(s.deps)
	if res := newBrowser(t, s).signIn("/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in again: %d", res.StatusCode)
	}
	if u, err := s.db.UserByID(ctx, 1); err != nil || u.IsAdmin {
		t.Errorf("octocat after signing in off the admin list: %+v, %v", u, err)
	}
}
