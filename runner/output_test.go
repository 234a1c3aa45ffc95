package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

// Without a TTY, Docker reads stdout and stderr through two pipes; a script
// alternating between them, a line at a time with nothing between the
// writes, must still show its lines in the order it wrote them.
func TestStdoutAndStderrKeepTheirOrder(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "order",
		BuildScript: "#!/bin/sh\nfor i in $(seq 1 500); do echo \"out $i\"; echo \"err $i\" >&2; done\n"})
	j := h.runOK(p, rp.Git("rev-parse", "HEAD"))
	var want strings.Builder
	for i := 1; i <= 500; i++ {
		fmt.Fprintf(&want, "out %d\nerr %d\n", i, i)
	}
	log := h.logOf(j.ID)
	if !strings.Contains(log, want.String()) {
		t.Errorf("the log does not have the 1,000 lines in the order written:\n%s", log)
	}
}

// An image without /bin/sh, which merging stderr into stdout needs, still
// runs its scripts, install and build: each on its own, the log saying why
// the first time. A later job knows the image and starts its scripts on
// their own at once.
func TestImageWithoutAShellStillRunsItsScripts(t *testing.T) {
	h := newHarness(t, Config{})
	if err := testimage.EnsureNoShell(h.dc); err != nil {
		t.Fatal(err)
	}
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "no shell", DockerImage: testimage.NoShell,
		InstallScript: "#!/bin/busybox sh\necho installed > /installed\n",
		BuildScript:   "#!/bin/busybox sh\necho to-out\necho to-err >&2\ncat /installed\n"})
	sha := rp.Git("rev-parse", "HEAD")
	first := h.runOK(p, sha)
	log := h.logOf(first.ID)
	for _, want := range []string{NoShellMessage, "to-out\n", "to-err\n", "installed\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the first job's log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, NoShellMessage); n != 1 {
		t.Errorf("the first job says %d times that the image has no shell; want once, at its first container", n)
	}
	_, jobs := h.build(p, "refs/heads/again", sha)
	again := h.waitJob(jobs[0].ID, finished)
	if log := h.logOf(again.ID); again.Status != store.JobSuccess || strings.Contains(log, NoShellMessage) || !strings.Contains(log, "to-err\n") {
		t.Errorf("the second job tried /bin/sh again, or did not run:\n%s", log)
	}
	removeCacheImages(t, h, 0)
}

// Colours reach the log: escapes a script prints itself, and those of a
// tool that colours only on a terminal unless FORCE_COLOR or CLICOLOR_FORCE
// asks it to, as colour libraries do; TERM says what the escapes mean.
func TestColoursReachTheLogWithoutATerminal(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "colours", BuildScript: "#!/bin/sh\n" +
		"printf '\\033[31mred\\033[0m\\n'\n" +
		"colour() { if [ -t 1 ] || [ -n \"$FORCE_COLOR\" ] || [ \"$CLICOLOR_FORCE\" = 1 ]; then printf '\\033[32m%s\\033[0m\\n' \"$1\"; else echo \"$1\"; fi; }\n" +
		"colour tool-green\n" +
		"echo \"TERM=$TERM\"\n"})
	j := h.runOK(p, rp.Git("rev-parse", "HEAD"))
	log := h.logOf(j.ID)
	for _, want := range []string{"\x1b[31mred\x1b[0m\n", "\x1b[32mtool-green\x1b[0m\n", "TERM=xterm\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%q", want, log)
		}
	}
}

