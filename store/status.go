package store

// JobStatus is the state of one job attempt.
type JobStatus string

const (
	JobEnqueued JobStatus = "enqueued" // waiting for a worker
	JobRunning  JobStatus = "running"
	JobSuccess  JobStatus = "success" // the build script exited 0
	JobFailure  JobStatus = "failure" // the user's script failed, stalled or timed out
	JobError    JobStatus = "error"   // Kozmic could not run it, or it was canceled
)

// Finished reports whether s is final. A finished job is never changed
// again; a restart makes a new attempt.
func (s JobStatus) Finished() bool {
	return s == JobSuccess || s == JobFailure || s == JobError
}

// Word is the status as people read it on pages: enqueued, running,
// passed, failed or error.
func (s JobStatus) Word() string { return statusTexts[s].word }

// Phrase says what happened to a build in this state, after "Build #12":
// is waiting for a worker, is running, passed, failed or errored. Commit
// statuses and mail use it.
func (s JobStatus) Phrase() string { return statusTexts[s].phrase }

// statusText is how one status reads to people.
type statusText struct {
	word   string // on pages, also the colour's name there
	phrase string // after "Build #12"
	badge  string // on the README badge
}

// statusTexts is the one table of how statuses read, everywhere: pages,
// the badge, commit statuses and mail. A build reads like a job in the
// same state (see BuildStatus.AsJob), so adding a status means adding a
// row here.
var statusTexts = map[JobStatus]statusText{
	JobEnqueued: {word: "enqueued", phrase: "is waiting for a worker", badge: "running"},
	JobRunning:  {word: "running", phrase: "is running", badge: "running"},
	JobSuccess:  {word: "passed", phrase: "passed", badge: "passing"},
	JobFailure:  {word: "failed", phrase: "failed", badge: "failing"},
	JobError:    {word: "error", phrase: "errored", badge: "error"},
}

// CanBecome reports whether a job may move from s to next: an enqueued job
// starts running or is canceled (error); a running job finishes with any
// result. Nothing else moves.
func (s JobStatus) CanBecome(next JobStatus) bool {
	switch s {
	case JobEnqueued:
		return next == JobRunning || next == JobError
	case JobRunning:
		return next.Finished()
	default:
		return false
	}
}

// BuildStatus is the state of a build, derived from its jobs.
type BuildStatus string

const (
	BuildEnqueued BuildStatus = "enqueued"
	BuildPending  BuildStatus = "pending"
	BuildSuccess  BuildStatus = "success"
	BuildFailure  BuildStatus = "failure"
	BuildError    BuildStatus = "error"
)

// Finished reports whether s is final (until a job is restarted).
func (s BuildStatus) Finished() bool {
	return s == BuildSuccess || s == BuildFailure || s == BuildError
}

// AsJob is the job status a build in state s reads and looks like: the
// same, except that a pending build is running.
func (s BuildStatus) AsJob() JobStatus {
	if s == BuildPending {
		return JobRunning
	}
	return JobStatus(s)
}

// Badge is the word on the build's README badge: passing, failing, error
// or running.
func (s BuildStatus) Badge() string { return statusTexts[s.AsJob()].badge }

// DeriveBuildStatus computes a build's status from the latest attempt of each
// of its jobs: any failure → failure; else any error → error; else all
// succeeded → success; else any job started (running, or already succeeded
// while another still waits) → pending; else enqueued. A build with no jobs
// is enqueued.
//
// Counting a finished job as "started" keeps a build from falling back from
// pending to enqueued when its first job ends before the next one gets a
// worker.
func DeriveBuildStatus(jobs []JobStatus) BuildStatus {
	var failed, errored, succeeded, running int
	for _, s := range jobs {
		switch s {
		case JobFailure:
			failed++
		case JobError:
			errored++
		case JobSuccess:
			succeeded++
		case JobRunning:
			running++
		}
	}
	switch {
	case failed > 0:
		return BuildFailure
	case errored > 0:
		return BuildError
	case len(jobs) > 0 && succeeded == len(jobs):
		return BuildSuccess
	case running > 0 || succeeded > 0:
		return BuildPending
	default:
		return BuildEnqueued
	}
}
