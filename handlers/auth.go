package handlers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"kozmic/gh"
	"kozmic/internal/password"
	"kozmic/internal/when"
	"kozmic/store"
	"kozmic/views"
)

// Session keys.
const (
	sessionUser  = store.SessionUser
	sessionState = "oauth_state"
	sessionNext  = "next"
	// sessionTouched is when the session's idle expiry was last moved on,
	// in Unix seconds (see touchSession).
	sessionTouched = "touched"
)

type userKey struct{}

// requireUser runs next with the signed-in user in the request's context,
// or sends an anonymous visitor to the login page, to come back afterwards.
func (h *Handler) requireUser(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := h.currentUser(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	}
}

// user is the signed-in user of a request that went through requireUser.
func user(r *http.Request) store.User { return r.Context().Value(userKey{}).(store.User) }

// currentUser returns the signed-in user, if any. A session whose user is
// gone is treated as anonymous.
func (h *Handler) currentUser(r *http.Request) (store.User, bool) {
	id := h.sessions.GetInt64(r.Context(), sessionUser)
	if id == 0 {
		return store.User{}, false
	}
	u, err := h.db.UserByID(r.Context(), id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.log.ErrorContext(r.Context(), "load session user", "user", id, "err", err)
		}
		return store.User{}, false
	}
	return u, true
}

// loginPage offers the ways to sign in; a signed-in person goes on to
// where they were headed.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.currentUser(r); ok {
		http.Redirect(w, r, orHome(localPath(r.URL.Query().Get("next"))), http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, views.LoginPage(views.LoginView{GitHub: h.github.Enabled(), Next: localPath(r.URL.Query().Get("next"))}))
}

// localLogin signs a local user in with their username and password; it
// exists only where GitHub login is not set up. Attempts are counted per
// username from a client address (see clientAddr) and per client address
// before the password is checked, and taken back when it is right: past
// either limit every attempt from that address is refused (429) for a
// while, the right password too, while the account's owner elsewhere signs
// in as usual. A username longer than maxUsernameLen is refused (401)
// without being counted.
func (h *Handler) localLogin(w http.ResponseWriter, r *http.Request) {
	if h.github.Enabled() {
		h.fail(w, r, errNoSuchRoute)
		return
	}
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("username"))
	v := views.LoginView{Username: name, Next: localPath(r.PostFormValue("next"))}
	addr := h.clientAddr(r)
	// No account has a name this long: it is refused before it costs a
	// limiter key or a password hash.
	if len(name) > maxUsernameLen {
		h.log.WarnContext(ctx, "failed sign-in", "username", clip(name), "addr", addr.String())
		v.Username, v.Error = clip(name), "Wrong username or password."
		h.render(w, r, http.StatusUnauthorized, views.LoginPage(v))
		return
	}
	from := addrKey(addr)
	account := limitKey{"user:" + strings.ToLower(name) + " from " + from, failuresPerUser}
	address := limitKey{"addr:" + from, failuresPerAddr}
	// Counted before the password is checked: guesses sent in parallel
	// cannot all pass the check before the first is counted.
	if wait := h.logins.attempt(account, address); wait > 0 {
		v.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %s.", when.Duration(wait.Round(time.Minute)+time.Minute))
		h.render(w, r, http.StatusTooManyRequests, views.LoginPage(v))
		return
	}
	u, err := h.db.UserByUsername(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	// An unknown name is checked against a decoy hash, taking as long as a
	// real one: the answer's timing does not tell which names exist.
	if !password.Matches(u.PasswordHash, r.PostFormValue("password")) {
		h.log.WarnContext(r.Context(), "failed sign-in", "username", clip(name), "addr", addr.String())
		v.Error = "Wrong username or password."
		h.render(w, r, http.StatusUnauthorized, views.LoginPage(v))
		return
	}
	h.logins.succeeded(account.key, address.key)
	if err := h.signIn(ctx, u); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, orHome(v.Next), http.StatusSeeOther)
}

// signIn marks the session as u's under a new token, so that a session
// token planted before cannot be used.
func (h *Handler) signIn(ctx context.Context, u store.User) error {
	if err := h.sessions.RenewToken(ctx); err != nil {
		return err
	}
	h.sessions.Put(ctx, sessionUser, u.ID)
	h.markTouched(ctx) // so that the pages right after sign-in need not store it again
	h.log.InfoContext(ctx, "signed in", "user", u.ID, "login", u.Login())
	return nil
}

// githubLogin starts the OAuth flow with a fresh random state kept in the session.
func (h *Handler) githubLogin(w http.ResponseWriter, r *http.Request) {
	if !h.github.Enabled() {
		h.fail(w, r, errNoSuchRoute)
		return
	}
	b := make([]byte, 32)
	rand.Read(b)
	state := hex.EncodeToString(b)
	h.sessions.Put(r.Context(), sessionState, state)
	h.sessions.Put(r.Context(), sessionNext, localPath(r.URL.Query().Get("next")))
	http.Redirect(w, r, h.github.AuthURL(state), http.StatusSeeOther)
}

