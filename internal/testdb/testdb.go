// Package testdb opens a real Kozmic database in a test's temporary
// directory, migrated and closed when the test ends.
package testdb

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"kozmic/migrations"
	"kozmic/store"
)

// Key is the secret key test databases are sealed with.
var Key = []byte(strings.Repeat("k", 32))

// Open opens a new database for the test.
func Open(t testing.TB) *store.DB {
	t.Helper()
	return OpenAt(t, filepath.Join(t.TempDir(), "kozmic.db"))
}

// OpenAt opens the database at path for the test, creating it if needed.
func OpenAt(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path, store.Options{SecretKey: Key, Migrations: migrations.FS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
