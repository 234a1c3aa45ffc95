package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrNoHooks means a build was asked for a project that has no hooks, so
	// it would have no jobs.
	ErrNoHooks = errors.New("the project has no hooks")
	// ErrSeenDelivery means a webhook delivery was handled before; it is
	// also an ErrConflict.
	ErrSeenDelivery = fmt.Errorf("%w: webhook delivery seen before", ErrConflict)
)

// Build is one commit of one ref of a project; its jobs are the project's
// hooks run on that commit.
type Build struct {
	ID        int64
	ProjectID int64
	Number    int // 1, 2, … within the project
	Ref       string
	SHA       string
	Author    string // the commit's author; empty until known (see SetBuildCommit)
	Message   string // the commit's message, its subject for a build run by hand, or a pull request's title
	Trigger   Trigger
	// RerunUser is the login of who last restarted or re-ran its jobs,
	// empty if nobody did; RerunUserID is that user, 0 once deleted.
	RerunUser   string
	RerunUserID int64
	FromFork    bool   // an untrusted pull request (see NewBuild.FromFork): no project secrets
	ForkRepo    string // the fork's full name (owner/name), for people; empty for others and an unknown fork
	ForkRepoID  int64  // the fork repository's id, which names its install cache scope; 0 for others and an unknown fork
	Status      BuildStatus
	CreatedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
}

// TriggerKind is how a build was started.
type TriggerKind string

const (
	TriggerPush        TriggerKind = "push"
	TriggerPullRequest TriggerKind = "pull_request"
	TriggerManual      TriggerKind = "manual" // Run build
)

// Trigger is how a build was started and by whom.
type Trigger struct {
	Kind TriggerKind
	PR   int // with TriggerPullRequest: the pull request's number
	// User is who started it: the Kozmic user's login, or the pusher or
	// pull request sender a webhook names (at most MaxTriggerUser bytes); it
	// may be empty.
	User string
	// UserID is the Kozmic user who started it by hand; 0 for a webhook's
	// and once the user is deleted.
	UserID int64
}

// MaxTriggerUser bounds Trigger.User.
const MaxTriggerUser = 256

// Branch is the ref without its refs/heads/ or refs/tags/ prefix.
func (b Build) Branch() string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if s, ok := strings.CutPrefix(b.Ref, p); ok {
			return s
		}
	}
	return b.Ref
}

// ShortSHA is the commit's first 8 hex digits, as shown on pages and in mail.
func (b Build) ShortSHA() string {
	if len(b.SHA) > 8 {
		return b.SHA[:8]
	}
	return b.SHA
}

// CacheScope is the install cache scope of the build's jobs: the project's
// for a trusted build; for an untrusted one, that of its fork repository's
// id (ForkCacheScope), or, when that is unknown or the pull request comes
// from the project's own repository (a Gitea or Forgejo pull request), one
// of the build's ref alone. Trusted builds never read or write a fork's
// scope.
func (b Build) CacheScope() CacheScope {
	switch {
	case !b.FromFork:
		return CacheScopeProject
	case b.ForkRepoID != 0:
		return ForkCacheScope(b.ForkRepoID)
	default:
		return CacheScope(forkRefScope + b.Ref)
	}
}

// ScopeName names the install cache scope s of one of b's jobs for people:
// the scope of b's fork repository by the fork's full name ("repository
// <id>" when the name is unknown), other fork scopes by what they hold
// (see CacheScope.Fork). ok is false when s is no fork's scope.
func (b Build) ScopeName(s CacheScope) (name string, ok bool) {
	name, ok = s.Fork()
	switch {
	case !ok || b.ForkRepoID == 0 || s != ForkCacheScope(b.ForkRepoID):
		return name, ok
	case b.ForkRepo != "":
		return b.ForkRepo, true
	default:
		return "repository " + name, true
	}
}

// NewBuild is what CreateBuild needs.
type NewBuild struct {
	ProjectID int64
	Ref       string
	SHA       string
	Author    string
	Message   string
	// Trigger is how it was started; an empty Kind is TriggerPush.
	Trigger Trigger
	// FromFork is a pull request Kozmic does not trust: from another
	// repository, from Gitea or Forgejo, or whose repositories are not known.
	FromFork bool
	ForkRepo string // with FromFork: the fork's full name (ValidFullName, at most MaxForkRepo bytes), or empty
	// ForkRepoID is, with FromFork, the id of the fork's repository, or 0
	// when it is unknown or the project's own.
	ForkRepoID int64
	// DeliveryID, when set, is the webhook delivery that asked for the build,
	// recorded in the same transaction; Event is its event name.
	DeliveryID string
	Event      string
}

