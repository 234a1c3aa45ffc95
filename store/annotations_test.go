package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// beginLog stores a first line of job id's log, as the runner does before
// it records the line's annotations.
func beginLog(t testing.TB, db *DB, id int64) {
	t.Helper()
	if _, err := db.AppendLogFrames(context.Background(), id, NewLogEncoder().Encode([]byte("::error::x\n"), nil, false)); err != nil {
		t.Fatal(err)
	}
}

func TestAnnotationsKeepTheFirstThousandAndCountTheRest(t *testing.T) {
	ctx := context.Background()
	db, _, b, jobs := newBuildFixture(t)
	id := jobs[0].ID
	beginLog(t, db, id)
	levels := []AnnotationLevel{AnnotationError, AnnotationWarning, AnnotationNotice}
	// Batches of 300, as a runner's batches bring them: the fourth passes the limit.
	line := 0
	for range 4 {
		var notes []Annotation
		var seen AnnotationCounts
		for range 300 {
			line++
			a := Annotation{LogLine: line, Level: levels[line%3], File: "a.go", Line: line, Col: 2, Title: "t", Message: fmt.Sprint("m", line)}
			notes = append(notes, a)
			seen.Add(a.Level)
		}
		seen.Errors += 5 // found beyond what the runner kept
		if err := db.AddAnnotations(ctx, id, notes, seen); err != nil {
			t.Fatal(err)
		}
	}
	notes, c, err := db.Annotations(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != MaxAnnotations {
		t.Fatalf("kept %d annotations, want %d", len(notes), MaxAnnotations)
	}
	want := Annotation{LogLine: 1000, Level: levels[1000%3], File: "a.go", Line: 1000, Col: 2, Title: "t", Message: "m1000"}
	if notes[0].LogLine != 1 || notes[999] != want {
		t.Fatalf("first %+v, last %+v; want line 1 first and %+v last", notes[0], notes[999], want)
	}
	if wantC := (AnnotationCounts{Errors: 400 + 20, Warnings: 400, Notices: 400}); c != wantC {
		t.Fatalf("counts %+v, want %+v", c, wantC)
	}
	counts, err := db.BuildAnnotationCounts(ctx, b.ID)
	if err != nil || len(counts) != 1 || counts[id] != c {
		t.Fatalf("build counts %v, %v; want only job %d's %+v", counts, err, id, c)
	}
	// A job with none has none.
	if notes, c, err := db.Annotations(ctx, jobs[1].ID); err != nil || len(notes) != 0 || c.Total() != 0 {
		t.Fatalf("a job without annotations: %v, %+v, %v", notes, c, err)
	}
}

func TestAddAnnotationsRefusesAndKeepsNothingOfABadBatch(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	one := []Annotation{{LogLine: 1, Level: AnnotationError, Message: "m"}}
	if err := db.AddAnnotations(ctx, id, one, AnnotationCounts{Errors: 1}); !errors.Is(err, ErrConflict) {
		t.Fatalf("before the log began: %v, want ErrConflict", err)
	}
	beginLog(t, db, id)
	bad := []Annotation{{LogLine: 1, Level: AnnotationError, Message: "m"}, {LogLine: 2, Level: "fatal", Message: "m"}}
	if err := db.AddAnnotations(ctx, id, bad, AnnotationCounts{Errors: 2}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an unknown level: %v, want ErrInvalid", err)
	}
	if err := db.AddAnnotations(ctx, id, one, AnnotationCounts{Errors: 1}); err != nil {
		t.Fatal(err)
	}
	twice := append(one[:1:1], Annotation{LogLine: 1, Level: AnnotationNotice, Message: "again"})
	if err := db.AddAnnotations(ctx, id, twice[1:], AnnotationCounts{Notices: 1}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second annotation of one line: %v, want ErrConflict", err)
	}
	notes, c, err := db.Annotations(ctx, id)
	if err != nil || len(notes) != 1 || notes[0].Message != "m" || c != (AnnotationCounts{Errors: 1}) {
		t.Fatalf("after refused batches: %+v, %+v, %v; want the one error", notes, c, err)
	}
}

func TestAnnotationsGoWithTheLogJobAndProject(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	other := newFixture(t, db, "acme/other")
	annotated := func(p Project, sha string) (Build, []Job) {
		t.Helper()
		b, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: sha})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			beginLog(t, db, j.ID)
			if err := db.AddAnnotations(ctx, j.ID, []Annotation{{LogLine: 1, Level: AnnotationWarning, Message: "w"}}, AnnotationCounts{Warnings: 1}); err != nil {
				t.Fatal(err)
			}
		}
		return b, jobs
	}
	_, oldJobs := annotated(f.project, "old")
	annotated(f.project, "new")
	_, kept := annotated(other.project, "kept")

	// Retention deletes the log's annotations with its text; the counts stay.
	cutoff := time.Now().Add(time.Hour)
	setClock(db, cutoff.Add(-2*time.Hour))
	finishJob(t, db, oldJobs[0].ID)
	setClock(db, cutoff.Add(2*time.Hour))
	if _, err := db.DeleteLogsBefore(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	notes, c, err := db.Annotations(ctx, oldJobs[0].ID)
	if err != nil || len(notes) != 0 || c != (AnnotationCounts{Warnings: 1}) {
		t.Fatalf("after retention: %+v, %+v, %v; want no annotations, one warning counted", notes, c, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_annotations WHERE job_id = ?`, oldJobs[1].ID); n != 1 {
		t.Fatalf("a job whose log was kept has %d annotations, want 1", n)
	}

	if err := db.DeleteProject(ctx, f.project.ID); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT COUNT(*) FROM job_annotations`, `SELECT COUNT(*) FROM job_annotation_counts`} {
		if n := count(t, db, q); n != len(kept) {
			t.Errorf("%s after deleting a project = %d, want the other project's %d", q, n, len(kept))
		}
	}
}
