package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"kozmic/internal/ansi"
)

// timedLog stores writes (text, arrival) as the runner does, in two
// batches so that a frame begins inside a write, with one write longer than
// a segment, and returns the log.
func timedLog(t *testing.T, db *DB, id int64) ([]byte, []LogMark) {
	t.Helper()
	type write struct {
		text string
		at   time.Duration
	}
	writes := []write{
		{"first\nsecond ", 5 * time.Millisecond},
		{"half\nthird\n", 1500 * time.Millisecond},
		{"fourth " + strings.Repeat("x", logSegmentSize) + "\nfifth\n", 2 * time.Second},
		{"sixth\n", 61 * time.Minute},
	}
	e := NewLogEncoder()
	var all []byte
	var marks []LogMark
	for _, batch := range [][]write{writes[:2], writes[2:]} {
		var data []byte
		var bm []LogMark
		for _, w := range batch {
			bm = append(bm, LogMark{Offset: int64(len(all) + len(data)), At: w.at})
			data = append(data, w.text...)
		}
		if _, err := db.AppendLogFrames(context.Background(), id, e.Encode(data, bm, false)); err != nil {
			t.Fatal(err)
		}
		all, marks = append(all, data...), append(marks, bm...)
	}
	return all, marks
}

// A read with marks gets the time in force at its first byte, moved there,
// and each later change within what it read, whichever segment it starts in.
func TestReadLogMarksGivesTheTimeInForceAndEachChange(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	all, marks := timedLog(t, db, jobs[0].ID)
	// Every read, from the start, inside each write and across segments.
	for _, from := range []int64{0, 3, marks[1].Offset, marks[1].Offset + 2, marks[2].Offset + 10, logSegmentSize + 3, marks[3].Offset} {
		for _, n := range []int{1, 20, logSegmentSize, 1 << 30} {
			data, got, err := db.ReadLogMarks(ctx, jobs[0].ID, from, n)
			if err != nil || !bytes.Equal(data, all[from:min(int(from)+n, len(all))]) {
				t.Fatalf("ReadLogMarks(%d, %d): %d bytes, %v", from, n, len(data), err)
			}
			var want []LogMark
			for i, m := range marks {
				end := int64(len(all))
				if i+1 < len(marks) {
					end = marks[i+1].Offset
				}
				switch {
				case m.Offset <= from && from < end:
					want = append(want, LogMark{from, m.At})
				case m.Offset > from && m.Offset < from+int64(len(data)):
					want = append(want, m)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("ReadLogMarks(%d, %d) marks = %v, want %v", from, n, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("ReadLogMarks(%d, %d) marks = %v, want %v", from, n, got, want)
					break
				}
			}
		}
	}
	// A log without times reads without marks.
	if _, err := db.AppendLog(ctx, jobs[1].ID, []byte("a\nb\n"), false); err != nil {
		t.Fatal(err)
	}
	if data, got, err := db.ReadLogMarks(ctx, jobs[1].ID, 1, 10); err != nil || string(data) != "\nb\n" || got != nil {
		t.Errorf("ReadLogMarks of a log without times = %q, %v, %v", data, got, err)
	}
}

// LineStart finds a line wherever it starts: the first, one after a line
// end that closes a segment, one inside a segment after a line longer than
// a segment, the last without a line end; none past the end.
func TestLineStartFindsEveryLineAndNoneBeyond(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	e := NewLogEncoder()
	var all []byte
	store := func(s string) {
		if _, err := db.AppendLogFrames(ctx, id, e.Encode([]byte(s), nil, false)); err != nil {
			t.Fatal(err)
		}
		all = append(all, s...)
	}
	// The first segment ends right after a line end.
	store(strings.Repeat("abc\n", logSegmentSize/4))
	store("next\n" + strings.Repeat("y", 2*logSegmentSize) + "\nlast")
	starts := []int64{0}
	for i, c := range all {
		if c == '\n' && i+1 < len(all) {
			starts = append(starts, int64(i+1))
		}
	}
	for _, n := range []int{1, 2, logSegmentSize / 4, logSegmentSize/4 + 1, logSegmentSize/4 + 2, len(starts)} {
		got, err := db.LineStart(ctx, id, int64(n))
		if err != nil || got != starts[n-1] {
			t.Errorf("LineStart(%d) = %d, %v; want %d", n, got, err, starts[n-1])
		}
	}
	if _, err := db.LineStart(ctx, id, int64(len(starts)+1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("LineStart past the last line: err = %v, want ErrNotFound", err)
	}
	if _, err := db.LineStart(ctx, id, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("LineStart(0): err = %v, want ErrInvalid", err)
	}
	// A log that ends with a line end has no line after it.
	if _, err := db.AppendLog(ctx, jobs[1].ID, []byte("a\nb\n"), false); err != nil {
		t.Fatal(err)
	}
	if got, err := db.LineStart(ctx, jobs[1].ID, 2); err != nil || got != 2 {
		t.Errorf("LineStart(2) of a\\nb\\n = %d, %v", got, err)
	}
	if _, err := db.LineStart(ctx, jobs[1].ID, 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("LineStart(3) of a\\nb\\n: err = %v, want ErrNotFound", err)
	}
}

// A search counts every match beyond the ones it returns, and one cut short
// by its context says how far it got, keeping what it found.
func TestSearchLogCountsAllAndStopsWithItsContext(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	all := writeLog(t, db, id, 3*logSegmentSize, 7)
	lines := int64(bytes.Count(all, []byte("\n")))
	if all[len(all)-1] != '\n' {
		lines++
	}
	want := 0
	for l := range bytes.SplitSeq(all, []byte("\n")) {
		if bytes.Contains(l, []byte("STEP 1")) || bytes.Contains(bytes.ToLower(l), []byte("step 1")) {
			want++
		}
	}
	got, err := db.SearchLog(ctx, id, ansi.Matcher("STEP 1"), 3)
	if err != nil || got.Count != want || len(got.Matches) != 3 || got.Lines != lines {
		t.Fatalf("SearchLog = %d matches of %d in %d lines, %v; want 3 of %d in %d", len(got.Matches), got.Count, got.Lines, err, want, lines)
	}
	// Canceled after the first segment: what the first held, and the error.
	cut, cancel := context.WithCancel(ctx)
	seen := 0
	got, err = db.SearchLog(cut, id, func(line []byte) bool {
		if seen++; seen == 10 {
			cancel()
		}
		return true
	}, 1_000_000)
	if !errors.Is(err, context.Canceled) || got.Lines == 0 || got.Lines >= lines || got.Count != int(got.Lines) {
		t.Errorf("SearchLog canceled: %d matches in %d of %d lines, err %v", got.Count, got.Lines, lines, err)
	}
}

// linesOf returns where each line of log begins.
func linesOf(log []byte) []int64 {
	starts := []int64{0}
	for i, c := range log {
		if c == '\n' && i+1 < len(log) {
			starts = append(starts, int64(i+1))
		}
	}
	return starts
}

// A line is found from the stored count of line ends before its segment:
// the segments before it are not read (here, the first cannot be), and
// retention deletes the counts with the log.
func TestLineStartReadsOnlyFromTheSegmentItsCountIsStoredFor(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	all := writeLog(t, db, id, 5*logSegmentSize, 11)
	starts := linesOf(all)
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_lines WHERE job_id = ?`, id); n != 5 {
		t.Fatalf("%d line counts stored, want one for each of 5 segments", n)
	}
	for _, n := range []int{1, 2, len(starts) / 3, len(starts) / 2, len(starts) - 1, len(starts)} {
		if got, err := db.LineStart(ctx, id, int64(n)); err != nil || got != starts[n-1] {
			t.Errorf("LineStart(%d) = %d, %v; want %d", n, got, err, starts[n-1])
		}
	}
	// Every line that begins in a segment's first bytes, where the count
	// is right at the edge.
	for seg := int64(logSegmentSize); seg < int64(len(all)); seg += logSegmentSize {
		for n, s := range starts {
			if s >= seg-100 && s <= seg+100 {
				if got, err := db.LineStart(ctx, id, int64(n+1)); err != nil || got != s {
					t.Errorf("LineStart(%d) near segment %d = %d, %v; want %d", n+1, seg, got, err, s)
				}
			}
		}
	}
	if _, err := db.write.Exec(`UPDATE job_log_frames SET data = x'ff' WHERE job_id = ? AND pos = 0`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.LineStart(ctx, id, 2); err == nil {
		t.Fatal("the first segment still reads: the test would prove nothing")
	}
	last := len(starts)
	if got, err := db.LineStart(ctx, id, int64(last)); err != nil || got != starts[last-1] {
		t.Errorf("LineStart(%d) past a broken first segment = %d, %v; want %d", last, got, err, starts[last-1])
	}
	finishJob(t, db, id)
	if _, err := db.DeleteLogsBefore(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_lines WHERE job_id = ?`, id); n != 0 {
		t.Errorf("%d line counts left after the log was deleted", n)
	}
}

// Frames that were not stored take their lines back from the count: the
// log goes on from where they began, its segments counted right.
func TestLineCountsLeaveOutLostFrames(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	e := NewLogEncoder()
	stored := []byte(strings.Repeat("kept line\n", logSegmentSize/10+100))
	if _, err := db.AppendLogFrames(ctx, id, e.Encode(stored, nil, false)); err != nil {
		t.Fatal(err)
	}
	e.Lost(e.Encode([]byte(strings.Repeat("lost\n", 100)), nil, false))
	more := []byte(strings.Repeat("later line\n", logSegmentSize/11*2))
	if _, err := db.AppendLogFrames(ctx, id, e.Encode(more, nil, false)); err != nil {
		t.Fatal(err)
	}
	all := append(stored, more...)
	starts := linesOf(all)
	for _, n := range []int{len(starts) - 1, len(starts)} {
		if got, err := db.LineStart(ctx, id, int64(n)); err != nil || got != starts[n-1] {
			t.Errorf("LineStart(%d) = %d, %v; want %d", n, got, err, starts[n-1])
		}
	}
}
