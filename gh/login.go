package gh

import (
	"context"
	"errors"
	"fmt"

	"kozmic/store"
)

// Enabled reports whether login with GitHub is configured.
func (g *GitHub) Enabled() bool { return g.cfg.ClientID != "" }

// AuthURL is where to send a person to log in with GitHub; state comes
// back with them and must match.
func (g *GitHub) AuthURL(state string) string { return g.oauth.AuthCodeURL(state) }

// ErrLoginRefused means GitHub did not accept the login: the code was
// wrong, used or expired, or the app is misconfigured.
var ErrLoginRefused = errors.New("GitHub refused the login")

// Login exchanges the code GitHub sent back for an access token and reads
// who it belongs to, with their primary verified e-mail address.
func (g *GitHub) Login(ctx context.Context, code string) (store.GitHubUser, error) {
	tok, err := g.oauth.Exchange(ctx, code)
	if err != nil {
		return store.GitHubUser{}, fmt.Errorf("%w: %v", ErrLoginRefused, err)
	}
	c := g.client(ctx, tok.AccessToken)
	u, _, err := c.Users.Get(ctx, "")
	if err != nil {
		return store.GitHubUser{}, fmt.Errorf("read the GitHub user: %w", err)
	}
	gu := store.GitHubUser{ID: u.GetID(), Login: u.GetLogin(), Name: u.GetName(), AvatarURL: u.GetAvatarURL(),
		Email: u.GetEmail(), AccessToken: tok.AccessToken}
	emails, _, err := c.Users.ListEmails(ctx, nil)
	if err != nil {
		return store.GitHubUser{}, fmt.Errorf("read the GitHub user's e-mail addresses: %w", err)
	}
	for _, e := range emails {
		if e.GetPrimary() && e.GetVerified() {
			gu.Email = e.GetEmail()
		}
	}
	return gu, nil
}
