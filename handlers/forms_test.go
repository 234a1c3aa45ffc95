package handlers

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"kozmic/store"
)

// countingReader is a request body of n bytes of a form's field, counting
// what is read of it.
type countingReader struct {
	r    io.Reader
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

// longestLogLine returns the length of the longest line the server logged.
func longestLogLine(t *testing.T, s *testServer) int {
	t.Helper()
	longest := 0
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		longest = max(longest, len(sc.Text()))
	}
	return longest
}

func TestTenMegabyteSignInIsRefusedUnreadAndUnlogged(t *testing.T) {
	s := newLocalTestServer(t)
	body := &countingReader{r: io.MultiReader(strings.NewReader("password=x&username="), strings.NewReader(strings.Repeat("x", 10<<20)))}
	req := httptest.NewRequest(http.MethodPost, "/login", body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)

	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "64 KiB for a form") {
		t.Errorf("10 MB sign-in: %d\n%s", rec.Code, rec.Body)
	}
	if body.read > formLimit+1 {
		t.Errorf("read %d bytes of the body, more than the %d cap", body.read, formLimit)
	}
	if n := longestLogLine(t, s); n > 1024 {
		t.Errorf("longest log line: %d bytes", n)
	}
	if n := len(s.logins.failures); n != 0 {
		t.Errorf("limiter keys after a refused body: %d", n)
	}
}

func TestOverlongUsernameCostsNoLimiterKeyAndIsLoggedClipped(t *testing.T) {
	s := newLocalTestServer(t)
	localUser(t, s, "ann", "ann's password")
	name := strings.Repeat("é", 8<<10) // 16 KiB, 48 KiB encoded: under the form cap
	code, doc := login(newBrowser(t, s), name, "guess", "")
	if code != http.StatusUnauthorized || !strings.Contains(doc.Find(`[role="alert"]`).Text(), "Wrong username or password.") {
		t.Errorf("overlong username: %d", code)
	}
	if n := len(s.logins.failures); n != 0 {
		t.Errorf("limiter keys after an overlong username: %d", n)
	}
	if !strings.Contains(s.logs.String(), "username="+clip(name)) {
		t.Errorf("log does not name the clipped username:\n%s", s.logs)
	}
	if n := longestLogLine(t, s); n > 1024 {
		t.Errorf("longest log line: %d bytes", n)
	}
	// A name at the cap is still an account's name.
	if code, _ := login(newBrowser(t, s), "ann"+strings.Repeat(" ", maxUsernameLen), "ann's password", ""); code != http.StatusSeeOther {
		t.Errorf("ann with trailing spaces: %d", code)
	}
}

func TestHookFormsMayCarryAMegabyteOtherFormsSixtyFourKilobytes(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	hook := func(build string) int {
		res, _ := b.do("POST", fmt.Sprintf("/projects/%d/hooks", p.ID), url.Values{"title": {"t"}, "image": {"golang:1.26"}, "build": {build}})
		return res.StatusCode
	}
	if code := hook("#!/bin/sh\n" + strings.Repeat("# a long script\n", 32<<10)); code != http.StatusSeeOther {
		t.Errorf("hook with a 512 KiB script: %d", code)
	}
	if code := hook(strings.Repeat("x", hookFormLimit)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("hook over 1 MiB: %d", code)
	}
	res, page := b.do("POST", fmt.Sprintf("/projects/%d/secrets", p.ID), url.Values{"name": {"BIG"}, "value": {strings.Repeat("x", formLimit)}})
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(page, "Go back, shorten it") {
		t.Errorf("secret over 64 KiB: %d", res.StatusCode)
	}
	if secrets, _ := s.db.Secrets(t.Context(), p.ID); len(secrets) != 0 {
		t.Errorf("secrets stored from a refused form: %d", len(secrets))
	}
}

func TestLoginLimiterForgetsKeysAfterTheWindow(t *testing.T) {
	l := newLoginLimiter()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	l.attempt(limitKey{"user:ann", failuresPerUser}, limitKey{"addr:192.0.2.1", failuresPerAddr})
	now = now.Add(loginWindow)
	l.attempt(limitKey{"user:bob", failuresPerUser})
	if _, ok := l.failures["user:ann"]; ok || len(l.failures) != 1 {
		t.Errorf("keys a window later: %v", l.failures)
	}
}

// A flood of new keys never makes the limiter track more than its size, and
// never refuses a new key: each makes room by forgetting the key least
// recently attempted. A key attempted late in the flood keeps its count
// while older keys make room.
func TestLoginLimiterStaysBoundedUnderAFloodOfKeysAndForgetsTheLeastRecent(t *testing.T) {
	l := newLoginLimiter()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	ann, bob := limitKey{"user:ann", failuresPerUser}, limitKey{"user:bob", failuresPerUser}
	for range failuresPerUser {
		l.attempt(ann)
	}
	for i := range 2 * loginLimiterSize {
		now = now.Add(time.Millisecond)
		if i == 3*loginLimiterSize/2 {
			for range failuresPerUser {
				l.attempt(bob)
			}
		}
		if w := l.attempt(limitKey{fmt.Sprintf("user:flood%d", i), failuresPerUser}); w != 0 {
			t.Fatalf("flood key %d refused for %s", i, w)
		}
		if len(l.failures) > loginLimiterSize {
			t.Fatalf("after %d flood keys: %d tracked", i+1, len(l.failures))
		}
	}
	if len(l.failures) != loginLimiterSize {
		t.Errorf("tracked after the flood: %d", len(l.failures))
	}
	if _, ok := l.failures[ann.key]; ok {
		t.Error("ann's key, the least recently attempted, is still tracked")
	}
	if l.attempt(bob) == 0 {
		t.Error("bob's key, attempted mid-flood, lost its count to the flood's older keys")
	}
}

// The routes whose table entry gives them a body limit of their own have
// it: a hook saved again with a 512 KiB script, and a signed webhook of
// 128 KiB, which is not a form at all, are not cut at formLimit.
func TestRoutesWithTheirOwnBodyLimitAreNotCappedAsForms(t *testing.T) {
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	h, err := s.db.CreateHook(t.Context(), store.Hook{ProjectID: p.ID, Title: "t", DockerImage: "golang:1.26", BuildScript: "#!/bin/sh\n"})
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n" + strings.Repeat("# a long script\n", 32<<10)
	res, _ := b.do("POST", fmt.Sprintf("/projects/%d/hooks/%d", p.ID, h.ID), url.Values{"title": {"t"}, "image": {"golang:1.26"}, "build": {script}})
	if saved, _ := s.db.HookByID(t.Context(), h.ID); res.StatusCode != http.StatusSeeOther || saved.BuildScript != script {
		t.Errorf("hook saved again with a 512 KiB script: %d, script of %d bytes stored", res.StatusCode, len(saved.BuildScript))
	}

	hooked, _ := webhookProjects(t, s.db)
	body := append(readFixture(t, "push_with-new-branch.json"), strings.Repeat(" ", 128<<10)...) // JSON may end in blanks
	if code, answer := deliver(t, s, hooked.ID, "push", body, testSecret, "", "big-push"); code != http.StatusCreated {
		t.Errorf("signed 128 KiB push: %d %v", code, answer)
	}
}
