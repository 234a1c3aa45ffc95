package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// Sweep removes this Kozmic's leftovers and nothing of anyone else's, and
// keeps a project's own cache images and its forks' within a limit each;
// ClearCache removes one project's cache images of every scope.
func TestSweepRemovesOnlyOwnLeftovers(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	p, _ := h.project(testrepo.New(t, map[string]string{"a": "a"}))
	other, _ := h.project(testrepo.New(t, map[string]string{"a": "a"}))
	// A runner of its own instance, not started: the harness's started
	// runner sweeps at start too, but only what carries its own instance.
	// Both unique: the images' names hold them, and other runs of this test
	// may share the engine.
	mine := fmt.Sprintf("sweep-%d", time.Now().UnixNano())
	theirs := "other-" + mine
	r := New(Config{Instance: mine, CachedImagesLimit: 2}, h.db, h.dc, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))

	var made []string // everything made here, removed at the end whatever happens
	t.Cleanup(func() {
		for _, id := range made {
			h.dc.RemoveContainer(docker.RemoveContainerOptions{ID: id, Force: true, RemoveVolumes: true})
			h.dc.RemoveImageExtended(id, docker.RemoveImageOptions{Force: true})
			h.dc.RemoveVolumeWithOptions(docker.RemoveVolumeOptions{Name: id})
		}
	})
	container := func(labels map[string]string) string {
		c, err := h.dc.CreateContainer(docker.CreateContainerOptions{Config: &docker.Config{Image: testImage, Cmd: []string{"true"}, Labels: labels}})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, c.ID)
		return c.ID
	}
	volume := func(name string, labels map[string]string) {
		if _, err := h.dc.CreateVolume(docker.CreateVolumeOptions{Name: name, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		made = append(made, name)
	}
	// cacheImage commits a container as a cache image of a project of an
	// instance, in a scope; unscoped, it is as images were before scopes.
	cacheImage := func(instance string, projectID int64, scope store.CacheScope, n int) string {
		c := container(nil)
		cacheID := fmt.Sprintf("%064x", n)
		tag := instance + "-" + strconv.FormatInt(projectID, 10)
		labels := map[string]string{LabelCache: cacheID, LabelProject: strconv.FormatInt(projectID, 10), LabelInstance: instance}
		if scope != store.CacheScopeUnset {
			labels[LabelScope] = string(scope)
		}
		if _, err := h.dc.CommitContainer(docker.CommitContainerOptions{Container: c, Repository: CacheRepository + cacheID, Tag: tag,
			Run: &docker.Config{Labels: labels}}); err != nil {
			t.Fatal(err)
		}
		name := CacheRepository + cacheID + ":" + tag
		made = append(made, name)
		return name
	}
	exists := func(kind, name string) bool {
		var err error
		switch kind {
		case "container":
			_, err = h.dc.InspectContainerWithOptions(docker.InspectContainerOptions{ID: name})
		case "volume":
			_, err = h.dc.InspectVolume(name)
		case "image":
			_, err = h.dc.InspectImage(name)
		}
		return err == nil
	}

	ownStopped := container(map[string]string{LabelInstance: mine, LabelJob: "999999"})
	theirStopped := container(map[string]string{LabelInstance: theirs, LabelJob: "1"})
	unlabelled := container(nil)
	volume("kozmic-test-own-"+mine, map[string]string{LabelInstance: mine})
	volume("kozmic-test-their-"+mine, map[string]string{LabelInstance: theirs})
	var own, forks []string
	for i := range 4 {
		own = append(own, cacheImage(mine, p.ID, store.CacheScopeProject, i))
	}
	// The last is keyed by its fork's name, as before scopes followed ids:
	// it still counts among the forks'.
	for i, fork := range []store.CacheScope{store.ForkCacheScope(101), store.ForkCacheScope(202), "fork:mallory/app"} {
		forks = append(forks, cacheImage(mine, p.ID, fork, 4+i))
	}
	unscoped := cacheImage(mine, p.ID, store.CacheScopeUnset, 9)  // made before scopes: it may hold a fork's install
	gone := cacheImage(mine, 987654, store.CacheScopeProject, 10) // a deleted project's
	theirImage := cacheImage(theirs, p.ID, store.CacheScopeProject, 11)
	otherProject := cacheImage(mine, other.ID, store.CacheScopeProject, 12)

	s, err := r.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Containers != 1 || s.Volumes != 1 || s.Images != 5 {
		t.Errorf("swept %+v, want 1 container, 1 volume, 5 images", s)
	}
	for _, tt := range []struct {
		kind, name string
		want       bool
	}{
		{"container", ownStopped, false}, {"container", theirStopped, true}, {"container", unlabelled, true},
		{"volume", "kozmic-test-own-" + mine, false}, {"volume", "kozmic-test-their-" + mine, true},
		{"image", gone, false}, {"image", unscoped, false}, {"image", theirImage, true}, {"image", otherProject, true},
	} {
		if got := exists(tt.kind, tt.name); got != tt.want {
			t.Errorf("%s %.40s exists = %v, want %v", tt.kind, tt.name, got, tt.want)
		}
	}
	left := func(names []string) int {
		n := 0
		for _, name := range names {
			if exists("image", name) {
				n++
			}
		}
		return n
	}
	// The forks' images count against a limit of their own: they never
	// push the project's own out.
	if own, forks := left(own), left(forks); own != 2 || forks != 2 {
		t.Errorf("left %d of the project's 4 own cache images and %d of its forks' 3, want the limit of 2 each", own, forks)
	}

	// A job that just finished: its container, on its way out, still holds
	// its image when ClearCache starts, and is gone a moment later.
	var held string
	for _, name := range own {
		if exists("image", name) {
			held = name
		}
	}
	finished, err := h.dc.CreateContainer(docker.CreateContainerOptions{Config: &docker.Config{Image: held, Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	made = append(made, finished.ID)
	time.AfterFunc(time.Second, func() {
		h.dc.RemoveContainer(docker.RemoveContainerOptions{ID: finished.ID, Force: true})
	})
	n, err := r.ClearCache(ctx, p.ID)
	if err != nil || n != 4 {
		t.Errorf("ClearCache = %d, %v; want 4, the image of the container on its way out too", n, err)
	}
	for _, name := range append(own, forks...) {
		if exists("image", name) {
			t.Errorf("%.40s survived ClearCache", name)
		}
	}
	if !exists("image", otherProject) || !exists("image", theirImage) {
		t.Error("ClearCache removed another project's or another Kozmic's image")
	}
}
