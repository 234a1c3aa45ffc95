package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"kozmic/internal/ansi"
)

// finishJob runs a job to success, stamped at the database clock.
func finishJob(t testing.TB, db *DB, id int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: JobRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: JobSuccess}); err != nil {
		t.Fatal(err)
	}
}

// logLines returns about n bytes of build-like lines, coloured.
func logLines(rng *rand.Rand, at, n int) []byte {
	var chunk []byte
	for len(chunk) < n {
		chunk = fmt.Appendf(chunk, "\x1b[32mstep %d\x1b[0m: compiling package-%d.go ... ok (%d ms)\r\n", at+len(chunk), rng.IntN(500), rng.IntN(10000))
	}
	return chunk[:n]
}

// writeLog stores a log of size bytes of build-like lines as a job's output
// is stored: through one LogEncoder, in batches of varied sizes, some
// larger than a segment. It returns the log.
func writeLog(t testing.TB, db *DB, jobID int64, size int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	e := NewLogEncoder()
	var all []byte
	for len(all) < size {
		n := []int{1, 40, 4 << 10, 100 << 10, 300 << 10}[rng.IntN(5)]
		chunk := logLines(rng, len(all), min(n, size-len(all)))
		if _, err := db.AppendLogFrames(context.Background(), jobID, e.Encode(chunk, nil, false)); err != nil {
			t.Fatal(err)
		}
		all = append(all, chunk...)
	}
	return all
}

// writePlainLog stores a log of size bytes as Kozmic stored a running job's
// log before version 15: plain chunks, not compressed. It returns the log.
func writePlainLog(t testing.TB, db *DB, jobID int64, size int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	var all []byte
	if _, err := db.write.Exec(`INSERT INTO job_logs (job_id, size, compressed, updated_at) VALUES (?, ?, 0, 0)`, jobID, size); err != nil {
		t.Fatal(err)
	}
	for len(all) < size {
		n := []int{1, 40, 4 << 10, 64 << 10}[rng.IntN(4)]
		chunk := logLines(rng, len(all), min(n, size-len(all)))
		if _, err := db.write.Exec(`INSERT INTO job_log_chunks (job_id, pos, data) VALUES (?, ?, ?)`, jobID, len(all), chunk); err != nil {
			t.Fatal(err)
		}
		all = append(all, chunk...)
	}
	return all
}

