// Package handlers is all of Kozmic's HTTP: the route table, sessions,
// webhooks and live logs. Handlers parse the request, call the store, the
// runner or gh.Projects (GitHub projects' lifecycle), and render a view;
// every failure goes through Handler.fail.
package handlers

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/alexedwards/scs/v2"

	"kozmic/gh"
	"kozmic/runner"
	"kozmic/store"
)

// Jobs is what the handlers need of the job runner.
type Jobs interface {
	// Enqueued wakes the runner after jobs were enqueued.
	Enqueued()
	Cancel(ctx context.Context, jobID int64, by string) error
	Restart(ctx context.Context, jobID int64, by store.User) (store.Job, error)
	RerunFailed(ctx context.Context, buildID int64, by store.User) ([]store.Job, error)
	// Waiting says why enqueued jobs wait, or "".
	Waiting() string
	// Unreachable says that the Docker engine does not answer, or "".
	Unreachable() string
	// Slots says which job each worker runs: element i is the id of
	// worker i+1's job, 0 while it has none; one element a worker.
	Slots() []int64
	// Recording says whether a job has ended and its log and result are
	// being stored (which a full disk can make last).
	Recording(jobID int64) bool
	// ClearCache removes a project's install cache images.
	ClearCache(ctx context.Context, projectID int64) (int, error)
	// Engines reports each Docker engine's slots, load and health, cheaply.
	Engines() []runner.EngineState
	// EngineInfos tells each Docker engine's version, this server's running
	// containers and install cache images, giving up after a few seconds.
	EngineInfos(ctx context.Context) []runner.EngineInfo
	Follow(ctx context.Context, jobID, from int64, fn func(runner.Chunk) error) error
}

// Deps are the parts the handlers work with.
type Deps struct {
	DB   *store.DB
	Jobs Jobs
	// GitHub signs people in and, through gh.Projects, connects GitHub
	// projects to their repositories.
	GitHub *gh.GitHub
	// Projects, when set, is the gh.Projects the runner uses too, so that
	// a Regenerate and a job re-creating a missing key take turns; nil:
	// one of GitHub's own.
	Projects *gh.Projects
	Sessions scs.CtxStore
	BaseURL  *url.URL
	// GitHubURL is GitHub's web address, for links to commits.
	GitHubURL *url.URL
	Log       *slog.Logger
	// Metrics counts webhooks and serves GET /metrics; nil: /metrics is 404.
	Metrics Metrics
	// MetricsToken, when set, is the bearer token GET /metrics requires.
	MetricsToken string
	// Heartbeat is how often an idle log stream says it is alive, so that
	// proxies keep it open; 0 means every 15 seconds.
	Heartbeat time.Duration
	// AccessRecheck is how often an open log stream checks that its viewer
	// is still signed in and may still view the project, ending the stream
	// when not; 0 means every 30 seconds.
	AccessRecheck time.Duration
	// WebhookBudget bounds the bytes of webhook bodies being received at
	// once, across all requests; 0 means 64 MiB. The requests of one client
	// address (an IPv6 /64) may hold a quarter of it, or one 25 MiB body if
	// that is more.
	WebhookBudget int64
	// WebhookBodyTimeout is how long a webhook's body may take to arrive,
	// whole, once its headers have; 0 means 20 seconds.
	WebhookBodyTimeout time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For says
	// who their client is (see clientAddr); none: every request's client
	// is its connection's peer.
	TrustedProxies []netip.Prefix
	// MinFreeDisk is the free space, in bytes, below which the database's
	// directory makes GET /healthz answer 503; 0: no minimum.
	MinFreeDisk uint64
	// Version is the server's version and Started when it started, for
	// the admin page; a zero Started is when New ran.
	Version string
	Started time.Time
}

// defaultHeartbeat is Deps.Heartbeat when it is not set.
const defaultHeartbeat = 15 * time.Second

// defaultAccessRecheck is Deps.AccessRecheck when it is not set.
const defaultAccessRecheck = 30 * time.Second

// Handler serves every route of the server.
type Handler struct {
	db           *store.DB
	jobs         Jobs
	github       *gh.GitHub
	projects     *gh.Projects // acting on github, logging with the request id
	baseURL      string       // without a trailing slash
	githubURL    string       // without a trailing slash
	sessions     *scs.SessionManager
	logins       *loginLimiter
	log          *slog.Logger // adds the request id to lines logged with a request's context
	metrics      Metrics      // nil: none
	metricsToken string       // the bearer token /metrics requires; "": none
	heartbeat    time.Duration
	minFreeDisk  uint64 // bytes; below it /healthz says the disk is low
	version      string // the server's, for the admin page
	started      time.Time
	// now is the sessions' clock: when they are touched and expire idle.
	now func() time.Time
	// accessRecheck is how often a log stream checks its viewer's access.
	accessRecheck time.Duration
	// webhookBudget bounds the webhook bodies held at once.
	webhookBudget *byteBudget
	// webhookBodyTimeout is how long a webhook body may take to arrive.
	webhookBodyTimeout time.Duration
	// searchTimeout is how long a log search may take (searchTimeout).
	searchTimeout time.Duration
	// trustedProxies are the peers whose X-Forwarded-For is believed.
	trustedProxies []netip.Prefix
	mux            *http.ServeMux
	serve          http.Handler // mux behind sessions, cross-origin protection and form limits
}

