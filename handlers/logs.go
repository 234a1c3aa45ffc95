package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/buildkite/terminal-to-html/v3"

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
// scrolls into view. A job still running keeps its unfinished last line for
// a later page.
func (h *Handler) logPage(w http.ResponseWriter, r *http.Request) {
	p, _, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	from, line := parseEventID(r.URL.Query().Get("at"))
	lines := newLineRenderer(p, b, j, from, line)
	var out strings.Builder
	read, eof := from, false
	for lines.next-line < logPageLines && out.Len() < logPageBytes {
		data, err := h.db.ReadLog(r.Context(), j.ID, read, logPageRead)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if len(data) == 0 {
			eof = true
			break
		}
		// A read returns a stored chunk whole: a step takes no more than a
		// page's read, so that the page ends near logPageBytes.
		data = upToLines(data[:min(len(data), logPageRead)], logPageLines-(lines.next-line))
		read += int64(len(data))
		out.WriteString(lines.write(data))
	}
	if eof && j.Status.Finished() {
		out.WriteString(lines.flush())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Each page is a block of its own, so that the browser can skip laying
	// out the pages that are off screen.
	io.WriteString(w, `<div class="log-page">`+out.String()+`</div>`)
	if !eof {
		next := fmt.Sprintf("%s/log?at=%d:%d", paths.Job(p.ID, b.Number, j.ID), lines.pos, lines.next)
		views.LogMore(next, "intersect once").Render(r.Context(), w)
	}
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
// reconnect with Last-Event-ID continues with no gap and no repeat. When the
// job ends a final "end" event carries its status. Every h.heartbeat a
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
	from, line := parseEventID(r.Header.Get("Last-Event-ID"))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)

	var mu sync.Mutex // the heartbeat and the log write to w in turn
	send := func(s string) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(": log of job " + strconv.FormatInt(j.ID, 10) + "\n\n"); err != nil {
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
				if send(": heartbeat\n\n") != nil {
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
	err = h.jobs.Follow(ctx, j.ID, from, func(c runner.Chunk) error {
		if out := lines.write(c.Data); out != "" {
			return send(lines.event(out))
		}
		return nil
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
		send(sseMessage("", "end", notice.String()))
		return
	case errors.Is(err, context.Canceled): // the viewer left
		return
	case err != nil:
		h.log.WarnContext(r.Context(), "log stream", "job", j.ID, "err", err)
		return
	}
	if out := lines.flush(); out != "" {
		if send(lines.event(out)) != nil {
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
	send(sseMessage("", "end", head.String()))
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
// of it, counting the rest.
type lineRenderer struct {
	pending []byte // the unfinished line's first bytes, at most maxLineShown
	skipped int64  // bytes of the unfinished line past maxLineShown
	next    int    // number of the next line
	pos     int64  // byte offset where the unfinished line starts
	rawURL  string // the raw log, which a cut line's marker links
}

// newLineRenderer renders job j's log from byte offset from, numbering
// lines from line on.
func newLineRenderer(p store.Project, b store.Build, j store.Job, from int64, line int) *lineRenderer {
	return &lineRenderer{next: line, pos: from, rawURL: paths.Job(p.ID, b.Number, j.ID) + "/log.txt"}
}

// write takes more output and returns the HTML of the lines it completed.
func (l *lineRenderer) write(p []byte) string {
	var b strings.Builder
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.hold(p)
			return b.String()
		}
		l.hold(p[:i])
		l.line(&b, 1)
		p = p[i+1:]
	}
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
	var b strings.Builder
	l.line(&b, 0)
	return b.String()
}

// line renders the unfinished line, which ends with newline bytes (1 for
// \n, 0 at the end of the log), and starts the next one.
func (l *lineRenderer) line(b *strings.Builder, newline int64) {
	raw := l.pending
	if l.skipped > 0 {
		raw = wholeRunes(raw)
	}
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	n := strconv.Itoa(l.next)
	fmt.Fprintf(b, `<div class="line" id="L%s"><a href="#L%s">%s</a><span>%s</span>`, n, n, n,
		strings.ReplaceAll(terminal.Render(raw), "\n", ""))
	if l.skipped > 0 {
		// An escape sequence cut short at the end needs nothing here:
		// terminal.Render waits for its end, so it shows nothing of it.
		fmt.Fprintf(b, `<a class="%s" href="%s">line truncated — see raw log</a>`, lineCutClass, html.EscapeString(l.rawURL))
	}
	b.WriteString(`</div>`)
	l.pos += int64(len(l.pending)) + l.skipped + newline
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

// event wraps rendered lines as one server-sent event whose id resumes after them.
func (l *lineRenderer) event(htmlLines string) string {
	return sseMessage(fmt.Sprintf("%d:%d", l.pos, l.next), "line", htmlLines)
}
