package gh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v60/github"

	"kozmic/internal/outbox"
	"kozmic/internal/paths"
	"kozmic/internal/when"
	"kozmic/store"
)

// StatusStore is what commit statuses need of the database.
type StatusStore interface {
	ProjectByID(ctx context.Context, id int64) (store.Project, error)
	UserAccessToken(ctx context.Context, id int64) (string, error)
	EnqueueStatus(ctx context.Context, s store.Status) error
	DueStatuses(ctx context.Context, now time.Time, limit int) ([]store.Status, error)
	NextStatusDue(ctx context.Context) (time.Time, bool, error)
	StatusPosted(ctx context.Context, id int64) error
	StatusFailed(ctx context.Context, id int64, next time.Time, lastErr string) error
}

// Statuses reports builds to GitHub as commit statuses: one context per hook
// (kozmic/<hook title>) for its job, and one for the whole build
// (AggregateContext), which branch protection can require by a name that
// survives renaming hooks. Changes go through the durable outbox in the
// database, so they survive restarts; Run posts them, retrying with backoff
// and honouring GitHub's rate limits, and gives up on a 422.
type Statuses struct {
	gh   *GitHub
	db   StatusStore
	log  *slog.Logger
	wake chan struct{}

	// Backoff is the wait after the first failed attempt; it doubles with
	// each further one, up to an hour. MaxAttempts ends the retrying.
	Backoff     time.Duration
	MaxAttempts int
}

// NewStatuses returns a Statuses; call Run to post.
func NewStatuses(g *GitHub, db StatusStore, log *slog.Logger) *Statuses {
	return &Statuses{gh: g, db: db, log: log, wake: make(chan struct{}, 1), Backoff: 5 * time.Second, MaxAttempts: 15}
}

// AggregateContext is the commit status context of a whole build.
const AggregateContext = "kozmic"

