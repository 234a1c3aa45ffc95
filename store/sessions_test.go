package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

func TestSessions(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	s := db.Sessions()
	if err := s.CommitCtx(ctx, "live", []byte("data-1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCtx(ctx, "live", []byte("data-2"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCtx(ctx, "old", []byte("x"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := s.FindCtx(ctx, "live"); err != nil || !found || string(b) != "data-2" {
		t.Errorf("live session = %q %v %v", b, found, err)
	}
	if _, found, err := s.FindCtx(ctx, "old"); err != nil || found {
		t.Errorf("expired session found: %v %v", found, err)
	}
	if n, err := s.DeleteExpired(ctx); err != nil || n != 1 {
		t.Errorf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if err := s.DeleteCtx(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Find("live"); found {
		t.Error("deleted session found")
	}
}

// A session is stored under the hash of its token, never the token, and
// with its user, whose sessions DeleteUserSessions and a password change end.
func TestSessionsAreStoredHashedAndEndedPerUser(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	s := db.Sessions()
	ann, err := db.CreateLocalUser(ctx, "ann", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := db.CreateLocalUser(ctx, "bob", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(token string, userID int64) { commitSession(t, s, token, userID) }
	live := func(token string) bool {
		t.Helper()
		_, found, err := s.FindCtx(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	commit("ann-1", ann.ID)
	commit("ann-2", ann.ID)
	commit("bob-1", bob.ID)
	commit("anonymous", 0)

	var key []byte
	var user sql.NullInt64
	if err := db.read.QueryRow(`SELECT token_hash, user_id FROM sessions WHERE user_id = ? LIMIT 1`, bob.ID).Scan(&key, &user); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte("bob-1")); !bytes.Equal(key, want[:]) || user.Int64 != bob.ID {
		t.Errorf("stored key %x (user %v), want the SHA-256 hash of the token %x (user %d)", key, user, want, bob.ID)
	}

	if err := s.DeleteUserSessions(ctx, ann.ID); err != nil {
		t.Fatal(err)
	}
	if live("ann-1") || live("ann-2") || !live("bob-1") || !live("anonymous") {
		t.Errorf("after DeleteUserSessions(ann): ann-1 %v ann-2 %v bob-1 %v anonymous %v",
			live("ann-1"), live("ann-2"), live("bob-1"), live("anonymous"))
	}
	if err := db.SetPasswordHash(ctx, bob.ID, "another hash"); err != nil {
		t.Fatal(err)
	}
	if live("bob-1") || !live("anonymous") {
		t.Errorf("after bob's password change: bob-1 %v anonymous %v", live("bob-1"), live("anonymous"))
	}
}

// The sessions of a GitHub user end by their GitHub id, or because their
// login is missing from a list (compared without case); other users' and
// local users' sessions stay, as do anonymous ones.
func TestGitHubSessionsEndByAccountOrOutsideTheList(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	s := db.Sessions()
	octocat, err := db.UpsertGitHubUser(ctx, GitHubUser{ID: 1, Login: "octocat"})
	if err != nil {
		t.Fatal(err)
	}
	hubot, err := db.UpsertGitHubUser(ctx, GitHubUser{ID: 2, Login: "Hubot"})
	if err != nil {
		t.Fatal(err)
	}
	ann, err := db.CreateLocalUser(ctx, "ann", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(token string, userID int64) { commitSession(t, s, token, userID) }
	live := func() (tokens []string) {
		t.Helper()
		for _, tok := range []string{"octocat-1", "octocat-2", "hubot", "ann", "anonymous"} {
			if _, found, err := s.FindCtx(ctx, tok); err != nil {
				t.Fatal(err)
			} else if found {
				tokens = append(tokens, tok)
			}
		}
		return tokens
	}
	commit("octocat-1", octocat.ID)
	commit("octocat-2", octocat.ID)
	commit("hubot", hubot.ID)
	commit("ann", ann.ID)
	commit("anonymous", 0)

	if n, err := s.DeleteGitHubUserSessions(ctx, 1); err != nil || n != 2 {
		t.Errorf("end octocat's sessions: %d, %v; want 2", n, err)
	}
	if n, err := s.DeleteGitHubUserSessions(ctx, 99); err != nil || n != 0 {
		t.Errorf("end an unknown GitHub user's sessions: %d, %v; want 0", n, err)
	}
	if got := fmt.Sprint(live()); got != "[hubot ann anonymous]" {
		t.Errorf("sessions left: %s", got)
	}
	commit("octocat-1", octocat.ID)
	if n, err := s.DeleteGitHubSessionsExcept(ctx, []string{"HUBOT"}); err != nil || n != 1 {
		t.Errorf("end sessions outside [HUBOT]: %d, %v; want octocat's 1", n, err)
	}
	if n, err := s.DeleteGitHubSessionsExcept(ctx, nil); err != nil || n != 1 {
		t.Errorf("end sessions outside no list: %d, %v; want hubot's 1", n, err)
	}
	if got := fmt.Sprint(live()); got != "[ann anonymous]" {
		t.Errorf("sessions left: %s", got)
	}
}

// commitSession stores a session of an hour under token, signed in as
// userID (0: anonymous), as scs stores one.
func commitSession(t *testing.T, s Sessions, token string, userID int64) {
	t.Helper()
	values := map[string]any{"next": "/"}
	if userID != 0 {
		values[SessionUser] = userID
	}
	b, err := scs.GobCodec{}.Encode(time.Now().Add(time.Hour), values)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCtx(context.Background(), token, b, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}
