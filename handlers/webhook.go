package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"kozmic/gh"
	"kozmic/store"
)

// maxWebhookBytes is the largest webhook body accepted; GitHub caps its
// payloads at 25 MiB.
const maxWebhookBytes = 25 << 20

// webhook receives a signed push or pull request event from GitHub, Gitea or
// Forgejo and creates the build it asks for, with one enqueued job per
// hook, in one transaction; nothing is written before the signature is
// verified. It answers 201 with a new build, 200 for a delivery or commit
// seen before or an event that builds nothing, 204 for events Kozmic
// ignores, 401 for a bad signature, 400 for a malformed body and 413 for one
// over 25 MiB. Each delivery is counted in the metrics by its result.
func (h *Handler) webhook(w http.ResponseWriter, r *http.Request) {
	result := h.receiveWebhook(w, r)
	if h.metrics != nil {
		h.metrics.Webhook(result)
	}
}

// receiveWebhook answers a webhook and returns its result for the metrics:
// one of metrics.WebhookResults.
func (h *Handler) receiveWebhook(w http.ResponseWriter, r *http.Request) (result string) {
	projectID, err := strconv.ParseInt(r.PathValue("projectID"), 10, 64)
	if err != nil {
		return h.webhookFailed(w, r, errNoSuchRoute)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return h.webhookFailed(w, r, errTooLarge)
		}
		return h.webhookFailed(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
	}
	secret, err := h.db.WebhookSecret(r.Context(), projectID)
	if err != nil {
		return h.webhookFailed(w, r, err)
	}
	if err := gh.VerifySignature([]byte(secret), r.Header.Get("X-Hub-Signature-256"), body); err != nil {
		return h.webhookFailed(w, r, errUnauthorized)
	}

	event := firstHeader(r, "X-GitHub-Event", "X-Gitea-Event", "X-Forgejo-Event")
	t, err := gh.ParseWebhook(event, body)
	switch {
	case errors.Is(err, gh.ErrUnhandledEvent):
		w.WriteHeader(http.StatusNoContent)
		return "ignored"
	case err != nil:
		return h.webhookFailed(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
	case !t.Build:
		writeJSON(w, http.StatusOK, map[string]string{"result": "no build: " + t.Reason})
		return "no_build"
	}

	b, jobs, err := h.db.CreateBuild(r.Context(), store.NewBuild{
		ProjectID: projectID, Ref: t.Ref, SHA: t.SHA, Author: t.Author, Message: t.Message,
		FromFork: t.FromFork, Payload: body, Event: event,
		DeliveryID: firstHeader(r, "X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery"),
	})
	switch {
	case errors.Is(err, store.ErrSeenDelivery):
		writeJSON(w, http.StatusOK, map[string]string{"result": "delivery seen before"})
		return "seen"
	case errors.Is(err, store.ErrNoHooks):
		writeJSON(w, http.StatusOK, map[string]string{"result": "no build: the project has no hooks"})
		return "no_hooks"
	case err != nil:
		return h.webhookFailed(w, r, err)
	case len(jobs) == 0:
		writeJSON(w, http.StatusOK, map[string]any{"result": "build exists", "build": b.Number})
		return "exists"
	default:
		h.jobs.Enqueued()
		writeJSON(w, http.StatusCreated, map[string]any{"result": "build created", "build": b.Number, "jobs": len(jobs)})
		return "created"
	}
}

// webhookFailed answers a webhook with fail and returns the result the
// failure is counted as.
func (h *Handler) webhookFailed(w http.ResponseWriter, r *http.Request, err error) string {
	h.fail(w, r, err)
	switch {
	case errors.Is(err, errNoSuchRoute), errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, errUnauthorized):
		return "unauthorized"
	case errors.Is(err, errTooLarge):
		return "too_large"
	case errors.Is(err, errBadRequest):
		return "malformed"
	default:
		return "error"
	}
}

// firstHeader returns the first of the named headers that is set: Gitea and
// Forgejo send their own names beside (or instead of) GitHub's.
func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := r.Header.Get(n); v != "" {
			return v
		}
	}
	return ""
}
