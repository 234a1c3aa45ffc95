package runner

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/store"
)

const (
	scriptPath = "/kozmic/script"
	srcPath    = "/kozmic/src"
)

// dockerEngine is a Docker engine jobs run on, reached over its API: the
// engine the runner's pool is made of.
type dockerEngine struct {
	r      *Runner
	label  string // its name
	docker *docker.Client
	// firstStart makes a container start wait for one that is running
	// until one has succeeded: the Docker client notes the engine's API
	// version at its first start, unguarded, so two first starts would race.
	firstStart sync.Mutex
	started    atomic.Bool
	// noShell holds the IDs of base images found to have no /bin/sh (see
	// hasShell).
	noShell sync.Map
	// pulls are the image pulls on this engine, one per reference (see pull).
	pullMu sync.Mutex
	pulls  map[string]*pullState
}

func newDockerEngine(r *Runner, name string, dc *docker.Client) *dockerEngine {
	return &dockerEngine{r: r, label: name, docker: dc, pulls: map[string]*pullState{}}
}

// errNoClient is the error of every call to an engine without a client,
// which a runner that is never started may have.
var errNoClient = errors.New("no Docker engine")

func (e *dockerEngine) name() string { return e.label }

func (e *dockerEngine) endpoint() string {
	if e.docker == nil {
		return ""
	}
	return e.docker.Endpoint()
}

