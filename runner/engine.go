package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/store"
)

// engineTimeout bounds everything Engine asks of the Docker engine
// together, so that a page showing it never waits longer on an engine that
// does not answer.
const engineTimeout = 3 * time.Second

// EngineInfo is a Docker engine as the admin page shows it: its state in
// the pool, what it says of itself, the containers of this Kozmic's jobs it
// runs, and this Kozmic's install cache images on it.
type EngineInfo struct {
	EngineState
	Version     string // the engine's version, such as 27.5.1
	APIVersion  string
	OS, Arch    string
	Containers  []Container // oldest first
	CacheImages []CacheImage
	// Err is why the engine could not be asked, such as "no answer within
	// 3s"; the fields above but EngineState are then empty.
	Err error
}

// Container is a running container of one of this Kozmic's jobs.
type Container struct {
	ID        string // the first 12 hex digits, as docker ps shows it
	JobID     int64  // 0: a container without a job's label
	ProjectID int64
	Created   time.Time
}

// CacheImage is one of this Kozmic's install cache images.
type CacheImage struct {
	ID        string // the image's ID, sha256:…
	ProjectID int64
	Use       store.CacheUse // its scope and cache id
	Size      int64          // bytes, its layers shared with its base image included
	Created   time.Time
}

// EngineInfos asks each engine, at once, for its version, the running
// containers carrying this instance's label (LabelInstance) and this
// instance's install cache images, each within engineTimeout. An engine
// that fails has the engine's or the connection's error in Err, or "no
// answer within 3s" when it did not answer in time; it never waits longer.
func (r *Runner) EngineInfos(ctx context.Context) []EngineInfo {
	states := r.Engines()
	out := make([]EngineInfo, len(states))
	var wg sync.WaitGroup
	for i, m := range r.pool.members {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, engineTimeout)
			defer cancel()
			out[i].EngineState = states[i]
			err := m.info(ctx, &out[i])
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %v", engineTimeout)
			}
			out[i].Err = err
		})
	}
	wg.Wait()
	return out
}

func (e *dockerEngine) info(ctx context.Context, info *EngineInfo) error {
	if e.docker == nil {
		return errNoClient
	}
	v, err := e.docker.VersionWithContext(ctx)
	if err != nil {
		return err
	}
	info.Version, info.APIVersion, info.OS, info.Arch = v.Get("Version"), v.Get("ApiVersion"), v.Get("Os"), v.Get("Arch")
	cs, err := e.docker.ListContainers(docker.ListContainersOptions{Context: ctx,
		Filters: map[string][]string{"label": {LabelInstance + "=" + e.r.cfg.Instance}, "status": {"running"}}})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for i := len(cs) - 1; i >= 0; i-- { // the engine lists the newest first
		c := cs[i]
		job, _ := strconv.ParseInt(c.Labels[LabelJob], 10, 64)
		project, _ := strconv.ParseInt(c.Labels[LabelProject], 10, 64)
		info.Containers = append(info.Containers, Container{ID: c.ID[:min(12, len(c.ID))], JobID: job, ProjectID: project,
			Created: time.Unix(c.Created, 0)})
	}
	imgs, err := e.cacheImages(ctx, 0)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		project, _ := strconv.ParseInt(img.Labels[LabelProject], 10, 64)
		info.CacheImages = append(info.CacheImages, CacheImage{ID: img.ID, ProjectID: project, Size: img.Size, Created: time.Unix(img.Created, 0),
			Use: store.CacheUse{Scope: store.CacheScope(img.Labels[LabelScope]), ID: img.Labels[LabelCache]}})
	}
	return nil
}