// New returns the server's HTTP handler.
func New(d Deps) *Handler {
	log := slog.New(withRequestID{d.Log.Handler()})
	sm := scs.New()
	// No scs IdleTimeout: it would store every loaded session again on
	// every request. sessionStore and touchSession keep the idle expiry.
	sm.Lifetime = sessionLifetime
	sm.Cookie.Name = "kozmic_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = d.BaseURL.Scheme == "https"
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		log.ErrorContext(r.Context(), "session", "path", r.URL.Path, "err", err)
		http.Error(w, "Kozmic could not read your session; try again.", http.StatusInternalServerError)
	}
	h := &Handler{db: d.DB, jobs: d.Jobs, github: d.GitHub, projects: cmp.Or(d.Projects, gh.NewProjects(d.GitHub, d.DB, log)), sessions: sm, logins: newLoginLimiter(), now: time.Now, log: log, mux: http.NewServeMux(),
		metrics: d.Metrics, metricsToken: d.MetricsToken, trustedProxies: d.TrustedProxies,
		minFreeDisk: d.MinFreeDisk, version: d.Version, started: cmp.Or(d.Started, time.Now()),
		searchTimeout: searchTimeout,
		baseURL:       strings.TrimRight(d.BaseURL.String(), "/"), githubURL: strings.TrimRight(d.GitHubURL.String(), "/")}
	if h.heartbeat = d.Heartbeat; h.heartbeat == 0 {
		h.heartbeat = defaultHeartbeat
	}
	h.accessRecheck = cmp.Or(d.AccessRecheck, defaultAccessRecheck)
	h.webhookBudget = newByteBudget(cmp.Or(d.WebhookBudget, defaultWebhookBudget))
	h.webhookBodyTimeout = cmp.Or(d.WebhookBodyTimeout, defaultWebhookBodyTimeout)
	sm.Store = sessionStore{CtxStore: d.Sessions, log: log, now: func() time.Time { return h.now() }}
	h.routes()
	// Every state change needs a same-origin request; webhooks are signed instead.
	cop := http.NewCrossOriginProtection()
	cop.AddInsecureBypassPattern("POST /webhooks/{projectID}")
	h.serve = securityHeaders(contentSecurityPolicy(d.GitHubURL), sm.LoadAndSave(cop.Handler(h.touchSession(sessionLoaded(h.limitForms(h.mux))))))
	return h
}

// contentSecurityPolicy allows scripts, styles and connections from Kozmic
// itself only: no inline script runs, whatever a commit message or a log
// holds. Images come from Kozmic or GitHub's avatar hosts alone, so a log
// that renders an image escape cannot make viewers' browsers call out.
func contentSecurityPolicy(githubURL *url.URL) string {
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https://avatars.githubusercontent.com " +
		githubURL.Scheme + "://" + githubURL.Host + "; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

type sessionKey struct{}

// sessionLoaded marks requests whose session is loaded: only those may read
// it (scs panics otherwise), which matters to pages rendered on the way out
// of a failure.
func sessionLoaded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, true)))
	})
}

// securityHeaders sets the headers every response carries.
func securityHeaders(csp string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP serves a request, giving it a request id and logging it (see
// logRequest), and answers a panic in a handler with the 500 page instead
// of a dropped connection.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.logRequest(w, r, h.serveRecovering)
}

func (h *Handler) serveRecovering(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
			h.fail(w, r, errPanic)
		}
	}()
	h.serve.ServeHTTP(w, r)
}

// renderPolled answers a page that polls for part of itself: an htmx
// request (HX-Request: true) gets just part, which htmx swaps in; any other
// gets the whole page.
func (h *Handler) renderPolled(w http.ResponseWriter, r *http.Request, page, part templ.Component) {
	// The two answers differ, so a cache must not give one for the other.
	w.Header().Add("Vary", "HX-Request")
	if r.Header.Get("HX-Request") == "true" {
		page = part
	}
	h.render(w, r, http.StatusOK, page)
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.Render(h.pageContext(r), w); err != nil {
		h.log.ErrorContext(r.Context(), "render", "path", r.URL.Path, "err", err)
	}
}