// MaxForkRepo bounds NewBuild.ForkRepo.
const MaxForkRepo = 256

const buildColumns = `id, project_id, number, ref, sha, author, message,
	trigger_kind, trigger_pr, COALESCE(trigger_user_id, 0), trigger_user, COALESCE(rerun_user_id, 0), rerun_user,
	from_fork, fork_repo, fork_repo_id, status, created_at, started_at, finished_at`

// buildFields are where the columns of buildColumns scan to.
func buildFields(b *Build) []any {
	return []any{&b.ID, &b.ProjectID, &b.Number, &b.Ref, &b.SHA, &b.Author, &b.Message,
		&b.Trigger.Kind, &b.Trigger.PR, &b.Trigger.UserID, &b.Trigger.User, &b.RerunUserID, &b.RerunUser, &b.FromFork,
		&b.ForkRepo, &b.ForkRepoID, &b.Status, msTime{&b.CreatedAt}, msTime{&b.StartedAt}, msTime{&b.FinishedAt}}
}

func scanBuild(row scanner) (Build, error) {
	var b Build
	err := row.Scan(buildFields(&b)...)
	return b, err
}

// CreateBuild creates, in one transaction, a build for (project, ref, SHA)
// with the next build number, one hook call per hook of the project and one
// enqueued job per hook call, and returns the build and its jobs.
//
// If the project already has a build for that ref and SHA, that build is
// returned with no jobs. A delivery recorded before is ErrSeenDelivery and
// writes nothing; a project without hooks is ErrNoHooks; a missing project
// is ErrNotFound; a build without ref or commit, a ForkRepo that is not a
// fork's full name, or a fork repository on a build not FromFork or with a
// negative id, or a trigger whose kind is unknown, whose pull request
// number is missing or out of place, or whose user is over MaxTriggerUser
// bytes, is ErrInvalid.
//
// Concurrent calls share one transaction (see buildBatcher); one that
// fails writes nothing and leaves the others' builds in place. A call
// returns once its build is committed or has failed; one whose context
// ends before its turn writes nothing.
func (db *DB) CreateBuild(ctx context.Context, nb NewBuild) (Build, []Job, error) {
	if err := nb.check(); err != nil {
		return Build{}, nil, err
	}
	run, err := db.builds.create(ctx, db, nb)
	if err != nil {
		return Build{}, nil, err
	}
	return run.Build, run.Jobs, nil
}

// BuildRun is what RunBuild did.
type BuildRun struct {
	Build Build
	// Existed says the commit was built before: Build is that build.
	Existed bool
	// Jobs are the jobs enqueued: every job of a new build; in a build from
	// before, first the first attempts of hooks it had no job of, then the
	// new attempts of edited hooks.
	Jobs []Job
	// Added is how many of Jobs, in a build from before, are for new hooks.
	Added int
	// EditedLeft counts the hooks edited since their latest attempt in a
	// build from before started that got no new attempt: one was not asked
	// for, or that attempt is still running.
	EditedLeft int
}

// RunBuild is CreateBuild for a build a person asks for (Run build): when
// the project already has a build for that ref and SHA, the same
// transaction adds to that build a hook call and an enqueued job for each
// hook of the project it has no hook call of, and, with rerunEdited, a new
// attempt of each hook edited since its latest attempt there started, once
// that attempt has finished; then the build's status is derived again.
// Jobs added to a build from a fork run without secrets as its others do.
// The errors are CreateBuild's, except that a commit built before is no
// ErrNoHooks when the project has no hooks left.
func (db *DB) RunBuild(ctx context.Context, nb NewBuild, rerunEdited bool) (BuildRun, error) {
	if err := nb.check(); err != nil {
		return BuildRun{}, err
	}
	var run BuildRun
	err := db.writeTx(ctx, func(tx txn) error {
		_, err := db.insertBuild(ctx, tx, nb, func(tx txn, run *BuildRun) error {
			return db.addHookJobs(ctx, tx, run, rerunEdited)
		}, &run)
		return err
	})
	if err != nil {
		return BuildRun{}, err
	}
	return run, nil
}

