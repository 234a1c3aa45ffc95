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
// over 25 MiB.
func (h *Handler) webhook(w http.ResponseWriter, r *http.Request) {
	projectID, err := strconv.ParseInt(r.PathValue("projectID"), 10, 64)
	if err != nil {
		h.fail(w, r, errNoSuchRoute)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.fail(w, r, errTooLarge)
		} else {
			h.fail(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
		}
		return
	}
	secret, err := h.db.WebhookSecret(r.Context(), projectID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := gh.VerifySignature([]byte(secret), r.Header.Get("X-Hub-Signature-256"), body); err != nil {
		h.fail(w, r, errUnauthorized)
		return
	}

	event := firstHeader(r, "X-GitHub-Event", "X-Gitea-Event", "X-Forgejo-Event")
	t, err := gh.ParseWebhook(event, body)
	switch {
	case errors.Is(err, gh.ErrUnhandledEvent):
		w.WriteHeader(http.StatusNoContent)
		return
	case err != nil:
		h.fail(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	case !t.Build:
		writeJSON(w, http.StatusOK, map[string]string{"result": "no build: " + t.Reason})
		return
	}

	b, jobs, err := h.db.CreateBuild(r.Context(), store.NewBuild{
		ProjectID: projectID, Ref: t.Ref, SHA: t.SHA, Author: t.Author, Message: t.Message,
		FromFork: t.FromFork, Payload: body, Event: event,
		DeliveryID: firstHeader(r, "X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery"),
	})
	switch {
	case errors.Is(err, store.ErrSeenDelivery):
		writeJSON(w, http.StatusOK, map[string]string{"result": "delivery seen before"})
	case errors.Is(err, store.ErrNoHooks):
		writeJSON(w, http.StatusOK, map[string]string{"result": "no build: the project has no hooks"})
	case err != nil:
		h.fail(w, r, err)
	case len(jobs) == 0:
		writeJSON(w, http.StatusOK, map[string]any{"result": "build exists", "build": b.Number})
	default:
		h.jobs.Enqueued()
		writeJSON(w, http.StatusCreated, map[string]any{"result": "build created", "build": b.Number, "jobs": len(jobs)})
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
