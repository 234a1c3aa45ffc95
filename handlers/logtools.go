package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"kozmic/internal/ansi"
	textclip "kozmic/internal/clip"
	"kozmic/internal/paths"
	"kozmic/store"
	"kozmic/views"
)

// timesMode is how a page shows its lines' arrival times as text, for a
// browser without scripts (?times=): kozmic.js shows them from each line's
// data-t itself.
type timesMode string

const (
	timesOff    timesMode = ""
	timesOffset timesMode = "offset" // since the job started
	timesWall   timesMode = "wall"   // the time of day, in UTC
)

// parseTimes reads ?times=; anything else shows no times.
func parseTimes(s string) timesMode {
	if m := timesMode(s); m == timesOffset || m == timesWall {
		return m
	}
	return timesOff
}

// lineTimes gives each line a lineRenderer renders its arrival time: a
// line's <p> carries data-t, the milliseconds from the log's beginning to
// the write that brought its first byte, where that differs from the line
// before it (and on the first line of each write, so on a block's first
// line), so that a burst of lines costs one attribute. Lines of a log
// stored without times carry none.
type lineTimes struct {
	marks []store.LogMark // of the output given, not yet reached by a line
	at    int64           // ms: the time in force at the line being rendered; -1 unknown
	shown int64           // ms: the data-t last written in this block; -1 none
	times timesMode       // adds data-ts, the time as text, to every line
	began time.Time       // the job's start, for timesWall
}

// clone is t with marks of its own.
func (t lineTimes) clone() lineTimes {
	t.marks = slices.Clone(t.marks)
	return t
}

// startBlock begins the lines of a write, taking the marks of its output,
// which follows what was given before.
func (t *lineTimes) startBlock(marks []store.LogMark) {
	t.marks = append(t.marks, marks...)
	t.shown = -1
}

// appendTime adds the arrival time of the line starting at byte pos to its
// start tag.
func (t *lineTimes) appendTime(out []byte, pos int64) []byte {
	for len(t.marks) > 0 && t.marks[0].Offset <= pos {
		t.at = t.marks[0].At.Milliseconds()
		t.marks = t.marks[1:]
	}
	if t.at < 0 {
		return out
	}
	if t.at != t.shown {
		out = append(out, " data-t="...)
		out = strconv.AppendInt(out, t.at, 10)
		t.shown = t.at
	}
	switch t.times {
	case timesOffset:
		out = append(append(out, ` data-ts="`...), views.LogOffset(t.at)...)
		out = append(out, '"')
	case timesWall:
		out = t.began.Add(time.Duration(t.at)*time.Millisecond).UTC().AppendFormat(append(out, ` data-ts="`...), "15:04:05.000")
		out = append(out, '"')
	}
	return out
}

// logPageAt returns the line a page starts at to show line n: pages are
// logPageLines long from the log's first line, so that a page loaded for a
// link meets the pages before and after it as paging from the start makes
// them (but where long lines end a page early).
func logPageAt(n int64) int64 { return (n-1)/logPageLines*logPageLines + 1 }

// parseLine reads ?line=N, a line number from 1; anything else is
// store.ErrInvalid.
func parseLine(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("log line %q: %w", s, store.ErrInvalid)
	}
	return n, nil
}

// sectionHolding is the part of a log with these steps that holds line n:
// the section of the last step that begins at or before it, or the whole
// log when it has no steps.
func sectionHolding(steps []store.JobStep, n int64) logRange {
	rng := wholeLog
	for i, s := range steps {
		if int64(s.Line) > n && i > 0 {
			break
		}
		rng = stepRange(steps, i)
	}
	return rng
}

