// Package testimage gives tests a small Docker image without a registry:
// Debian's static busybox imported as a root filesystem.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"

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

// Ensure imports the image into the engine unless it is there already.
func Ensure(dc *docker.Client) error {
	if _, err := dc.InspectImage(Name); err == nil {
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
	return dc.ImportImage(docker.ImportImageOptions{Repository: "127.0.0.1:1/kozmic-test/busybox", Tag: "latest",
		Source: "-", InputStream: &buf, OutputStream: io.Discard})
}
