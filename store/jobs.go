package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CacheResult says whether a job's install step used the cached image.
type CacheResult string

const (
	CacheNone CacheResult = ""     // no install script, or the job did not get that far
	CacheHit  CacheResult = "hit"  // the install script was skipped
	CacheMiss CacheResult = "miss" // the install script ran
)

// CacheScope is whose install cache images a job reads and writes: the
// project's, which only its trusted builds use, or the scope of one fork
// (Build.CacheScope). Scopes never share images.
type CacheScope string

const (
	// CacheScopeUnset is a job with no install step, or from before scopes
	// were recorded, when every job used the project's cache.
	CacheScopeUnset   CacheScope = ""
	CacheScopeProject CacheScope = "project" // builds of the project's own repository
)

// The prefixes of fork scopes: a fork repository's id, or the ref of a
// build from a fork whose repository is unknown or the project's own. Scopes
// of a fork repository's full name were made before migration 00010: their
// images are never read again.
const (
	forkIDScope   = "fork-id:"
	forkRefScope  = "fork-ref:"
	forkNameScope = "fork:"
)

// ForkCacheScope is the install cache scope of builds from the fork
// repository whose id is repoID.
func ForkCacheScope(repoID int64) CacheScope {
	return CacheScope(forkIDScope + strconv.FormatInt(repoID, 10))
}

// Fork reports whether s is a fork's scope, and names the fork by what the
// scope holds: its repository's id (Build.ScopeName finds its full name),
// the ref of its build, or, for a scope from before ids, the repository's
// full name.
func (s CacheScope) Fork() (string, bool) {
	for _, p := range []string{forkIDScope, forkRefScope, forkNameScope} {
		if name, ok := strings.CutPrefix(string(s), p); ok {
			return name, true
		}
	}
	return "", false
}

// Job is one attempt at running one hook for one build.
type Job struct {
	ID          int64
	BuildID     int64
	HookCallID  int64
	HookID      int64 // 0 once the hook is deleted
	HookTitle   string
	Attempt     int
	Status      JobStatus
	CreatedAt   time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	ExitCode    *int // nil until the build script exited
	ContainerID string
	CacheID     string
	Cache       CacheResult
	CacheScope  CacheScope // whose install cache Cache refers to
	Error       string     // why the job errored, in words for people
	// Engine names the Docker engine the job ran on; empty until it was
	// placed on one, and when Kozmic has only the engine of DOCKER_HOST.
	Engine string
}

const jobColumns = `j.id, j.build_id, j.hook_call_id, COALESCE(hc.hook_id, 0), hc.hook_title, j.attempt,
	j.status, j.created_at, j.started_at, j.finished_at, j.exit_code, j.container_id, j.cache_id,
	CASE j.cache_hit WHEN 1 THEN 'hit' WHEN 0 THEN 'miss' ELSE '' END, j.cache_scope, j.error, j.engine`

const jobFrom = ` FROM jobs j JOIN hook_calls hc ON hc.id = j.hook_call_id `

func scanJob(row scanner) (Job, error) {
	var j Job
	var exit sql.NullInt64
	err := row.Scan(&j.ID, &j.BuildID, &j.HookCallID, &j.HookID, &j.HookTitle, &j.Attempt, &j.Status,
		msTime{&j.CreatedAt}, msTime{&j.StartedAt}, msTime{&j.FinishedAt}, &exit, &j.ContainerID,
		&j.CacheID, &j.Cache, &j.CacheScope, &j.Error, &j.Engine)
	if exit.Valid {
		code := int(exit.Int64)
		j.ExitCode = &code
	}
	return j, err
}

// JobByID returns a job or ErrNotFound.
func (db *DB) JobByID(ctx context.Context, id int64) (Job, error) {
	return jobByID(ctx, db.read, id)
}

func jobByID(ctx context.Context, q queryer, id int64) (Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobColumns+jobFrom+`WHERE j.id = ?`, id))
	return j, wrap("get job", err)
}