// logPageAtLine renders the page of job j's log that holds line n, within
// rng, the part of the log that holds it: led, unless it is rng's first,
// by the link that loads the page before it. Pages are logPageAt's, but
// none starts before rng; it finds where the page starts with
// store.LineStart. Where long lines end that page before line n, the page
// starts at line n itself. A line the log does not have is
// store.ErrNotFound.
func (h *Handler) logPageAtLine(ctx context.Context, p store.Project, b store.Build, j store.Job, n int64, before int, rng logRange, times timesMode) (string, error) {
	start := max(logPageAt(n), int64(rng.line))
	page := rng
	if start > int64(rng.line) {
		from, err := h.db.LineStart(ctx, j.ID, start)
		if err != nil {
			return "", err
		}
		page.from, page.line = from, int(start)
	}
	html, next, err := h.renderLogPage(ctx, p, b, j, page, before, times)
	if err == nil && int64(next) <= n {
		// Long lines ended the page before line n, or the log ends first.
		start = n
		if page.from, err = h.db.LineStart(ctx, j.ID, n); err == nil {
			page.line = int(n)
			html, _, err = h.renderLogPage(ctx, p, b, j, page, before, times)
		}
	}
	if err != nil {
		return "", err
	}
	return h.logEarlier(ctx, p, b, j, start, rng, times) + html, nil
}

// logEarlier is the link that loads the lines of rng before line start (up
// to a page of them), put before a page that starts there; none at rng's
// first line.
func (h *Handler) logEarlier(ctx context.Context, p store.Project, b store.Build, j store.Job, start int64, rng logRange, times timesMode) string {
	if start <= int64(rng.line) {
		return ""
	}
	prev := max(int64(rng.line), logPageAt(start-1))
	jobURL := paths.Job(p.ID, b.Number, j.ID)
	link := url.Values{"line": {strconv.FormatInt(prev, 10)}}
	if times != timesOff {
		link.Set("times", string(times))
	}
	// From rng's first line the page starts where rng does, which the
	// page holding the line by logPageAt's count may not.
	page := fmt.Sprintf("%s/log?line=%d&before=%d", jobURL, prev, start)
	if prev == int64(rng.line) {
		page = fmt.Sprintf("%s/log?at=%d:%d&before=%d", jobURL, rng.from, rng.line, start)
	}
	var earlier strings.Builder
	// Rendering to a strings.Builder cannot fail.
	views.LogEarlier(jobURL+"?"+link.Encode()+"#L"+strconv.FormatInt(prev, 10), page, prev, start-1).Render(ctx, &earlier)
	return earlier.String()
}

// Bounds of a log search: the query's length in bytes, the matches it lists
// (it counts them all), and its time, after which it answers with what it
// found in the lines it searched so far.
const (
	searchQueryMax   = 200
	searchMatchesMax = 1000
	searchTimeout    = 5 * time.Second
)

// searchLineShown is how much of a matched line's text, without its
// escape sequences, the list of matches shows.
const searchLineShown = 160

