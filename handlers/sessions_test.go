package handlers

import (
	"net/url"
	"testing"

	"kozmic/internal/tmpfs"
)

// On a full disk a signed-in person still sees pages: the commit that only
// moves their session's idle expiry on is refused and let go, and they stay
// signed in. Signing in, which must store a new session, still fails
// rather than pretending to work.
func TestSignedInPagesShowWhenTheSessionCannotBeRefreshed(t *testing.T) {
	s, dir := newTmpfsServer(t, 8<<20, 0)
	_, ann := signInLocal(t, s, "ann")
	localUser(t, s, "bob", "bob's password")
	bob := newBrowser(t, s)
	unfill := tmpfs.Fill(t, dir)

	doc, _ := fetchPage(t, ann, "/account", 200)
	checkSignedIn(t, "account on a full disk", doc, "ann")
	if res, _ := bob.do("POST", "/login", url.Values{"username": {"bob"}, "password": {"bob's password"}}); res.StatusCode != 500 || signedIn(bob) {
		t.Errorf("sign-in on a full disk: %d, signed in %v; want 500 and not signed in", res.StatusCode, signedIn(bob))
	}

	unfill()
	doc, _ = fetchPage(t, ann, "/account", 200)
	checkSignedIn(t, "account with space again", doc, "ann")
}
