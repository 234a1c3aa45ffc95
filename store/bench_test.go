package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkCreateBuild creates builds (each with two hook calls and two jobs,
// in one transaction) from parallel goroutines and reports builds/s.
func BenchmarkCreateBuild(b *testing.B) {
	ctx := context.Background()
	db := newTestDB(b)
	f := newFixture(b, db, "acme/widget")
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			nb := NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: fmt.Sprintf("%040d", seq.Add(1)),
				Author: "bench", Message: "bench"}
			if _, jobs, err := db.CreateBuild(ctx, nb); err != nil || len(jobs) != 2 {
				b.Fatalf("CreateBuild: %d jobs, %v", len(jobs), err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "builds/s")
}