// ping asks the engine whether it answers within pingTimeout.
func (e *dockerEngine) ping(ctx context.Context) error {
	if e.docker == nil {
		return errNoClient
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return e.docker.PingWithContext(ctx)
}

// recover removes this instance's job containers on the engine, with
// their volumes, but those of the jobs keep says run.
func (e *dockerEngine) recover(ctx context.Context, keep func(jobID int64) bool) error {
	labels := []string{LabelJob}
	if e.r.cfg.Instance != "" {
		labels = append(labels, LabelInstance+"="+e.r.cfg.Instance)
	}
	left, err := e.docker.ListContainers(docker.ListContainersOptions{All: true, Context: ctx,
		Filters: map[string][]string{"label": labels}})
	if err != nil {
		return fmt.Errorf("list leftover containers: %w", err)
	}
	for _, c := range left {
		if id, err := strconv.ParseInt(c.Labels[LabelJob], 10, 64); err == nil && keep(id) {
			continue
		}
		e.r.log.Info("removing a container left by an earlier run", "engine", e.label, "container", c.ID[:12], "job", c.Labels[LabelJob])
		e.remove(c.ID)
	}
	return nil
}

// holds says whether the engine has the base image of s and, made of it,
// the install cache image of s's install script and tracked files.
func (e *dockerEngine) holds(ctx context.Context, s spec, ids map[string]string) bool {
	if strings.TrimSpace(s.install) == "" {
		return false
	}
	base, err := e.docker.InspectImage(s.image)
	if err != nil {
		return false
	}
	_, err = e.docker.InspectImage(e.r.cacheImage(cacheID(base.ID, s.install, ids), s.projectID, s.scope))
	return err == nil
}

// outputEnv asks tools for colours without a TTY: the TERM a TTY would
// have set, and the variables colour libraries honour when output is not a
// terminal. A hook's own env comes after it and wins.
var outputEnv = []string{"TERM=xterm", "FORCE_COLOR=1", "CLICOLOR_FORCE=1"}

// mergedEntrypoint runs the script with its stderr on its stdout. Without a
// TTY, Docker reads the two through separate pipes and goroutines, which
// may reorder lines written close together; one pipe keeps their order.
var mergedEntrypoint = []string{"/bin/sh", "-c", "exec " + scriptPath + " 2>&1"}

// createContainer makes a job container: the script as its entry point,
// with its stderr merged into its stdout by the image's /bin/sh, run in
// /kozmic/src without a TTY (a TTY makes Docker two to three times slower: colours
// are asked for through outputEnv instead), the limits from the
// configuration, /kozmic as a fresh labelled volume (so nothing written
// there is cached), and never privileges, the Docker socket or host paths.
// A script without a #! line is its own entry point, unmerged: the shell
// would run it as a shell script, where it must fail to start, as it does
// on the command line, so that runStep can explain the #! line. So is a
// script in an image without /bin/sh (shell false; see runScript).
func (e *dockerEngine) createContainer(ctx context.Context, image, script string, env []string, labels map[string]string, shell bool) (string, error) {
	entrypoint := mergedEntrypoint
	if !shell || !store.HasShebang(script) {
		entrypoint = []string{scriptPath}
	}
	hc := &docker.HostConfig{
		NetworkMode: e.r.cfg.Network,
		Memory:      e.r.cfg.Memory,
		NanoCPUs:    int64(e.r.cfg.CPUs * 1e9),
		PidsLimit:   &e.r.cfg.PidsLimit,
		Privileged:  false,
		// Output is read by attaching; a second copy in Docker's own log is waste.
		LogConfig: docker.LogConfig{Type: "none"},
		Mounts: []docker.HostMount{{Type: "volume", Target: "/kozmic",
			VolumeOptions: &docker.VolumeOptions{Labels: labels}}},
	}
	c, err := e.docker.CreateContainer(docker.CreateContainerOptions{
		Context: ctx,
		Config: &docker.Config{
			Image:      image,
			Entrypoint: entrypoint,
			Cmd:        []string{},
			WorkingDir: srcPath,
			Env:        append(slices.Clip(outputEnv), env...),
			Labels:     labels,
		},
		HostConfig: hc,
	})
	if err != nil {
		return "", fmt.Errorf("Could not create the container: %v", err)
	}
	return c.ID, nil
}

// runContainer uploads the source and the script, starts the container,
// copies its output to out until it exits, and returns its exit code. When
// ctx ends first, the container is killed.
func (e *dockerEngine) runContainer(ctx context.Context, id string, src source, script string, out io.Writer) (int, error) {
	attached, err := e.startContainer(ctx, id, src, script, out)
	if err != nil {
		return 0, err
	}
	defer attached.Close()
	return e.waitContainer(ctx, id, attached)
}

// startContainer uploads the source and the script, attaches to the
// container's stdout and stderr, copying them to out, and starts it. The
// caller closes the attachment.
func (e *dockerEngine) startContainer(ctx context.Context, id string, src source, script string, out io.Writer) (docker.CloseWaiter, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeUpload(pw, src.dir(), script)) }()
	err := e.docker.UploadToContainer(id, docker.UploadToContainerOptions{InputStream: pr, Path: "/", Context: ctx})
	pr.Close()
	if err != nil {
		return nil, fmt.Errorf("Could not copy the source into the container: %v", err)
	}

	success := make(chan struct{})
	attached, err := e.docker.AttachToContainerNonBlocking(docker.AttachToContainerOptions{
		Container: id, OutputStream: out, ErrorStream: out,
		Stream: true, Stdout: true, Stderr: true, Success: success,
	})
	if err != nil {
		return nil, fmt.Errorf("Could not attach to the container: %v", err)
	}
	<-success
	success <- struct{}{}

	if err := e.start(ctx, id); err != nil {
		attached.Close()
		// The runtime's words, as runc and crun put them.
		if msg := err.Error(); strings.Contains(msg, `"/bin/sh"`) && (strings.Contains(msg, "no such file") || strings.Contains(msg, "not found")) {
			return nil, fmt.Errorf("%w: %v", errNoShell, err)
		}
		return nil, fmt.Errorf("Could not start the script (does it begin with a #! line naming an interpreter in the image?): %v", err)
	}
	return attached, nil
}

// start starts a created container; see Runner.firstStart.
func (e *dockerEngine) start(ctx context.Context, id string) error {
	if !e.started.Load() {
		e.firstStart.Lock()
		defer e.firstStart.Unlock()
	}
	err := e.docker.StartContainerWithContext(id, nil, ctx)
	if err == nil {
		e.started.Store(true)
	}
	return err
}

// killTimeout bounds the kill of a job's container, removeTimeout its
// removal.
const (
	killTimeout   = 10 * time.Second
	removeTimeout = time.Minute
)

