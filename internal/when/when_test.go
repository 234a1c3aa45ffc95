package when

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", 45 * time.Second: "45s", 63 * time.Second: "1m03s",
		time.Hour + 5*time.Minute + 30*time.Second: "1h05m"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{10 * time.Second: "just now", time.Minute: "1 minute ago",
		5 * time.Minute: "5 minutes ago", 3 * time.Hour: "3 hours ago", 49 * time.Hour: "2 days ago", 40 * 24 * time.Hour: "12 Oct 2026"} {
		if got := Ago(now.Add(-d), now); got != want {
			t.Errorf("Ago(-%s) = %s, want %s", d, got, want)
		}
	}
}
