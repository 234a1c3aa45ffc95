package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
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

// writeLog appends a log of roughly size bytes of build-like lines in
// chunks of varied sizes, some larger than a compressed segment, and returns it.
func writeLog(t testing.TB, db *DB, jobID int64, size int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	var all []byte
	for len(all) < size {
		var chunk []byte
		n := []int{1, 40, 4 << 10, 100 << 10, 300 << 10}[rng.IntN(5)]
		for len(chunk) < n {
			chunk = fmt.Appendf(chunk, "\x1b[32mstep %d\x1b[0m: compiling package-%d.go ... ok (%d ms)\r\n", len(all)+len(chunk), rng.IntN(500), rng.IntN(10000))
		}
		chunk = chunk[:min(len(chunk), n, size-len(all))]
		if _, err := db.AppendLog(context.Background(), jobID, chunk, false); err != nil {
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
			// At least max bytes unless the log ends, and exactly the log's bytes.
			if len(got) < min(max, len(rest)) || !bytes.Equal(got, rest[:len(got)]) {
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

func storedLogBytes(t testing.TB, db *DB, jobID int64) int {
	return count(t, db, `SELECT COALESCE(SUM(LENGTH(data)), 0) FROM job_log_chunks WHERE job_id = ?`, jobID)
}

func TestCompressLogKeepsBytesAndOffsets(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	all := writeLog(t, db, id, 3*logSegmentSize+12345, 1)
	if _, err := db.AppendLog(ctx, id, []byte("[log truncated]\r\n"), true); err != nil {
		t.Fatal(err)
	}
	all = append(all, "[log truncated]\r\n"...)
	checkReads(t, db, id, all)

	// Still running: its log may grow, so it stays as it is.
	if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: JobRunning}); err != nil {
		t.Fatal(err)
	}
	if err := db.CompressLog(ctx, id); !errors.Is(err, ErrConflict) {
		t.Fatalf("CompressLog of a running job: err = %v, want ErrConflict", err)
	}
	if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: JobFailure}); err != nil {
		t.Fatal(err)
	}
	plain := storedLogBytes(t, db, id)
	if err := db.CompressLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	li, err := db.LogInfoOf(ctx, id)
	if err != nil || li.Size != int64(len(all)) || !li.Truncated || !li.Compressed || !li.DeletedAt.IsZero() {
		t.Errorf("log info after compressing = %+v, %v; want size %d, truncated, compressed", li, err, len(all))
	}
	stored := storedLogBytes(t, db, id)
	if stored*4 > plain {
		t.Errorf("compressed log takes %d bytes of %d", stored, plain)
	}
	wantSegments := (len(all) + logSegmentSize - 1) / logSegmentSize
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_chunks WHERE job_id = ?`, id); n != wantSegments {
		t.Errorf("%d chunks after compressing, want %d segments", n, wantSegments)
	}
	checkReads(t, db, id, all)

	// Again: nothing changes.
	if err := db.CompressLog(ctx, id); err != nil || storedLogBytes(t, db, id) != stored {
		t.Errorf("second CompressLog: %v, stored %d bytes, want %d", err, storedLogBytes(t, db, id), stored)
	}
	// A compressed log is closed.
	if _, err := db.AppendLog(ctx, id, []byte("late"), false); !errors.Is(err, ErrConflict) {
		t.Errorf("AppendLog to a compressed log: err = %v, want ErrConflict", err)
	}
	checkReads(t, db, id, all)

	if err := db.CompressLog(ctx, 9999); !errors.Is(err, ErrNotFound) {
		t.Errorf("CompressLog of a missing job: err = %v, want ErrNotFound", err)
	}
	if err := db.CompressLog(ctx, jobs[1].ID); !errors.Is(err, ErrConflict) {
		t.Errorf("CompressLog of an enqueued job: err = %v, want ErrConflict", err)
	}
}

func TestCompressEmptyLogs(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	// jobs[0] never logged; jobs[1] has a log row but no bytes.
	if _, err := db.AppendLog(ctx, jobs[1].ID, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		finishJob(t, db, j.ID)
		if err := db.CompressLog(ctx, j.ID); err != nil {
			t.Fatalf("job %d: %v", j.ID, err)
		}
		if got, err := db.ReadLog(ctx, j.ID, 0, 100); err != nil || len(got) != 0 {
			t.Errorf("job %d: read %q, %v; want nothing", j.ID, got, err)
		}
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_logs`); n != 1 {
		t.Errorf("%d log rows, want 1: compressing a job without a log made one", n)
	}
	if li, _ := db.LogInfoOf(ctx, jobs[1].ID); !li.Compressed || li.Size != 0 {
		t.Errorf("empty log info = %+v, want compressed and empty", li)
	}
}

