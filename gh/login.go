package gh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-github/v60/github"

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

// ErrNotAdmitted means the GitHub account is not one this server's SignIn
// admits. Login returns it within a *Failure that says whom the server
// admits.
var ErrNotAdmitted = errors.New("not admitted to this Kozmic server")

// Login exchanges the code GitHub sent back for an access token, reads who
// it belongs to and checks that SignIn admits them, asking GitHub for their
// membership of each organization with their own token every time, so that
// someone who left the organization is refused. It returns the user with
// their primary verified e-mail address and whether they are an admin.
//
// Errors: ErrLoginRefused; a *Failure wrapping ErrNotAdmitted, returned
// with the refused user's id and login (nothing else); anything else is
// GitHub failing to answer.
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
		Email: u.GetEmail(), AccessToken: tok.AccessToken, IsAdmin: named(g.cfg.SignIn.Admins, u.GetLogin())}
	if err := g.admit(ctx, c, gu); errors.Is(err, ErrNotAdmitted) {
		// Who was refused: any sessions they still have are to end.
		return store.GitHubUser{ID: gu.ID, Login: gu.Login}, err
	} else if err != nil {
		return store.GitHubUser{}, err
	}
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

// named says whether login is in names, compared without case.
func named(names []string, login string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, login) })
}

// admit returns nil when SignIn admits gu: an admin, a named login, an
// active member of a named organization (a pending invitation is not
// enough), or anyone on an open server.
func (g *GitHub) admit(ctx context.Context, c *github.Client, gu store.GitHubUser) error {
	in := g.cfg.SignIn
	if in.Open || gu.IsAdmin || named(in.Users, gu.Login) {
		return nil
	}
	for _, org := range in.Orgs {
		m, _, err := c.Organizations.GetOrgMembership(ctx, "", org)
		switch code := statusCode(err); {
		// 404: not a member; 403: the organization does not let this
		// OAuth app see its members. Either way, not admitted by it.
		case code == http.StatusNotFound || code == http.StatusForbidden:
		case err != nil:
			return fmt.Errorf("read %s's membership of %s: %w", gu.Login, org, err)
		case m.GetState() == "active":
			return nil
		}
	}
	who := "the GitHub accounts it names"
	if len(in.Orgs) > 0 {
		who = "members of " + strings.Join(in.Orgs, ", ") + " on GitHub and the accounts it names"
	}
	return &Failure{Msg: "This Kozmic server admits " + who + "; " + gu.Login + " is not one of them. Ask an admin of this server to let you in.",
		Err: fmt.Errorf("%w: %s", ErrNotAdmitted, gu.Login)}
}
