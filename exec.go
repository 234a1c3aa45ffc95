package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"kozmic/git"
	"kozmic/internal/ansi"
	"kozmic/runner"
	"kozmic/store"
)

// exitNotRun is the exit code of `kozmic exec` when the script could not
// run to its end for a reason of Kozmic's or Docker's (no image, Docker
// failed, interrupted), as `docker run` uses it: apart from the exit codes
// of scripts that fail.
const exitNotRun = 125

// runExec is `kozmic exec`: it runs one hook definition on a local working
// tree through the same steps as a server job (image, cached install step,
// build step), printing the log, with the job variables of the commit the
// tree has checked out. Flags may come before or after the directory. The
// install cache image it makes is removed at the end unless -keep-cache.
// On a stdout that is not a terminal the log is plain text. It exits with
// the build (or failed install) script's exit code, 125 when the job could
// not run, and 2 for a bad command line.
func runExec(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kozmic exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kozmic exec -image IMAGE -build-script FILE [-install-script FILE] [-track PATH]... [-keep-cache] [DIR]")
		fmt.Fprintln(stderr, "exits with the script's exit code, or 125 when it could not run (no image, Docker failed)")
		fs.PrintDefaults()
	}
	image := fs.String("image", "", "Docker image to run in (required)")
	build := fs.String("build-script", "", "file holding the build script (required)")
	install := fs.String("install-script", "", "file holding the install script")
	var tracked pathList
	fs.Var(&tracked, "track", "a tracked file or directory of DIR; repeat for more")
	keepCache := fs.Bool("keep-cache", false, "keep the install cache image made, for the next run to start from")
	host := fs.String("docker-host", orDefault(getenv("DOCKER_HOST"), "unix:///var/run/docker.sock"), "Docker engine (env DOCKER_HOST)")
	network := fs.String("network", orDefault(getenv("KOZMIC_JOB_NETWORK"), "bridge"), "network of the containers (env KOZMIC_JOB_NETWORK)")
	dirs, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	dir := "."
	switch len(dirs) {
	case 0:
	case 1:
		dir = dirs[0]
	default:
		fmt.Fprintf(stderr, "kozmic exec: one directory at most, got %q\n", dirs)
		return exitUsage
	}
	if *image == "" || *build == "" {
		fmt.Fprintln(stderr, "kozmic exec: -image and -build-script are required")
		return exitUsage
	}
	buildScript, err := os.ReadFile(*build)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic exec: -build-script: %v\n", err)
		return exitUsage
	}
	var installScript []byte
	if *install != "" {
		if installScript, err = os.ReadFile(*install); err != nil {
			fmt.Fprintf(stderr, "kozmic exec: -install-script: %v\n", err)
			return exitUsage
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "kozmic exec: %s is not a directory\n", dir)
		return exitUsage
	}
	spec := runner.ExecSpec{Dir: dir, Image: *image, InstallScript: string(installScript),
		BuildScript: string(buildScript), TrackedFiles: tracked, KeepCache: *keepCache}
	head, err := git.WorkTreeHead(ctx, dir)
	switch {
	case errors.Is(err, git.ErrNoCommit):
		fmt.Fprintf(stderr, "kozmic exec: %s is %v: the build script gets no KOZMIC_COMMIT_SHA, KOZMIC_REF or KOZMIC_BRANCH\n", dir, err)
	case err != nil:
		fmt.Fprintf(stderr, "kozmic exec: read %s with git: %v\n", dir, err)
		return exitNotRun
	default:
		spec.Project, spec.Ref, spec.SHA = projectName(head.Origin, dir), head.Ref, head.SHA
	}

	dc, err := runner.NewDockerClient(*host)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic exec: -docker-host: %v\n", err)
		return exitUsage
	}
	out := stdout
	if f, ok := stdout.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		out = &plainText{w: stdout}
	}
	r := runner.New(runner.Config{Network: *network}, nil, dc, nil, newLogger(Config{LogFormat: "text"}, stderr))
	status, code := r.Exec(ctx, spec, out)
	if status == store.JobError {
		return exitNotRun
	}
	return code
}

// parseInterspersed parses args with fs, flags before and after the
// positional arguments alike (exec . -image …), and returns the positional
// ones. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(positional, rest...), nil
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
}

// projectName is KOZMIC_PROJECT for a working tree: the path of its origin
// remote without ".git" (owner/name on GitHub), or the directory's name
// when it has no such remote.
func projectName(origin, dir string) string {
	if _, path, ok := git.RemoteHostPath(origin); ok && path != "" {
		return strings.TrimSuffix(path, ".git")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Base(dir)
	}
	return filepath.Base(abs)
}

// plainText passes a terminal's output on as plain text, for a log file or
// a pipe: ANSI escape sequences (colours, cursor moves, titles) are
// dropped (ansi.Stripper, which follows a sequence split across writes),
// and a carriage return, alone or before a line feed, becomes one line end.
type plainText struct {
	w   io.Writer
	esc ansi.Stripper
	cr  bool // the last text byte was a carriage return, written as a line end
}

func (p *plainText) Write(b []byte) (int, error) {
	text := p.esc.Strip(b)
	out := make([]byte, 0, len(text))
	for _, c := range text {
		// A colour reset between \r and \n leaves them one line end.
		switch {
		case c == '\r':
			out, p.cr = append(out, '\n'), true
		case c == '\n' && p.cr:
			p.cr = false
		default:
			out, p.cr = append(out, c), false
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// pathList is a repeatable flag.
type pathList []string

func (p *pathList) String() string     { return strings.Join(*p, ",") }
func (p *pathList) Set(v string) error { *p = append(*p, v); return nil }

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