// checkReads reads the log from offsets around every segment boundary and
// in small pages, and compares with what was written.
func checkReads(t *testing.T, db *DB, jobID int64, all []byte) {
	t.Helper()
	ctx := context.Background()
	offsets := []int{0, 1, len(all) - 1, len(all), len(all) + 10}
	for b := logSegmentSize; b < len(all)+logSegmentSize; b += logSegmentSize {
		offsets = append(offsets, b-1, b, b+1)
	}
	for _, from := range offsets {
		for _, max := range []int{1, 100, logSegmentSize + 7, 1 << 30} {
			got, err := db.ReadLog(ctx, jobID, int64(from), max)
			if err != nil {
				t.Fatalf("ReadLog(%d, %d): %v", from, max, err)
			}
			rest := all[min(from, len(all)):]
			// max bytes unless the log ends, and exactly the log's bytes.
			if len(got) != min(max, len(rest)) || !bytes.Equal(got, rest[:len(got)]) {
				t.Fatalf("ReadLog(from %d, max %d) = %d bytes, not the log's %d bytes from there", from, max, len(got), len(rest))
			}
		}
	}
	var paged []byte
	for {
		page, err := db.ReadLog(ctx, jobID, int64(len(paged)), 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
	}
	if !bytes.Equal(paged, all) {
		t.Errorf("paged read: %d bytes differ from the %d written", len(paged), len(all))
	}
}

// storedLogBytes is what a job's log takes in the database, frames and
// plain chunks.
func storedLogBytes(t testing.TB, db *DB, jobID int64) int {
	return count(t, db, `SELECT (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM job_log_frames WHERE job_id = ?1)
		+ (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM job_log_chunks WHERE job_id = ?1)`, jobID)
}

// A log stored through an encoder reads back byte for byte from any offset,
// compressed, in segments of at most logSegmentSize bytes as written.
func TestLogFramesKeepBytesAndOffsets(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	all := writeLog(t, db, id, 3*logSegmentSize+12345, 1)
	wantSegments := (len(all)+logSegmentSize-1)/logSegmentSize + 1 // and the notice's
	if _, err := db.AppendLog(ctx, id, []byte("[log truncated]\r\n"), true); err != nil {
		t.Fatal(err)
	}
	all = append(all, "[log truncated]\r\n"...)
	checkReads(t, db, id, all)
	li, err := db.LogInfoOf(ctx, id)
	if err != nil || li.Size != int64(len(all)) || !li.Truncated || !li.Compressed || !li.DeletedAt.IsZero() {
		t.Errorf("log info = %+v, %v; want size %d, truncated, compressed", li, err, len(all))
	}
	if stored := storedLogBytes(t, db, id); stored*4 > len(all) {
		t.Errorf("the log takes %d bytes for %d", stored, len(all))
	}
	if n := count(t, db, `SELECT COUNT(DISTINCT seg) FROM job_log_frames WHERE job_id = ?`, id); n != wantSegments {
		t.Errorf("%d segments, want %d", n, wantSegments)
	}
	if n := count(t, db, `SELECT MAX(s) FROM (SELECT SUM(size) s FROM job_log_frames WHERE job_id = ? GROUP BY seg)`, id); n > logSegmentSize {
		t.Errorf("a segment holds %d bytes, more than %d", n, logSegmentSize)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_chunks`); n != 0 {
		t.Errorf("%d plain chunks stored", n)
	}
}

// Each frame is readable as soon as it is stored, before its segment ends,
// and frames that do not follow the stored log are refused whole.
func TestLogFramesAreReadableAsStored(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	rng := rand.New(rand.NewPCG(3, 3))
	e := NewLogEncoder()
	var all []byte
	for len(all) < logSegmentSize+50<<10 {
		chunk := logLines(rng, len(all), 1+rng.IntN(20<<10))
		if _, err := db.AppendLogFrames(ctx, id, e.Encode(chunk, nil, false)); err != nil {
			t.Fatal(err)
		}
		all = append(all, chunk...)
		got, err := db.ReadLog(ctx, id, 0, 1<<30)
		if err != nil || !bytes.Equal(got, all) {
			t.Fatalf("after %d bytes stored, ReadLog returned %d bytes (%v)", len(all), len(got), err)
		}
	}
	stale := NewLogEncoder().Encode([]byte("again\n"), nil, true)
	if _, err := db.AppendLogFrames(ctx, id, stale); !errors.Is(err, ErrConflict) {
		t.Errorf("frames from offset 0 onto %d bytes: err = %v, want ErrConflict", len(all), err)
	}
	if li, _ := db.LogInfoOf(ctx, id); li.Size != int64(len(all)) || li.Truncated {
		t.Errorf("after refused frames: %+v", li)
	}
	checkReads(t, db, id, all)
	if _, err := db.AppendLogFrames(ctx, 9999, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("frames of a missing job: err = %v, want ErrNotFound", err)
	}
}

// Frames that could not be stored leave no hole: the log goes on where
// they began, in a new deflate stream.
func TestLostLogFramesLeaveNoGap(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	e := NewLogEncoder()
	if _, err := db.AppendLogFrames(ctx, id, e.Encode([]byte("one\n"), nil, false)); err != nil {
		t.Fatal(err)
	}
	e.Lost(e.Encode([]byte("lost\n"), nil, false))
	if _, err := db.AppendLogFrames(ctx, id, e.Encode([]byte("two\n"), nil, false)); err != nil {
		t.Fatal(err)
	}
	if got, err := db.ReadLog(ctx, id, 0, 100); err != nil || string(got) != "one\ntwo\n" {
		t.Errorf("log = %q, %v; want one and two", got, err)
	}
}

func TestEmptyLogsReadEmpty(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	// jobs[0] never logged; jobs[1] has a log row but no bytes.
	if _, err := db.AppendLogFrames(ctx, jobs[1].ID, nil); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if got, err := db.ReadLog(ctx, j.ID, 0, 100); err != nil || len(got) != 0 {
			t.Errorf("job %d: read %q, %v; want nothing", j.ID, got, err)
		}
	}
	if li, _ := db.LogInfoOf(ctx, jobs[1].ID); !li.Compressed || li.Size != 0 {
		t.Errorf("empty log info = %+v, want compressed and empty", li)
	}
}

// Readers never see a half-converted log: every read while a plain log of
// before version 15 is converted returns the log's bytes.
func TestReadLogWhileConvertingAPlainLog(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	finishJob(t, db, id)
	all := writePlainLog(t, db, id, 2*logSegmentSize+999, 2)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from := (i*7919 + r*logSegmentSize) % len(all)
				got, err := db.ReadLog(ctx, id, int64(from), 1000)
				if err == nil && !bytes.Equal(got, all[from:from+len(got)]) || len(got) < min(1000, len(all)-from) {
					err = fmt.Errorf("ReadLog(%d) returned %d bytes that are not the log's", from, len(got))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	n, err := db.CompressFinishedLogs(ctx, 10)
	close(stop)
	wg.Wait()
	close(errs)
	if err != nil || n != 1 {
		t.Fatalf("CompressFinishedLogs = %d, %v; want 1", n, err)
	}
	for err := range errs {
		t.Error(err)
	}
	if li, _ := db.LogInfoOf(ctx, id); !li.Compressed {
		t.Error("log not converted")
	}
	checkReads(t, db, id, all)
}

func TestCompressFinishedLogs(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	_, more, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "def"})
	if err != nil {
		t.Fatal(err)
	}
	logs := map[int64][]byte{}
	for i, j := range append(jobs, more...) {
		if j.ID == more[0].ID {
			logs[j.ID] = writeLog(t, db, j.ID, 5000, uint64(i)) // stored in frames already
		} else {
			logs[j.ID] = writePlainLog(t, db, j.ID, 5000, uint64(i))
		}
	}
	finishJob(t, db, jobs[0].ID)
	finishJob(t, db, jobs[1].ID)
	finishJob(t, db, more[0].ID)
	if _, err := db.UpdateJob(ctx, more[1].ID, JobUpdate{Status: JobRunning}); err != nil {
		t.Fatal(err)
	}
	// Two finished plain logs; the running one is not touched.
	if n, err := db.CompressFinishedLogs(ctx, 1); err != nil || n != 1 {
		t.Fatalf("CompressFinishedLogs(limit 1) = %d, %v; want 1", n, err)
	}
	if n, err := db.CompressFinishedLogs(ctx, 10); err != nil || n != 1 {
		t.Fatalf("CompressFinishedLogs = %d, %v; want the 1 left", n, err)
	}
	if n, err := db.CompressFinishedLogs(ctx, 10); err != nil || n != 0 {
		t.Fatalf("CompressFinishedLogs with nothing left = %d, %v", n, err)
	}
	for id, want := range logs {
		li, _ := db.LogInfoOf(ctx, id)
		if li.Compressed != (id != more[1].ID) {
			t.Errorf("job %d: compressed = %v", id, li.Compressed)
		}
		if got, err := db.ReadLog(ctx, id, 0, 1<<20); err != nil || !bytes.Equal(got, want) {
			t.Errorf("job %d: log differs after compressing (%v)", id, err)
		}
	}
	// A plain log takes no frames: it would be a second copy.
	if _, err := db.AppendLog(ctx, more[1].ID, []byte("x"), false); !errors.Is(err, ErrConflict) {
		t.Errorf("AppendLog to a plain log: err = %v, want ErrConflict", err)
	}
}

// Each line reads back with the time of the write that brought its first
// byte, also where lines span writes, frames and segments.
func TestLogTimesAreEachLinesArrival(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	type write struct {
		text string
		at   time.Duration
	}
	long := strings.Repeat("x", logSegmentSize) // crosses into a second segment
	writes := []write{
		{"first line\nsecond ", 5 * time.Millisecond},
		{"half\nthird\n", 1500 * time.Millisecond},
		{"fourth " + long, 2 * time.Second},
		{"\nfifth\n", 61 * time.Minute},
		{"sixth\n", 61*time.Minute + 10*time.Millisecond},
	}
	want := []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 1500 * time.Millisecond,
		2 * time.Second, 61 * time.Minute, 61*time.Minute + 10*time.Millisecond}
	e := NewLogEncoder()
	var all []byte
	// Two batches, so that a frame begins in the middle of a write's output.
	for _, batch := range [][]write{writes[:2], writes[2:]} {
		var data []byte
		var marks []LogMark
		for _, w := range batch {
			marks = append(marks, LogMark{Offset: int64(len(all) + len(data)), At: w.at})
			data = append(data, w.text...)
		}
		if _, err := db.AppendLogFrames(ctx, id, e.Encode(data, marks, false)); err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	var starts []int64
	for i := range all {
		if i == 0 || all[i-1] == '\n' {
			starts = append(starts, int64(i))
		}
	}
	got, err := db.LogTimes(ctx, id, 0, len(all))
	if err != nil || len(got) != len(want) {
		t.Fatalf("LogTimes = %v, %v; want %d lines", got, err, len(want))
	}
	for i, lt := range got {
		if lt.Offset != starts[i] || lt.At != want[i] {
			t.Errorf("line %d: %+v, want offset %d at %v", i+1, lt, starts[i], want[i])
		}
	}
	// From the middle: only the lines that begin in the range, whichever
	// segment their time was marked in.
	fifth := starts[4]
	got, err = db.LogTimes(ctx, id, starts[3]+1, int(fifth-starts[3]))
	if err != nil || len(got) != 1 || got[0].Offset != fifth || got[0].At != want[4] {
		t.Errorf("LogTimes from inside the fourth line = %v, %v; want the fifth at %v", got, err, want[4])
	}
	// A log stored without times says so.
	if _, err := db.AppendLog(ctx, jobs[1].ID, []byte("a\nb\n"), false); err != nil {
		t.Fatal(err)
	}
	if got, err := db.LogTimes(ctx, jobs[1].ID, 0, 100); err != nil || len(got) != 2 || got[1] != (LineTime{2, NoTime}) {
		t.Errorf("LogTimes of a log without times = %v, %v", got, err)
	}
}

// Search reads the log segment by segment and finds lines whichever frames
// and segments they span.
func TestSearchLogFindsLinesAcrossFramesAndSegments(t *testing.T) {
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
	// lines of "ok\n" and one "oook\n", n bytes in all (n % 3 == 2).
	filler := func(n int) (string, int64) { return strings.Repeat("ok\n", n/3-1) + "oook\n", int64(n / 3) }
	first, firstLines := filler(2*logSegmentSize - len("one NEEDLE\n") - len("two nee"))
	second, secondLines := filler(logSegmentSize + 2)
	store("one NEEDLE\n" + first + "two nee") // the match ends a segment, and a frame;
	store("dle\n" + second)                   // its line goes on in the next
	store("three \x1b[1mne\x1b[0medle\n")     // and one is broken by escapes
	store("four needle")                      // the last, without a line end
	if n := count(t, db, `SELECT COUNT(DISTINCT seg) FROM job_log_frames WHERE job_id = ?`, id); n != 4 {
		t.Fatalf("%d segments, want 4", n)
	}
	wantLines := []int64{1, 2 + firstLines, 3 + firstLines + secondLines, 4 + firstLines + secondLines}
	wantOffsets := []int64{0, int64(len("one NEEDLE\n") + len(first))}
	wantOffsets = append(wantOffsets, wantOffsets[1]+int64(len("two needle\n")+len(second)))
	wantOffsets = append(wantOffsets, int64(bytes.LastIndex(all, []byte("four"))))
	found, err := db.SearchLog(ctx, id, ansi.Matcher("NeedLE"), 10)
	got := found.Matches
	if err != nil || len(got) != len(wantLines) {
		t.Fatalf("SearchLog = %v, %v; want lines %v", got, err, wantLines)
	}
	for i, m := range got {
		if m.Line != wantLines[i] || m.Offset != wantOffsets[i] {
			t.Errorf("match %d: %+v, want line %d at %d", i, m, wantLines[i], wantOffsets[i])
		}
	}
	if got, err := db.SearchLog(ctx, id, ansi.Matcher("needle"), 2); err != nil || len(got.Matches) != 2 || got.Matches[1].Line != wantLines[1] || got.Count != 4 {
		t.Errorf("SearchLog with limit 2 = %v, %v", got, err)
	}
	if got, err := db.SearchLog(ctx, id, ansi.Matcher("nowhere"), 2); err != nil || len(got.Matches) != 0 || got.Count != 0 {
		t.Errorf("SearchLog for what is not there = %v, %v", got, err)
	}
	if _, err := db.SearchLog(ctx, id, ansi.Matcher("needle"), 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("SearchLog with limit 0: err = %v, want ErrInvalid", err)
	}
}

// setClock makes the database's clock read t.
func setClock(db *DB, t time.Time) { db.now = func() time.Time { return t } }

func TestDeleteLogsBefore(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	cutoff := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	var all []int64
	// newJob makes a build and returns its first job; the second one never logs.
	var second []int64
	newJob := func() int64 {
		t.Helper()
		_, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: fmt.Sprint(len(all))})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, jobs[0].ID, jobs[1].ID)
		second = append(second, jobs[1].ID)
		return jobs[0].ID
	}
	// plain: stored before version 15 and not converted yet.
	finishedAt := func(at time.Time, plain bool) int64 {
		t.Helper()
		id := newJob()
		if plain {
			writePlainLog(t, db, id, 3000, uint64(id))
		} else {
			writeLog(t, db, id, 3000, uint64(id))
		}
		setClock(db, at)
		finishJob(t, db, id)
		finishJob(t, db, second[len(second)-1])
		return id
	}
	// Deleted: finished before the cutoff, however recently, in frames or plain.
	var old []int64
	for i := range 5 {
		old = append(old, finishedAt(cutoff.Add(-time.Duration(i+1)*24*time.Hour), i%2 == 0))
	}
	old = append(old, finishedAt(cutoff.Add(-time.Millisecond), true))
	// Kept: finished at or just after the cutoff, running, enqueued.
	atCutoff := finishedAt(cutoff, false)
	after := finishedAt(cutoff.Add(time.Millisecond), true)
	setClock(db, cutoff.Add(-100*24*time.Hour))
	running := newJob()
	writeLog(t, db, running, 3000, 7)
	if _, err := db.UpdateJob(ctx, running, JobUpdate{Status: JobRunning}); err != nil {
		t.Fatal(err)
	}
	enqueued := newJob()
	writeLog(t, db, enqueued, 3000, 8) // output before a worker took it cannot happen, but must not matter
	kept := []int64{atCutoff, after, running, enqueued}
	keptLogs := map[int64][]byte{}
	for _, id := range kept {
		keptLogs[id], _ = db.ReadLog(ctx, id, 0, 1<<20)
	}
	jobsBefore, buildsBefore := count(t, db, `SELECT COUNT(*) FROM jobs`), count(t, db, `SELECT COUNT(*) FROM builds`)

	deletedAt := cutoff.Add(90 * 24 * time.Hour)
	setClock(db, deletedAt)
	// Batches of 2 jobs: the 6 old logs and the 6 old jobs that never
	// logged take several transactions.
	n, err := db.deleteLogsBefore(ctx, cutoff, 2, 1<<20)
	if err != nil || n != len(old) {
		t.Fatalf("deleteLogsBefore = %d, %v; want %d", n, err, len(old))
	}
	for _, id := range old {
		li, err := db.LogInfoOf(ctx, id)
		if err != nil || li.Size != 0 || li.Compressed || !li.DeletedAt.Equal(deletedAt) {
			t.Errorf("old job %d: log info %+v, %v; want empty, deleted at %v", id, li, err, deletedAt)
		}
		if got, err := db.ReadLog(ctx, id, 0, 1<<20); err != nil || len(got) != 0 {
			t.Errorf("old job %d: read %d bytes, %v; want none", id, len(got), err)
		}
		if _, err := db.AppendLog(ctx, id, []byte("x"), false); !errors.Is(err, ErrConflict) {
			t.Errorf("old job %d: AppendLog to a deleted log: err = %v, want ErrConflict", id, err)
		}
	}
	// A job that never logged is marked too, so that later runs skip it.
	if li, _ := db.LogInfoOf(ctx, second[0]); !li.DeletedAt.Equal(deletedAt) {
		t.Errorf("old job without a log: info %+v, want deleted at %v", li, deletedAt)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM jobs WHERE log_deleted_at IS NOT NULL`); n != 2*len(old) {
		t.Errorf("%d jobs marked, want %d", n, 2*len(old))
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_chunks WHERE job_id NOT IN (SELECT job_id FROM job_logs)`); n != 0 {
		t.Errorf("%d chunks left without their log", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_frames WHERE job_id NOT IN (SELECT job_id FROM job_logs)`); n != 0 {
		t.Errorf("%d frames left without their log", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_logs`); n != len(kept) {
		t.Errorf("%d logs left, want the %d kept", n, len(kept))
	}
	for _, id := range kept {
		li, _ := db.LogInfoOf(ctx, id)
		got, err := db.ReadLog(ctx, id, 0, 1<<20)
		if err != nil || !bytes.Equal(got, keptLogs[id]) || len(got) == 0 || !li.DeletedAt.IsZero() {
			t.Errorf("kept job %d: %d bytes (want %d), info %+v, %v", id, len(got), len(keptLogs[id]), li, err)
		}
	}
	if j, b := count(t, db, `SELECT COUNT(*) FROM jobs`), count(t, db, `SELECT COUNT(*) FROM builds`); j != jobsBefore || b != buildsBefore {
		t.Errorf("jobs %d → %d, builds %d → %d; retention must keep them", jobsBefore, j, buildsBefore, b)
	}
	// Done once: a second run finds nothing.
	if n, err := db.DeleteLogsBefore(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second run = %d, %v; want 0", n, err)
	}
	// Once the others finish and age, they go too.
	setClock(db, cutoff.Add(time.Hour))
	if _, err := db.UpdateJob(ctx, running, JobUpdate{Status: JobSuccess}); err != nil {
		t.Fatal(err)
	}
	if n, err := db.DeleteLogsBefore(ctx, cutoff.Add(2*time.Hour)); err != nil || n != 3 {
		t.Errorf("later run = %d, %v; want the 3 finished since", n, err)
	}
}

// Retention gives the pages of the logs it deletes back to the file system:
// the file shrinks, in a new database as in a migrated one.
func TestRetentionShrinksTheFile(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	if n := count(t, db, `PRAGMA auto_vacuum`); n != 2 {
		t.Errorf("auto_vacuum = %d, want 2 (incremental)", n)
	}
	ids := []int64{jobs[0].ID, jobs[1].ID}
	for i := range 3 {
		_, more, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, more[0].ID, more[1].ID)
	}
	const perLog = 1 << 20
	rng := rand.New(rand.NewPCG(4, 4))
	for _, id := range ids {
		// Random bytes: they take their size compressed too.
		data := make([]byte, perLog)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if _, err := db.AppendLog(ctx, id, data, false); err != nil {
			t.Fatal(err)
		}
		finishJob(t, db, id)
	}
	fileSize := func() int64 {
		t.Helper()
		if _, err := db.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(db.path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := fileSize()
	if n, err := db.DeleteLogsBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != len(ids) {
		t.Fatalf("DeleteLogsBefore = %d, %v; want %d", n, err, len(ids))
	}
	if after := fileSize(); before-after < int64(len(ids))*perLog*9/10 {
		t.Errorf("the file went from %d to %d bytes after deleting %d bytes of logs", before, after, len(ids)*perLog)
	}
}

// Deleting a project deletes its logs and gives their pages back.
func TestDeletingAProjectGivesItsLogsPagesBack(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	data := make([]byte, 2<<20)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if _, err := db.AppendLog(ctx, jobs[0].ID, data, false); err != nil {
		t.Fatal(err)
	}
	pages := count(t, db, `PRAGMA page_count`)
	if err := db.DeleteProject(ctx, f.project.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `PRAGMA freelist_count`); n != 0 {
		t.Errorf("%d free pages left in the file", n)
	}
	if after := count(t, db, `PRAGMA page_count`); (pages-after)*count(t, db, `PRAGMA page_size`) < len(data) {
		t.Errorf("%d pages before deleting the project, %d after", pages, after)
	}
}

func TestDeleteLogsBeforeStopsWithContext(t *testing.T) {
	db, _, _, jobs := newBuildFixture(t)
	writeLog(t, db, jobs[0].ID, 100, 1)
	finishJob(t, db, jobs[0].ID)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := db.DeleteLogsBefore(ctx, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("canceled run = %d, %v", n, err)
	}
	if li, _ := db.LogInfoOf(context.Background(), jobs[0].ID); li.Size != 100 {
		t.Errorf("canceled run deleted the log: %+v", li)
	}
}

// Under steady use (new jobs log and finish; retention deletes old logs)
// the file stops growing: freed pages are reused or given back.
func TestRetentionKeepsDatabaseSizeSteady(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	pageCount := func() int { return count(t, db, `PRAGMA page_count`) }
	pageSize := count(t, db, `PRAGMA page_size`)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const (
		cycles   = 40
		perCycle = 4 // builds, of two jobs each
		logSize  = 200 << 10
		keep     = 3 * time.Hour // three cycles of logs live at a time
	)
	var settled, peak int
	for c := range cycles {
		now := start.Add(time.Duration(c) * time.Hour)
		setClock(db, now)
		for b := range perCycle {
			_, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main",
				SHA: fmt.Sprintf("%d-%d", c, b)})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				writeLog(t, db, j.ID, logSize, uint64(j.ID))
				finishJob(t, db, j.ID)
			}
		}
		if _, err := db.DeleteLogsBefore(ctx, now.Add(-keep)); err != nil {
			t.Fatal(err)
		}
		pages := pageCount()
		peak = max(peak, pages)
		if c == 9 {
			settled = pages
		}
		if c >= 9 && pages > settled+settled/20 {
			t.Fatalf("cycle %d: %d pages, %d after cycle 9: the database keeps growing", c, pages, settled)
		}
	}
	// Without page reuse the file would hold every cycle's logs.
	written := cycles * perCycle * 2 * logSize / pageSize
	if peak*4 > written {
		t.Errorf("peak %d pages for %d pages of logs written", peak, written)
	}
	t.Logf("page count settled at %d (peak %d) for %d pages of logs written", settled, peak, written)
}

// BenchmarkReadLogCompressedEnd reads the last 64 KiB of a 10 MB log, as
// a job page does, and reports how much smaller the log is stored.
func BenchmarkReadLogCompressedEnd(b *testing.B) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(b)
	id := jobs[0].ID
	e := NewLogEncoder()
	var chunk, all []byte
	for i := range 100_000 {
		chunk = fmt.Appendf(chunk, "\x1b[32m[%6d]\x1b[0m go test ./pkg/module%03d/... ok  \t%.3fs  coverage: %d.%d%% of statements\r\n",
			i, i%997, float64(i%5000)/1000, i%100, i%10)
		if len(chunk) >= 32<<10 || i == 99_999 {
			if _, err := db.AppendLogFrames(ctx, id, e.Encode(chunk, nil, false)); err != nil {
				b.Fatal(err)
			}
			all = append(all, chunk...)
			chunk = chunk[:0]
		}
	}
	stored := storedLogBytes(b, db, id)
	from := int64(len(all) - 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		got, err := db.ReadLog(ctx, id, from, 64<<10)
		if err != nil || len(got) != 64<<10 {
			b.Fatalf("read %d bytes, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(len(all))/float64(stored), "ratio")
	b.ReportMetric(float64(len(all))/(1<<20), "log-MiB")
}
