package handlers

import (
	"slices"
	"sync"
	"time"
)

// loginLimiter counts sign-in attempts per key (an account from an address,
// an address) over a sliding window, so that passwords cannot be guessed at
// speed. An attempt is counted in the same step as its keys are checked,
// before its password is, so that guesses sent in parallel are counted
// like guesses sent one by one; a sign-in that succeeds is taken back.
//
// Its memory is bounded twice over. Keys whose attempts are all older than
// the window are swept at most loginSweepEvery after they expire, however
// few keys there are. And it never tracks more than size keys: when full,
// it makes room for a new key by forgetting the key least recently
// attempted, so that nobody is refused because others filled it. Each key
// an address adds costs it a counted attempt and a password check, so an
// address adds at most failuresPerAddr keys a window, and forgetting one
// account's count takes thousands of password checks from hundreds of
// addresses.
type loginLimiter struct {
	window time.Duration
	size   int // most keys tracked
	now    func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time // attempts per key, oldest first, at most its limit
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

// attempt checks keys and counts an attempt against every one of them, in
// one step. If any key is at its limit, it counts nothing and returns how
// long until all of them may try again; otherwise it returns 0, and the
// attempt counts as a failure unless succeeded takes it back.
func (l *loginLimiter) attempt(keys ...limitKey) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	var longest time.Duration
	for _, k := range keys {
		if f := l.recent(k.key, now); len(f) >= k.limit {
			longest = max(longest, f[len(f)-k.limit].Add(l.window).Sub(now))
		}
	}
	if longest > 0 {
		return longest
	}
	for _, k := range keys {
		if _, ok := l.failures[k.key]; !ok && len(l.failures) >= l.size {
			l.evict(keys)
		}
		l.failures[k.key] = append(l.failures[k.key], now)
	}
	return 0
}

// succeeded takes back the attempt of a sign-in that succeeded: account's
// failures are forgotten, and the attempt no longer counts against addr.
func (l *loginLimiter) succeeded(account, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, account)
	// The newest attempt stands for this one: the two differ by less than
	// a password check, which is all they would differ in.
	switch f := l.failures[addr]; len(f) {
	case 0:
	case 1:
		delete(l.failures, addr)
	default:
		l.failures[addr] = f[:len(f)-1]
	}
}

// evict forgets the key least recently attempted, other than keys.
func (l *loginLimiter) evict(keys []limitKey) {
	var oldest string
	var at time.Time
	for k, f := range l.failures {
		if last := f[len(f)-1]; (oldest == "" || last.Before(at)) && !slices.ContainsFunc(keys, func(lk limitKey) bool { return lk.key == k }) {
			oldest, at = k, last
		}
	}
	delete(l.failures, oldest)
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

// recent drops a key's attempts older than the window and returns the rest.
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
