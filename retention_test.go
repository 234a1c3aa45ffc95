package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kozmic/store"
)

func TestKeepLogsSetting(t *testing.T) {
	day := 24 * time.Hour
	for v, want := range map[string]time.Duration{
		"":        90 * day, // the default
		"90d":     90 * day,
		"1d":      day,
		"720h":    720 * time.Hour,
		"36h30m":  36*time.Hour + 30*time.Minute,
		"0":       0,
		"forever": 0,
	} {
		c, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_KEEP_LOGS": v}), io.Discard)
		if err != nil || c.KeepLogs != want {
			t.Errorf("KOZMIC_KEEP_LOGS=%q: %v, %v; want %v", v, c.KeepLogs, err, want)
		}
	}
	if c, err := parseConfig("serve", []string{"-keep-logs", "7d"}, env(t, map[string]string{"KOZMIC_KEEP_LOGS": "30d"}), io.Discard); err != nil || c.KeepLogs != 7*day {
		t.Errorf("-keep-logs 7d: %v, %v", c.KeepLogs, err)
	}
	for _, v := range []string{"90", "-1d", "0d", "1.5d", "d", "90 d", "-5h", "0s", "never", "99999999999d"} {
		_, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_KEEP_LOGS": v}), io.Discard)
		ce, ok := err.(*ConfigError)
		if !ok || ce.Setting != "KOZMIC_KEEP_LOGS" || !strings.Contains(err.Error(), "forever") {
			t.Errorf("KOZMIC_KEEP_LOGS=%q: err = %v, want a *ConfigError for KOZMIC_KEEP_LOGS", v, err)
		}
	}
}

// One maintenance run deletes the logs of jobs finished longer ago than
// keep and converts the plain logs of before version 15 that are left, and
// says so in the log.
func TestMaintainLogsOnce(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "kozmic.db")
	db, p := serverLike(t, dbPath, strings.Repeat("k", 40))
	var ids []int64
	for _, sha := range []string{"a", "b"} {
		_, jobs, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: sha})
		if err != nil {
			t.Fatal(err)
		}
		id := jobs[0].ID
		// As Kozmic before version 15 left the log of a job interrupted by a stop.
		raw, err := sql.Open("sqlite", dbPath)
		if err != nil {
			t.Fatal(err)
		}
		_, err = raw.Exec(`INSERT INTO job_logs (job_id, size, compressed, updated_at) VALUES (?, 7000, 0, 0)`, id)
		if err == nil {
			_, err = raw.Exec(`INSERT INTO job_log_chunks (job_id, pos, data) VALUES (?, 0, ?)`, id, bytes.Repeat([]byte("output\n"), 1000))
		}
		raw.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []store.JobStatus{store.JobRunning, store.JobSuccess} {
			if _, err := db.UpdateJob(ctx, id, store.JobUpdate{Status: s}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, id)
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))

	// Keeping forever: nothing deleted, the plain logs compressed.
	maintainLogsOnce(ctx, db, 0, time.Now().Add(1000*24*time.Hour), log)
	for _, id := range ids {
		if li, _ := db.LogInfoOf(ctx, id); !li.Compressed || li.Size != 7000 {
			t.Errorf("job %d after a run keeping logs forever: %+v, want compressed, 7000 bytes", id, li)
		}
	}
	if !strings.Contains(out.String(), "msg=\"compressed logs of finished jobs\" count=2") || strings.Contains(out.String(), "deleted") {
		t.Errorf("log:\n%s", out.String())
	}
	out.Reset()
	// A day later, keeping logs for an hour: both go, the jobs stay.
	maintainLogsOnce(ctx, db, time.Hour, time.Now().Add(24*time.Hour), log)
	for _, id := range ids {
		li, err := db.LogInfoOf(ctx, id)
		if err != nil || li.Size != 0 || li.DeletedAt.IsZero() {
			t.Errorf("job %d after retention: %+v, %v; want deleted", id, li, err)
		}
	}
	if !strings.Contains(out.String(), "msg=\"deleted old logs\" count=2") {
		t.Errorf("log:\n%s", out.String())
	}
}
