// Package paths spells the URL paths of projects, builds and jobs, for the
// pages that link to them, GitHub's commit statuses and mail. It is a
// package of its own, importing nothing, because handlers, views, gh and
// mailer all need the same paths and may not import each other, and store
// keeps to data. The routes in handlers/routes.go must match.
package paths

import "strconv"

// Project is a project's page: /projects/7.
func Project(id int64) string { return "/projects/" + strconv.FormatInt(id, 10) }

// Build is the page of a project's build number n: /projects/7/builds/12.
func Build(projectID int64, n int) string { return Project(projectID) + "/builds/" + strconv.Itoa(n) }

// Job is the page of a job of build number n: /projects/7/builds/12/jobs/345.
func Job(projectID int64, n int, jobID int64) string {
	return Build(projectID, n) + "/jobs/" + strconv.FormatInt(jobID, 10)
}

// Webhook is where a project's git server posts its events: /webhooks/7.
func Webhook(projectID int64) string { return "/webhooks/" + strconv.FormatInt(projectID, 10) }
