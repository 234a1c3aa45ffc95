package handlers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"kozmic/store"
	"kozmic/views"
)

// BenchmarkDashboard renders the dashboard of a person with 50 projects,
// one of 100,000 builds and 49 of 200, each with its default branch's
// build and its strip of ten, and the now panel with two jobs running and
// five waiting; and the now panel's poll alone. Through the real handler,
// session and store; ms/page is the server's time per page.
func BenchmarkDashboard(b *testing.B) {
	s, br, big := benchProject(b)
	ctx := context.Background()
	projects := []store.Project{big}
	for i := range 49 {
		p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: int64(2000 + i),
			FullName: fmt.Sprintf("octocat/project-%02d", i), DefaultBranch: "main", WebhookSecret: "s"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
			b.Fatal(err)
		}
		projects = append(projects, p)
	}
	if err := s.db.SetDefaultBranch(ctx, big.ID, "main"); err != nil {
		b.Fatal(err)
	}
	// Builds on main and a branch, finished as they are made (an enqueued
	// job left behind would be one of a queue of 100,000).
	fill := func(p store.Project, n int) {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < n; i += 4 {
					ref := "refs/heads/main"
					if i%3 == 0 {
						ref = "refs/heads/feature"
					}
					_, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: ref, SHA: fmt.Sprintf("%040x", i), Author: "Ann", Message: "a change"})
					if err == nil && i%7 != 0 {
						_, err = s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
					}
					if err == nil {
						st := store.JobSuccess
						if i%7 == 0 {
							st = store.JobError // canceled while it waited
						} else if i%5 == 0 {
							st = store.JobFailure
						}
						_, err = s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: st})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	fill(big, 100_000)
	for _, p := range projects[1:] {
		fill(p, 200)
	}
	// Now: two running, five waiting, in five projects.
	for i := range 7 {
		_, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: projects[i%5].ID, Ref: "refs/heads/main", SHA: fmt.Sprintf("now%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		if i < 2 {
			s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
		}
	}

	b.Run("page", func(b *testing.B) {
		for b.Loop() {
			res, page := br.do("GET", "/", nil)
			if res.StatusCode != 200 || strings.Count(page, `class="strip"`) != 50 || strings.Count(page, "in the queue") != 5 {
				b.Fatalf("status %d, %d strips", res.StatusCode, strings.Count(page, `class="strip"`))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
	})
	b.Run("now-poll", func(b *testing.B) {
		br.header.Set("HX-Request", "true")
		defer br.header.Del("HX-Request")
		for b.Loop() {
			res, page := br.do("GET", "/now", nil)
			if res.StatusCode != 200 || !strings.Contains(page, `id="`+views.NowID+`"`) || strings.Count(page, "in the queue") != 5 {
				b.Fatalf("status %d", res.StatusCode)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
	})
}
