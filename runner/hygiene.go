package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/store"
)

// Swept counts what a sweep removed from the Docker engine.
type Swept struct {
	Containers, Volumes, Images int
}

// Sweep sweeps every engine that answered its last ping (see sweep) and
// adds up what it removed; its error joins each engine's.
func (r *Runner) Sweep(ctx context.Context) (Swept, error) {
	var all Swept
	var errs []error
	for _, m := range r.pool.members {
		if m.down.Load() {
			continue
		}
		s, err := m.sweep(ctx)
		all.Containers, all.Volumes, all.Images = all.Containers+s.Containers, all.Volumes+s.Volumes, all.Images+s.Images
		if err != nil {
			errs = append(errs, fmt.Errorf("engine %s: %w", m.name(), err))
		}
	}
	return all, errors.Join(errs...)
}

// ClearCache removes every install cache image of a project from every
// engine that answered its last ping (see clearCache), and returns how many
// it removed; its error joins each engine's.
func (r *Runner) ClearCache(ctx context.Context, projectID int64) (int, error) {
	n := 0
	var errs []error
	for _, m := range r.pool.members {
		if m.down.Load() {
			errs = append(errs, fmt.Errorf("engine %s is not reachable", m.name()))
			continue
		}
		k, err := m.clearCache(ctx, projectID)
		n += k
		if err != nil {
			errs = append(errs, fmt.Errorf("engine %s: %w", m.name(), err))
		}
	}
	return n, errors.Join(errs...)
}

// sweep removes what this Kozmic (its instance label) left on the Docker
// engine and no longer needs: stopped containers that no running job owns,
// dangling volumes, the cache images of deleted projects, cache images
// made before cache scopes, and each project's cache images beyond the
// limits of its project scope and of its forks' scopes together
// (CachedImagesLimit each). Objects without this instance's label,
// another Kozmic's among them, are never touched. It goes on past single
// failures, which it logs, and returns the first error that stopped a
// whole step.
func (e *dockerEngine) sweep(ctx context.Context) (Swept, error) {
	var s Swept
	mine := LabelInstance + "=" + e.r.cfg.Instance
	stopped, err := e.docker.ListContainers(docker.ListContainersOptions{All: true, Context: ctx,
		Filters: map[string][]string{"label": {mine}, "status": {"created", "exited", "dead"}}})
	if err != nil {
		return s, fmt.Errorf("list stopped containers: %w", err)
	}
	for _, c := range stopped {
		// A job's install container stops before it is committed: leave it to its job.
		if id, err := strconv.ParseInt(c.Labels[LabelJob], 10, 64); err == nil && e.r.isActive(id) {
			continue
		}
		e.remove(c.ID)
		s.Containers++
	}
	vols, err := e.docker.ListVolumes(docker.ListVolumesOptions{Context: ctx,
		Filters: map[string][]string{"label": {mine}, "dangling": {"true"}}})
	if err != nil {
		return s, fmt.Errorf("list dangling volumes: %w", err)
	}
	for _, v := range vols {
		if err := e.docker.RemoveVolumeWithOptions(docker.RemoveVolumeOptions{Context: ctx, Name: v.Name}); err != nil {
			e.r.log.Warn("remove volume", "volume", v.Name, "err", err)
			continue
		}
		s.Volumes++
	}
	imgs, err := e.cacheImages(ctx, 0)
	if err != nil {
		return s, err
	}
	byProject := map[int64]map[cachePool][]docker.APIImages{}
	for _, img := range imgs {
		pid, _ := strconv.ParseInt(img.Labels[LabelProject], 10, 64)
		if byProject[pid] == nil {
			byProject[pid] = map[cachePool][]docker.APIImages{}
		}
		byProject[pid][imagePool(img)] = append(byProject[pid][imagePool(img)], img)
	}
	for pid, pools := range byProject {
		_, err := e.r.store.ProjectByID(ctx, pid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			removed, _ := e.clearCache(ctx, pid)
			s.Images += removed
		case err != nil:
			return s, fmt.Errorf("look up project %d: %w", pid, err)
		default:
			for pool, in := range pools {
				s.Images += e.prune(ctx, pid, in, e.r.poolLimit(pool), store.CacheUse{}, io.Discard)
			}
		}
	}
	return s, nil
}

// clearTries is how often ClearCache tries an image that a container holds:
// a finished job's container is removed off the worker's path, a moment
// after the job is recorded, and holds its image until then.
const clearTries = 20

// clearCache removes every install cache image of a project, of every
// scope (its own and its forks'), so that its next jobs run their install
// scripts again; it returns how many it removed. An image a container
// holds is tried again for a few seconds (clearTries), so that one of a
// job that just finished goes too; one a running job uses stays, and is
// counted as an error.
func (e *dockerEngine) clearCache(ctx context.Context, projectID int64) (int, error) {
	if e.docker == nil {
		return 0, errNoClient
	}
	imgs, err := e.cacheImages(ctx, projectID)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, img := range imgs {
		err := e.docker.RemoveImageExtended(img.ID, docker.RemoveImageOptions{Context: ctx})
		for try := 1; try < clearTries && isConflict(err) && ctx.Err() == nil; try++ {
			time.Sleep(250 * time.Millisecond)
			err = e.docker.RemoveImageExtended(img.ID, docker.RemoveImageOptions{Context: ctx})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", img.ID, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// cacheImages lists this instance's install cache images, of one project
// or (projectID 0) of all.
func (e *dockerEngine) cacheImages(ctx context.Context, projectID int64) ([]docker.APIImages, error) {
	labels := []string{LabelCache, LabelInstance + "=" + e.r.cfg.Instance}
	if projectID != 0 {
		labels = append(labels, LabelProject+"="+strconv.FormatInt(projectID, 10))
	}
	imgs, err := e.docker.ListImages(docker.ListImagesOptions{Context: ctx, Filters: map[string][]string{"label": labels}})
	if err != nil {
		return nil, fmt.Errorf("list cache images: %w", err)
	}
	return imgs, nil
}

// isActive reports whether the job is running in this process.
func (r *Runner) isActive(jobID int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.active[jobID]
	return ok
}

// sweepEvery runs Sweep now and then every interval until ctx ends,
// logging what it removed.
func (r *Runner) sweepEvery(ctx context.Context, interval time.Duration) {
	for {
		if s, err := r.Sweep(ctx); err != nil {
			r.log.Warn("disk hygiene", "err", err)
		} else if s != (Swept{}) {
			r.log.Info("disk hygiene removed leftovers", "containers", s.Containers, "volumes", s.Volumes, "images", s.Images)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// isConflict reports whether err is Docker's 409: the image is in use.
func isConflict(err error) bool {
	var de *docker.Error
	return errors.As(err, &de) && de.Status == http.StatusConflict
}
