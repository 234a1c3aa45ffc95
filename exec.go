package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"kozmic/runner"
	"kozmic/store"
)

// runExec is `kozmic exec`: it runs one hook definition on a local working
// tree through the same steps as a server job (image, cached install step,
// build step), printing the log. It exits with the build script's exit code,
// 1 when the job could not run, and 2 for a bad command line.
func runExec(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kozmic exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kozmic exec -image IMAGE -build-script FILE [-install-script FILE] [-track PATH]... [DIR]")
		fs.PrintDefaults()
	}
	image := fs.String("image", "", "Docker image to run in (required)")
	build := fs.String("build-script", "", "file holding the build script (required)")
	install := fs.String("install-script", "", "file holding the install script")
	var tracked pathList
	fs.Var(&tracked, "track", "a tracked file or directory of DIR; repeat for more")
	host := fs.String("docker-host", orDefault(getenv("DOCKER_HOST"), "unix:///var/run/docker.sock"), "Docker engine (env DOCKER_HOST)")
	network := fs.String("network", orDefault(getenv("KOZMIC_JOB_NETWORK"), "bridge"), "network of the containers (env KOZMIC_JOB_NETWORK)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	dir := "."
	switch fs.NArg() {
	case 0:
	case 1:
		dir = fs.Arg(0)
	default:
		fmt.Fprintln(stderr, "kozmic exec: one directory at most")
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

	dc, err := runner.NewDockerClient(*host)
	if err != nil {
		fmt.Fprintf(stderr, "kozmic exec: -docker-host: %v\n", err)
		return exitUsage
	}
	r := runner.New(runner.Config{Network: *network}, nil, dc, nil, newLogger(Config{LogFormat: "text"}, stderr))
	status, code := r.Exec(ctx, runner.ExecSpec{Dir: dir, Image: *image, InstallScript: string(installScript),
		BuildScript: string(buildScript), TrackedFiles: tracked}, stdout)
	if status == store.JobError {
		return exitFailed
	}
	return code
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