// waitContainer waits for a started container to exit and for the rest of
// its output, and returns its exit code. When ctx ends first, the container
// is killed; when it ended because the engine stopped answering
// (engineLost), the wait is given up at once, as neither the kill nor the
// container's end may ever be heard of.
func (e *dockerEngine) waitContainer(ctx context.Context, id string, attached docker.CloseWaiter) (int, error) {
	// Waiting must outlive ctx: after a kill, the wait is how we know it is dead.
	waitCtx, giveUp := context.WithCancel(context.WithoutCancel(ctx))
	defer giveUp()
	stopKill := context.AfterFunc(ctx, func() {
		if _, lost := lostEngine(context.Cause(ctx)); lost {
			giveUp()
		}
		// Bounded: an engine that went silent would hold the call for ever.
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		defer cancel()
		e.docker.KillContainer(docker.KillContainerOptions{ID: id, Signal: docker.SIGKILL, Context: kctx})
	})
	defer stopKill()
	code, err := e.docker.WaitContainerWithContext(id, waitCtx)
	if err != nil {
		if waitCtx.Err() != nil {
			return 0, context.Cause(ctx)
		}
		return 0, fmt.Errorf("Lost the container while waiting for it: %v", err)
	}
	attached.Wait() // the rest of the output
	return code, nil
}

// writeUpload writes the tar the container gets at /: the source tree under
// kozmic/src and the script, executable, at kozmic/script.
func writeUpload(w io.Writer, dir, script string) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	for _, d := range []string{"kozmic/", "kozmic/src/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "kozmic/script", Mode: 0o755, Size: int64(len(script)), ModTime: now}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, script); err != nil {
		return err
	}
	if dir != "" {
		if err := addTree(tw, dir, "kozmic/src/"); err != nil {
			return err
		}
	}
	return tw.Close()
}

// addTree adds the files, directories and symbolic links below root to tw
// under prefix, keeping their modes.
func addTree(tw *tar.Writer, root, prefix string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return nil // sockets, devices and pipes have no place in a build
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = prefix + filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = "", "", 0, 0
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
}

// cacheTag tags a project's cache images of one scope: with the instance,
// so that two Kozmic databases on one engine, each with its project 1, keep
// apart, and with the scope, so that a scope never finds another's images.
// A fork's scope goes in as a hash: a tag has no room for its '/' and at
// most 128 characters.
func (r *Runner) cacheTag(projectID int64, scope store.CacheScope) string {
	tag := strconv.FormatInt(projectID, 10)
	if r.cfg.Instance != "" {
		tag = r.cfg.Instance + "-" + tag
	}
	if _, fork := scope.Fork(); fork {
		sum := sha256.Sum256([]byte(scope))
		return tag + "-fork-" + hex.EncodeToString(sum[:16])
	}
	return tag + "-project"
}

// cacheImage names the install cache image of cacheID for a project's scope.
func (r *Runner) cacheImage(cacheID string, projectID int64, scope store.CacheScope) string {
	return CacheRepository + cacheID + ":" + r.cacheTag(projectID, scope)
}

// commit saves a finished install container as the cache image of a
// project's scope.
func (e *dockerEngine) commit(ctx context.Context, id, cacheID string, projectID int64, scope store.CacheScope) error {
	_, err := e.docker.CommitContainer(docker.CommitContainerOptions{
		Context:    ctx,
		Container:  id,
		Repository: CacheRepository + cacheID,
		Tag:        e.r.cacheTag(projectID, scope),
		Run: &docker.Config{Labels: map[string]string{
			LabelCache: cacheID, LabelProject: strconv.FormatInt(projectID, 10), LabelInstance: e.r.cfg.Instance,
			LabelScope: string(scope),
		}},
	})
	if err != nil {
		return fmt.Errorf("Could not save the install step as an image: %v", err)
	}
	return nil
}

// removeLater removes a finished container as part of the job's cleanup, so
// that the job's result does not wait for it. Shutdown and Exec wait for the
// cleanup; a removal cut short by a crash is done by the next start's recovery.
func (e *dockerEngine) removeLater(id string) {
	e.r.cleanup.Go(func() { e.remove(id) })
}

