package store

import (
	"context"
	"slices"
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

// The queries of the insights, each reading through an index as many rows
// as it returns (TestInsightsQueriesReadThroughIndexes).
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
	// buildStatsQuery reads the builds of a ref (?2) created since ?3, the
	// newest first, at most ?4.
	buildStatsQuery = `SELECT status, started_at, finished_at FROM builds
		WHERE project_id = ?1 AND ref = ?2 AND created_at >= ?3 ORDER BY created_at DESC LIMIT ?4`
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
// given moment, or the newest MaxStatsBuilds of them. It reads at most
// MaxStatsBuilds+1 builds, however many the project has. A project
// without such builds, or none at all, has zero stats.
func (db *DB) BuildStats(ctx context.Context, projectID int64, ref string, since time.Time) (BuildStats, error) {
	bs, err := queryAll(ctx, db.read, "read build stats", func(s scanner) (Build, error) {
		var b Build
		return b, s.Scan(&b.Status, msTime{&b.StartedAt}, msTime{&b.FinishedAt})
	}, buildStatsQuery, projectID, ref, since.UnixMilli(), MaxStatsBuilds+1)
	if err != nil {
		return BuildStats{}, err
	}
	var st BuildStats
	if len(bs) > MaxStatsBuilds {
		bs, st.Capped = bs[:MaxStatsBuilds], true
	}
	var took []time.Duration
	for _, b := range bs {
		if !b.Status.Finished() {
			continue
		}
		st.Finished++
		if b.Status == BuildSuccess {
			st.Passed++
		}
		// An errored build was canceled or could not run: how long that
		// took says nothing of how long the branch takes to build.
		if d, ok := b.Duration(); ok && b.Status != BuildError {
			took = append(took, d)
		}
	}
	st.Timed = len(took)
	if n := len(took); n > 0 {
		slices.Sort(took)
		st.Median = (took[(n-1)/2] + took[n/2]) / 2
	}
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