// logSearch answers GET .../log/search?q= with the lines of a job's log that
// hold q, ignoring case and terminal escapes, searched in the stored log:
// how many, and the first searchMatchesMax as links to the lines, each
// knowing where its page starts (offset:line). htmx (search as you type)
// gets the results alone, anything else the job's page with them. An empty
// query searches nothing; one longer than searchQueryMax is refused with a
// note saying so; a search that takes searchTimeout answers with what it
// found so far and says so.
func (h *Handler) logSearch(w http.ResponseWriter, r *http.Request) {
	p, role, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sv, err := h.searchLog(r.Context(), p, b, j, r.URL.Query().Get("q"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	part := views.LogSearchResults(sv)
	if r.Header.Get("HX-Request") == "true" {
		h.renderPolled(w, r, part, part) // spares reading the page's parts
		return
	}
	v, err := h.jobView(r, p, role, b, j)
	if err == nil {
		err = h.logView(r, p, b, j, &v)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Tools.Search = &sv
	h.renderPolled(w, r, views.JobPage(v), part)
}

// searchLog searches job j's log for q as logSearch says.
func (h *Handler) searchLog(ctx context.Context, p store.Project, b store.Build, j store.Job, q string) (views.LogSearchView, error) {
	sv := views.LogSearchView{Query: q}
	switch {
	case q == "":
		return sv, nil
	case len(q) > searchQueryMax:
		sv.Note = fmt.Sprintf("A search takes up to %d characters.", searchQueryMax)
		return sv, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.searchTimeout)
	defer cancel()
	matcher := ansi.Matcher(q)
	var texts []string // of the matches listed, in order
	match := func(line []byte) bool {
		if !matcher(line) {
			return false
		}
		if len(texts) < searchMatchesMax {
			// A line's own stripper: its text as shown, but for a
			// sequence begun on a line before it.
			var plain ansi.Stripper
			text := bytes.TrimRight(plain.Strip(line), "\r\n")
			texts = append(texts, textclip.To(string(text[:min(len(text), searchLineShown+utf8.UTFMax)]), searchLineShown))
		}
		return true
	}
	found, err := h.db.SearchLog(ctx, j.ID, match, searchMatchesMax)
	if errors.Is(err, context.DeadlineExceeded) {
		h.log.WarnContext(ctx, "log search cut short", "job", j.ID, "lines", found.Lines)
		sv.Note = fmt.Sprintf("The search stopped after %s, at line %d.", h.searchTimeout, found.Lines)
	} else if err != nil {
		return sv, err
	}
	sv.Searched, sv.Count = true, found.Count
	jobURL := paths.Job(p.ID, b.Number, j.ID)
	for i, m := range found.Matches {
		sv.Matches = append(sv.Matches, views.LogSearchMatch{Line: m.Line, Text: texts[i],
			URL:  fmt.Sprintf("%s?line=%d#L%d", jobURL, m.Line, m.Line),
			Page: fmt.Sprintf("%s/log?at=%d:%d", jobURL, m.Offset, m.Line)})
	}
	if found.Count > len(found.Matches) {
		sv.Note = fmt.Sprintf("The first %d matches are listed.", len(found.Matches))
	}
	return sv, nil
}

// logView fills in what a job's page shows of its log beside its view v:
// the log tools (the times chosen by ?times=, the search) and, for a
// finished log, its sections, each with its first page (see logSections),
// or without sections its first page. With ?line=N the part of the log
// holding line N starts at the page holding it, and is open (from the start
// if the log has no line N).
func (h *Handler) logView(r *http.Request, p store.Project, b store.Build, j store.Job, v *views.JobView) error {
	q := r.URL.Query()
	jobURL := paths.Job(p.ID, b.Number, j.ID)
	times := parseTimes(q.Get("times"))
	v.Tools = views.LogToolsView{JobURL: jobURL, SearchURL: jobURL + "/log/search", Times: string(times)}
	if !j.StartedAt.IsZero() {
		v.Tools.Started = j.StartedAt.UnixMilli()
	}
	if !j.Status.Finished() {
		return nil
	}
	steps, err := h.db.JobSteps(r.Context(), j.ID)
	if err != nil {
		return err
	}
	v.Sections = logSections(steps, j, v.PageURL)
	at := -1 // the part of the log holding ?line=N: its section, or len(steps) for the whole log
	var atPage string
	if n, err := parseLine(q.Get("line")); err == nil {
		rng := sectionHolding(steps, n)
		atPage, err = h.logPageAtLine(r.Context(), p, b, j, n, 0, rng, times)
		switch {
		case err == nil:
			at = len(steps)
			for i, s := range steps {
				if s.Offset == rng.from {
					at = i
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	if len(steps) == 0 {
		if at == 0 {
			v.Tools.FirstPage = atPage
			return nil
		}
		v.Tools.FirstPage, _, err = h.renderLogPage(r.Context(), p, b, j, wholeLog, 0, times)
		return err
	}
	for i := range v.Sections {
		if i == at {
			v.Sections[i].FirstPage, v.Sections[i].Open = atPage, true
			continue
		}
		if v.Sections[i].FirstPage, _, err = h.renderLogPage(r.Context(), p, b, j, stepRange(steps, i), 0, times); err != nil {
			return err
		}
	}
	return nil
}
