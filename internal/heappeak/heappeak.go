// Package heappeak gives benchmarks the peak of the Go heap while they run.
package heappeak

import (
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// Watch samples the Go heap's objects every 10 ms until the benchmark or
// test ends, and returns a function that reads the peak so far, in bytes.
func Watch(tb testing.TB) func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				metrics.Read(sample)
				if v := sample[0].Value.Uint64(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	tb.Cleanup(func() { close(stop) })
	return peak.Load
}
