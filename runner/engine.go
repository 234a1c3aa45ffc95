package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/store"
)

// engineTimeout bounds everything Engine asks of the Docker engine
// together, so that a page showing it never waits longer on an engine that
// does not answer.
const engineTimeout = 3 * time.Second

// Engine is the Docker engine as the admin page shows it: what it says of
// itself, the containers of this Kozmic's jobs it runs, and this Kozmic's
// install cache images on it.
type Engine struct {
	Endpoint    string // the address the runner reaches it at
	Version     string // the engine's version, such as 27.5.1
	APIVersion  string
	OS, Arch    string
	Containers  []Container // oldest first
	CacheImages []CacheImage
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

// Engine asks the Docker engine for its version, the running containers
// carrying this instance's label (LabelInstance) and this instance's
// install cache images, all within engineTimeout. It fails with the
// engine's or the connection's error, and with "no answer within 3s" when
// the engine does not answer in time; it never waits longer.
func (r *Runner) Engine(ctx context.Context) (Engine, error) {
	e := Engine{}
	if r.docker == nil {
		return e, errors.New("no Docker engine")
	}
	e.Endpoint = r.docker.Endpoint()
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	err := r.engine(ctx, &e)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return e, fmt.Errorf("no answer within %v", engineTimeout)
	}
	return e, err
}

func (r *Runner) engine(ctx context.Context, e *Engine) error {
	v, err := r.docker.VersionWithContext(ctx)
	if err != nil {
		return err
	}
	e.Version, e.APIVersion, e.OS, e.Arch = v.Get("Version"), v.Get("ApiVersion"), v.Get("Os"), v.Get("Arch")
	cs, err := r.docker.ListContainers(docker.ListContainersOptions{Context: ctx,
		Filters: map[string][]string{"label": {LabelInstance + "=" + r.cfg.Instance}, "status": {"running"}}})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for i := len(cs) - 1; i >= 0; i-- { // the engine lists the newest first
		c := cs[i]
		job, _ := strconv.ParseInt(c.Labels[LabelJob], 10, 64)
		project, _ := strconv.ParseInt(c.Labels[LabelProject], 10, 64)
		e.Containers = append(e.Containers, Container{ID: c.ID[:min(12, len(c.ID))], JobID: job, ProjectID: project,
			Created: time.Unix(c.Created, 0)})
	}
	imgs, err := r.cacheImages(ctx, 0)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		project, _ := strconv.ParseInt(img.Labels[LabelProject], 10, 64)
		e.CacheImages = append(e.CacheImages, CacheImage{ID: img.ID, ProjectID: project, Size: img.Size, Created: time.Unix(img.Created, 0),
			Use: store.CacheUse{Scope: store.CacheScope(img.Labels[LabelScope]), ID: img.Labels[LabelCache]}})
	}
	return nil
}
