package store

import (
	"context"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"kozmic/migrations"
)

// Migration 00013 starts a project from before it at the branch of its
// newest trusted branch build, so its badge keeps showing a branch (not
// "unknown", and never a pull request) until a webhook tells the real one.
func TestDefaultBranchMigrationStartsFromTheNewestTrustedBranchBuild(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	built := newFixture(t, db, "acme/widget")
	never := newFixture(t, db, "acme/unbuilt")
	for i, nb := range []NewBuild{
		{Ref: "refs/heads/main"},
		{Ref: "refs/heads/release"},
		{Ref: "refs/heads/main", FromFork: true, ForkRepo: "mallory/widget", ForkRepoID: 7},
		{Ref: "refs/pull/3/head"},
	} {
		nb.ProjectID, nb.SHA = built.project.ID, strings.Repeat(string(rune('a'+i)), 40)
		if _, _, err := db.CreateBuild(ctx, nb); err != nil {
			t.Fatal(err)
		}
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		f    fixture
		want string
	}{{built, "release"}, {never, ""}} {
		got, err := db.ProjectByID(ctx, tt.f.project.ID)
		if err != nil || got.DefaultBranch != tt.want {
			t.Errorf("%s after the migration: default branch %q, %v; want %q", tt.f.project.FullName, got.DefaultBranch, err, tt.want)
		}
	}
}
