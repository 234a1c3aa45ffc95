package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"kozmic/migrations"

	"github.com/pressly/goose/v3"
)

// Migration 00011 tells the builds from before it apart by how they were
// started: those of a pull request's ref were pull requests, those whose
// message is the old "Run by <author>" were run by hand (and that text is no
// longer their commit's author and message), all others pushes.
func TestTriggerMigrationTellsOldManualBuildsFromTheirCommits(t *testing.T) {
	ctx := context.Background()
	// The fixture is made at the latest version (its methods write today's
	// columns); the database then goes back to before 00011 for the builds.
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	ann, err := db.CreateLocalUser(ctx, "ann", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	for i, b := range []struct{ ref, author, message string }{
		{"refs/heads/main", "ann", "Run by ann"},                 // 1: run by hand
		{"refs/heads/main", "Mira Okafor", "Add the parser"},     // 2: a push
		{"refs/pull/12/head", "mira-okafor", "Read tide tables"}, // 3: a pull request
		{"refs/heads/dev", "Ben", "Run by ann"},                  // 4: a push whose message only looks like it
		{"refs/heads/old", "gone", "Run by gone"},                // 5: run by hand by a user since deleted
	} {
		if _, err := db.write.ExecContext(ctx, `INSERT INTO builds (project_id, number, ref, sha, author, message, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 0)`, f.project.ID, i+1, b.ref, strings.Repeat(string(rune('a'+i)), 40), b.author, b.message); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		n               int
		author, message string
		trigger         Trigger
	}{
		{1, "", "", Trigger{Kind: TriggerManual, User: "ann", UserID: ann.ID}},
		{2, "Mira Okafor", "Add the parser", Trigger{Kind: TriggerPush}},
		{3, "mira-okafor", "Read tide tables", Trigger{Kind: TriggerPullRequest, PR: 12, User: "mira-okafor"}},
		{4, "Ben", "Run by ann", Trigger{Kind: TriggerPush}},
		{5, "", "", Trigger{Kind: TriggerManual, User: "gone"}},
	} {
		b, err := db.BuildByNumber(ctx, f.project.ID, want.n)
		if err != nil || b.Author != want.author || b.Message != want.message || b.Trigger != want.trigger {
			t.Errorf("build %d = %q, %q, %+v, %v; want %q, %q, %+v", want.n, b.Author, b.Message, b.Trigger, err, want.author, want.message, want.trigger)
		}
	}
}

// A build records how it was started; a trigger that makes no sense is
// refused, and the commit read later fills only a build that lacks one.
func TestBuildKeepsItsTriggerApartFromItsCommit(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	sha := strings.Repeat("a", 40)
	for _, tr := range []Trigger{{Kind: "cron"}, {Kind: TriggerPullRequest}, {Kind: TriggerPush, PR: 3}, {Kind: TriggerManual, User: strings.Repeat("x", MaxTriggerUser+1)}} {
		if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: sha, Trigger: tr}); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateBuild with trigger %+v: %v, want ErrInvalid", tr, err)
		}
	}
	manual := Trigger{Kind: TriggerManual, User: f.owner.Login(), UserID: f.owner.ID}
	b, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: sha, Trigger: manual})
	if err != nil || b.Trigger != manual || b.Author != "" || b.Message != "" {
		t.Fatalf("manual build = %+v, %v", b, err)
	}
	if err := db.SetBuildCommit(ctx, b.ID, "Ann Lee", "Fix the parser"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetBuildCommit(ctx, b.ID, "Someone Else", "Not this"); err != nil {
		t.Fatal(err)
	}
	if b, err = db.BuildByID(ctx, b.ID); err != nil || b.Author != "Ann Lee" || b.Message != "Fix the parser" || b.Trigger != manual {
		t.Errorf("after SetBuildCommit: %+v, %v; want the first commit's author and subject, the trigger kept", b, err)
	}
	if err := db.SetBuildCommit(ctx, b.ID+100, "a", "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetBuildCommit of a missing build: %v, want ErrNotFound", err)
	}
}
