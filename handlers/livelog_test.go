package handlers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"kozmic/store"
)

// lineChecker follows the lines of a job's log stream, event by event, and
// checks that they come in order from its first line on, with no gap and
// no repeat, the script's lines (liveLogScript) each showing what it
// printed; the runner's own lines around them may say anything.
type lineChecker struct {
	next  int // the line due
	start int // the number of the script's first line; 0 until seen
	lines int // how many numbered lines the script prints
}

// lineStart finds where each line of a stream's HTML starts.
var lineStart = regexp.MustCompile(`<p id=L(\d+)[^>]*>`)

// scriptStart is how liveLogScript's first line shows.
const scriptStart = `<span class="term-fg32">start</span>`

// check takes the data of a line event.
func (c *lineChecker) check(data string) error {
	const head, tail = `<div class="log-lines">`, `</div>`
	if !strings.HasPrefix(data, head) || !strings.HasSuffix(data, tail) {
		return fmt.Errorf("an event of lines is not a block of them: %.80q", data)
	}
	data = data[len(head) : len(data)-len(tail)]
	starts := lineStart.FindAllStringSubmatchIndex(data, -1)
	if len(starts) == 0 || starts[0][0] != 0 {
		return fmt.Errorf("an event without lines: %.80q", data)
	}
	for i, m := range starts {
		n, _ := strconv.Atoi(data[m[2]:m[3]])
		end := len(data)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		text := data[m[1]:end]
		if c.start == 0 && text == scriptStart {
			c.start = n
		}
		want := fmt.Sprintf("line %d of the log", n-c.start)
		if n != c.next || c.start != 0 && n > c.start && n <= c.start+c.lines && text != want {
			return fmt.Errorf("L%d (%.40q) where L%d (%q) was due", n, text, c.next, want)
		}
		c.next++
	}
	return nil
}

// follow reads a log stream to its end, checking its lines from line first
// on, and returns the id of each event and the line due after it.
func (c *lineChecker) follow(er *eventReader, onEvent func(id string, next int)) error {
	for {
		ev, ok := er.next()
		if !ok {
			return fmt.Errorf("the stream ended without an end event, at L%d", c.next)
		}
		if ev.event == "end" {
			if c.start == 0 {
				return fmt.Errorf("the script's first line never came, at L%d", c.next)
			}
			return nil
		}
		if ev.event == "section" { // a step's section opens: no lines
			continue
		}
		if err := c.check(ev.data); err != nil {
			return err
		}
		if onEvent != nil {
			onEvent(ev.id, c.next)
		}
	}
}

// liveLogScript prints a coloured line, then lines numbered 1 to
// bursts*size in bursts of size, pausing between bursts (for pause
// seconds) so that the log arrives over several of the runner's flushes.
func liveLogScript(bursts, size int, pause string) string {
	return fmt.Sprintf(`#!/bin/sh
printf '\033[32mstart\033[0m\n'
i=0
while [ $i -lt %d ]; do
  printf 'line %%s of the log\n' $(seq $((i*%[2]d+1)) $((i*%[2]d+%[2]d)))
  i=$((i+1))
  sleep %s
done
`, bursts, size, pause)
}

// openFrom opens the log stream at path as b, resuming after the event
// lastID unless it is "", and returns its reader.
func openFrom(t *testing.T, b *browser, path, lastID string) *eventReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // only keeps a broken stream from hanging
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", b.base+path, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := b.c.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("open the stream: %v %v", res, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return newEventReader(res.Body)
}

