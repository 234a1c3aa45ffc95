package runner

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	docker "github.com/fsouza/go-dockerclient"
)

const (
	scriptPath = "/kozmic/script"
	srcPath    = "/kozmic/src"
)

// createContainer makes a job container: the script as its entry point,
// run in /kozmic/src with a TTY so tools keep their colours, the limits from
// the configuration, /kozmic as a fresh labelled volume (so nothing written
// there is cached), and never privileges, the Docker socket or host paths.
func (r *Runner) createContainer(ctx context.Context, image, script string, env []string, labels map[string]string) (string, error) {
	hc := &docker.HostConfig{
		NetworkMode: r.cfg.Network,
		Memory:      r.cfg.Memory,
		NanoCPUs:    int64(r.cfg.CPUs * 1e9),
		PidsLimit:   &r.cfg.PidsLimit,
		Privileged:  false,
		// Output is read by attaching; a second copy in Docker's own log is waste.
		LogConfig: docker.LogConfig{Type: "none"},
		Mounts: []docker.HostMount{{Type: "volume", Target: "/kozmic",
			VolumeOptions: &docker.VolumeOptions{Labels: labels}}},
	}
	c, err := r.docker.CreateContainer(docker.CreateContainerOptions{
		Context: ctx,
		Config: &docker.Config{
			Image:      image,
			Entrypoint: []string{scriptPath},
			Cmd:        []string{},
			WorkingDir: srcPath,
			Env:        env,
			Labels:     labels,
			Tty:        true,
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
func (r *Runner) runContainer(ctx context.Context, id string, src source, script string, out io.Writer) (int, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeUpload(pw, src.dir(), script)) }()
	err := r.docker.UploadToContainer(id, docker.UploadToContainerOptions{InputStream: pr, Path: "/", Context: ctx})
	pr.Close()
	if err != nil {
		return 0, fmt.Errorf("Could not copy the source into the container: %v", err)
	}

	success := make(chan struct{})
	attached, err := r.docker.AttachToContainerNonBlocking(docker.AttachToContainerOptions{
		Container: id, OutputStream: out, ErrorStream: out, RawTerminal: true,
		Stream: true, Stdout: true, Stderr: true, Success: success,
	})
	if err != nil {
		return 0, fmt.Errorf("Could not attach to the container: %v", err)
	}
	<-success
	success <- struct{}{}
	defer attached.Close()

	if err := r.docker.StartContainerWithContext(id, nil, ctx); err != nil {
		return 0, fmt.Errorf("Could not start the script (does it begin with a #! line naming an interpreter in the image?): %v", err)
	}
	stopKill := context.AfterFunc(ctx, func() {
		r.docker.KillContainer(docker.KillContainerOptions{ID: id, Signal: docker.SIGKILL})
	})
	defer stopKill()
	// Waiting must outlive ctx: after a kill, the wait is how we know it is dead.
	code, err := r.docker.WaitContainerWithContext(id, context.WithoutCancel(ctx))
	if err != nil {
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

// cacheTag tags a project's cache images: with the instance, so that two
// Kozmic databases on one engine, each with its project 1, keep apart.
func (r *Runner) cacheTag(projectID int64) string {
	if r.cfg.Instance == "" {
		return strconv.FormatInt(projectID, 10)
	}
	return r.cfg.Instance + "-" + strconv.FormatInt(projectID, 10)
}

// cacheImage names the install cache image of cacheID for a project.
func (r *Runner) cacheImage(cacheID string, projectID int64) string {
	return CacheRepository + cacheID + ":" + r.cacheTag(projectID)
}

// commit saves a finished install container as the cache image.
func (r *Runner) commit(ctx context.Context, id, cacheID string, projectID int64) error {
	_, err := r.docker.CommitContainer(docker.CommitContainerOptions{
		Context:    ctx,
		Container:  id,
		Repository: CacheRepository + cacheID,
		Tag:        r.cacheTag(projectID),
		Run: &docker.Config{Labels: map[string]string{
			LabelCache: cacheID, LabelProject: strconv.FormatInt(projectID, 10), LabelInstance: r.cfg.Instance,
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
func (r *Runner) removeLater(id string) {
	r.cleanup.Go(func() { r.remove(id) })
}

// remove deletes a container with its volumes, whatever state it is in.
func (r *Runner) remove(id string) {
	err := r.docker.RemoveContainer(docker.RemoveContainerOptions{ID: id, Force: true, RemoveVolumes: true})
	var nsc *docker.NoSuchContainer
	if err != nil && !errors.As(err, &nsc) {
		r.log.Error("remove container", "container", id, "err", err)
	}
}

// pruneCache keeps a project's CachedImagesLimit most recently used cache
// images and removes the rest, returning how many. An image a container
// still uses stays.
func (r *Runner) pruneCache(ctx context.Context, projectID int64, out io.Writer) int {
	imgs, err := r.cacheImages(ctx, projectID)
	if err != nil || len(imgs) <= r.cfg.CachedImagesLimit {
		return 0
	}
	used := map[string]time.Time{} // `kozmic exec` has no store: image age decides
	if r.store != nil {
		if used, err = r.store.CacheLastUsed(ctx, projectID); err != nil {
			r.log.Error("read cache use", "project", projectID, "err", err)
			return 0
		}
	}
	lastUse := func(img docker.APIImages) time.Time {
		if t, ok := used[img.Labels[LabelCache]]; ok {
			return t
		}
		return time.Unix(img.Created, 0)
	}
	slices.SortFunc(imgs, func(a, b docker.APIImages) int { return lastUse(b).Compare(lastUse(a)) })
	n := 0
	for _, img := range imgs[r.cfg.CachedImagesLimit:] {
		name := r.cacheImage(img.Labels[LabelCache], projectID)
		if err := r.docker.RemoveImageExtended(name, docker.RemoveImageOptions{Context: ctx}); err != nil {
			r.log.Warn("remove cache image", "image", name, "err", err)
			continue
		}
		n++
		say(out, "Removed the install cache image %s, the least recently used", img.Labels[LabelCache][:12])
	}
	return n
}
