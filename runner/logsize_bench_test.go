package runner

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kozmic/store"
)

// BenchmarkStoredLogSize feeds 100 jobs each with 33 MiB of repetitive
// build output through jobLog (no Docker: the output goes straight to the
// job's log) with the size limit at 32 MiB, so that every log is truncated,
// and then measures the database file (checkpointed) against the bytes of
// the compressed log data in it. It reports db-bytes/compressed-bytes, the
// target's allowance (1.3× the compressed bytes plus 5 MB) over the file
// as headroom (above 1 meets the target), MB/s through jobLog until stored,
// and the bytes the process wrote to files per byte of log.
func BenchmarkStoredLogSize(b *testing.B) {
	const (
		logs   = 100
		max    = 32 << 20
		output = 33 << 20
	)
	var line []byte
	var piece bytes.Buffer
	for i := 0; piece.Len() < 32<<10; i++ {
		line = fmt.Appendf(line[:0], "\x1b[32m[%05d]\x1b[0m compiling kozmic/internal/package%d ... ok\r\n", i, i%37)
		piece.Write(line)
	}
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "k.db")
		db := openDB(b, path)
		ctx := context.Background()
		u, err := db.CreateLocalUser(ctx, "u", "x", false)
		if err != nil {
			b.Fatal(err)
		}
		p, err := db.CreateProject(ctx, store.NewProject{OwnerID: u.ID, Source: store.SourceGit, FullName: "a/b", GitURL: "/x", WebhookSecret: "s"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "t", DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
			b.Fatal(err)
		}
		var ids []int64
		for i := range logs {
			_, jobs, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "sha" + strconv.Itoa(i)})
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, jobs[0].ID)
		}
		written := processWrites(b)
		began := time.Now()
		for _, id := range ids {
			if _, err := db.UpdateJob(ctx, id, store.JobUpdate{Status: store.JobRunning}); err != nil {
				b.Fatal(err)
			}
			l := newJobLog(ctx, db, NewBroker(), id, max, nil, slog.New(slog.DiscardHandler))
			for n := 0; n < output; n += piece.Len() {
				l.Write(piece.Bytes())
			}
			l.Close()
			if _, err := db.UpdateJob(ctx, id, store.JobUpdate{Status: store.JobSuccess}); err != nil {
				b.Fatal(err)
			}
		}
		took := time.Since(began)
		wrote := processWrites(b) - written
		var total int64
		for _, id := range ids {
			li, err := db.LogInfoOf(ctx, id)
			if err != nil || !li.Truncated || li.Size < max {
				b.Fatalf("job %d: log info %+v, %v; want a truncated log of %d bytes", id, li, err, max)
			}
			total += li.Size
		}
		db.Close()
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := raw.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		var compressed int64
		if err := raw.QueryRow(compressedBytesQuery).Scan(&compressed); err != nil {
			b.Fatal(err)
		}
		raw.Close()
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/float64(compressed), "db-bytes/compressed-bytes")
		b.ReportMetric((1.3*float64(compressed)+5e6)/float64(fi.Size()), "headroom")
		b.ReportMetric(float64(fi.Size())/1e6, "db-MB")
		b.ReportMetric(float64(compressed)/1e6, "compressed-MB")
		b.ReportMetric(float64(total)/1e6/took.Seconds(), "MB/s")
		b.ReportMetric(float64(wrote)/float64(total), "written-bytes/log-byte")
	}
}

// processWrites returns the bytes this process has written to files so far
// (wchar of /proc/self/io), the database's and its WAL's alike.
func processWrites(b *testing.B) int64 {
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	for l := range strings.Lines(string(io)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no wchar in /proc/self/io")
	return 0
}

// compressedBytesQuery sums the stored bytes of the logs.
const compressedBytesQuery = `SELECT COALESCE(SUM(LENGTH(data)), 0) FROM job_log_frames`