// Four live followers of a job cost about one rendering of its log: each
// chunk the runner stores is rendered once for all of them (before, each
// rendered all of it, four times the log in all). Each still sees every
// line once, in order, with no gap; so do a follower who joins in the
// middle of the job and one who resumes with Last-Event-ID, who render
// what they catch up from the store on their own.
func TestLiveFollowersShareOneRender(t *testing.T) {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run jobs on a Docker engine")
	}
	const bursts = 30
	srv, br, p, build, job := scriptJob(t, liveLogScript(bursts, 100, "0.1"))
	stream := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", p.ID, build.Number, job.ID)
	open := func(lastID string) *eventReader { return openFrom(t, br, stream, lastID) }
	type result struct {
		next int // the line due when the stream ended
		err  error
	}
	const followers = 4
	results := make(chan result, followers+2)
	type event struct {
		id          string
		next, start int
	}
	midway := make(chan event, 1) // an event past the middle of the log
	for i := range followers {
		er := open("")
		go func() {
			c := lineChecker{next: 1, lines: bursts * 100}
			err := c.follow(er, func(id string, next int) {
				if i == 0 && c.start > 0 && next > c.start+bursts*50 && next < c.start+bursts*90 {
					select {
					case midway <- event{id, next, c.start}:
					default:
					}
				}
			})
			results <- result{c.next, err}
		}()
	}
	srv.jobs.Enqueued()
	// In the middle of the job: one follower joins from the start, and one
	// resumes after an event of the first follower's.
	var mid event
	select {
	case mid = <-midway:
	case r := <-results:
		t.Fatalf("a follower stopped before the middle of the log: %v, at L%d\n%s", r.err, r.next, srv.logs)
	}
	for _, join := range []struct {
		lastID       string
		first, start int
	}{{"", 1, 0}, {mid.id, mid.next, mid.start}} {
		er := open(join.lastID)
		go func() {
			c := lineChecker{next: join.first, start: join.start, lines: bursts * 100}
			err := c.follow(er, nil)
			if err == nil && c.next == join.first {
				err = fmt.Errorf("no line after L%d", join.first)
			}
			results <- result{c.next, err}
		}()
	}
	ends := map[int]int{}
	for i := range followers + 2 {
		r := <-results
		if r.err != nil {
			t.Errorf("follower %d: %v", i, r.err)
		}
		ends[r.next]++
	}
	if len(ends) != 1 {
		t.Errorf("the streams ended before different lines: %v", ends)
	}
	finished, err := srv.db.JobByID(context.Background(), job.ID)
	info, _ := srv.db.LogInfoOf(context.Background(), job.ID)
	if err != nil || finished.Status != store.JobSuccess {
		t.Fatalf("job %s, %v\n%s", finished.Status, err, srv.logs)
	}
	_, body := scrape(t, srv.handler, "")
	rendered := mustSample(t, body, "kozmic_log_rendered_bytes_total")
	t.Logf("%v lines, %d bytes of log; %.0f bytes rendered for %d followers from the start and 2 in the middle", ends, info.Size, rendered, followers)
	if rendered < float64(info.Size) || rendered >= 2*float64(info.Size) {
		t.Errorf("%.0f bytes rendered for %d bytes of log, want one rendering and what two followers caught up on, less than twice the log", rendered, info.Size)
	}
}

// A live follower who stops reading while a job prints 24 MB falls behind,
// is dropped, and later resumes from the store and then with the others:
// it still sees every line once, in order, with no gap, as does a follower
// who kept reading.
func TestDroppedLiveFollowerSeesEveryLineOnce(t *testing.T) {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run jobs on a Docker engine")
	}
	const bursts, size = 100, 10000
	srv, br, p, build, job := scriptJob(t, liveLogScript(bursts, size, "0"))
	stream := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d/log/stream", p.ID, build.Number, job.ID)
	keen, idle := openFrom(t, br, stream, ""), openFrom(t, br, stream, "")
	srv.jobs.Enqueued()
	var c lineChecker
	c = lineChecker{next: 1, lines: bursts * size}
	if err := c.follow(keen, nil); err != nil {
		t.Fatalf("the follower who kept reading: %v", err)
	}
	if srv.jobs.Logs().Dropped() == 0 {
		t.Fatal("no follower was dropped: the test did not test falling behind")
	}
	slow := lineChecker{next: 1, lines: bursts * size}
	if err := slow.follow(idle, nil); err != nil || slow.next != c.next {
		t.Errorf("the dropped follower: %v, ended before L%d, the other before L%d", err, slow.next, c.next)
	}
}
