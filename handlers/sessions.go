package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/alexedwards/scs/v2"
)

// A session ends sessionLifetime after it began, or sooner once unused for
// sessionIdleTimeout. Its idle expiry is moved on at most once every
// sessionTouchEvery, so that pages and polls in between only read it: no
// write to the database, no cookie.
const (
	sessionLifetime    = 30 * 24 * time.Hour
	sessionIdleTimeout = 7 * 24 * time.Hour
	sessionTouchEvery  = time.Minute
)

// touchSession marks a stored session whose idle expiry was last moved on
// sessionTouchEvery ago or more as changed, so that scs commits it (through
// sessionStore, which moves the expiry) and sends its cookie again. Other
// requests leave the session as loaded, and scs stores nothing for them
// unless the handler changes it.
func (h *Handler) touchSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		// A session without a token is new: stored only if the request puts something in it.
		if h.sessions.Token(ctx) != "" && h.now().Sub(time.Unix(h.sessions.GetInt64(ctx, sessionTouched), 0)) >= sessionTouchEvery {
			h.markTouched(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// markTouched records in the session that its idle expiry is moved on now,
// which changes it: scs commits it at the end of the request.
func (h *Handler) markTouched(ctx context.Context) {
	h.sessions.Put(ctx, sessionTouched, h.now().Unix())
}

// sessionStore is the session store as the session manager uses it. It
// stores each session until its idle expiry, sessionIdleTimeout after the
// commit, or its end of life if that is sooner. When the commit that only
// moves a session's idle expiry on fails (the database refuses writes on a
// full disk, say), the failure is logged and the request goes on, so that
// pages can still say what is wrong: the session stays valid until its
// earlier expiry. Any other failed commit (signing in or out) fails the
// request as before.
type sessionStore struct {
	scs.CtxStore
	log *slog.Logger
	now func() time.Time
}

func (s sessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	if idle := s.now().Add(sessionIdleTimeout); idle.Before(expiry) {
		expiry = idle
	}
	err := s.CtxStore.CommitCtx(ctx, token, b, expiry)
	if err == nil || !s.storedAlready(ctx, token, b) {
		return err
	}
	s.log.WarnContext(ctx, "session: its idle expiry could not be moved on", "err", err)
	return nil
}

func (s sessionStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// storedAlready says whether the live session stored under token holds
// what b holds (scs's gob encoding, whose bytes vary with map order), but
// for when it was last touched.
func (s sessionStore) storedAlready(ctx context.Context, token string, b []byte) bool {
	stored, found, err := s.FindCtx(ctx, token)
	if err != nil || !found {
		return false
	}
	var codec scs.GobCodec
	d1, v1, err1 := codec.Decode(stored)
	d2, v2, err2 := codec.Decode(b)
	if err1 != nil || err2 != nil {
		return false
	}
	delete(v1, sessionTouched)
	delete(v2, sessionTouched)
	return d1.Equal(d2) && reflect.DeepEqual(v1, v2)
}