// githubCallback finishes the OAuth flow: the state must match the one
// this browser was given and the server must admit the GitHub account
// (403 with a page saying whom it admits, otherwise, and every session the
// account still has ends); then the user is
// stored (token sealed, admin or not as configured) and the session
// renewed before it is marked signed in.
func (h *Handler) githubCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	want := h.sessions.PopString(ctx, sessionState)
	next := h.sessions.PopString(ctx, sessionNext)
	got := r.URL.Query().Get("state")
	if want == "" || subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		h.render(w, r, http.StatusBadRequest, views.LoginPage(views.LoginView{GitHub: h.github.Enabled(),
			Error: "That sign-in link has expired or was not made for this browser. Please try again."}))
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		h.render(w, r, http.StatusOK, views.LoginPage(views.LoginView{GitHub: true, Next: next,
			Error: "GitHub did not let you sign in (" + e + ")."}))
		return
	}
	gu, err := h.github.Login(ctx, r.URL.Query().Get("code"))
	if errors.Is(err, gh.ErrNotAdmitted) {
		// Refused before anything is stored: no user, no session; and
		// someone no longer admitted loses the sessions they had. This
		// browser's goes first, or its commit would write it back.
		if derr := h.sessions.Destroy(ctx); derr != nil {
			h.fail(w, r, derr)
			return
		}
		n, derr := h.db.Sessions().DeleteGitHubUserSessions(ctx, gu.ID)
		h.log.WarnContext(ctx, "GitHub sign-in refused", "err", err, "sessions_ended", n)
		if derr != nil {
			h.fail(w, r, derr)
			return
		}
		h.render(w, r, http.StatusForbidden, views.LoginPage(views.LoginView{GitHub: true, Next: next, Error: gh.Message(err)}))
		return
	}
	if err != nil {
		h.log.WarnContext(r.Context(), "GitHub login failed", "err", err)
		h.render(w, r, http.StatusBadGateway, views.LoginPage(views.LoginView{GitHub: true, Next: next,
			Error: "Signing in with GitHub failed. Please try again."}))
		return
	}
	u, err := h.db.UpsertGitHubUser(ctx, gu)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.signIn(ctx, u); err != nil {
		h.fail(w, r, err)
		return
	}
	// Their access may have changed since they were last here. A failure
	// keeps the memberships they had: signing in still works.
	if err := h.projects.SyncUserAccess(ctx, u.ID, gu.AccessToken); err != nil {
		h.log.WarnContext(r.Context(), "sync memberships at login", "user", u.ID, "err", err)
	}
	http.Redirect(w, r, orHome(next), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.sessions.Destroy(r.Context()); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// localPath returns p if it is a path on this server, else "": a login
// must not send anybody to another site.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return p
}

func orHome(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func accountView(u store.User) views.AccountView {
	return views.AccountView{Login: u.Login(), Name: u.Name, AvatarURL: u.AvatarURL, Email: u.Email, Local: u.Username != ""}
}

func (h *Handler) account(w http.ResponseWriter, r *http.Request) {
	v := accountView(user(r))
	v.Saved = r.URL.Query().Has("saved")
	v.PasswordChanged = r.URL.Query().Has("password-changed")
	h.render(w, r, http.StatusOK, views.AccountPage(v))
}

// changePassword sets a local user's new password, given the current one.
func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) {
	u := user(r)
	if u.Username == "" {
		h.fail(w, r, errNoSuchRoute)
		return
	}
	v := accountView(u)
	next := r.PostFormValue("new")
	var hash string
	var err error
	switch {
	case !password.Matches(u.PasswordHash, r.PostFormValue("current")):
		v.PasswordError = "The current password is wrong."
	case next != r.PostFormValue("confirm"):
		v.PasswordError = "The new passwords differ."
	default:
		if hash, err = password.Hash(next); errors.Is(err, password.ErrTooShort) || errors.Is(err, password.ErrTooLong) {
			v.PasswordError = "That password cannot be used: " + err.Error() + "."
		} else if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if v.PasswordError != "" {
		h.render(w, r, http.StatusUnprocessableEntity, views.AccountPage(v))
		return
	}
	// SetPasswordHash ends every session of the user, this one too: sign
	// this browser in again under a new token.
	if err := h.db.SetPasswordHash(r.Context(), u.ID, hash); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.signIn(r.Context(), u); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/account?password-changed", http.StatusSeeOther)
}

// signOutEverywhere ends every session of the user, this one included.
func (h *Handler) signOutEverywhere(w http.ResponseWriter, r *http.Request) {
	u := user(r)
	if err := h.db.Sessions().DeleteUserSessions(r.Context(), u.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.sessions.Destroy(r.Context()); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "signed out everywhere", "user", u.ID, "login", u.Login())
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// saveAccount sets the address failure notifications go to; empty turns
// them off.
func (h *Handler) saveAccount(w http.ResponseWriter, r *http.Request) {
	u := user(r)
	email := strings.TrimSpace(r.PostFormValue("email"))
	if email != "" {
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
			v := accountView(u)
			v.Email, v.Error = email, "That is not an e-mail address."
			h.render(w, r, http.StatusUnprocessableEntity, views.AccountPage(v))
			return
		}
	}
	if err := h.db.SetUserEmail(r.Context(), u.ID, email); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/account?saved", http.StatusSeeOther)
}
