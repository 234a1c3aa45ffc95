package store

import (
	"context"
	"database/sql"
	"time"
)

// Branches is each branch and pull request of a project with its newest
// build, for the project page.
type Branches struct {
	// Default is the newest build of the project's default branch; its
	// Number is 0 when the branch is unknown or was never built.
	Default Build
	// Others are the newest builds of the other branches (refs/heads/…),
	// the most recently built branch first; MoreOthers says that more
	// branches were built before the last of them.
	Others     []Build
	MoreOthers bool
	// PullRequests are the newest builds of each pull request (by its ref,
	// refs/pull/N/head), the most recently built first; MorePullRequests
	// says that there are more.
	PullRequests     []Build
	MorePullRequests bool
}

// The queries of the insights, each reading through an index only what it
// needs, never all of a project's builds or refs
// (TestInsightsQueriesReadThroughIndexes).
const (
	// newestOfRefsQuery lists the newest builds of the most recently built
	// refs of a kind (?2) but one (?3), at most ?4 of them.
	newestOfRefsQuery = `SELECT ` + buildColumns + ` FROM builds
		WHERE project_id = ?1 AND number IN (SELECT last_number FROM build_refs
			WHERE project_id = ?1 AND kind = ?2 AND ref <> ?3 ORDER BY last_number DESC LIMIT ?4)
		ORDER BY number DESC`
	// newestOfRefQuery is the newest build of one ref (?2).
	newestOfRefQuery = `SELECT ` + buildColumns + ` FROM builds
		WHERE project_id = ?1 AND number = (SELECT last_number FROM build_refs WHERE project_id = ?1 AND ref = ?2)`
	// buildStatsQuery sums up the newest ?4 builds of a ref (?2) created
	// since ?3 (BuildStats): how many finished, how many passed, how many
	// passed or failed with a duration (Build.Duration: started and
	// finished; an errored build was canceled or could not run, and how
	// long that took says nothing of how long the branch takes to build),
	// their median duration in milliseconds (NULL with none: the middle
	// one, or the mean of the middle two), and whether more builds were
	// made in the window.
	buildStatsQuery = `WITH w AS MATERIALIZED (
			SELECT status, finished_at - started_at AS took FROM builds
			WHERE project_id = ?1 AND ref = ?2 AND created_at >= ?3 ORDER BY created_at DESC LIMIT ?4),
		timed AS MATERIALIZED (SELECT took FROM w WHERE status IN ('success', 'failure') AND took IS NOT NULL),
		n AS MATERIALIZED (SELECT COUNT(*) FILTER (WHERE status IN ('success', 'failure', 'error')) AS finished,
			COUNT(*) FILTER (WHERE status = 'success') AS passed,
			(SELECT COUNT(*) FROM timed) AS timed FROM w)
		SELECT n.finished, n.passed, n.timed,
			(SELECT AVG(took) FROM (SELECT took FROM timed ORDER BY took
				LIMIT 2 - (SELECT timed FROM n) % 2 OFFSET ((SELECT timed FROM n) - 1) / 2)),
			EXISTS (SELECT 1 FROM builds WHERE project_id = ?1 AND ref = ?2 AND created_at >= ?3
				ORDER BY created_at DESC LIMIT 1 OFFSET ?4)
		FROM n`
)

// BranchesOfProject returns the newest build of the project's default
// branch, and of at most limit other branches and limit pull requests,
// most recently built first. Tags and commits built by hand are in
// neither list. It reads as many builds as it returns, however many the
// project has (migration 00019's build_refs). A missing project is
// ErrNotFound; a limit below 1 is ErrInvalid.
func (db *DB) BranchesOfProject(ctx context.Context, projectID int64, limit int) (Branches, error) {
	if limit < 1 {
		return Branches{}, invalid("list at least one branch")
	}
	var out Branches
	err := db.readTx(ctx, func(tx txn) error {
		var def string
		if err := tx.QueryRowContext(ctx, `SELECT default_branch FROM projects WHERE id = ?`, projectID).Scan(&def); err != nil {
			return wrap("get default branch", err)
		}
		newest := func(step, kind, except string) ([]Build, bool, error) {
			bs, err := queryAll(ctx, tx, step, scanBuild, newestOfRefsQuery, projectID, kind, except, limit+1)
			if len(bs) > limit {
				return bs[:limit], true, err
			}
			return bs, false, err
		}
		var err error
		defRef := ""
		if def != "" {
			defRef = "refs/heads/" + def
			bs, err := queryAll(ctx, tx, "get default branch build", scanBuild, newestOfRefQuery, projectID, defRef)
			if err != nil {
				return err
			}
			if len(bs) == 1 {
				out.Default = bs[0]
			}
		}
		if out.Others, out.MoreOthers, err = newest("list branches", "branch", defRef); err != nil {
			return err
		}
		out.PullRequests, out.MorePullRequests, err = newest("list pull requests", "pull_request", "")
		return err
	})
	return out, err
}

// MaxStatsBuilds bounds the builds BuildStats reads: of a branch built
// more often in its window, the newest this many count.
const MaxStatsBuilds = 1000

// BuildStats sums up a branch's recent builds.
type BuildStats struct {
	Finished int // builds that finished: passed, failed or errored
	Passed   int
	// Median is the median duration (Build.Duration) of the builds that
	// passed or failed, over Timed of them; 0 when there are none. Errored
	// builds (canceled, or not run) and builds still queued or running
	// never count.
	Median time.Duration
	Timed  int
	// Capped says that the window held more than MaxStatsBuilds builds:
	// these figures are of the newest MaxStatsBuilds.
	Capped bool
}

// BuildStats sums up the builds of ref in a project created since the
// given moment, or the newest MaxStatsBuilds of them, in SQL: it reads at
// most MaxStatsBuilds+1 entries of an index, however many builds the
// project has, and returns one row. A project without such builds, or none
// at all, has zero stats.
func (db *DB) BuildStats(ctx context.Context, projectID int64, ref string, since time.Time) (BuildStats, error) {
	// Prepared once: parsing it costs as much as running it.
	stmt, err := db.reads.prepared(ctx, buildStatsQuery)
	if err != nil {
		return BuildStats{}, wrap("read build stats", err)
	}
	var st BuildStats
	var median sql.NullFloat64
	err = stmt.QueryRowContext(ctx, projectID, ref, since.UnixMilli(), MaxStatsBuilds).
		Scan(&st.Finished, &st.Passed, &st.Timed, &median, &st.Capped)
	if err != nil {
		return BuildStats{}, wrap("read build stats", err)
	}
	st.Median = time.Duration(median.Float64 * float64(time.Millisecond))
	return st, nil
}

// Duration is how long the build ran, as its page shows it: from its
// first job's start to the moment its status became final. A build still
// queued or running has none yet (false).
func (b Build) Duration() (time.Duration, bool) {
	if b.StartedAt.IsZero() || b.FinishedAt.IsZero() {
		return 0, false
	}
	return b.FinishedAt.Sub(b.StartedAt), true
}
