package gh

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-github/v60/github"
	"golang.org/x/oauth2"
)

// Config says which GitHub Kozmic talks to and how it is known there.
type Config struct {
	// WebURL is GitHub's web address: https://github.com, or a GitHub
	// Enterprise server, whose API is then at WebURL/api/v3/.
	WebURL       *url.URL
	ClientID     string
	ClientSecret string
	// BaseURL is Kozmic's public address, for OAuth callbacks and links.
	BaseURL *url.URL
	// SignIn says who may sign in and which of them are Kozmic admins.
	SignIn SignIn
}

// SignIn is who may sign in with GitHub: the active members of Orgs, the
// logins in Users and the Admins, or with Open every GitHub account. Names
// are compared without regard to case, as GitHub compares them. The zero
// SignIn admits nobody.
type SignIn struct {
	Orgs, Users []string
	// Admins are the logins that are Kozmic admins.
	Admins []string
	Open   bool
}

// GitHub makes API clients and runs the OAuth flow against one GitHub.
type GitHub struct {
	cfg    Config
	apiURL string
	oauth  *oauth2.Config
}

// New returns a GitHub for cfg.
func New(cfg Config) *GitHub {
	web := strings.TrimRight(cfg.WebURL.String(), "/")
	api := web + "/api/v3/"
	if cfg.WebURL.Host == "github.com" {
		api = "https://api.github.com/"
	}
	return &GitHub{cfg: cfg, apiURL: api, oauth: &oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   web + "/login/oauth/authorize",
			TokenURL:  web + "/login/oauth/access_token",
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: strings.TrimRight(cfg.BaseURL.String(), "/") + "/auth/github/callback",
		Scopes:      []string{"repo", "read:org", "user:email"},
	}}
}

// client returns an API client acting with token.
func (g *GitHub) client(ctx context.Context, token string) *github.Client {
	hc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
	c := github.NewClient(hc)
	if g.apiURL != "https://api.github.com/" {
		c, _ = c.WithEnterpriseURLs(g.apiURL, g.apiURL) // both end in /: never an error
	}
	return c
}

// statusCode is the HTTP status of a failed API call, or 0.
func statusCode(err error) int {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// Message says, in words fit to show people, why a GitHub call or a step
// of Projects failed: a *Failure's own words, that the account is not
// connected to GitHub, GitHub's own message, or that GitHub could not be
// reached. It never includes Kozmic's internal error text.
func Message(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Msg
	}
	if errors.Is(err, ErrNotConnected) {
		return "Your account is not connected to GitHub: sign in with GitHub to act on its repositories."
	}
	var rate *github.RateLimitError
	if errors.As(err, &rate) {
		return "GitHub's rate limit for your account is used up until " + rate.Rate.Reset.Format("15:04 MST") + "."
	}
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		msg := er.Message
		if msg == "" {
			msg = http.StatusText(er.Response.StatusCode)
		}
		return "GitHub answered: " + msg
	}
	return "GitHub could not be reached; try again in a moment."
}