// check gives nb's trigger its default kind and refuses, as ErrInvalid,
// what CreateBuild refuses before it writes.
func (nb *NewBuild) check() error {
	if nb.Trigger.Kind == "" {
		nb.Trigger.Kind = TriggerPush
	}
	switch {
	case nb.Trigger.Kind != TriggerPush && nb.Trigger.Kind != TriggerPullRequest && nb.Trigger.Kind != TriggerManual:
		return invalid(fmt.Sprintf("%q is not a way to start a build", nb.Trigger.Kind))
	case (nb.Trigger.Kind == TriggerPullRequest) != (nb.Trigger.PR > 0) || nb.Trigger.PR < 0:
		return invalid("a pull request's build, and only that, has the pull request's number")
	case len(nb.Trigger.User) > MaxTriggerUser:
		return invalid(fmt.Sprintf("who started the build is named in at most %d bytes", MaxTriggerUser))
	case nb.Ref == "" || nb.SHA == "":
		return invalid("a build needs a ref and a commit")
	case (nb.ForkRepo != "" || nb.ForkRepoID != 0) && !nb.FromFork:
		return invalid("only a build from a fork has a fork repository")
	case nb.ForkRepo != "" && (!ValidFullName(nb.ForkRepo) || len(nb.ForkRepo) > MaxForkRepo):
		return invalid(fmt.Sprintf(`the fork repository's name must look like "owner/name", in at most %d bytes`, MaxForkRepo))
	case nb.ForkRepoID < 0:
		return invalid("the fork repository's id cannot be negative")
	}
	return nil
}

// insertBuild does CreateBuild's work for nb, checked, in tx, and tells
// what it did in run; when the build exists, again, if set, runs on it in
// the same transaction. Every refusal (a delivery seen before, a missing
// project, one without hooks) comes before the first write: wrote says
// whether a failure may have left changes in tx, for the caller to roll
// back.
func (db *DB) insertBuild(ctx context.Context, tx txn, nb NewBuild, again func(txn, *BuildRun) error, run *BuildRun) (wrote bool, err error) {
	if nb.DeliveryID != "" {
		var seen bool
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE delivery_id = ?)`, nb.DeliveryID).Scan(&seen)
		if err != nil {
			return false, wrap("find delivery", err)
		}
		if seen {
			if err := projectExists(ctx, tx, nb.ProjectID); err != nil {
				return false, err
			}
			return false, ErrSeenDelivery
		}
	}
	b, err := scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE project_id = ? AND ref = ? AND sha = ?`, nb.ProjectID, nb.Ref, nb.SHA))
	if err == nil {
		run.Build, run.Existed = b, true
		if err := db.recordDelivery(ctx, tx, nb); err != nil {
			return true, err
		}
		if again != nil {
			return true, again(tx, run)
		}
		return true, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return false, wrap("find build", err)
	}

	now := db.nowMS()
	// Only a project with hooks gets a number: a build that would have no
	// jobs is refused before anything is written.
	err = tx.QueryRowContext(ctx, `UPDATE projects SET last_build_number = last_build_number + 1
		WHERE id = ?1 AND EXISTS (SELECT 1 FROM hooks WHERE project_id = ?1) RETURNING last_build_number`, nb.ProjectID).Scan(&b.Number)
	if errors.Is(err, sql.ErrNoRows) {
		if err := projectExists(ctx, tx, nb.ProjectID); err != nil {
			return false, err
		}
		return false, ErrNoHooks
	} else if err != nil {
		return false, wrap("allocate build number", err)
	}
	if err := db.recordDelivery(ctx, tx, nb); err != nil {
		return true, err
	}
	b, err = scanBuild(tx.QueryRowContext(ctx, `
		INSERT INTO builds (project_id, number, ref, sha, author, message, trigger_kind, trigger_pr, trigger_user_id, trigger_user,
			from_fork, fork_repo, fork_repo_id, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0), ?, ?, ?, ?, 'enqueued', ?) RETURNING `+buildColumns,
		nb.ProjectID, b.Number, nb.Ref, nb.SHA, nb.Author, nb.Message, nb.Trigger.Kind, nb.Trigger.PR, nb.Trigger.UserID, nb.Trigger.User,
		nb.FromFork, nb.ForkRepo, nb.ForkRepoID, now))
	if err != nil {
		return true, wrap("insert build", err)
	}
	run.Build = b
	// Set-based inserts keep the statement count fixed however many hooks there are.
	_, err = tx.ExecContext(ctx, `INSERT INTO hook_calls (hook_id, build_id, hook_title, created_at)
		SELECT id, ?, title, ? FROM hooks WHERE project_id = ? ORDER BY title`, b.ID, now, nb.ProjectID)
	if err != nil {
		return true, wrap("insert hook calls", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO jobs (build_id, hook_call_id, attempt, status, created_at)
		SELECT build_id, id, 1, 'enqueued', created_at FROM hook_calls WHERE build_id = ? ORDER BY id`, b.ID)
	if err != nil {
		return true, wrap("insert jobs", err)
	}
	run.Jobs, err = queryJobs(ctx, tx, `WHERE j.build_id = ? ORDER BY hc.hook_title, j.hook_call_id, j.attempt`, b.ID)
	return true, err
}

// recordDelivery records nb's webhook delivery, if it has one, for a
// project that exists.
func (db *DB) recordDelivery(ctx context.Context, tx txn, nb NewBuild) error {
	if nb.DeliveryID == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (delivery_id, project_id, event, received_at)
		VALUES (?, ?, ?, ?)`, nb.DeliveryID, nb.ProjectID, nb.Event, db.nowMS())
	return wrap("record delivery", err)
}

