package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// DBStats is how large the database is, and how much of it is logs.
type DBStats struct {
	FileBytes int64 // the database file: page_count × page_size
	FreeBytes int64 // of those, on free pages (freelist_count × page_size)
	WALBytes  int64 // the write-ahead log beside it; 0 when there is none
	LogBytes  int64 // the stored logs, compressed (their frames' bytes)
	Logs      int64 // jobs with a stored log
}

// Stats returns the database's sizes and its log storage. It reads SQLite's
// page counts and the totals that triggers keep as logs are written and
// deleted (migration 00021), never a log, so it costs the same however many
// builds and logs there are. A missing write-ahead log is 0 bytes.
func (db *DB) Stats(ctx context.Context) (DBStats, error) {
	var s DBStats
	var pageSize, pages, free int64
	err := db.read.QueryRowContext(ctx, `SELECT s.page_size, c.page_count, f.freelist_count, t.frame_bytes, t.logs
		FROM pragma_page_size() s, pragma_page_count() c, pragma_freelist_count() f, log_totals t`).
		Scan(&pageSize, &pages, &free, &s.LogBytes, &s.Logs)
	if err != nil {
		return DBStats{}, wrap("database stats", err)
	}
	s.FileBytes, s.FreeBytes = pages*pageSize, free*pageSize
	switch fi, err := os.Stat(db.path + "-wal"); {
	case err == nil:
		s.WALBytes = fi.Size()
	case !errors.Is(err, fs.ErrNotExist):
		return DBStats{}, fmt.Errorf("database stats: %w", err)
	}
	return s, nil
}

// RunningJob is a running job with what names it on the admin page.
type RunningJob struct {
	JobID       int64
	ProjectID   int64
	Project     string // the project's full name
	BuildNumber int
	HookTitle   string
	StartedAt   time.Time
}

// Queue is what the job queue holds now.
type Queue struct {
	Queued       int       // enqueued jobs
	OldestQueued time.Time // when the longest-waiting of them was enqueued; zero when none
	Running      []RunningJob
}

// JobQueue returns the enqueued and running jobs, the running ones oldest
// first, from one snapshot. It reads through the partial indexes
// jobs_enqueued and jobs_running, so it stays cheap however many finished
// jobs there are.
func (db *DB) JobQueue(ctx context.Context) (Queue, error) {
	var q Queue
	err := db.readTx(ctx, func(tx txn) error {
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*), (SELECT created_at FROM jobs WHERE status = 'enqueued' ORDER BY id LIMIT 1)
			FROM jobs WHERE status = 'enqueued'`).Scan(&q.Queued, msTime{&q.OldestQueued})
		if err != nil {
			return wrap("count queued jobs", err)
		}
		q.Running, err = queryAll(ctx, tx, "running jobs", func(row scanner) (RunningJob, error) {
			var j RunningJob
			return j, row.Scan(&j.JobID, &j.ProjectID, &j.Project, &j.BuildNumber, &j.HookTitle, msTime{&j.StartedAt})
		}, `SELECT j.id, p.id, p.full_name, b.number, hc.hook_title, j.started_at
			FROM jobs j JOIN builds b ON b.id = j.build_id JOIN projects p ON p.id = b.project_id
			JOIN hook_calls hc ON hc.id = j.hook_call_id
			WHERE j.status = 'running' ORDER BY j.id`)
		return err
	})
	return q, err
}

// ProjectCacheUse is an install cache image of a project: its scope and id.
type ProjectCacheUse struct {
	ProjectID int64
	CacheUse
}

// cacheLastUsedQuery is the newest start of a job of a project with an
// install cache image. INDEXED BY: without statistics SQLite would rather
// walk the project's builds, all of them.
const cacheLastUsedQuery = `SELECT j.started_at FROM jobs j INDEXED BY jobs_cache_use JOIN builds b ON b.id = j.build_id
	WHERE j.cache_id = ?1 AND j.cache_id <> '' AND j.cache_scope = ?2 AND b.project_id = ?3 AND j.started_at IS NOT NULL
	ORDER BY j.started_at DESC LIMIT 1`

// CacheLastUsedOf returns when a job of its project last started with each
// of uses; an image no job has used yet is absent. Each is one look-up in
// the index jobs_cache_use, newest first, so a project's history does not
// count.
func (db *DB) CacheLastUsedOf(ctx context.Context, uses []ProjectCacheUse) (map[ProjectCacheUse]time.Time, error) {
	m := make(map[ProjectCacheUse]time.Time, len(uses))
	err := db.readTx(ctx, func(tx txn) error {
		for _, u := range uses {
			var last time.Time
			err := tx.QueryRowContext(ctx, cacheLastUsedQuery, u.ID, u.Scope, u.ProjectID).Scan(msTime{&last})
			switch {
			case err == nil:
				m[u] = last
			case !errors.Is(err, sql.ErrNoRows):
				return wrap("cache last used", err)
			}
		}
		return nil
	})
	return m, err
}

// ProjectNames returns the full names of the projects of ids that exist.
func (db *DB) ProjectNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("project names: %w", err)
	}
	type row struct {
		id   int64
		name string
	}
	rows, err := queryAll(ctx, db.read, "project names", func(s scanner) (row, error) {
		var r row
		return r, s.Scan(&r.id, &r.name)
	}, `SELECT id, full_name FROM projects WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, err
	}
	m := make(map[int64]string, len(rows))
	for _, r := range rows {
		m[r.id] = r.name
	}
	return m, nil
}
