package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"kozmic/gh"
	"kozmic/store"
)

// maxWebhookBytes is the largest webhook body accepted; GitHub caps its
// payloads at 25 MiB.
const maxWebhookBytes = 25 << 20

// defaultWebhookBudget is Deps.WebhookBudget when it is not set: enough for
// two of the largest bodies at once, and for hundreds of ordinary ones.
const defaultWebhookBudget = 64 << 20

// byteBudget bounds the bytes that all requests together may hold at once.
type byteBudget struct {
	mu   sync.Mutex
	left int64
}

// take reserves n bytes, if that many are left.
func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

// give returns n bytes that take reserved.
func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
}

// budgetChunk is the first buffer of a body of unknown length.
const budgetChunk = 32 << 10

// readBudgeted reads r whole into a buffer of size bytes at first, doubled
// as it fills (up to maxWebhookBytes+1: a larger body is cut short by r).
// It reserves each buffer in budget before it allocates it, the old one
// staying reserved while it is copied, so it never holds more than it has
// reserved. It returns the body and the bytes it holds reserved, to be
// given back once the body is no longer needed, also on error. When the
// budget has no room it fails with errBusy.
func readBudgeted(r io.Reader, budget *byteBudget, size int) ([]byte, int64, error) {
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			size = min(max(size, 2*cap(buf)), maxWebhookBytes+1)
			if !budget.take(int64(size)) {
				return nil, int64(cap(buf)), errBusy
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			budget.give(int64(cap(buf)))
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, int64(cap(buf)), nil
		case err != nil:
			return nil, int64(cap(buf)), err
		}
	}
}

// webhook receives a signed push or pull request event from GitHub, Gitea or
// Forgejo and creates the build it asks for, with one enqueued job per
// hook, in one transaction; nothing is written before the signature is
// verified. It answers 201 with a new build, 200 for a delivery or commit
// seen before or an event that builds nothing, 204 for events Kozmic
// ignores, 401 for a bad signature, 400 for a malformed body or a SHA or ref
// git would not take as such, 404 for an unknown project (its body unread),
// 413 for a body over 25 MiB and 503 with Retry-After when the bodies of
// all webhooks being received would exceed the webhook budget. Each
// delivery is counted in the metrics by its result.
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
	// Strangers can post here: the body is read only for a project that exists.
	secret, err := h.db.WebhookSecret(r.Context(), projectID)
	if err != nil {
		return h.webhookFailed(w, r, err)
	}
	body, held, err := h.readWebhookBody(w, r)
	// The body is held until the build is written.
	defer h.webhookBudget.give(held)
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
		FromFork: t.FromFork, ForkRepo: t.ForkRepo, Payload: body, Event: event,
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

// readWebhookBody reads r's body within the webhook budget and returns it
// with the bytes of the budget it holds, to be given back when the body is
// no longer needed (also on error). A body that declares its length is
// reserved whole (and refused whole) before a byte is read. A body over
// maxWebhookBytes is errTooLarge, one the budget has no room for errBusy,
// one that cannot be read errBadRequest.
func (h *Handler) readWebhookBody(w http.ResponseWriter, r *http.Request) ([]byte, int64, error) {
	if r.ContentLength > maxWebhookBytes {
		return nil, 0, errTooLarge
	}
	size := budgetChunk
	if r.ContentLength >= 0 {
		size = int(r.ContentLength) + 1 // the last read finds the end
	}
	body, held, err := readBudgeted(http.MaxBytesReader(w, r.Body, maxWebhookBytes), h.webhookBudget, size)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, errBusy):
		return body, held, err
	case errors.As(err, &tooLarge):
		return nil, held, errTooLarge
	default:
		return nil, held, fmt.Errorf("%w: %v", errBadRequest, err)
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
	case errors.Is(err, errBusy):
		return "busy"
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
