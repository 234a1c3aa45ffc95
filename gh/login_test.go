package gh

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"kozmic/internal/fakegithub"
	"kozmic/store"
)

func TestLogin(t *testing.T) {
	fake := fakegithub.New(t)
	base, _ := url.Parse("https://kozmic.example.com")
	g := New(Config{WebURL: fake.WebURL(), ClientID: "client-id", ClientSecret: "client-secret", BaseURL: base,
		SignIn: SignIn{Users: []string{"OctoCat"}}}) // compared without case

	auth, err := url.Parse(g.AuthURL("state-123"))
	if err != nil {
		t.Fatal(err)
	}
	q := auth.Query()
	if auth.Path != "/login/oauth/authorize" || q.Get("state") != "state-123" || q.Get("client_id") != "client-id" ||
		q.Get("scope") != "repo read:org user:email" || q.Get("redirect_uri") != "https://kozmic.example.com/auth/github/callback" {
		t.Errorf("auth URL = %s", auth)
	}

	u, err := g.Login(context.Background(), "the-code")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != 1 || u.Login != "octocat" || u.Name != "monalisa octocat" || u.Email != "octocat@github.com" ||
		u.AccessToken != "gho_16C7e42F292c6912E7710c838347Ae178B4a" || u.IsAdmin {
		t.Errorf("user = %+v", u)
	}
	ex := fake.CallsTo("POST /login/oauth/access_token")
	if len(ex) != 1 || !strings.Contains(string(ex[0].Body), "code=the-code") || !strings.Contains(string(ex[0].Body), "client_secret=client-secret") {
		t.Errorf("token exchange = %+v", ex)
	}
	if calls := fake.CallsTo("GET /api/v3/user"); len(calls) != 1 || calls[0].Auth != "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a" {
		t.Errorf("user call = %+v", calls)
	}

	fake.Script("POST /login/oauth/access_token", fakegithub.Reply{Status: 200,
		Body: `{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}`})
	if _, err := g.Login(context.Background(), "stale"); err == nil {
		t.Error("a refused code logged in")
	}
}

// Login admits only the accounts SignIn names: admins and listed logins
// at once, and members of listed organizations only while GitHub says,
// asked with their own token at this sign-in, that their membership is
// active. Anyone else is refused with ErrNotAdmitted and words saying whom
// the server admits; GitHub failing to answer is an error, not a refusal.
func TestLoginAdmitsOnlyActiveMembersOfNamedOrgs(t *testing.T) {
	ctx := context.Background()
	fake := fakegithub.New(t)
	base, _ := url.Parse("https://kozmic.example.com")
	login := func(in SignIn) (store.GitHubUser, error) {
		t.Helper()
		return New(Config{WebURL: fake.WebURL(), ClientID: "id", ClientSecret: "secret", BaseURL: base, SignIn: in}).Login(ctx, "code")
	}
	const membership = "GET /api/v3/user/memberships/orgs/"
	if u, err := login(SignIn{Admins: []string{"OCTOCAT"}}); err != nil || !u.IsAdmin {
		t.Errorf("an admin: %+v, %v", u, err)
	}
	if u, err := login(SignIn{Open: true}); err != nil || u.IsAdmin {
		t.Errorf("open sign-up: %+v, %v", u, err)
	}
	if n := len(fake.CallsTo(membership + "github")); n != 0 {
		t.Errorf("memberships asked for %d times before any organization was named", n)
	}

	orgs := SignIn{Orgs: []string{"acme", "github"}, Users: []string{"hubot"}}
	fake.Route(membership+"github", 200, "org_membership.json")
	if u, err := login(orgs); err != nil || u.Login != "octocat" || u.IsAdmin {
		t.Fatalf("an active member of github: %+v, %v", u, err)
	}
	calls := fake.CallsTo(membership + "github")
	if len(calls) != 1 || calls[0].Auth != "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a" || len(fake.CallsTo(membership+"acme")) != 1 {
		t.Errorf("membership calls: github %+v, acme %d", calls, len(fake.CallsTo(membership+"acme")))
	}

	for name, reply := range map[string]fakegithub.Reply{
		"pending invitation": {Status: 200, Body: fake.Fixture("org_membership_pending.json")},
		"not a member":       {Status: 404, Body: `{"message":"Not Found","documentation_url":"https://docs.github.com/rest/orgs/members#get-an-organization-membership-for-the-authenticated-user","status":"404"}`},
		"app not approved":   {Status: 403, Body: `{"message":"Although you appear to have the correct authorization credentials, the ` + "`github`" + ` organization has enabled OAuth App access restrictions, meaning that data access to third-parties is limited.","documentation_url":"https://docs.github.com/articles/restricting-access-to-your-organization-s-data/","status":"403"}`},
	} {
		fake.Script(membership+"github", reply)
		_, err := login(orgs)
		var f *Failure
		if !errors.Is(err, ErrNotAdmitted) || !errors.As(err, &f) ||
			f.Msg != "This Kozmic server admits members of acme, github on GitHub and the accounts it names; octocat is not one of them. Ask an admin of this server to let you in." {
			t.Errorf("%s: %v", name, err)
		}
	}
	fake.Script(membership+"github", fakegithub.Reply{Status: 502, Body: `{"message":"Server Error"}`})
	if _, err := login(orgs); err == nil || errors.Is(err, ErrNotAdmitted) {
		t.Errorf("GitHub failing: %v, want an error that is not a refusal", err)
	}
	if _, err := login(SignIn{}); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("the zero SignIn admitted octocat: %v", err)
	}
}
