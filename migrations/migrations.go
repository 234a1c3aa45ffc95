// Package migrations holds Kozmic's goose SQL migrations, embedded in the binary.
// main hands FS to store.Open, which applies whatever is pending.
package migrations

import "embed"

// FS holds the numbered *.sql migrations.
//
//go:embed *.sql
var FS embed.FS
