package main

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"kozmic/gh"
	"kozmic/internal/syncbuf"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/runner"
)

// needTestImage skips the test unless KOZMIC_TEST_DOCKER is set, and makes
// sure the Docker engine has the test image.
func needTestImage(t *testing.T) {
	t.Helper()
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run tests against a Docker engine")
	}
	dc, err := runner.NewDockerClient(testimage.Host())
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Ensure(dc); err != nil {
		t.Fatal(err)
	}
}

// kozmicBinary builds the program once per test run.
func kozmicBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kozmic")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// server is the real binary, serving on a free 127.0.0.1 port with its own
// database, as a person would start it.
type server struct {
	url    string
	logs   *syncbuf.Buffer
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
}

func startServer(t *testing.T, bin string, env ...string) *server {
	return startServerAt(t, bin, t.TempDir(), env...)
}

// startServerAt starts the binary with its database in dir.
func startServerAt(t *testing.T, bin, dir string, env ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{url: "http://" + addr, logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	cmd := exec.Command(bin, "serve")
	s.cmd = cmd
	cmd.Env = append(os.Environ(), "KOZMIC_ADDR="+addr, "KOZMIC_BASE_URL="+s.url, "KOZMIC_DATABASE="+filepath.Join(dir, "kozmic.db"),
		"KOZMIC_ADMIN_PASSWORD=admin's password", "KOZMIC_JOB_NETWORK=none", "KOZMIC_WORKERS=1",
		"KOZMIC_GITHUB_CLIENT_ID=", "KOZMIC_GITHUB_CLIENT_SECRET=", "KOZMIC_SECRET_KEY=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Process.Signal(syscall.SIGTERM) // and at once: whatever runs is left to recovery
		select {
		case <-s.exited:
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
			t.Errorf("the server did not stop on SIGTERM; its log:\n%s", s.logs)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if res, err := http.Get(s.url + "/healthz"); err == nil {
			res.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never answered; its log:\n%s", s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// client is a person's browser: cookies, no redirects followed.
type client struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newClient(t *testing.T, s *server) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: s.url, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// signIn logs in as admin and checks the session works.
func (c *client) signIn(pw string) int {
	c.t.Helper()
	res, _ := c.do("POST", "/login", url.Values{"username": {"admin"}, "password": {pw}})
	return res.StatusCode
}

// createProject makes a public project of repo with one hook and returns its id.
func (c *client) createProject(repo, name string, hook url.Values) int64 {
	c.t.Helper()
	res, _ := c.do("POST", "/projects/new", url.Values{"name": {name}, "git_url": {repo}, "public": {"1"}})
	var id int64
	if _, err := fmt.Sscanf(res.Header.Get("Location"), "/projects/%d?created", &id); res.StatusCode != 303 || err != nil {
		c.t.Fatalf("create project: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if res, page := c.do("POST", fmt.Sprintf("/projects/%d/hooks", id), hook); res.StatusCode != 303 {
		c.t.Fatalf("add hook: %d\n%s", res.StatusCode, page)
	}
	return id
}

const (
	e2eInstall = "#!/bin/sh\necho \"installing $(cat deps.txt)\"\ncp deps.txt /installed-deps\n"
	e2eBuild   = "#!/bin/sh\necho \"building $(cat src.txt) with $(cat /installed-deps)\"\n"
)

// webhook sends a signed push for sha, as a git server would.
func webhook(t *testing.T, s *server, projectID int64, secret, sha, delivery string) int {
	t.Helper()
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"head_commit":{"id":%q,"message":"change","author":{"name":"Ann"}}}`, sha, sha)
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/webhooks/%d", s.url, projectID), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", gh.Sign([]byte(secret), []byte(body)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

var (
	secretInPage = regexp.MustCompile(`Secret: <code>([0-9a-f]{64})</code>`)
	jobLink      = regexp.MustCompile(`href="(/projects/\d+/builds/\d+/jobs/\d+)"`)
)

// badge reads a project's badge word.
func badge(t *testing.T, s *server, name string) string {
	res, err := http.Get(s.url + "/badges/" + name + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`<text x="69" y="14">(\w+)</text>`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("badge: %s", b)
	}
	return m[1]
}

// waitBuild waits for build n to finish and returns its job's raw log.
func (c *client) waitBuild(s *server, projectID int64, n int) (string, string) {
	c.t.Helper()
	path := fmt.Sprintf("/projects/%d/builds/%d", projectID, n)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		res, page := c.do("GET", path, nil)
		if res.StatusCode == 200 && !strings.Contains(page, `hx-trigger="every 2s"`) {
			m := jobLink.FindStringSubmatch(page)
			if m == nil {
				c.t.Fatalf("no job on the build page:\n%s", page)
			}
			_, log := c.do("GET", m[1]+"/log.txt", nil)
			status := "failed"
			if strings.Contains(page, "passed") {
				status = "passed"
			}
			return status, log
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("build %d did not finish; server log:\n%s", n, s.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The binary as a newcomer meets it: no GitHub, the admin account, a
// project of a git repository on this machine, a hook with an install
// script, builds started by signed webhooks.
func TestEndToEnd(t *testing.T) {
	needTestImage(t)
	bin := kozmicBinary(t)
	s := startServer(t, bin)
	c := newClient(t, s)

	if code := c.signIn("wrong password"); code != 401 {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if res, _ := c.do("GET", "/account", nil); res.StatusCode != 303 {
		t.Fatalf("a session after a wrong password: %d", res.StatusCode)
	}
	if code := c.signIn("admin's password"); code != 303 {
		t.Fatalf("sign in: %d", code)
	}

	r := testrepo.Init(t)
	repo := r.Path
	first := r.Commit(map[string]string{"deps.txt": "dep-v1", "src.txt": "src-v1"}, nil)
	id := c.createProject(repo, "team/app", url.Values{"title": {"test"}, "image": {testimage.Name},
		"install": {e2eInstall}, "tracked": {"deps.txt"}, "build": {e2eBuild}})
	_, page := c.do("GET", fmt.Sprintf("/projects/%d", id), nil)
	m := secretInPage.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no webhook secret on the project page:\n%s", page)
	}
	secret := m[1]
	// The install step's image outlives the server: the button removes it, as
	// it would for a person.
	t.Cleanup(func() {
		if res, _ := c.do("POST", fmt.Sprintf("/projects/%d/cache/clear", id), url.Values{}); res.StatusCode != 303 {
			t.Errorf("clear install cache: %d", res.StatusCode)
		}
	})

	// A forged webhook: refused, and no build.
	if code := webhook(t, s, id, "not the secret", first, "forged"); code != 401 {
		t.Errorf("bad signature: %d, want 401", code)
	}
	if res, _ := c.do("GET", fmt.Sprintf("/projects/%d/builds/1", id), nil); res.StatusCode != 404 {
		t.Errorf("a build after a forged webhook: %d", res.StatusCode)
	}

	if code := webhook(t, s, id, secret, first, "d-1"); code != 201 {
		t.Fatalf("webhook: %d", code)
	}
	status, log := c.waitBuild(s, id, 1)
	if status != "passed" || !strings.Contains(log, "Running the install script") || !strings.Contains(log, "installing dep-v1") ||
		!strings.Contains(log, "building src-v1 with dep-v1") {
		t.Fatalf("first build %s; log:\n%s", status, log)
	}

	// A commit that leaves the tracked file alone reuses the installed image.
	second := r.Commit(map[string]string{"src.txt": "src-v2"}, nil)
	if code := webhook(t, s, id, secret, second, "d-2"); code != 201 {
		t.Fatalf("second webhook: %d", code)
	}
	status, log = c.waitBuild(s, id, 2)
	if status != "passed" || !strings.Contains(log, runner.SkippedInstall) || strings.Contains(log, "installing") ||
		!strings.Contains(log, "building src-v2 with dep-v1") {
		t.Fatalf("second build %s; log:\n%s", status, log)
	}
	if word := badge(t, s, "team/app"); word != "passing" {
		t.Errorf("badge = %s, want passing", word)
	}
}

// quickStartStep is the text of step n of the README's quick start, up to
// the next step (or, for the last, to the paragraph on GitHub).
func quickStartStep(t *testing.T, n int) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, text, ok := strings.Cut(string(readme), fmt.Sprintf("**%d. ", n))
	if !ok {
		t.Fatalf("no step %d in the README's quick start", n)
	}
	text, _, _ = strings.Cut(text, fmt.Sprintf("**%d. ", n+1))
	text, _, _ = strings.Cut(text, "To use GitHub instead")
	return text
}

// shBlocks are the ```sh code blocks of a Markdown text.
func shBlocks(text string) []string {
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(text, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// postReceiveInPage is the post-receive hook a project page offers to copy.
var postReceiveInPage = regexp.MustCompile(`(?s)<pre class="copy">(#!/bin/sh\n# Kozmic: .*?)</pre>`)

// The README's quick start, steps 3 to 7, done as it says with its own
// commands in a home of its own: the repository of step 3, its project and
// the hook of step 5, and step 7's bare clone with the project page's
// post-receive hook. The push of step 7 is what makes the first build,
// through the hook's signed webhook (curl and openssl), and the build
// checks out the pushed commit.
func TestQuickStartPushBuildsThroughThePostReceiveHook(t *testing.T) {
	needTestImage(t)
	bin := kozmicBinary(t)
	s := startServer(t, bin)
	c := newClient(t, s)
	if code := c.signIn("admin's password"); code != 303 {
		t.Fatalf("sign in: %d", code)
	}
	home := t.TempDir()
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-e", "-c", script)
		cmd.Dir = home
		cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=Ann", "GIT_AUTHOR_EMAIL=ann@example.com", "GIT_COMMITTER_NAME=Ann", "GIT_COMMITTER_EMAIL=ann@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}

	step3 := shBlocks(quickStartStep(t, 3))
	step5 := shBlocks(quickStartStep(t, 5))
	step7 := shBlocks(quickStartStep(t, 7))
	if len(step3) != 1 || len(step5) == 0 || len(step7) != 2 {
		t.Fatalf("the quick start's commands: step 3 %q, step 5 %q, step 7 %q", step3, step5, step7)
	}
	sh(step3[0])
	id := c.createProject(filepath.Join(home, "hello"), "me/hello", url.Values{"title": {"test"}, "image": {testimage.Name}, "build": {step5[0]}})

	sh(step7[0])
	_, page := c.do("GET", fmt.Sprintf("/projects/%d", id), nil)
	m := postReceiveInPage.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no post-receive hook on the project page:\n%s", page)
	}
	if err := os.WriteFile(filepath.Join(home, "hello.git", "hooks", "post-receive"), []byte(html.UnescapeString(m[1])), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, _ := c.do("GET", fmt.Sprintf("/projects/%d/builds/1", id), nil); res.StatusCode != 404 {
		t.Fatalf("a build before the push: %d", res.StatusCode)
	}
	if out := sh(step7[1]); strings.Contains(out, "kozmic:") {
		t.Errorf("the hook could not ask for a build:\n%s", out)
	}

	status, log := c.waitBuild(s, id, 1)
	pushed := sh("git -C hello rev-parse HEAD")
	if status != "passed" || !strings.Contains(log, "Building main at "+strings.TrimSpace(pushed)) ||
		!strings.Contains(log, "Hello from Kozmic\nHello again") {
		t.Fatalf("the pushed commit's build %s; log:\n%s", status, log)
	}
	if _, page := c.do("GET", fmt.Sprintf("/projects/%d/builds/1", id), nil); !strings.Contains(page, "Say hello again") ||
		!strings.Contains(page, "push") {
		t.Errorf("the build page does not show a push of the commit:\n%s", page)
	}
}

// With no Docker engine the server still starts, says so on every page,
// and keeps jobs enqueued.
func TestEndToEndWithoutDocker(t *testing.T) {
	bin := kozmicBinary(t)
	s := startServer(t, bin, "DOCKER_HOST=tcp://127.0.0.1:1")
	c := newClient(t, s)
	if code := c.signIn("admin's password"); code != 303 {
		t.Fatalf("sign in: %d\n%s", code, s.logs)
	}
	r := testrepo.Init(t)
	repo := r.Path
	r.Commit(map[string]string{"src.txt": "src"}, nil)
	id := c.createProject(repo, "team/app", url.Values{"title": {"test"}, "image": {testimage.Name}, "build": {e2eBuild}})
	res, _ := c.do("POST", fmt.Sprintf("/projects/%d/builds", id), url.Values{"ref": {"main"}})
	if res.StatusCode != 303 {
		t.Fatalf("run build: %d", res.StatusCode)
	}
	const banner = "Docker is not reachable at tcp://127.0.0.1:1 — jobs will wait"
	for deadline := time.Now().Add(20 * time.Second); ; {
		_, page := c.do("GET", "/", nil)
		if strings.Contains(page, banner) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner on the dashboard:\n%s", page)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // time enough for a worker to take the job, were it going to
	_, page := c.do("GET", fmt.Sprintf("/projects/%d/builds/1", id), nil)
	if !strings.Contains(page, banner) || !strings.Contains(page, "enqueued") || strings.Contains(page, "error") {
		t.Errorf("the build page does not show the banner and an enqueued job:\n%s", page)
	}
	if badge(t, s, "team/app") != "running" {
		t.Error("the badge of an enqueued build does not read running")
	}
}

// waitExit waits up to d for the server process to end and returns its exit code.
func (s *server) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("the server did not exit within %s; its log:\n%s", d, s.logs)
		return -1
	}
}

// waitRunning waits until build n's page shows a running job.
func (c *client) waitRunning(s *server, projectID int64, n int) {
	c.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		if _, page := c.do("GET", fmt.Sprintf("/projects/%d/builds/%d", projectID, n), nil); strings.Contains(page, "running") &&
			!strings.Contains(page, "enqueued") {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("build %d never ran; server log:\n%s", n, s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A signal lets a running job finish before the server exits; a second
// one stops at once, and the next start runs the interrupted job again.
func TestEndToEndShutdown(t *testing.T) {
	needTestImage(t)
	bin, dir := kozmicBinary(t), t.TempDir()
	key := "KOZMIC_SECRET_KEY=" + strings.Repeat("k", 40)
	r := testrepo.Init(t)
	repo := r.Path
	r.Commit(map[string]string{"src.txt": "one"}, nil)
	slow := "#!/bin/sh\nfor i in 1 2 3 4 5 6; do echo \"step $i of 6\"; sleep 0.5; done\n"

	// One signal: the running job finishes, then the server exits 0.
	s := startServerAt(t, bin, dir, key)
	c := newClient(t, s)
	c.signIn("admin's password")
	id := c.createProject(repo, "team/app", url.Values{"title": {"slow"}, "image": {testimage.Name}, "build": {slow}})
	c.do("POST", fmt.Sprintf("/projects/%d/builds", id), url.Values{"ref": {"main"}})
	c.waitRunning(s, id, 1)
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.waitExit(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after one signal; log:\n%s", code, s.logs)
	}
	if !strings.Contains(s.logs.String(), "shutting down") || strings.Contains(s.logs.String(), "stopped before every running job finished") {
		t.Errorf("the server did not wait for its job:\n%s", s.logs)
	}

	// Two signals: it stops mid-job; the next start runs the job again.
	s = startServerAt(t, bin, dir, key)
	c = newClient(t, s)
	c.signIn("admin's password")
	status, log := c.waitBuild(s, id, 1)
	if status != "passed" || !strings.Contains(log, "step 6 of 6") {
		t.Fatalf("the job the first server waited for: %s\n%s", status, log)
	}
	r.Commit(map[string]string{"src.txt": "two"}, nil)
	c.do("POST", fmt.Sprintf("/projects/%d/builds", id), url.Values{"ref": {"main"}})
	c.waitRunning(s, id, 2)
	s.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // the first signal has started the shutdown
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Error("still taking requests after the first signal")
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.waitExit(t, 10*time.Second)
	if !strings.Contains(s.logs.String(), "stopped before every running job finished") {
		t.Errorf("no word of the interrupted job:\n%s", s.logs)
	}

	s = startServerAt(t, bin, dir, key)
	c = newClient(t, s)
	c.signIn("admin's password")
	status, log = c.waitBuild(s, id, 2)
	if status != "passed" || !strings.Contains(log, "step 6 of 6") {
		t.Fatalf("the interrupted job after the restart: %s\n%s\nserver log:\n%s", status, log, s.logs)
	}
}

// A build fails while the mail server refuses connections: one signal
// stops the server at once, and the failure mail waits in the database for
// the next start.
func TestShutdownDoesNotWaitForUnreachableSMTP(t *testing.T) {
	needTestImage(t)
	bin, dir := kozmicBinary(t), t.TempDir()
	key := strings.Repeat("k", 40)
	s := startServerAt(t, bin, dir, "KOZMIC_SECRET_KEY="+key, "KOZMIC_SMTP_URL=smtp://"+freeAddr(t)) // nothing listens there
	c := newClient(t, s)
	c.signIn("admin's password")
	if res, _ := c.do("POST", "/account", url.Values{"email": {"admin@example.com"}}); res.StatusCode != 303 {
		t.Fatalf("set the notification address: %d", res.StatusCode)
	}
	r := testrepo.Init(t)
	r.Commit(map[string]string{"src.txt": "src"}, nil)
	id := c.createProject(r.Path, "team/app", url.Values{"title": {"test"}, "image": {testimage.Name}, "build": {"#!/bin/sh\nexit 1\n"}})
	c.do("POST", fmt.Sprintf("/projects/%d/builds", id), url.Values{"ref": {"main"}})
	if status, log := c.waitBuild(s, id, 1); status != "failed" {
		t.Fatalf("build = %s\n%s", status, log)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(s.logs.String(), `msg="mail: send failed"`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the failure mail was never tried; server log:\n%s", s.logs)
		}
	}

	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.waitExit(t, 20*time.Second); code != 0 { // the retries would take minutes
		t.Errorf("exit code %d; log:\n%s", code, s.logs)
	}
	db := openTestStore(t, filepath.Join(dir, "kozmic.db"), key)
	mails, err := db.DueMail(context.Background(), time.Now().Add(1000*time.Hour), 10)
	if err != nil || len(mails) != 1 || mails[0].To != "admin@example.com" || mails[0].Attempts == 0 ||
		!strings.HasPrefix(mails[0].Subject, "[failure] team/app#1 ") {
		t.Errorf("outbox after the shutdown = %+v, %v; want the failure mail, tried and waiting", mails, err)
	}
}
