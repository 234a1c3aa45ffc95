package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"kozmic/internal/ansi"
	"kozmic/internal/paths"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// rawLog sends the stored log as plain text, without terminal escape
// sequences, or with ?ansi=1 as it is stored, escapes and all. It reads and
// sends the log a piece at a time, however long it is.
func (h *Handler) rawLog(w http.ResponseWriter, r *http.Request) {
	_, _, _, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="job-%d.log"`, j.ID))
	var plain *ansi.Stripper
	if r.URL.Query().Get("ansi") != "1" {
		plain = &ansi.Stripper{}
	}
	for pos := int64(0); ; {
		data, err := h.db.ReadLog(r.Context(), j.ID, pos, 1<<20)
		if err != nil {
			h.log.ErrorContext(r.Context(), "read log", "job", j.ID, "err", err)
			return
		}
		if len(data) == 0 {
			return
		}
		pos += int64(len(data))
		if plain != nil {
			data = plain.Strip(data)
		}
		if _, err := w.Write(data); err != nil {
			return
		}
	}
}

// logPageLines is how many lines of a finished log one page holds: enough
// to fill a screen many times over, few enough that a browser renders them at
// once however long the whole log is.
const logPageLines = 1000

// logPageBytes ends a page before logPageLines lines when their HTML is
// this long already, so that a log of long lines comes in pages of bounded
// size too. A page may pass it by what one read (logPageRead) completes.
const logPageBytes = 1 << 20

// logPageRead is how many bytes of the log a page reads at a time.
const logPageRead = 64 << 10

// logPage answers GET .../log?at=OFFSET:LINE with the next page of a job's
// log as numbered HTML lines (logPageLines of them, fewer if their HTML
// reaches logPageBytes; a line longer than maxLineShown is cut), followed,
// if the log goes on, by a placeholder that loads the page after it when it
// scrolls into view. With &to=END the page ends at byte END at the latest,
// where the next section of the log begins (see logSections). A job still
// running keeps its unfinished last line for a later page. ?line=N instead
// starts the page at the page holding line N, found in the stored log, in
// the section holding it (see logPageAtLine); ?before=N ends it before
// line N; ?earlier=1 leads a page from ?at= with the link that loads the
// lines before it, as a page from ?line= is.
func (h *Handler) logPage(w http.ResponseWriter, r *http.Request) {
	p, _, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	before, _ := strconv.Atoi(q.Get("before"))
	to, err := strconv.ParseInt(q.Get("to"), 10, 64)
	if err != nil || to < 0 {
		to = math.MaxInt64 // the log's end
	}
	var page string
	if q.Has("line") {
		var n int64
		var steps []store.JobStep
		if n, err = parseLine(q.Get("line")); err == nil {
			steps, err = h.db.JobSteps(r.Context(), j.ID)
		}
		if err == nil {
			page, err = h.logPageAtLine(r.Context(), p, b, j, n, before, sectionHolding(steps, n), timesOff)
		}
	} else {
		from, line := parseEventID(q.Get("at"))
		page, _, err = h.renderLogPage(r.Context(), p, b, j, logRange{from: from, line: line, to: to}, before, timesOff)
		if err == nil && q.Get("earlier") == "1" {
			var steps []store.JobStep
			if steps, err = h.db.JobSteps(r.Context(), j.ID); err == nil {
				page = h.logEarlier(r.Context(), p, b, j, int64(line), sectionHolding(steps, int64(line)), timesOff) + page
			}
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, page)
}

// logRange is the part of a job's log a page is read from: from byte from,
// the start of line number line, to byte to (math.MaxInt64: the log's end).
// It is a section of the log (see logSections), or all of it.
type logRange struct {
	from int64
	line int
	to   int64
}

// wholeLog is all of a log.
var wholeLog = logRange{from: 0, line: 1, to: math.MaxInt64}

// renderLogPage renders the page of job j's log that starts at rng's start,
// ending at its end or before line before if that is above rng.line, with
// the times shown as times says: its block of lines and, if the range goes
// on, the placeholder that loads the rest of it. It also returns the
// number of the line after the page.
func (h *Handler) renderLogPage(ctx context.Context, p store.Project, b store.Build, j store.Job, rng logRange, before int, times timesMode) (string, int, error) {
	from, line, to := rng.from, rng.line, rng.to
	lines := newLineRenderer(p, b, j, from, line)
	lines.times = times
	limit := logPageLines
	if before > line {
		limit = min(limit, before-line)
	}
	var out strings.Builder
	read, eof := from, false
	for lines.next-line < limit && out.Len() < logPageBytes && read < to {
		data, marks, err := h.db.ReadLogMarks(ctx, j.ID, read, logPageRead)
		if err != nil {
			return "", 0, err
		}
		if len(data) == 0 {
			eof = true
			break
		}
		// A read returns a stored chunk whole: a step takes no more than a
		// page's read, so that the page ends near logPageBytes.
		data = upToLines(data[:min(len(data), logPageRead, int(min(to-read, logPageRead)))], limit-(lines.next-line))
		read += int64(len(data))
		// The next read gives the marks of what this one leaves.
		for len(marks) > 0 && marks[len(marks)-1].Offset >= read {
			marks = marks[:len(marks)-1]
		}
		h.logRendered(len(data))
		out.WriteString(lines.write(data, marks))
	}
	eof = eof || read >= to
	if eof && j.Status.Finished() {
		out.WriteString(lines.flush())
	}
	// Each page is a block of its own, so that the browser can skip laying
	// out the pages that are off screen.
	page := logBlock("log-page "+logLinesClass, out.String())
	if !eof && (before <= line || lines.next < before) {
		next := fmt.Sprintf("%s/log?at=%d:%d", paths.Job(p.ID, b.Number, j.ID), lines.pos, lines.next)
		if to != math.MaxInt64 {
			next += "&to=" + strconv.FormatInt(to, 10)
		}
		if before > line {
			next += "&before=" + strconv.Itoa(before)
		}
		var more strings.Builder
		views.LogMore(next, "intersect once").Render(ctx, &more)
		page += more.String()
	}
	return page, lines.next, nil
}

// upToLines cuts p after its nth newline, if it has that many.
func upToLines(p []byte, n int) []byte {
	for i, c := range p {
		if c == '\n' {
			if n--; n == 0 {
				return p[:i+1]
			}
		}
	}
	return p
}

// logStream sends a job's log as server-sent events: the stored log, then
// new output as it comes, as numbered HTML lines (ANSI colours rendered on
// the server; a line is sent when it is complete, so \r progress bars show
// their last state). Each event's id is "offset:line" of the next line, so a
// reconnect with Last-Event-ID continues with no gap and no repeat. Where a
// step of the job begins, a "section" event opens its section, into which
// the lines after it go, its id adding how many are open (liveSections);
// when a step ends, one brings its section's new head. When the job ends a
// final "end" event carries its status. Every h.heartbeat a
// comment line keeps an idle stream open. Every h.accessRecheck the viewer's
// access is checked again (mayStillRead): once their session has ended or
// they may no longer view the project, an "end" event says so instead and
// the stream ends. A check that fails ends the stream without one, and the
// browser reconnects, to be checked anew.
func (h *Handler) logStream(w http.ResponseWriter, r *http.Request) {
	p, role, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	from, line, opened := parseStreamID(r.Header.Get("Last-Event-ID"))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)

	var mu sync.Mutex // the heartbeat and the log write to w in turn
	// send writes b, which it does not change: one event's bytes are
	// written to each of its followers as they are.
	send := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send([]byte(": log of job " + strconv.FormatInt(j.ID, 10) + "\n\n")); err != nil {
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	var beats sync.WaitGroup
	defer beats.Wait() // after cancel: nothing may write to w once the handler returns
	defer cancel(nil)
	token, viewer := h.sessions.Token(r.Context()), user(r).ID
	beats.Go(func() {
		beat := time.NewTicker(h.heartbeat)
		defer beat.Stop()
		recheck := time.NewTicker(h.accessRecheck)
		defer recheck.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-beat.C:
				if send([]byte(": heartbeat\n\n")) != nil {
					cancel(nil)
				}
			case <-recheck.C:
				if err := h.mayStillRead(ctx, token, viewer, p.ID); err != nil {
					cancel(err)
				}
			}
		}
	})

	lines := newLineRenderer(p, b, j, from, line)
	sections := newLiveSections(from, opened)
	err = h.jobs.Follow(ctx, j.ID, from, func(c runner.Chunk) error {
		return sections.pass(ctx, c, lines, send, h.logRendered)
	})
	if errors.Is(err, context.Canceled) {
		err = context.Cause(ctx)
	}
	switch {
	case errors.Is(err, errAccessEnded):
		// The page stops listening at an end event; a reload asks anew.
		h.log.InfoContext(r.Context(), "log stream ended: access ended", "job", j.ID, "user", viewer)
		var notice bytes.Buffer
		views.LogAccessEnded(p.ID, b.Number, j.ID).Render(r.Context(), &notice)
		send([]byte(sseMessage("", "end", notice.String())))
		return
	case errors.Is(err, context.Canceled): // the viewer left
		return
	case err != nil:
		h.log.WarnContext(r.Context(), "log stream", "job", j.ID, "err", err)
		return
	}
	if out := lines.flush(); out != "" {
		if send(lines.event([]byte(out))) != nil {
			return
		}
	}
	done, err := h.db.JobByID(ctx, j.ID)
	if err != nil {
		return
	}
	v, err := h.jobView(r, p, role, b, done)
	if err != nil {
		return
	}
	var head bytes.Buffer
	views.JobHead(v).Render(ctx, &head)
	if v.Annotations.Counts.Total() > 0 { // the list as the job left it, in place of the page's
		v.Annotations.Update = true
		views.JobAnnotations(v.Annotations).Render(ctx, &head)
	}
	send([]byte(sseMessage("", "end", head.String())))
}

// logRendered counts bytes of log rendered to HTML.
func (h *Handler) logRendered(n int) {
	if h.metrics != nil {
		h.metrics.LogRendered(n)
	}
}

// errAccessEnded ends a log stream whose viewer may no longer read it.
var errAccessEnded = errors.New("access to the log ended")

// mayStillRead checks, for an open log stream, that its viewer may still
// read project projectID's logs, as requireUser and projectFor checked when
// it opened: the session token it came with is still live in the store and
// signed in as user userID, who still exists and may still view the
// project. It returns errAccessEnded if not, or the store's error when it
// cannot tell.
func (h *Handler) mayStillRead(ctx context.Context, token string, userID, projectID int64) error {
	// Load keeps a session already in its context, as the request's is: it
	// reads the session again in a context of its own (one quick read).
	session, err := h.sessions.Load(context.Background(), token)
	if err != nil {
		return err
	}
	if h.sessions.GetInt64(session, sessionUser) != userID {
		return errAccessEnded
	}
	_, err = h.db.UserByID(ctx, userID)
	if err == nil {
		_, _, err = h.projectAccess(ctx, projectID, userID, store.RoleMember)
	}
	if errors.Is(err, store.ErrNotFound) {
		return errAccessEnded
	}
	return err
}

// sseLineBreaks are what ends a line of an event stream.
var sseLineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n")

// sseMessage is one server-sent event of type event with the id id (none
// if "") and the data data, which goes out as one data line per line of it:
// a \r or \n in data, wherever it comes from (a ref or an error in the job
// head, say), ends a data line and can never start a field of its own. A
// browser joins the data lines with \n again, which HTML ignores.
func sseMessage(id, event, data string) string {
	var b strings.Builder
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("event: " + event + "\n")
	for line := range strings.SplitSeq(sseLineBreaks.Replace(data), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// parseEventID reads "offset:line"; anything else starts at the beginning.
func parseEventID(id string) (int64, int) {
	off, ln, ok := strings.Cut(id, ":")
	o, err1 := strconv.ParseInt(off, 10, 64)
	l, err2 := strconv.Atoi(ln)
	if !ok || err1 != nil || err2 != nil || o < 0 || l < 1 {
		return 0, 1
	}
	return o, l
}

// maxLineShown is how much of one log line, in bytes as written, a page or
// the stream shows. The rest of a longer line is skipped on the way to its
// newline and a marker links the raw log, which keeps it all: rendering
// costs the same memory however long a line is.
const maxLineShown = 64 << 10

// lineCutClass marks the link that stands for the part of a line not shown.
const lineCutClass = "line-cut"

// lineRenderer turns terminal output into numbered HTML lines, holding an
// unfinished line back until its newline comes: at most maxLineShown bytes
// of it, counting the rest. A line is <p id=L{n}> and its HTML: its
// number is a CSS counter that each block of lines starts at its first
// line's (kozmic.js), so that a line costs little more than its text.
type lineRenderer struct {
	pending []byte // the unfinished line's first bytes, at most maxLineShown
	skipped int64  // bytes of the unfinished line past maxLineShown
	next    int    // number of the next line
	pos     int64  // byte offset where the unfinished line starts
	rawURL  string // the raw log, which a cut line's marker links
	out     []byte // the HTML being written, kept for its capacity
	lineTimes
}

// newLineRenderer renders job j's log from byte offset from, numbering
// lines from line on.
func newLineRenderer(p store.Project, b store.Build, j store.Job, from int64, line int) *lineRenderer {
	return &lineRenderer{next: line, pos: from, rawURL: paths.Job(p.ID, b.Number, j.ID) + "/log.txt",
		lineTimes: lineTimes{at: -1, began: j.StartedAt}}
}

// write takes more output, with its arrival marks (store.ReadLogMarks),
// and returns the HTML of the lines it completed.
func (l *lineRenderer) write(p []byte, marks []store.LogMark) string {
	return string(l.writeHTML(p, marks))
}

// writeHTML is write, returning the HTML in the renderer's own buffer,
// which its next call reuses.
func (l *lineRenderer) writeHTML(p []byte, marks []store.LogMark) []byte {
	if want := len(p) + len(p)/2; cap(l.out) < want { // ordinary output's HTML fits
		l.out = make([]byte, 0, want)
	}
	l.out = l.out[:0]
	l.startBlock(marks)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.hold(p)
			return l.out
		}
		if len(l.pending) == 0 && i <= maxLineShown {
			l.line(p[:i], 1) // whole in p: no need to hold it
		} else {
			l.hold(p[:i])
			l.line(l.pending, 1)
		}
		p = p[i+1:]
	}
}

// renderedChunk is what rendering a chunk for the stream made: its event
// and the renderer's state after it.
type renderedChunk struct {
	event   []byte
	pending []byte
	skipped int64
	next    int
	pos     int64
	times   lineTimes
}

// renderState is a lineRenderer's state before a chunk, as far as it
// differs between followers of one log: the bytes of an unfinished line
// are the log's from pos on, the same for every follower.
type renderState struct {
	pos     int64
	next    int
	held    int
	skipped int64
	at      int64 // the arrival time in force, which the log's marks also set alike
	marks   int   // marks held back, which the chunk's own marks follow
}

// streamChunk takes the chunk c of the log and returns the event of the
// lines it completed, or nil if it completed none. It renders the chunk
// once for all the live followers passed it whole (c.Shared) from the same
// state: the first renders it and the others take its event and its state.
// It calls counted with the bytes it rendered itself.
func (l *lineRenderer) streamChunk(c runner.Chunk, counted func(int)) []byte {
	render := func(r *lineRenderer) []byte {
		counted(len(c.Data))
		if out := r.writeHTML(c.Data, c.Marks); len(out) > 0 {
			return r.event(out)
		}
		return nil
	}
	if c.Shared == nil {
		return render(l)
	}
	key := renderState{pos: l.pos, next: l.next, held: len(l.pending), skipped: l.skipped, at: l.at, marks: len(l.marks)}
	r := c.Shared.Do(key, func() any {
		// On a copy: the followers' renderers share nothing.
		cp := lineRenderer{pending: slices.Clone(l.pending), skipped: l.skipped, next: l.next, pos: l.pos, rawURL: l.rawURL, out: l.out,
			lineTimes: l.lineTimes.clone()}
		ev := render(&cp)
		l.out = cp.out
		return renderedChunk{event: ev, pending: cp.pending, skipped: cp.skipped, next: cp.next, pos: cp.pos, times: cp.lineTimes}
	}).(renderedChunk)
	l.pending = append(l.pending[:0], r.pending...)
	l.skipped, l.next, l.pos = r.skipped, r.next, r.pos
	l.lineTimes = r.times.clone()
	return r.event
}

// hold adds p to the unfinished line, keeping no more than maxLineShown bytes.
func (l *lineRenderer) hold(p []byte) {
	keep := min(len(p), maxLineShown-len(l.pending))
	l.pending = append(l.pending, p[:keep]...)
	l.skipped += int64(len(p) - keep)
}

// flush renders what is left at the end of the log as a last line.
func (l *lineRenderer) flush() string {
	if len(l.pending) == 0 && l.skipped == 0 {
		return ""
	}
	l.out = l.out[:0]
	l.startBlock(nil)
	l.line(l.pending, 0)
	return string(l.out)
}

// line renders the line raw (the unfinished line, which is held or in the
// output at hand), which ends with newline bytes (1 for \n, 0 at the end of
// the log), and starts the next one. The line's end tag is left out, as
// HTML allows: the next line's start, or the end of its block, ends it.
func (l *lineRenderer) line(raw []byte, newline int64) {
	size := int64(len(raw))
	if l.skipped > 0 {
		raw = wholeRunes(raw)
	}
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	l.out = append(l.out, "<p id=L"...)
	l.out = strconv.AppendInt(l.out, int64(l.next), 10)
	l.out = l.appendTime(l.out, l.pos)
	var command bool
	if l.out, command = appendLogCommand(l.out, raw); !command {
		l.out = appendTerminalHTML(append(l.out, '>'), raw)
	}
	if l.skipped > 0 {
		// An escape sequence cut short at the end needs nothing here:
		// the terminal waits for its end, so it shows nothing of it.
		l.out = fmt.Appendf(l.out, `<a class="%s" href="%s">line truncated — see raw log</a>`, lineCutClass, html.EscapeString(l.rawURL))
	}
	l.pos += size + l.skipped + newline
	l.pending, l.skipped = l.pending[:0], 0
	l.next++
}

// wholeRunes drops the end of p if it is a UTF-8 sequence cut short, so that
// a line cut at maxLineShown does not end in a replacement character.
func wholeRunes(p []byte) []byte {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				return p[:i]
			}
			break
		}
	}
	return p
}

// logBlock wraps the HTML of consecutive lines as one block of them, which
// kozmic.js numbers from its first line on. A page is a block of class
// log-page as well.
func logBlock(class, htmlLines string) string {
	return `<div class="` + class + `">` + htmlLines + `</div>`
}

// logLinesClass marks a block of log lines, of a page or of an event.
const logLinesClass = "log-lines"

// event wraps rendered lines as one server-sent event whose id resumes
// after them. Rendered lines hold no line break (see appendTerminalHTML),
// so they go out as one data line, written at once.
func (l *lineRenderer) event(htmlLines []byte) []byte {
	id := strconv.FormatInt(l.pos, 10) + ":" + strconv.Itoa(l.next)
	if bytes.IndexByte(htmlLines, '\n') >= 0 || bytes.IndexByte(htmlLines, '\r') >= 0 { // never, but a stray one must not start a field
		return []byte(sseMessage(id, "line", logBlock(logLinesClass, string(htmlLines))))
	}
	const head, tail = "event: line\ndata: <div class=\"" + logLinesClass + "\">", "</div>\n\n"
	b := make([]byte, 0, len("id: \n")+len(id)+len(head)+len(htmlLines)+len(tail))
	b = append(append(append(b, "id: "+id+"\n"+head...), htmlLines...), tail...)
	return b
}
