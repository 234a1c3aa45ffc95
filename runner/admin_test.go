package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// Engine lists the engine's version, the running containers of this
// Kozmic's jobs (not another instance's, not stopped ones) and this
// Kozmic's install cache images with their project, scope and size.
func TestEngineListsOnlyThisInstancesRunningContainersAndCacheImages(t *testing.T) {
	h := newHarness(t, Config{})
	mine := fmt.Sprintf("engine-%d", time.Now().UnixNano())
	theirs := "other-" + mine
	r := New(Config{Instance: mine}, h.db, h.dc, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var made []string
	t.Cleanup(func() {
		for _, id := range made {
			h.dc.RemoveContainer(docker.RemoveContainerOptions{ID: id, Force: true, RemoveVolumes: true})
			h.dc.RemoveImageExtended(id, docker.RemoveImageOptions{Force: true})
		}
	})
	container := func(labels map[string]string, start bool) string {
		c, err := h.dc.CreateContainer(docker.CreateContainerOptions{Config: &docker.Config{Image: testImage,
			Cmd: []string{"sleep", "60"}, Labels: labels}, HostConfig: &docker.HostConfig{NetworkMode: "none"}})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, c.ID)
		if start {
			if err := h.dc.StartContainer(c.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
		return c.ID
	}
	cacheImage := func(instance string, projectID int64, scope store.CacheScope, cacheID string) {
		c := container(nil, false)
		tag := fmt.Sprintf("%s-%d", instance, projectID)
		if _, err := h.dc.CommitContainer(docker.CommitContainerOptions{Container: c, Repository: CacheRepository + cacheID, Tag: tag,
			Run: &docker.Config{Labels: map[string]string{LabelCache: cacheID, LabelProject: fmt.Sprint(projectID),
				LabelInstance: instance, LabelScope: string(scope)}}}); err != nil {
			t.Fatal(err)
		}
		made = append(made, CacheRepository+cacheID+":"+tag)
	}
	running := container(map[string]string{LabelInstance: mine, LabelJob: "42", LabelProject: "7"}, true)
	container(map[string]string{LabelInstance: mine, LabelJob: "43", LabelProject: "7"}, false)
	container(map[string]string{LabelInstance: theirs, LabelJob: "44", LabelProject: "7"}, true)
	ownCache := fmt.Sprintf("%064x", time.Now().UnixNano())
	cacheImage(mine, 7, store.ForkCacheScope(101), ownCache)
	cacheImage(theirs, 7, store.CacheScopeProject, fmt.Sprintf("%064x", time.Now().UnixNano()+1))

	es := r.EngineInfos(context.Background())
	if len(es) != 1 {
		t.Fatalf("%d engines, want 1", len(es))
	}
	e := es[0]
	if e.Err != nil {
		t.Fatal(e.Err)
	}
	if e.Version == "" || e.APIVersion == "" || e.Endpoint != h.dc.Endpoint() || e.Name != "local" || e.Slots != 2 {
		t.Errorf("engine %s (%d slots): %q, API %q at %q", e.Name, e.Slots, e.Version, e.APIVersion, e.Endpoint)
	}
	if len(e.Containers) != 1 || e.Containers[0].ID != running[:12] || e.Containers[0].JobID != 42 || e.Containers[0].ProjectID != 7 ||
		time.Since(e.Containers[0].Created) > time.Minute {
		t.Errorf("containers %+v, want the running one of job 42", e.Containers)
	}
	if len(e.CacheImages) != 1 {
		t.Fatalf("cache images %+v, want this instance's one", e.CacheImages)
	}
	img := e.CacheImages[0]
	if img.ProjectID != 7 || img.Use != (store.CacheUse{Scope: store.ForkCacheScope(101), ID: ownCache}) || img.Size <= 0 ||
		!strings.HasPrefix(img.ID, "sha256:") {
		t.Errorf("cache image %+v", img)
	}
}

// An engine that accepts connections and never answers costs EngineInfos its
// timeout, and says so; one whose socket is not there fails at once with
// the connection's error.
func TestEngineGivesUpOnAnEngineThatNeverAnswers(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	silent := testrepo.NewSilent(t)
	for _, tc := range []struct{ host, want string }{
		{"tcp://" + silent.Addr, "no answer within 3s"},
		{"unix://" + filepath.Join(t.TempDir(), "docker.sock"), "no such file or directory"},
	} {
		dc, err := NewDockerClient(tc.host)
		if err != nil {
			t.Fatal(err)
		}
		r := New(Config{}, nil, dc, nil, log)
		err = r.EngineInfos(context.Background())[0].Err
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: EngineInfos gave %v, want an error saying %q", tc.host, err, tc.want)
		}
	}
}
