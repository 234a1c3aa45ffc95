package handlers

import (
	"context"
	"log/slog"
	"reflect"
	"time"

	"github.com/alexedwards/scs/v2"
)

// sessionStore is the session store as the session manager uses it. Every
// signed-in request commits its session again, to move its idle expiry
// on; when that commit fails (the database refuses writes on a full disk,
// say) while the stored session already holds the same values, the failure
// is logged and the request goes on, so that pages can still say what is
// wrong: the session stays valid until its earlier expiry. Any other failed
// commit (signing in or out) fails the request as before.
type sessionStore struct {
	scs.CtxStore
	log *slog.Logger
}

func (s sessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
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
// what b holds (scs's gob encoding, whose bytes vary with map order).
func (s sessionStore) storedAlready(ctx context.Context, token string, b []byte) bool {
	stored, found, err := s.FindCtx(ctx, token)
	if err != nil || !found {
		return false
	}
	var codec scs.GobCodec
	d1, v1, err1 := codec.Decode(stored)
	d2, v2, err2 := codec.Decode(b)
	return err1 == nil && err2 == nil && d1.Equal(d2) && reflect.DeepEqual(v1, v2)
}