// Jobs lists every attempt of every job of a build, by hook title then
// attempt. It reads no log bytes.
func (db *DB) Jobs(ctx context.Context, buildID int64) ([]Job, error) {
	var js []Job
	err := db.readTx(ctx, func(tx txn) error {
		var err error
		js, err = queryJobs(ctx, tx, `WHERE j.build_id = ? ORDER BY hc.hook_title, j.hook_call_id, j.attempt`, buildID)
		return err
	})
	return js, err
}

// queryJobs lists the jobs matching a WHERE … ORDER BY clause.
func queryJobs(ctx context.Context, tx txn, where string, args ...any) ([]Job, error) {
	return queryAll(ctx, tx, "list jobs", scanJob, `SELECT `+jobColumns+jobFrom+where, args...)
}

// JobUpdate is a change of a job's state. Empty fields leave the stored value
// alone.
type JobUpdate struct {
	Status      JobStatus
	ExitCode    *int
	Error       string
	ContainerID string
	CacheID     string
	Cache       CacheResult
	CacheScope  CacheScope
}

// JobChanged is the result of a change to a job: the job and its build as
// they are now, and whether the build's status moved.
type JobChanged struct {
	Job          Job
	Build        Build
	BuildChanged bool
}

// UpdateJob moves a job to u.Status, stamps its start or finish time,
// records the other fields of u, and recomputes the build's status, all in
// one transaction. A move that JobStatus.CanBecome forbids (a finished job,
// say) is ErrConflict and changes nothing.
func (db *DB) UpdateJob(ctx context.Context, id int64, u JobUpdate) (JobChanged, error) {
	var ch JobChanged
	err := db.writeTx(ctx, func(tx txn) error {
		var cur JobStatus
		var buildID int64
		err := tx.QueryRowContext(ctx, `SELECT status, build_id FROM jobs WHERE id = ?`, id).Scan(&cur, &buildID)
		if err != nil {
			return wrap("get job", err)
		}
		if !cur.CanBecome(u.Status) {
			return fmt.Errorf("job %d is %s and cannot become %s: %w", id, cur, u.Status, ErrConflict)
		}
		var exit, cacheHit any
		if u.ExitCode != nil {
			exit = *u.ExitCode
		}
		switch u.Cache {
		case CacheHit:
			cacheHit = 1
		case CacheMiss:
			cacheHit = 0
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET
				status = ?1,
				started_at = CASE WHEN ?1 = 'running' THEN ?2 ELSE started_at END,
				finished_at = CASE WHEN ?3 THEN ?2 ELSE finished_at END,
				exit_code = COALESCE(?4, exit_code),
				error = CASE WHEN ?5 <> '' THEN ?5 ELSE error END,
				container_id = CASE WHEN ?6 <> '' THEN ?6 ELSE container_id END,
				cache_id = CASE WHEN ?7 <> '' THEN ?7 ELSE cache_id END,
				cache_hit = COALESCE(?8, cache_hit),
				cache_scope = CASE WHEN ?9 <> '' THEN ?9 ELSE cache_scope END
			WHERE id = ?10`,
			u.Status, db.nowMS(), u.Status.Finished(), exit, u.Error, u.ContainerID, u.CacheID, cacheHit, u.CacheScope, id)
		if err != nil {
			return wrap("update job", err)
		}
		ch, err = db.jobChanged(ctx, tx, id, buildID)
		return err
	})
	return ch, err
}

// jobChanged recomputes a build after a change to one of its jobs and reads both back.
func (db *DB) jobChanged(ctx context.Context, tx txn, jobID, buildID int64) (JobChanged, error) {
	var ch JobChanged
	var err error
	if ch.Build, ch.BuildChanged, err = db.recomputeBuild(ctx, tx, buildID); err != nil {
		return ch, err
	}
	ch.Job, err = scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+jobFrom+`WHERE j.id = ?`, jobID))
	return ch, wrap("get job", err)
}
