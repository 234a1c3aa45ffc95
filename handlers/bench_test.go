package handlers

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kozmic/gh"
)

// BenchmarkWebhookIngest sends signed push webhooks for distinct commits
// over HTTP on 127.0.0.1 through the real handler and store, from parallel
// clients, and reports webhooks/s and the 99th percentile latency.
func BenchmarkWebhookIngest(b *testing.B) {
	s := newTestServer(b)
	p, _ := webhookProjects(b, s.db)
	srv := httptest.NewServer(s)
	defer srv.Close()
	template := readFixture(b, "push_with-new-branch.json")
	const sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	url := fmt.Sprintf("%s/webhooks/%d", srv.URL, p.ID)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	var seq atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	b.SetParallelism(4) // 8 concurrent senders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			body := bytes.ReplaceAll(template, []byte(sha), fmt.Appendf(nil, "%040x", n))
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", "push")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", n))
			req.Header.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), body))
			start := time.Now()
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mine = append(mine, time.Since(start))
			if res.StatusCode != http.StatusCreated {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "webhooks/s")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
