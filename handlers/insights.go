package handlers

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"kozmic/internal/when"
	"kozmic/store"
	"kozmic/views"
)

// The project page's insights: how many branches and pull requests it
// lists, how many builds its chart shows, and the days its figures cover.
const (
	insightsBranches = 20
	chartBuilds      = 50
	statsDays        = 30
)

// insightsSection is the project page's branches and pull requests with
// their newest builds, and the chart and figures of one branch: the
// builds list's ?branch= when it is given, else the default branch, else
// the most recently built branch.
func (h *Handler) insightsSection(r *http.Request, p store.Project) (views.InsightsView, error) {
	ctx := r.Context()
	bs, err := h.db.BranchesOfProject(ctx, p.ID, insightsBranches)
	if err != nil {
		return views.InsightsView{}, err
	}
	v := views.InsightsView{ProjectID: p.ID, MoreBranches: bs.MoreOthers, MorePullRequests: bs.MorePullRequests,
		Default: views.BranchRow{Name: p.DefaultBranch, Filter: p.DefaultBranch}}
	if bs.Default.Number != 0 {
		v.Default = branchRow(bs.Default)
	}
	for _, b := range bs.Others {
		v.Branches = append(v.Branches, branchRow(b))
	}
	for _, b := range bs.PullRequests {
		v.PullRequests = append(v.PullRequests, branchRow(b))
	}
	ref := branchRef(strings.TrimSpace(r.URL.Query().Get("branch")))
	switch {
	case ref != "":
	case p.DefaultBranch != "":
		ref = branchRef(p.DefaultBranch)
	case len(bs.Others) > 0:
		ref = bs.Others[0].Ref
	default:
		return v, nil // nothing but pull requests: none is more worth a chart than another
	}
	v.Chart, err = h.chartOf(r, p, ref)
	return v, err
}

// branchRow is a branch or pull request shown by its newest build b.
func branchRow(b store.Build) views.BranchRow {
	row := views.BranchRow{Name: b.Branch(), Filter: b.Branch(), Number: b.Number, Status: views.BuildStatus(b.Status), Age: ago(b.CreatedAt)}
	if b.Trigger.Kind == store.TriggerPullRequest {
		row.Name, row.Filter, row.Message = "pull request #"+strconv.Itoa(b.Trigger.PR), b.Ref, firstLine(b.Message)
	}
	return row
}

// chartOf is the chart of ref's latest builds, with its figures over the
// last statsDays days.
func (h *Handler) chartOf(r *http.Request, p store.Project, ref string) (views.ChartView, error) {
	ctx := r.Context()
	v := views.ChartView{Branch: store.Build{Ref: ref}.Branch(), Days: statsDays, Limit: store.MaxStatsBuilds}
	bs, err := h.db.Builds(ctx, p.ID, store.BuildQuery{Ref: ref, Limit: chartBuilds})
	if err != nil {
		return v, err
	}
	if len(bs) > 0 && bs[0].Trigger.Kind == store.TriggerPullRequest {
		v.Branch = "pull request #" + strconv.Itoa(bs[0].Trigger.PR)
	}
	for i := len(bs) - 1; i >= 0; i-- {
		b := bs[i]
		c := views.ChartBuild{Number: b.Number, Status: views.BuildStatus(b.Status)}
		if c.Took, c.Done = b.Duration(); c.Done {
			c.Duration = when.Duration(c.Took)
		}
		v.Builds = append(v.Builds, c)
	}
	st, err := h.db.BuildStats(ctx, p.ID, ref, h.now().Add(-statsDays*24*time.Hour))
	if err != nil {
		return v, err
	}
	v.Finished, v.Passed, v.Timed, v.Capped = st.Finished, st.Passed, st.Timed, st.Capped
	if st.Finished > 0 {
		// Rounded down: 100% means every build passed.
		v.Rate = strconv.Itoa(100*st.Passed/st.Finished) + "%"
	}
	if st.Timed > 0 {
		v.Median = when.Duration(st.Median)
	}
	return v, nil
}