// addHookJobs adds to run's build, from before, a hook call and a first
// attempt for each hook of the project it has no hook call of, and, with
// rerunEdited, a new attempt of each hook edited since its latest attempt
// started, when that attempt has finished; then it recomputes the build.
func (db *DB) addHookJobs(ctx context.Context, tx txn, run *BuildRun, rerunEdited bool) error {
	b := run.Build
	var last int64 // jobs are numbered in the order they are made: the new ones come after it
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM jobs`).Scan(&last); err != nil {
		return wrap("find last job", err)
	}
	// An enqueued attempt runs the hook as it is when claimed, so only one
	// that started before the edit ran the old definition.
	type edited struct {
		hookCallID int64
		attempt    int
		status     JobStatus
	}
	eds, err := queryAll(ctx, tx, "find edited hooks", func(row scanner) (edited, error) {
		var e edited
		return e, row.Scan(&e.hookCallID, &e.attempt, &e.status)
	}, `SELECT hc.id, j.attempt, j.status FROM hook_calls hc
			JOIN hooks h ON h.id = hc.hook_id
			JOIN jobs j ON j.hook_call_id = hc.id
		WHERE hc.build_id = ? AND j.status <> 'enqueued'
			AND j.attempt = (SELECT MAX(attempt) FROM jobs WHERE hook_call_id = hc.id)
			AND h.updated_at > COALESCE(j.started_at, j.created_at)
		ORDER BY h.title`, b.ID)
	if err != nil {
		return err
	}
	now := db.nowMS()
	res, err := tx.ExecContext(ctx, `INSERT INTO hook_calls (hook_id, build_id, hook_title, created_at)
		SELECT h.id, ?1, h.title, ?2
		FROM hooks h WHERE h.project_id = ?3 AND NOT EXISTS (SELECT 1 FROM hook_calls WHERE build_id = ?1 AND hook_id = h.id)
		ORDER BY h.title`, b.ID, now, b.ProjectID)
	if err != nil {
		return wrap("insert hook calls", err)
	}
	added, err := res.RowsAffected()
	if err != nil {
		return wrap("insert hook calls", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO jobs (build_id, hook_call_id, attempt, status, created_at)
		SELECT build_id, id, 1, 'enqueued', created_at FROM hook_calls hc
		WHERE build_id = ? AND NOT EXISTS (SELECT 1 FROM jobs WHERE hook_call_id = hc.id) ORDER BY id`, b.ID)
	if err != nil {
		return wrap("insert jobs", err)
	}
	run.Added = int(added)
	for _, e := range eds {
		if !rerunEdited || !e.status.Finished() {
			run.EditedLeft++
			continue
		}
		if _, err := insertAttempt(ctx, tx, now, b.ID, e.hookCallID, e.attempt+1); err != nil {
			return err
		}
	}
	if run.Build, _, err = db.recomputeBuild(ctx, tx, b.ID); err != nil {
		return err
	}
	run.Jobs, err = queryJobs(ctx, tx, `WHERE j.build_id = ? AND j.id > ? ORDER BY j.id`, b.ID, last)
	return err
}

