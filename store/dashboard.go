package store

import (
	"context"
	"slices"
	"time"
)

// ActiveJob is a running or enqueued job as the dashboard's now panel
// shows it.
type ActiveJob struct {
	ID          int64
	Status      JobStatus // JobRunning or JobEnqueued
	Hook        string    // the hook's title
	ProjectID   int64
	Project     string // the project's full name
	BuildNumber int
	CreatedAt   time.Time // when it was enqueued
	StartedAt   time.Time // zero while it waits
	// Position is a waiting job's place in the queue of every project's
	// jobs, 1 for the next to start; 0 for a running job.
	Position int
}

// Activity is what runs and waits now, as one user may see it.
type Activity struct {
	// Running are the running jobs of projects the user may see, in the
	// order they were enqueued.
	Running []ActiveJob
	// Queued are the first ActivityQueued jobs of projects the user may
	// see among the first QueueScanned places of the queue, in its order.
	Queued []ActiveJob
	// RunningAll and QueuedAll count every project's jobs, the listed ones
	// among them: the rest are counted and nothing more.
	RunningAll, QueuedAll int
}

const (
	// ActivityQueued bounds Activity.Queued.
	ActivityQueued = 20
	// QueueScanned is how deep into the queue Activity looks for the
	// user's jobs, so that its cost does not grow with a queue of
	// thousands that are mostly others'.
	QueueScanned = 500
)

// maySee is the condition that user ?1 may see project p: they own it,
// are a member of it, or it is public.
const maySee = `(p.is_public OR p.owner_id = ?1 OR EXISTS (SELECT 1 FROM memberships m WHERE m.project_id = p.id AND m.user_id = ?1))`

// activeJobColumns are the columns scanActiveJob reads, from jobs j,
// hook_calls hc, builds b and projects p.
const activeJobColumns = `j.id, j.status, hc.hook_title, p.id, p.full_name, b.number, j.created_at, j.started_at`

const activeJobJoins = ` JOIN hook_calls hc ON hc.id = j.hook_call_id
	JOIN builds b ON b.id = j.build_id JOIN projects p ON p.id = b.project_id `

// runningQuery lists user ?1's running jobs through the partial index of
// running jobs.
const runningQuery = `SELECT ` + activeJobColumns + ` FROM jobs j` + activeJobJoins +
	`WHERE j.status = 'running' AND ` + maySee + ` ORDER BY j.id`

// queuedQuery lists user ?1's first ?3 enqueued jobs among the first ?2 of
// the queue, each with its place: both are counted over the partial index
// of enqueued jobs, in the queue's order (ClaimJob takes the lowest id).
const queuedQuery = `SELECT ` + activeJobColumns + `, (SELECT COUNT(*) FROM jobs WHERE status = 'enqueued' AND id <= j.id)
	FROM (SELECT id FROM jobs WHERE status = 'enqueued' ORDER BY id LIMIT ?2) q JOIN jobs j ON j.id = q.id` + activeJobJoins +
	`WHERE ` + maySee + ` ORDER BY q.id LIMIT ?3`

func scanActiveJob(row scanner, extra ...any) (ActiveJob, error) {
	var a ActiveJob
	err := row.Scan(append([]any{&a.ID, &a.Status, &a.Hook, &a.ProjectID, &a.Project, &a.BuildNumber,
		msTime{&a.CreatedAt}, msTime{&a.StartedAt}}, extra...)...)
	return a, err
}

