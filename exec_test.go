package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/runner"
)

// writeScript writes a script to a fresh file and returns its path.
func writeScript(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// execKozmic runs `kozmic exec` on the test image without a network, with
// args after the image.
func execKozmic(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runKozmic(context.Background(), append([]string{"exec", "-image", testimage.Name, "-network", "none"}, args...), env(t, nil))
}

// The build step of `kozmic exec` sees the job variables a server's job of
// the checked-out commit would: the branch, or for a detached HEAD the
// commit, and the project named after the origin remote.
func TestExecSetsJobVariablesFromWorkingTree(t *testing.T) {
	needTestImage(t)
	repo := testrepo.New(t, map[string]string{"README": "hi"})
	repo.Git("switch", "-q", "-c", "feature/x")
	repo.Git("remote", "add", "origin", "git@github.com:acme/app.git")
	sha := repo.Git("rev-parse", "HEAD")
	script := writeScript(t, "#!/bin/sh\necho \"branch=$KOZMIC_BRANCH ref=$KOZMIC_REF sha=$KOZMIC_COMMIT_SHA project=$KOZMIC_PROJECT build=$KOZMIC_BUILD_NUMBER ci=$CI\"\n")

	code, out, errOut := execKozmic(t, "-build-script", script, repo.Path)
	want := fmt.Sprintf("branch=feature/x ref=refs/heads/feature/x sha=%s project=acme/app build=0 ci=true\n", sha)
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("on a branch: exit %d, stdout %q, stderr %q; want a line %q", code, out, errOut, want)
	}
	repo.Git("switch", "-q", "--detach")
	code, out, errOut = execKozmic(t, "-build-script", script, repo.Path)
	want = fmt.Sprintf("branch=%s ref=%s sha=%s project=acme/app", sha, sha, sha)
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("detached: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}
	// Not a git working tree: it runs, and says what the script goes without.
	code, out, errOut = execKozmic(t, "-build-script", script, t.TempDir())
	if code != 0 || !strings.Contains(out, "branch= ref= sha=") || !strings.Contains(errOut, "no KOZMIC_COMMIT_SHA") {
		t.Errorf("no git: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// When the script cannot run at all, exec exits 125, a code apart from the
// script's own failures (which the exit code 1 it had was not).
func TestExecExits125WhenImageMissing(t *testing.T) {
	needTestImage(t)
	script := writeScript(t, "#!/bin/sh\nexit 0\n")
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"image missing":      {"exec", "-image", "127.0.0.1:1/kozmic-test/no-such-image:latest", "-network", "none", "-build-script", script, dir},
		"docker unreachable": {"exec", "-image", testimage.Name, "-docker-host", "unix://" + filepath.Join(dir, "no-docker.sock"), "-build-script", script, dir},
	} {
		code, out, errOut := runKozmic(context.Background(), args, env(t, nil))
		if code != 125 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 125", name, code, out, errOut)
		}
	}
	if code, out, _ := execKozmic(t, "-build-script", writeScript(t, "#!/bin/sh\nexit 1\n"), dir); code != 1 {
		t.Errorf("a script exiting 1: exit %d, %q", code, out)
	}
}

// Written to a file or a pipe, exec's log is plain text: neither Kozmic's
// coloured lines nor the script's escape sequences (colours, a window
// title) nor the terminal's carriage returns are in it.
func TestExecPlainOutputWhenNotATerminal(t *testing.T) {
	needTestImage(t)
	script := writeScript(t, "#!/bin/sh\nprintf '\\033[1;31mred\\033[0m\\n'\nprintf '\\033]0;a title\\007plain\\n'\nprintf '50%%\\r100%%\\n'\n")
	code, out, errOut := execKozmic(t, "-build-script", script, t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	for _, line := range []string{"\nred\n", "\nplain\n", "\n50%\n100%\n", "==> Running the build script\n", "==> The build script succeeded\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q: %q", line, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\r\a") {
		t.Errorf("output holds escapes or carriage returns: %q", out)
	}
}

// exec's install step makes a cache image as a job's does; exec removes it
// at the end, unless -keep-cache keeps it for the next run, which then
// starts from it.
func TestExecRemovesItsCacheImage(t *testing.T) {
	needTestImage(t)
	dc, err := runner.NewDockerClient(testimage.Host())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := writeScript(t, "#!/bin/sh\ncat /installed\n")
	// A script no earlier run had: its cache image is new.
	install := writeScript(t, fmt.Sprintf("#!/bin/sh\necho 'installed by %s %d' > /installed\n", t.Name(), time.Now().UnixNano()))
	// The cache id exec names picks this test's images from any that other
	// tests (of other packages, at the same time) make.
	var cacheID string
	made := func() []string {
		imgs, err := dc.ListImages(docker.ListImagesOptions{Filters: map[string][]string{"label": {runner.LabelCache, runner.LabelProject + "=0"}}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, img := range imgs {
			if cacheID != "" && strings.HasPrefix(img.Labels[runner.LabelCache], cacheID) {
				ids = append(ids, img.ID)
			}
		}
		return ids
	}
	t.Cleanup(func() {
		for _, id := range made() {
			dc.RemoveImage(id)
		}
	})

	code, out, errOut := execKozmic(t, "-install-script", install, "-build-script", build, dir)
	m := regexp.MustCompile(`Removed the install cache image ([0-9a-f]{12})`).FindStringSubmatch(out)
	if code != 0 || !strings.Contains(out, "installed by") || m == nil {
		t.Fatalf("exec: exit %d, %q, %q; want it to run and say it removed its cache image", code, out, errOut)
	}
	cacheID = m[1]
	if left := made(); len(left) != 0 {
		t.Fatalf("exec left its cache images %v; output %q", left, out)
	}

	code, out, errOut = execKozmic(t, "-keep-cache", "-install-script", install, "-build-script", build, dir)
	kept := made()
	if code != 0 || len(kept) != 1 {
		t.Fatalf("-keep-cache: exit %d, kept %v, %q, %q", code, kept, out, errOut)
	}
	code, out, errOut = execKozmic(t, "-install-script", install, "-build-script", build, dir)
	if code != 0 || !strings.Contains(out, runner.SkippedInstall) || !slices.Equal(made(), kept) {
		t.Errorf("after -keep-cache: exit %d, images %v, want %v still there and used; %q, %q", code, made(), kept, out, errOut)
	}
}

// The directory may come before the flags, as in `kozmic exec . -image …`.
func TestExecDirectoryBeforeFlags(t *testing.T) {
	needTestImage(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "message.txt"), []byte("from the directory named first"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := writeScript(t, "#!/bin/sh\ncat message.txt\n")
	code, out, errOut := runKozmic(context.Background(), []string{"exec", dir, "-image", testimage.Name, "-network", "none",
		"-build-script", script}, env(t, nil))
	if code != 0 || !strings.Contains(out, "from the directory named first") {
		t.Errorf("exec DIR -image …: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = runKozmic(context.Background(), []string{"exec", dir, "-image", testimage.Name, "-build-script", script, dir}, env(t, nil))
	if code != 2 || !strings.Contains(errOut, "one directory at most") {
		t.Errorf("two directories: exit %d, %q", code, errOut)
	}
}

// A terminal's output reaches exec in pieces that cut escape sequences and
// \r\n pairs anywhere; written a byte at a time it comes out as plain as
// written whole.
func TestPlainTextFollowsSequencesAcrossWrites(t *testing.T) {
	in := "\x1b[1;36m==> Running\x1b[0m\r\n\x1b]0;title\x1b\\ok\x1b(Bdone\r\x1b[0m\nbar 50%\rbar 100%\r\n"
	const want = "==> Running\nokdone\nbar 50%\nbar 100%\n"
	var whole, pieces strings.Builder
	(&plainText{w: &whole}).Write([]byte(in))
	p := &plainText{w: &pieces}
	for i := range len(in) {
		p.Write([]byte{in[i]})
	}
	if whole.String() != want || pieces.String() != want {
		t.Errorf("whole %q, byte by byte %q; want %q", whole.String(), pieces.String(), want)
	}
}