// SetBuildCommit records the author and subject of a build's commit when
// the build has neither yet (a build run by hand of a repository that is
// not on this machine, read from its first job's checkout), and changes
// nothing otherwise. A missing build is ErrNotFound.
func (db *DB) SetBuildCommit(ctx context.Context, buildID int64, author, subject string) error {
	return db.writeTx(ctx, func(tx txn) error {
		if _, err := buildByID(ctx, tx, buildID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE builds SET author = ?, message = ?
			WHERE id = ? AND author = '' AND message = ''`, author, subject, buildID)
		return wrap("set build commit", err)
	})
}

// BuildByID returns a build or ErrNotFound.
func (db *DB) BuildByID(ctx context.Context, id int64) (Build, error) {
	return buildByID(ctx, db.read, id)
}

func buildByID(ctx context.Context, q queryer, id int64) (Build, error) {
	b, err := scanBuild(q.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = ?`, id))
	return b, wrap("get build", err)
}

// BuildByNumber returns build number n of a project, or ErrNotFound.
func (db *DB) BuildByNumber(ctx context.Context, projectID int64, n int) (Build, error) {
	b, err := scanBuild(db.read.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE project_id = ? AND number = ?`, projectID, n))
	return b, wrap("get build by number", err)
}

// LatestBuild returns the newest build of a project, of ref when it is not
// empty, or ErrNotFound.
func (db *DB) LatestBuild(ctx context.Context, projectID int64, ref string) (Build, error) {
	bs, err := db.Builds(ctx, projectID, BuildQuery{Ref: ref, Limit: 1})
	if err != nil {
		return Build{}, err
	}
	if len(bs) == 0 {
		return Build{}, fmt.Errorf("latest build: %w", ErrNotFound)
	}
	return bs[0], nil
}

// BranchBuild returns the newest build of ref in a project that is no pull
// request's, the build a branch's badge shows, or ErrNotFound. A pull
// request's build never counts, whatever its ref: neither an untrusted one
// (FromFork) nor one of a pull or merge request's ref (refs/pull/…,
// refs/merge-requests/…).
func (db *DB) BranchBuild(ctx context.Context, projectID int64, ref string) (Build, error) {
	b, err := scanBuild(db.read.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE project_id = ? AND ref = ? AND NOT from_fork
			AND ref NOT LIKE 'refs/pull/%' AND ref NOT LIKE 'refs/merge-requests/%'
		ORDER BY number DESC LIMIT 1`, projectID, ref))
	return b, wrap("get branch build", err)
}

// BuildQuery selects a page of a project's builds, newest first.
type BuildQuery struct {
	Ref     string      // only builds of this ref; empty: all
	Status  BuildStatus // only builds with this status; empty: all
	Trigger TriggerKind // only builds started this way; empty: all
	Before  int         // only builds numbered below this; 0: from the newest
	Limit   int         // at most this many; 0 means 50
}

// Builds lists a project's builds newest first, one page at a time: pass the
// last number of a page as Before to get the next. Ref, Status and Trigger
// narrow the list, all of those given at once.
func (db *DB) Builds(ctx context.Context, projectID int64, q BuildQuery) ([]Build, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	before := q.Before
	if before <= 0 {
		before = int(^uint32(0) >> 1)
	}
	query := `SELECT ` + buildColumns + ` FROM builds WHERE project_id = ? AND number < ?`
	args := []any{projectID, before}
	if q.Ref != "" {
		query += ` AND ref = ?`
		args = append(args, q.Ref)
	}
	if q.Status != "" {
		query += ` AND status = ?`
		args = append(args, q.Status)
	}
	if q.Trigger != "" {
		query += ` AND trigger_kind = ?`
		args = append(args, q.Trigger)
	}
	query += ` ORDER BY number DESC LIMIT ?`
	args = append(args, q.Limit)

	return queryAll(ctx, db.read, "list builds", scanBuild, query, args...)
}

// recomputeBuild sets a build's status from the latest attempt of each of its
// jobs, stamping started_at the first time it leaves enqueued and
// finished_at when it becomes final (cleared again if a restart reopens it).
// It reports whether the status moved.
func (db *DB) recomputeBuild(ctx context.Context, tx txn, buildID int64) (Build, bool, error) {
	statuses, err := queryAll(ctx, tx, "read job statuses", scanValue[JobStatus], `SELECT status FROM jobs j
		WHERE build_id = ? AND attempt = (SELECT MAX(attempt) FROM jobs WHERE hook_call_id = j.hook_call_id)`, buildID)
	if err != nil {
		return Build{}, false, err
	}
	var old BuildStatus
	if err := tx.QueryRowContext(ctx, `SELECT status FROM builds WHERE id = ?`, buildID).Scan(&old); err != nil {
		return Build{}, false, wrap("get build status", err)
	}
	status := DeriveBuildStatus(statuses)
	b, err := scanBuild(tx.QueryRowContext(ctx, `
		UPDATE builds SET
			status = ?1,
			started_at = CASE WHEN ?1 <> 'enqueued' THEN COALESCE(started_at, ?2) ELSE started_at END,
			finished_at = CASE WHEN ?3 THEN COALESCE(finished_at, ?2) ELSE NULL END
		WHERE id = ?4 RETURNING `+buildColumns, status, db.nowMS(), status.Finished(), buildID))
	if err != nil {
		return Build{}, false, wrap(fmt.Sprintf("update build %d status", buildID), err)
	}
	return b, status != old, nil
}
