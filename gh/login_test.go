package gh

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"kozmic/internal/fakegithub"
)

func TestLogin(t *testing.T) {
	fake := fakegithub.New(t)
	base, _ := url.Parse("https://kozmic.example.com")
	g := New(Config{WebURL: fake.WebURL(), ClientID: "client-id", ClientSecret: "client-secret", BaseURL: base})

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
		u.AccessToken != "gho_16C7e42F292c6912E7710c838347Ae178B4a" {
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
