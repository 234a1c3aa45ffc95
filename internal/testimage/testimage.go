// Package testimage gives tests a small Docker image without a registry:
// Debian's static busybox imported as a root filesystem.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
)

// Name is the image's reference. Its registry part names a closed loopback
// port, so pull attempts are refused at once and no DNS query leaves the
// machine.
const Name = "127.0.0.1:1/kozmic-test/busybox:latest"

var applets = []string{"sh", "echo", "cat", "sleep", "env", "ls", "yes", "head", "seq", "printf",
	"test", "true", "false", "mkdir", "touch", "pwd", "dd", "tr", "grep", "wc", "rm", "id", "date", "tail"}

// Host is the Docker engine tests use: DOCKER_HOST, or the local socket.
func Host() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return "unix:///var/run/docker.sock"
}

// NoShell is an image like Name's without /bin/sh: busybox is there, at
// /bin/busybox, for a script to name in its #! line.
const NoShell = "127.0.0.1:1/kozmic-test/no-shell:latest"

// Ensure imports the image into the engine unless it is there already.
func Ensure(dc *docker.Client) error {
	return ensure(dc, Name, applets)
}

// EnsureNoShell imports the image NoShell unless it is there already.
func EnsureNoShell(dc *docker.Client) error {
	return ensure(dc, NoShell, slices.DeleteFunc(slices.Clone(applets), func(a string) bool { return a == "sh" }))
}

// ensure imports Debian's static busybox with links of the applets in /bin
// as the image name, unless it is there already.
func ensure(dc *docker.Client, name string, applets []string) error {
	if _, err := dc.InspectImage(name); err == nil {
		return nil
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("read /bin/busybox (install Debian's busybox-static): %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o1777})
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	for _, a := range applets {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777})
	}
	if err := tw.Close(); err != nil {
		return err
	}
	at := strings.LastIndex(name, ":") // the tag's, after the registry's port
	return dc.ImportImage(docker.ImportImageOptions{Repository: name[:at], Tag: name[at+1:],
		Source: "-", InputStream: &buf, OutputStream: io.Discard})
}
