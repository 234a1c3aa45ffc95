package handlers

import (
	"sync"
	"time"
)

// loginLimiter counts failed sign-ins per key (an account from an address,
// an address) over a sliding window, so that passwords cannot be guessed at
// speed.
//
// Its memory is bounded twice over. Keys whose failures are all older than
// the window are swept at most loginSweepEvery after they expire, however
// few keys there are. And it never tracks more than size keys: when full,
// it refuses new keys rather than evicting tracked ones, so a flood of
// distinct names or addresses cannot reset a real account's count. While
// it is full, wait makes every sign-in with an untracked key wait until the
// first tracked key expires: the flood delays new sign-ins for at most one
// window, and buys no guesses.
type loginLimiter struct {
	window time.Duration
	size   int // most keys tracked
	now    func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time // per key, oldest first, at most its limit
	swept    time.Time              // when expired keys were last swept
}

// Limits on failed sign-ins per window: an address guessing at one account,
// and an address guessing at many. No limit counts an account alone, which
// would let anyone lock its owner out from everywhere.
const (
	loginWindow      = 15 * time.Minute
	failuresPerUser  = 5 // per account from one address
	failuresPerAddr  = 20
	loginLimiterSize = 10000       // keys tracked at most
	loginSweepEvery  = time.Minute // how often expired keys are swept
)

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{window: loginWindow, size: loginLimiterSize, now: time.Now, failures: map[string][]time.Time{}}
}

// limitKey is a key and how many failures it may have in the window.
type limitKey struct {
	key   string
	limit int
}

// wait returns how long until any of keys may try again; 0 means now. A key
// that is not tracked while the limiter is full waits for room.
func (l *loginLimiter) wait(keys ...limitKey) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	var longest time.Duration
	for _, k := range keys {
		f := l.recent(k.key, now)
		switch {
		case f == nil && len(l.failures) >= l.size:
			longest = max(longest, l.room(now))
		case len(f) >= k.limit:
			longest = max(longest, f[len(f)-k.limit].Add(l.window).Sub(now))
		}
	}
	return longest
}

// failed records a failed sign-in against every key; a new key is not
// recorded while the limiter is full (see loginLimiter).
func (l *loginLimiter) failed(keys ...limitKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	for _, k := range keys {
		f := l.recent(k.key, now)
		if f == nil && len(l.failures) >= l.size {
			continue
		}
		f = append(f, now)
		if len(f) > k.limit {
			f = f[len(f)-k.limit:]
		}
		l.failures[k.key] = f
	}
}

// forget clears a key's failures, after a successful sign-in.
func (l *loginLimiter) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, key)
}

// sweep drops expired keys, unless it did so less than loginSweepEvery ago.
func (l *loginLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < loginSweepEvery {
		return
	}
	l.swept = now
	for k := range l.failures {
		l.recent(k, now)
	}
}

// room returns how long until the first tracked key expires.
func (l *loginLimiter) room(now time.Time) time.Duration {
	first := l.window
	for _, f := range l.failures {
		first = min(first, f[len(f)-1].Add(l.window).Sub(now))
	}
	return first
}

// recent drops a key's failures older than the window and returns the rest.
func (l *loginLimiter) recent(key string, now time.Time) []time.Time {
	f := l.failures[key]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	if i == len(f) {
		delete(l.failures, key)
		return nil
	}
	l.failures[key] = f[i:]
	return f[i:]
}