// Activity returns the running and waiting jobs of the projects user
// userID may see (as a project's page allows: owner, member, or a public
// project), with each waiting job's place in the whole queue, and how many
// jobs run and wait in all, from one snapshot. It reads the partial indexes
// of running and enqueued jobs only, never the finished ones.
func (db *DB) Activity(ctx context.Context, userID int64) (Activity, error) {
	var a Activity
	err := db.readTx(ctx, func(tx txn) error {
		if err := tx.QueryRowContext(ctx, jobCountsQuery).Scan(&a.QueuedAll, &a.RunningAll); err != nil {
			return wrap("count jobs", err)
		}
		var err error
		a.Running, err = queryAll(ctx, tx, "list running jobs", func(row scanner) (ActiveJob, error) { return scanActiveJob(row) },
			runningQuery, userID)
		if err != nil {
			return err
		}
		a.Queued, err = queryAll(ctx, tx, "list queued jobs", func(row scanner) (ActiveJob, error) {
			var pos int
			j, err := scanActiveJob(row, &pos)
			j.Position = pos
			return j, err
		}, queuedQuery, userID, QueueScanned, ActivityQueued)
		return err
	})
	if err != nil {
		return Activity{}, err
	}
	return a, nil
}

// RecentBuilds is how many builds a project's strip on the dashboard shows.
const RecentBuilds = 10

// BuildMark is one build of a project's strip of recent results.
type BuildMark struct {
	Number int
	Ref    string
	Status BuildStatus
}

// Branch is the branch or tag of the build's ref, as Build.Branch.
func (m BuildMark) Branch() string { return Build{Ref: m.Ref}.Branch() }

// dashboardProjects are the projects on user ?1's dashboard, as
// ProjectsWithLatestBuild lists them.
const dashboardProjects = `SELECT id, default_branch FROM projects
	WHERE owner_id = ?1 OR id IN (SELECT project_id FROM memberships WHERE user_id = ?1)`

// defaultBuildsQuery finds the newest build of each dashboard project's
// default branch through the (project_id, ref, number) index.
const defaultBuildsQuery = `SELECT ` + buildColumns + ` FROM builds WHERE id IN (
	SELECT (SELECT id FROM builds WHERE project_id = p.id AND ref = 'refs/heads/' || p.default_branch
		AND NOT from_fork ORDER BY number DESC LIMIT 1)
	FROM (` + dashboardProjects + `) p WHERE p.default_branch <> '')`

// recentBuildsQuery finds the ?2 newest builds of each dashboard project
// through the (project_id, number) index.
const recentBuildsQuery = `SELECT b.project_id, b.number, b.ref, b.status FROM (` + dashboardProjects + `) p
	JOIN builds b ON b.id IN (SELECT id FROM builds WHERE project_id = p.id ORDER BY number DESC LIMIT ?2)`

// fillDashboard adds to the summaries of user userID's projects (those of
// ProjectsWithLatestBuild, in tx) each one's newest build of its default
// branch and its RecentBuilds newest builds: two queries whatever the
// number of projects, each reading a project's builds through an index,
// so that a project of 100,000 builds costs what one of ten does.
func fillDashboard(ctx context.Context, tx txn, userID int64, summaries []ProjectSummary) error {
	at := make(map[int64]*ProjectSummary, len(summaries))
	for i := range summaries {
		at[summaries[i].ID] = &summaries[i]
	}
	// The default branch's build is the one its badge shows (BranchBuild):
	// never an untrusted pull request's.
	defaults, err := queryAll(ctx, tx, "list default branch builds", scanBuild, defaultBuildsQuery, userID)
	if err != nil {
		return err
	}
	for _, b := range defaults {
		if s := at[b.ProjectID]; s != nil {
			s.Default = &b
		}
	}
	type mark struct {
		projectID int64
		BuildMark
	}
	marks, err := queryAll(ctx, tx, "list recent builds", func(row scanner) (mark, error) {
		var m mark
		return m, row.Scan(&m.projectID, &m.Number, &m.Ref, &m.Status)
	}, recentBuildsQuery, userID, RecentBuilds)
	if err != nil {
		return err
	}
	for _, m := range marks {
		if s := at[m.projectID]; s != nil {
			s.Recent = append(s.Recent, m.BuildMark)
		}
	}
	for _, s := range at {
		slices.SortFunc(s.Recent, func(a, b BuildMark) int { return a.Number - b.Number })
	}
	return nil
}