// JobChanged puts the job's new state in the outbox, for GitHub projects,
// and the build's too when that moved. It is the runner's Notifier.
func (s *Statuses) JobChanged(ctx context.Context, ch store.JobChanged) {
	p, err := s.db.ProjectByID(ctx, ch.Build.ProjectID)
	if err != nil {
		s.log.Error("commit status: load project", "project", ch.Build.ProjectID, "err", err)
		return
	}
	if p.Source != store.SourceGitHub {
		return
	}
	base := strings.TrimRight(s.gh.cfg.BaseURL.String(), "/")
	st := store.Status{
		ProjectID:   p.ID,
		JobID:       ch.Job.ID,
		Repo:        p.FullName,
		SHA:         ch.Build.SHA,
		Context:     "kozmic/" + ch.Job.HookTitle,
		State:       statusState(ch.Job.Status),
		Description: StatusDescription(ch.Build.Number, ch.Job),
		TargetURL:   base + paths.Job(p.ID, ch.Build.Number, ch.Job.ID),
	}
	if err := s.db.EnqueueStatus(ctx, st); err != nil {
		s.log.Error("commit status: enqueue", "job", ch.Job.ID, "err", err)
		return
	}
	// The build's status moves less often than its jobs': posting it only
	// when it moves spares GitHub's rate limit and the commit's 1000 statuses.
	if ch.BuildChanged {
		b := ch.Build
		agg := store.Status{
			ProjectID: p.ID,
			Repo:      p.FullName,
			SHA:       b.SHA,
			Context:   AggregateContext,
			State:     statusState(b.Status.AsJob()),
			// A build's error is its jobs'; the build's page shows them.
			Description: StatusDescription(b.Number, store.Job{Status: b.Status.AsJob(), StartedAt: b.StartedAt, FinishedAt: b.FinishedAt}),
			TargetURL:   base + paths.Build(p.ID, b.Number),
		}
		if err := s.db.EnqueueStatus(ctx, agg); err != nil {
			s.log.Error("commit status: enqueue", "build", b.ID, "err", err)
			return
		}
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// statusState is a job's commit status state on GitHub: pending until the
// job finishes, then the job's status, as Kozmic's final statuses are named
// like GitHub's states (success, failure, error).
func statusState(j store.JobStatus) string {
	if !j.Finished() {
		return "pending"
	}
	return string(j)
}

// StatusDescription says what a job's status means in at most 140
// characters, such as "Build #12 passed in 1m03s" or "Build #12 errored:
// " and why when the job says.
func StatusDescription(build int, j store.Job) string {
	d := fmt.Sprintf("Build #%d %s", build, j.Status.Phrase())
	switch j.Status {
	case store.JobSuccess, store.JobFailure:
		d += " in " + when.Duration(j.FinishedAt.Sub(j.StartedAt))
	case store.JobError:
		if j.Error != "" {
			d += ": " + j.Error
		}
	}
	if utf8.RuneCountInString(d) > 140 {
		d = string([]rune(d)[:139]) + "…"
	}
	return d
}

// Run posts due statuses until ctx ends, sleeping until the next one is
// due or a new one arrives.
func (s *Statuses) Run(ctx context.Context) {
	outbox.Run(ctx, s.wake, s.db.NextStatusDue, s.postDue)
}

func (s *Statuses) postDue(ctx context.Context) {
	due := func(ctx context.Context) ([]store.Status, error) { return s.db.DueStatuses(ctx, time.Now(), 20) }
	if err := outbox.Drain(ctx, due, s.post); err != nil && ctx.Err() == nil {
		s.log.Error("commit status: list due", "err", err)
	}
}

// post tries one status once and records what happened.
func (s *Statuses) post(ctx context.Context, st store.Status) {
	err := s.create(ctx, st)
	if err == nil {
		if err := s.db.StatusPosted(ctx, st.ID); err != nil {
			s.log.Error("commit status: record posted", "status", st.ID, "err", err)
		}
		return
	}
	next := s.retryAt(err, st.Attempts+1)
	if next.IsZero() {
		s.log.Warn("commit status: giving up", "repo", st.Repo, "sha", st.SHA, "context", st.Context, "attempts", st.Attempts+1, "err", err)
	} else {
		s.log.Info("commit status: will retry", "repo", st.Repo, "context", st.Context, "at", next, "err", err)
	}
	if err := s.db.StatusFailed(ctx, st.ID, next, err.Error()); err != nil {
		s.log.Error("commit status: record failure", "status", st.ID, "err", err)
	}
}

var errNoToken = errors.New("the project's owner has no GitHub token")

func (s *Statuses) create(ctx context.Context, st store.Status) error {
	p, err := s.db.ProjectByID(ctx, st.ProjectID)
	if err != nil {
		return err
	}
	token, err := s.db.UserAccessToken(ctx, p.OwnerID)
	if err != nil {
		return err
	}
	if token == "" {
		return errNoToken
	}
	owner, repo, _ := strings.Cut(st.Repo, "/")
	_, _, err = s.gh.client(ctx, token).Repositories.CreateStatus(ctx, owner, repo, st.SHA, &github.RepoStatus{
		State: &st.State, Description: &st.Description, Context: &st.Context, TargetURL: &st.TargetURL,
	})
	return err
}

// retryAt says when to try again after err on the given attempt, or zero
// to give up: at the rate limit's reset, after Retry-After, or with
// exponential backoff; never after a 422 (GitHub refuses the status itself),
// a missing repository or token, or MaxAttempts.
func (s *Statuses) retryAt(err error, attempt int) time.Time {
	var rate *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rate):
		return maxTime(rate.Rate.Reset.Time, time.Now().Add(time.Second))
	case errors.As(err, &abuse) && abuse.RetryAfter != nil:
		return time.Now().Add(*abuse.RetryAfter)
	case errors.Is(err, errNoToken), errors.Is(err, store.ErrNotFound):
		return time.Time{}
	}
	switch statusCode(err) {
	case http.StatusUnprocessableEntity, http.StatusNotFound, http.StatusUnauthorized:
		return time.Time{}
	}
	if attempt >= s.MaxAttempts {
		return time.Time{}
	}
	return time.Now().Add(min(s.Backoff<<(attempt-1), time.Hour))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
