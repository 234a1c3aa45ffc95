package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"kozmic/gh"
	"kozmic/store"
)

// maxWebhookBytes is the largest webhook body accepted; GitHub caps its
// payloads at 25 MiB.
const maxWebhookBytes = 25 << 20

// defaultWebhookBudget is Deps.WebhookBudget when it is not set: enough for
// two of the largest bodies at once, and for hundreds of ordinary ones.
const defaultWebhookBudget = 64 << 20

// defaultWebhookBodyTimeout is Deps.WebhookBodyTimeout when it is not set:
// twice the 10 seconds after which GitHub gives up on a delivery.
const defaultWebhookBodyTimeout = 20 * time.Second

// byteBudget bounds the bytes that all requests together may hold at once,
// and the part of them that the requests of one client address may hold:
// a quarter of the whole, or one body of the largest size if that is more,
// so that every delivery GitHub may send can be received.
type byteBudget struct {
	perAddr int64 // most bytes one address's requests hold at once

	mu   sync.Mutex
	left int64
	held map[string]int64 // bytes held per client address (addrKey); none: absent
}

func newByteBudget(total int64) *byteBudget {
	return &byteBudget{perAddr: max(total/4, reservation(maxWebhookBytes)), left: total, held: map[string]int64{}}
}

// take reserves n bytes for the requests of addr, if that many are left
// and addr holds no more than its part with them.
func (b *byteBudget) take(addr string, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left || b.held[addr]+n > b.perAddr {
		return false
	}
	b.left -= n
	b.held[addr] += n
	return true
}

// give returns n bytes that take reserved for addr.
func (b *byteBudget) give(addr string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left += n
	if b.held[addr] -= n; b.held[addr] == 0 {
		delete(b.held, addr)
	}
}

// bodyChunk is the unit in which webhook bodies are read, reserved and
// reused.
const bodyChunk = 64 << 10

// bodyChunks recycles the chunks of webhook bodies, so that a flood of
// bodies that are refused reuses memory instead of leaving garbage for the
// collector (which would let the heap grow to twice the budget and more).
var bodyChunks = sync.Pool{New: func() any { return new([bodyChunk]byte) }}

// webhookBody is a webhook body read into pooled chunks, every byte of which
// is reserved in a budget for its client address until release.
type webhookBody struct {
	budget   *byteBudget
	addr     string // the client address (addrKey) the reservation is for
	reserved int64  // bytes of budget held
	chunks   []*[bodyChunk]byte
	n        int // bytes read
}

// readBody reads r whole into pooled chunks: the reservation of declared
// bytes (a body's declared length; -1: unknown) is taken from budget for
// addr before a byte is read, any further chunk as it is needed. It fails
// with errBusy when the budget, or addr's part of it, has no room. The body
// is to be released, also on error.
func readBody(r io.Reader, budget *byteBudget, addr string, declared int64) (*webhookBody, error) {
	b := &webhookBody{budget: budget, addr: addr}
	if declared >= 0 && !b.reserve(reservation(declared)) {
		return b, errBusy
	}
	for {
		off := b.n - (len(b.chunks)-1)*bodyChunk
		if len(b.chunks) == 0 || off == bodyChunk {
			if int64(len(b.chunks)+1)*bodyChunk > b.reserved && !b.reserve(bodyChunk) {
				return b, errBusy
			}
			b.chunks = append(b.chunks, bodyChunks.Get().(*[bodyChunk]byte))
			off = 0
		}
		n, err := r.Read(b.chunks[len(b.chunks)-1][off:])
		b.n += n
		switch {
		case err == io.EOF:
			return b, nil
		case err != nil:
			return b, err
		}
	}
}

// reservation is what a body of n bytes reserves: whole chunks, and one
// more, as the last read finds the end, which may take a chunk of its own.
func reservation(n int64) int64 { return (n/bodyChunk + 1) * bodyChunk }

// reserve takes n more bytes of the budget, if it has them.
func (b *webhookBody) reserve(n int64) bool {
	if !b.budget.take(b.addr, n) {
		return false
	}
	b.reserved += n
	return true
}

// reader reads the body from its start.
func (b *webhookBody) reader() io.Reader {
	parts := make([]io.Reader, len(b.chunks))
	for i, c := range b.chunks {
		parts[i] = bytes.NewReader(c[:min(bodyChunk, b.n-i*bodyChunk)])
	}
	return io.MultiReader(parts...)
}

// bytes returns the body in one slice, which keeps the chunks' reservation
// until release; the chunks go back to the pool. Only a signed body is
// copied, so the moment of the copy, when the body is held twice, is not
// the budget's concern: it bounds what strangers can make Kozmic hold.
func (b *webhookBody) bytes() []byte {
	whole := make([]byte, 0, b.n)
	for i, c := range b.chunks {
		whole = append(whole, c[:min(bodyChunk, b.n-i*bodyChunk)]...)
	}
	for _, c := range b.chunks {
		bodyChunks.Put(c)
	}
	b.chunks = nil
	return whole
}

