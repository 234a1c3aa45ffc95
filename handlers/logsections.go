package handlers

import (
	"bytes"
	"context"
	"strconv"
	"strings"

	"github.com/a-h/templ"

	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// liveSections splits a live log into the sections of its job's steps: it
// passes the log's lines on to the page as they come, and opens a step's
// section (a "section" event) when the log reaches where the step begins,
// so that the step's lines go into it; when a step ends, it sends its
// section's new head. The steps come from the runner with the log
// (runner.Chunk.Steps), ahead of the bytes they split.
type liveSections struct {
	steps  []store.JobStep
	opened int   // how many of steps have a section on the page; -1: not known yet (see learn)
	from   int64 // where the stream started
	at     int64 // how far the log was passed on
	shown  map[int]store.StepStatus
}

// newLiveSections follows a stream that starts at byte from of the log,
// after opened sections, or -1 when that is to be told from where the
// steps begin.
func newLiveSections(from int64, opened int) *liveSections {
	return &liveSections{opened: opened, from: from, at: from, shown: map[int]store.StepStatus{}}
}

// pass takes chunk c of the log, or of its steps, and sends the events it
// makes: lines (rendered by lines, once for all followers of a whole
// published chunk, see lineRenderer.streamChunk) and sections.
func (s *liveSections) pass(ctx context.Context, c runner.Chunk, lines *lineRenderer, send func([]byte) error, counted func(int)) error {
	if c.Steps != nil {
		return s.learn(ctx, c.Steps, lines, send)
	}
	end := c.Offset + int64(len(c.Data))
	for s.opened >= 0 && s.opened < len(s.steps) && s.steps[s.opened].Offset < end {
		// The runner begins a step on a line of its own, so the lines
		// before it are complete: they go into the section before.
		if cut := s.steps[s.opened].Offset - c.Offset; cut > 0 {
			if ev := lines.streamChunk(runner.Chunk{Offset: c.Offset, Data: c.Data[:cut]}, counted); ev != nil {
				if err := send(ev); err != nil {
					return err
				}
			}
			c = runner.Chunk{Offset: c.Offset + cut, Data: c.Data[cut:]}
		}
		s.at = c.Offset
		if err := send(s.open(ctx, lines)); err != nil {
			return err
		}
	}
	s.at = end
	if ev := lines.streamChunk(c, counted); ev != nil {
		return send(ev)
	}
	return nil
}

// learn takes the job's steps as they are now: it sends the new heads of
// open sections whose steps ended (marked to fold when they passed and a
// later step began), and opens the sections of steps that begin where the
// log was passed to.
func (s *liveSections) learn(ctx context.Context, steps []store.JobStep, lines *lineRenderer, send func([]byte) error) error {
	s.steps = steps
	if s.opened < 0 {
		// A stream resumed after lines: the steps that begin before them
		// have their sections, whose heads it sends again as they are.
		s.opened = 0
		for s.opened < len(steps) && steps[s.opened].Offset < s.from {
			s.opened++
		}
	}
	var ended []views.LogSection
	for i, st := range steps[:s.opened] {
		if shown, ok := s.shown[st.Seq]; !ok || shown != st.Status {
			sec := sectionOf(st)
			// The last step's section stays as it is: the reader was
			// following it, and no other takes its place.
			sec.Fold = shown == store.StepRunning && !sec.Open && i+1 < len(steps)
			s.shown[st.Seq] = st.Status
			ended = append(ended, sec)
		}
	}
	if len(ended) > 0 {
		if err := send(s.render(ctx, "", views.LogSectionHeads(ended))); err != nil {
			return err
		}
	}
	for s.opened < len(s.steps) && s.steps[s.opened].Offset <= s.at {
		if err := send(s.open(ctx, lines)); err != nil {
			return err
		}
	}
	return nil
}

// open is the event that opens the section of the next step, whose id
// resumes the stream after it (see parseStreamID).
func (s *liveSections) open(ctx context.Context, lines *lineRenderer) []byte {
	st := s.steps[s.opened]
	s.opened++
	s.shown[st.Seq] = st.Status
	id := strconv.FormatInt(lines.pos, 10) + ":" + strconv.Itoa(lines.next) + ":" + strconv.Itoa(s.opened)
	return s.render(ctx, id, views.LiveLogSection(sectionOf(st)))
}

// render is a "section" event of c.
func (s *liveSections) render(ctx context.Context, id string, c templ.Component) []byte {
	var b bytes.Buffer
	c.Render(ctx, &b)
	return []byte(sseMessage(id, "section", b.String()))
}

// parseStreamID reads a log stream's Last-Event-ID: "offset:line" after
// lines, "offset:line:sections" after a section opened, which tells how
// many sections the page has (-1 when the id does not).
func parseStreamID(id string) (int64, int, int) {
	opened := -1
	if base, n, ok := strings.Cut(id, ":"); ok {
		if l, sections, ok := strings.Cut(n, ":"); ok {
			k, err := strconv.Atoi(sections)
			if err != nil || k < 0 {
				return 0, 1, -1
			}
			id, opened = base+":"+l, k
		}
	}
	from, line := parseEventID(id)
	if strconv.FormatInt(from, 10)+":"+strconv.Itoa(line) != id {
		return 0, 1, -1 // not one of ours: from the start
	}
	return from, line, opened
}
