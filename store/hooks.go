package store

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Hook is a job definition: every build of the project runs one job per hook.
type Hook struct {
	ID            int64
	ProjectID     int64
	Title         string // unique in the project; names the commit status context
	DockerImage   string
	InstallScript string   // optional; its result is cached as an image
	BuildScript   string   // any executable; its #! line picks the interpreter
	TrackedFiles  []string // repository paths whose change invalidates the install cache
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// HasShebang reports whether script begins with a #! line, which is what
// makes it runnable: Docker executes a script directly, and the kernel
// refuses one without it ("exec format error") instead of handing it to a shell.
func HasShebang(script string) bool { return strings.HasPrefix(script, "#!") }

// ScriptsWithoutShebang names the hook's scripts ("build", "install") that
// do not begin with a #! line; an empty install script is no script.
func (h Hook) ScriptsWithoutShebang() []string {
	var missing []string
	if !HasShebang(h.BuildScript) {
		missing = append(missing, "build")
	}
	if strings.TrimSpace(h.InstallScript) != "" && !HasShebang(h.InstallScript) {
		missing = append(missing, "install")
	}
	return missing
}

// normalize trims the fields and the tracked paths, drops empty and repeated
// paths (paths stay case-sensitive), and checks the required fields.
func (h *Hook) normalize() error {
	h.Title = strings.TrimSpace(h.Title)
	h.DockerImage = strings.TrimSpace(h.DockerImage)
	switch {
	case h.Title == "":
		return invalid("a hook needs a title")
	case h.DockerImage == "":
		return invalid("a hook needs a Docker image")
	case strings.TrimSpace(h.BuildScript) == "":
		return invalid("a hook needs a build script")
	}
	var paths []string
	for _, p := range h.TrackedFiles {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	h.TrackedFiles = paths
	return nil
}

// CreateHook adds a hook to h.ProjectID. A title already used in the project
// is ErrConflict; a missing project is ErrNotFound.
func (db *DB) CreateHook(ctx context.Context, h Hook) (Hook, error) {
	if err := h.normalize(); err != nil {
		return Hook{}, err
	}
	now := db.now().UTC().Truncate(time.Millisecond)
	err := db.writeTx(ctx, func(tx txn) error {
		if err := projectExists(ctx, tx, h.ProjectID); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `
			INSERT INTO hooks (project_id, title, docker_image, install_script, build_script, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			h.ProjectID, h.Title, h.DockerImage, h.InstallScript, h.BuildScript, now.UnixMilli(), now.UnixMilli()).Scan(&h.ID)
		if err != nil {
			return wrap("insert hook", err)
		}
		return insertTrackedFiles(ctx, tx, h.ID, h.TrackedFiles)
	})
	if err != nil {
		return Hook{}, err
	}
	h.CreatedAt, h.UpdatedAt = now, now
	return h, nil
}

// UpdateHook replaces the definition of hook h.ID, tracked files included.
func (db *DB) UpdateHook(ctx context.Context, h Hook) (Hook, error) {
	if err := h.normalize(); err != nil {
		return Hook{}, err
	}
	var out Hook
	err := db.writeTx(ctx, func(tx txn) error {
		err := execOne(ctx, tx, "update hook", `
			UPDATE hooks SET title = ?, docker_image = ?, install_script = ?, build_script = ?, updated_at = ?
			WHERE id = ?`, h.Title, h.DockerImage, h.InstallScript, h.BuildScript, db.nowMS(), h.ID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tracked_files WHERE hook_id = ?`, h.ID); err != nil {
			return wrap("replace tracked files", err)
		}
		if err := insertTrackedFiles(ctx, tx, h.ID, h.TrackedFiles); err != nil {
			return err
		}
		out, err = hookByID(ctx, tx, h.ID)
		return err
	})
	return out, err
}

func insertTrackedFiles(ctx context.Context, tx txn, hookID int64, paths []string) error {
	for _, p := range paths {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tracked_files (hook_id, path) VALUES (?, ?)`, hookID, p); err != nil {
			return wrap("insert tracked file", err)
		}
	}
	return nil
}

// DeleteHook deletes a hook. Its past hook calls and jobs stay, detached.
func (db *DB) DeleteHook(ctx context.Context, id int64) error {
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "delete hook", `DELETE FROM hooks WHERE id = ?`, id)
	})
}

// HookByID returns a hook with its tracked files, or ErrNotFound.
func (db *DB) HookByID(ctx context.Context, id int64) (Hook, error) {
	var h Hook
	err := db.readTx(ctx, func(tx txn) error {
		var err error
		h, err = hookByID(ctx, tx, id)
		return err
	})
	return h, err
}

// Hooks lists a project's hooks by title, with their tracked files.
func (db *DB) Hooks(ctx context.Context, projectID int64) ([]Hook, error) {
	var hooks []Hook
	err := db.readTx(ctx, func(tx txn) error {
		var err error
		hooks, err = projectHooks(ctx, tx, projectID)
		return err
	})
	return hooks, err
}

const hookColumns = `id, project_id, title, docker_image, install_script, build_script, created_at, updated_at`

func scanHook(row scanner) (Hook, error) {
	var h Hook
	err := row.Scan(&h.ID, &h.ProjectID, &h.Title, &h.DockerImage, &h.InstallScript, &h.BuildScript,
		msTime{&h.CreatedAt}, msTime{&h.UpdatedAt})
	return h, err
}

func hookByID(ctx context.Context, tx txn, id int64) (Hook, error) {
	h, err := scanHook(tx.QueryRowContext(ctx, `SELECT `+hookColumns+` FROM hooks WHERE id = ?`, id))
	if err != nil {
		return Hook{}, wrap("get hook", err)
	}
	h.TrackedFiles, err = trackedFiles(ctx, tx, id)
	return h, err
}

func projectHooks(ctx context.Context, tx txn, projectID int64) ([]Hook, error) {
	hooks, err := queryAll(ctx, tx, "list hooks", scanHook,
		`SELECT `+hookColumns+` FROM hooks WHERE project_id = ? ORDER BY title`, projectID)
	if err != nil {
		return nil, err
	}
	for i := range hooks {
		if hooks[i].TrackedFiles, err = trackedFiles(ctx, tx, hooks[i].ID); err != nil {
			return nil, err
		}
	}
	return hooks, nil
}

func trackedFiles(ctx context.Context, tx txn, hookID int64) ([]string, error) {
	return queryAll(ctx, tx, "list tracked files", scanValue[string],
		`SELECT path FROM tracked_files WHERE hook_id = ? ORDER BY path`, hookID)
}

func projectExists(ctx context.Context, tx txn, id int64) error {
	var one int
	return wrap("find project", tx.QueryRowContext(ctx, `SELECT 1 FROM projects WHERE id = ?`, id).Scan(&one))
}