// Readers never see a half-swapped log: every read during compression
// returns the log's bytes.
func TestReadLogWhileCompressing(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	all := writeLog(t, db, id, 2*logSegmentSize+999, 2)
	finishJob(t, db, id)

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
	err := db.CompressLog(ctx, id)
	close(stop)
	wg.Wait()
	close(errs)
	if err != nil {
		t.Fatal(err)
	}
	for err := range errs {
		t.Error(err)
	}
	if li, _ := db.LogInfoOf(ctx, id); !li.Compressed {
		t.Error("log not compressed")
	}
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
		logs[j.ID] = writeLog(t, db, j.ID, 5000, uint64(i))
	}
	finishJob(t, db, jobs[0].ID)
	finishJob(t, db, jobs[1].ID)
	finishJob(t, db, more[0].ID)
	if _, err := db.UpdateJob(ctx, more[1].ID, JobUpdate{Status: JobRunning}); err != nil {
		t.Fatal(err)
	}
	if err := db.CompressLog(ctx, more[0].ID); err != nil {
		t.Fatal(err)
	}
	// Two finished logs were missed; the running one is not touched.
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
	finishedAt := func(at time.Time, compress bool) int64 {
		t.Helper()
		id := newJob()
		writeLog(t, db, id, 3000, uint64(id))
		setClock(db, at)
		finishJob(t, db, id)
		finishJob(t, db, second[len(second)-1])
		if compress {
			if err := db.CompressLog(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	// Deleted: finished before the cutoff, however recently, compressed or not.
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

// Under steady use (new jobs log, finish and are compressed; retention
// deletes old logs) the file stops growing: freed pages are reused.
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
				// Half the jobs were interrupted before compression: plain logs go too.
				writeLog(t, db, j.ID, logSize, uint64(j.ID))
				finishJob(t, db, j.ID)
				if j.ID%2 == 0 {
					if err := db.CompressLog(ctx, j.ID); err != nil {
						t.Fatal(err)
					}
				}
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

func BenchmarkReadLogCompressedEnd(b *testing.B) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(b)
	id := jobs[0].ID
	var chunk, all []byte
	for i := range 100_000 {
		chunk = fmt.Appendf(chunk, "\x1b[32m[%6d]\x1b[0m go test ./pkg/module%03d/... ok  \t%.3fs  coverage: %d.%d%% of statements\r\n",
			i, i%997, float64(i%5000)/1000, i%100, i%10)
		if len(chunk) >= 32<<10 || i == 99_999 {
			if _, err := db.AppendLog(ctx, id, chunk, false); err != nil {
				b.Fatal(err)
			}
			all = append(all, chunk...)
			chunk = chunk[:0]
		}
	}
	plain := storedLogBytes(b, db, id)
	finishJob(b, db, id)
	began := time.Now()
	if err := db.CompressLog(ctx, id); err != nil {
		b.Fatal(err)
	}
	compressing := time.Since(began)
	stored := storedLogBytes(b, db, id)
	from := int64(len(all) - 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		got, err := db.ReadLog(ctx, id, from, 64<<10)
		if err != nil || len(got) != 64<<10 {
			b.Fatalf("read %d bytes, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(plain)/float64(stored), "ratio")
	b.ReportMetric(float64(len(all))/(1<<20), "log-MiB")
	b.ReportMetric(float64(compressing.Milliseconds()), "compress-ms")
}

// For comparison with BenchmarkReadLogCompressedEnd: the same read of the log as written.
func BenchmarkReadLogPlainEnd(b *testing.B) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(b)
	id := jobs[0].ID
	var chunk []byte
	var size int64
	for i := range 100_000 {
		chunk = fmt.Appendf(chunk, "\x1b[32m[%6d]\x1b[0m go test ./pkg/module%03d/... ok  \t%.3fs  coverage: %d.%d%% of statements\r\n",
			i, i%997, float64(i%5000)/1000, i%100, i%10)
		if len(chunk) >= 32<<10 || i == 99_999 {
			var err error
			if size, err = db.AppendLog(ctx, id, chunk, false); err != nil {
				b.Fatal(err)
			}
			chunk = chunk[:0]
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got, err := db.ReadLog(ctx, id, size-64<<10, 64<<10); err != nil || len(got) < 64<<10 {
			b.Fatalf("read %d bytes, %v", len(got), err)
		}
	}
}