// release gives the chunks back to the pool and the reservation to the
// budget.
func (b *webhookBody) release() {
	for _, c := range b.chunks {
		bodyChunks.Put(c)
	}
	b.chunks = nil
	b.budget.give(b.addr, b.reserved)
	b.reserved = 0
}

// webhook receives a signed push or pull request event from GitHub, Gitea or
// Forgejo and creates the build it asks for, with one enqueued job per
// hook, in one transaction, and takes the repository's default branch from
// it; nothing is written before the signature is verified. It answers 201 with a new build, 200 for a delivery or commit
// seen before or an event that builds nothing, 204 for events Kozmic
// ignores, 401 for a bad signature, 400 for a malformed body or a SHA or ref
// git would not take as such, 404 for an unknown project (its body unread),
// 413 for a body over 25 MiB, 503 with Retry-After when the bodies of all
// webhooks being received would exceed the webhook budget, or those from
// its client address their part of it, and 400 for a body that has not
// arrived within Deps.WebhookBodyTimeout. Each
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
	target, err := h.db.WebhookProject(r.Context(), projectID)
	if err != nil {
		return h.webhookFailed(w, r, err)
	}
	chunks, err := h.readWebhookBody(w, r)
	// The body is held until the build is written.
	defer chunks.release()
	if err != nil {
		return h.webhookFailed(w, r, err)
	}
	if err := gh.VerifySignature([]byte(target.Secret), r.Header.Get("X-Hub-Signature-256"), chunks.reader()); err != nil {
		return h.webhookFailed(w, r, errUnauthorized)
	}
	// Only a signed body is copied whole: a forged one never leaves the pool.
	body := chunks.bytes()

	event := firstHeader(r, "X-GitHub-Event", "X-Gitea-Event", "X-Forgejo-Event")
	// Gitea and Forgejo send X-GitHub-Event too, beside their own names.
	forge := gh.ForgeGitHub
	if firstHeader(r, "X-Gitea-Event", "X-Forgejo-Event") != "" {
		forge = gh.ForgeGitea
	}
	t, err := gh.ParseWebhook(forge, event, body)
	switch {
	case errors.Is(err, gh.ErrUnhandledEvent):
		w.WriteHeader(http.StatusNoContent)
		return "ignored"
	case err != nil:
		return h.webhookFailed(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
	}
	h.learnDefaultBranch(r.Context(), projectID, target.DefaultBranch, t.DefaultBranch)
	switch {
	case !t.Build:
		writeJSON(w, http.StatusOK, map[string]string{"result": "no build: " + t.Reason})
		return "no_build"
	}

	b, jobs, err := h.db.CreateBuild(r.Context(), store.NewBuild{
		ProjectID: projectID, Ref: t.Ref, SHA: t.SHA, Author: t.Author, Message: t.Message, Trigger: webhookTrigger(t),
		FromFork: t.FromFork, ForkRepo: t.ForkRepo, ForkRepoID: t.ForkRepoID, Event: event,
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

// readWebhookBody reads r's body within the webhook budget and the part of
// it that r's client address may hold, and within Handler.webhookBodyTimeout.
// A body that declares its length is reserved whole (and refused whole)
// before a byte is read. A body over maxWebhookBytes is errTooLarge, one
// the budget has no room for errBusy, one that cannot be read, or not in
// time, errBadRequest. The body is to be released, also on error.
func (h *Handler) readWebhookBody(w http.ResponseWriter, r *http.Request) (*webhookBody, error) {
	addr := addrKey(h.clientAddr(r))
	if r.ContentLength > maxWebhookBytes {
		return &webhookBody{budget: h.webhookBudget, addr: addr}, errTooLarge
	}
	// Without a deadline, a body that never comes would hold its
	// reservation for as long as its sender keeps the connection open.
	rc := http.NewResponseController(w)
	// Only a writer without a connection (a test's recorder) has none to set.
	if err := rc.SetReadDeadline(time.Now().Add(h.webhookBodyTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return &webhookBody{budget: h.webhookBudget, addr: addr}, fmt.Errorf("set the webhook body's deadline: %w", err)
	}
	// Once the body is read, the server reads on in the background; the
	// deadline passing then would cancel the request while its build is
	// being written.
	defer rc.SetReadDeadline(time.Time{})
	body, err := readBody(http.MaxBytesReader(w, r.Body, maxWebhookBytes), h.webhookBudget, addr, r.ContentLength)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, errBusy):
		return body, err
	case errors.As(err, &tooLarge):
		return body, errTooLarge
	default:
		return body, fmt.Errorf("%w: %v", errBadRequest, err)
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

// webhookTrigger is how a webhook's build was started.
func webhookTrigger(t gh.Trigger) store.Trigger {
	if t.PR != 0 {
		return store.Trigger{Kind: store.TriggerPullRequest, PR: t.PR, User: t.By}
	}
	return store.Trigger{Kind: store.TriggerPush, User: t.By}
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
