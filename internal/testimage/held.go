package testimage

import (
	"fmt"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

// HeldScript is a build script that runs until Release lets it end: it
// prints "holding", waits for the file /tmp/go in its container, and
// prints "released".
const HeldScript = "#!/bin/sh\necho holding\nwhile [ ! -e /tmp/go ]; do sleep 0.1; done\necho released\n"

// Release lets a job running HeldScript end: it waits up to a minute for
// the one running container carrying every label given ("key=value"), the
// job's, and makes /tmp/go in it.
func Release(dc *docker.Client, labels ...string) error {
	filters := map[string][]string{"label": labels, "status": {"running"}}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		cs, err := dc.ListContainers(docker.ListContainersOptions{Filters: filters})
		if err != nil {
			return fmt.Errorf("list containers %v: %w", labels, err)
		}
		if len(cs) > 1 {
			return fmt.Errorf("%d running containers with labels %v", len(cs), labels)
		}
		if len(cs) == 1 {
			ex, err := dc.CreateExec(docker.CreateExecOptions{Container: cs[0].ID, Cmd: []string{"touch", "/tmp/go"}})
			if err != nil {
				return fmt.Errorf("exec in %.12s: %w", cs[0].ID, err)
			}
			return dc.StartExec(ex.ID, docker.StartExecOptions{})
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no running container with labels %v", labels)
		}
	}
}