// remove deletes a container with its volumes, whatever state it is in.
func (e *dockerEngine) remove(id string) {
	// Bounded: Shutdown waits for removals, and an engine that went silent
	// would hold one for ever. The next recovery removes what is left.
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	err := e.docker.RemoveContainer(docker.RemoveContainerOptions{ID: id, Force: true, RemoveVolumes: true, Context: ctx})
	var nsc *docker.NoSuchContainer
	// A conflict is a removal already under way: the job's own, say, held
	// up by an engine that went silent, and the recovery's once it answers.
	if err != nil && !errors.As(err, &nsc) && !isConflict(err) {
		e.r.log.Error("remove container", "container", id, "err", err)
	}
}

// cachePool is the limit a cache image counts against. A project keeps
// CachedImagesLimit images for its trusted builds and as many again shared
// by all its forks, so that builds from forks can never evict a trusted
// build's image, and disk use stays bounded however many forks there are.
type cachePool int

const (
	poolProject  cachePool = iota // the project scope
	poolForks                     // every fork scope of the project
	poolUnscoped                  // made before scopes: never read, always removed
)

func scopePool(scope store.CacheScope) cachePool {
	if _, fork := scope.Fork(); fork {
		return poolForks
	}
	return poolProject
}

func imagePool(img docker.APIImages) cachePool {
	scope, ok := img.Labels[LabelScope]
	if !ok {
		return poolUnscoped
	}
	return scopePool(store.CacheScope(scope))
}

// poolLimit is how many images a pool keeps.
func (r *Runner) poolLimit(p cachePool) int {
	if p == poolUnscoped {
		return 0
	}
	return r.cfg.CachedImagesLimit
}

// pruneCache keeps the most recently used images of the pool of a project's
// scope within its limit and removes the rest, returning how many, and
// says so in out. The image of cacheID in scope, which the job has just
// made and is about to use, counts as the most recent. An image a
// container still uses stays.
func (e *dockerEngine) pruneCache(ctx context.Context, projectID int64, scope store.CacheScope, cacheID string, out io.Writer) int {
	imgs, err := e.cacheImages(ctx, projectID)
	if err != nil {
		e.r.log.Warn("list cache images", "project", projectID, "err", err)
		return 0
	}
	pool := scopePool(scope)
	imgs = slices.DeleteFunc(imgs, func(img docker.APIImages) bool { return imagePool(img) != pool })
	return e.prune(ctx, projectID, imgs, e.r.poolLimit(pool), store.CacheUse{Scope: scope, ID: cacheID}, out)
}

// prune keeps the keep most recently used of imgs, cache images of one
// pool of a project, and removes the rest, returning how many. The image of
// fresh, if there is one, counts as just used.
func (e *dockerEngine) prune(ctx context.Context, projectID int64, imgs []docker.APIImages, keep int, fresh store.CacheUse, out io.Writer) int {
	if len(imgs) <= keep {
		return 0
	}
	used := map[store.CacheUse]time.Time{} // `kozmic exec` has no store: image age decides
	if e.r.store != nil {
		var err error
		if used, err = e.r.store.CacheLastUsed(ctx, projectID); err != nil {
			e.r.log.Error("read cache use", "project", projectID, "err", err)
			return 0
		}
	}
	now := time.Now()
	lastUse := func(img docker.APIImages) time.Time {
		use := store.CacheUse{Scope: store.CacheScope(img.Labels[LabelScope]), ID: img.Labels[LabelCache]}
		if use == fresh {
			// Its job records the use only when it ends: the records are
			// of an earlier image of the same id, evicted since.
			return now
		}
		if t, ok := used[use]; ok {
			return t
		}
		return time.Unix(img.Created, 0)
	}
	slices.SortFunc(imgs, func(a, b docker.APIImages) int { return lastUse(b).Compare(lastUse(a)) })
	n := 0
	for _, img := range imgs[keep:] {
		// By ID: an unscoped image's tag is not one cacheTag makes any more.
		if err := e.docker.RemoveImageExtended(img.ID, docker.RemoveImageOptions{Context: ctx}); err != nil {
			e.r.log.Warn("remove cache image", "image", img.ID, "err", err)
			continue
		}
		n++
		say(out, "Removed the install cache image %.12s, the least recently used", img.Labels[LabelCache])
	}
	return n
}
