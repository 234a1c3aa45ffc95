package handlers

import (
	"sync"
	"time"
)

// loginLimiter counts failed sign-ins per key (an account, an address) over
// a sliding window, so that passwords cannot be guessed at speed.
type loginLimiter struct {
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time // per key, oldest first, at most its limit
}

// Limits on failed sign-ins per window: an account is guessed at from many
// addresses, and an address guesses at many accounts.
const (
	loginWindow       = 15 * time.Minute
	failuresPerUser   = 5
	failuresPerAddr   = 20
	loginLimiterPrune = 4096 // keys kept before stale ones are swept
)

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{window: loginWindow, now: time.Now, failures: map[string][]time.Time{}}
}

// limitKey is a key and how many failures it may have in the window.
type limitKey struct {
	key   string
	limit int
}

// wait returns how long until any of keys may try again; 0 means now.
func (l *loginLimiter) wait(keys ...limitKey) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var longest time.Duration
	for _, k := range keys {
		f := l.recent(k.key, now)
		if len(f) >= k.limit {
			longest = max(longest, f[len(f)-k.limit].Add(l.window).Sub(now))
		}
	}
	return longest
}

// failed records a failed sign-in against every key.
func (l *loginLimiter) failed(keys ...limitKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.failures) > loginLimiterPrune {
		for k := range l.failures {
			l.recent(k, now)
		}
	}
	for _, k := range keys {
		f := append(l.recent(k.key, now), now)
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