// A line a script prints reaches a follower of the job's log while the
// script goes on running (here: until the job is canceled), not when the
// container ends.
func TestOutputReachesAFollowerWhileTheJobRuns(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "live",
		BuildScript: "#!/bin/sh\necho first line, then a long wait\nwhile true; do sleep 1; done\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var seen strings.Builder
	err := h.r.Logs().Follow(ctx, h.db, jobs[0].ID, 0, func(c Chunk) error {
		seen.Write(c.Data)
		if strings.Contains(seen.String(), "first line, then a long wait\n") {
			return errFound
		}
		return nil
	})
	if err != errFound {
		t.Fatalf("follow ended with %v before the line arrived; log so far:\n%s", err, seen.String())
	}
	if j, err := h.db.JobByID(ctx, jobs[0].ID); err != nil || j.Status != store.JobRunning {
		t.Errorf("job when its line arrived = %s, %v; want running", j.Status, err)
	}
	if err := h.r.Cancel(ctx, jobs[0].ID, "test"); err != nil {
		t.Fatal(err)
	}
	h.waitJob(jobs[0].ID, finished)
}

var errFound = errors.New("found")

// A job whose image is on the engine runs at once, without waiting for
// its registry: here one that never answers. The pull that refreshes the
// image for later jobs reaches the registry and is still waiting for it
// when the job has finished.
func TestImageOnTheEngineNeverWaitsForItsRegistry(t *testing.T) {
	h := newHarness(t, Config{})
	reg := testrepo.NewSilent(t)
	repo := reg.Addr + "/kozmic-test/held"
	if err := h.dc.TagImage(testImage, docker.TagImageOptions{Repo: repo, Tag: "latest"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.dc.RemoveImage(repo + ":latest") })
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "held", DockerImage: repo + ":latest", BuildScript: "#!/bin/sh\necho ran\n"})
	j := h.runOK(p, rp.Git("rev-parse", "HEAD"))
	if log := h.logOf(j.ID); !strings.Contains(log, "Using "+repo+":latest from this Docker engine") || strings.Contains(log, "Pulling") {
		t.Errorf("the log does not say the image on the engine was used without waiting for a pull:\n%s", log)
	}
	select {
	case <-reg.Accepted:
	case <-time.After(time.Minute):
		t.Fatal("the image was never pulled to refresh it")
	}
	e := h.r.local()
	e.pullMu.Lock()
	pl := e.pulls[repo+":latest"]
	e.pullMu.Unlock()
	select {
	case <-pl.done:
		t.Errorf("the pull ended (%v) though the registry never answered", pl.err)
	default:
	}
}

// The build container of a job without an install step is made while the
// job's commit is fetched, off the job's path: here from a git server
// that never answers, so the fetch lasts until the job is canceled. The
// cancel removes the container (the harness checks that none is left).
func TestBuildContainerIsMadeWhileTheCommitIsFetched(t *testing.T) {
	h := newHarness(t, Config{})
	git := testrepo.NewSilent(t)
	owner, err := h.db.CreateLocalUser(context.Background(), "owner", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.db.CreateProject(context.Background(), store.NewProject{OwnerID: owner.ID, Source: store.SourceGit,
		FullName: "acme/silent", GitURL: git.URL, WebhookSecret: "whsec"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.CreateHook(context.Background(), store.Hook{ProjectID: p.ID, Title: "early", DockerImage: testImage,
		BuildScript: "#!/bin/sh\necho never\n"}); err != nil {
		t.Fatal(err)
	}
	_, jobs := h.build(p, "refs/heads/main", strings.Repeat("a", 40))
	select {
	case <-git.Accepted:
	case <-time.After(time.Minute):
		t.Fatal("the commit was never fetched")
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		cs, err := h.dc.ListContainers(docker.ListContainersOptions{All: true, Filters: map[string][]string{
			"label": {LabelJob + "=" + itoa(jobs[0].ID), LabelInstance + "=" + h.db.InstanceID()}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no build container while the commit was fetched; log:\n%s", h.logOf(jobs[0].ID))
		}
	}
	if j, err := h.db.JobByID(context.Background(), jobs[0].ID); err != nil || j.Status != store.JobRunning {
		t.Errorf("job = %s, %v; want running, its commit still being fetched", j.Status, err)
	}
	if err := h.r.Cancel(context.Background(), jobs[0].ID, "test"); err != nil {
		t.Fatal(err)
	}
	if j := h.waitJob(jobs[0].ID, finished); j.Status != store.JobError {
		t.Errorf("canceled job = %s", j.Status)
	}
}
