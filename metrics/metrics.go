// Package metrics keeps Kozmic's Prometheus metrics in a registry of its
// own and serves them in the Prometheus text format. The runner and the
// handlers report what happens through small interfaces of their own
// (runner.Metrics, handlers.Metrics) that *Metrics satisfies, so neither
// imports Prometheus; what the database knows (the queue, running jobs,
// commit statuses waiting) is read from it at each scrape, and the Docker
// engines' slots and health from the runner (SetEngines).
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"kozmic/store"
)

// Source is what a scrape asks of the database.
type Source interface {
	JobCounts(ctx context.Context) (enqueued, running int, err error)
	StatusCounts(ctx context.Context) (pending, failed int, err error)
}

// Engine is a Docker engine as a scrape reports it.
type Engine struct {
	Name  string
	Slots int  // jobs at once
	Busy  int  // jobs placed on it now
	Up    bool // it answered its last ping
	// Started and Failed count the jobs placed on it since the server
	// started, and those of them that did not succeed.
	Started, Failed int64
}

// WebhookResults are the values of the result label of
// kozmic_webhooks_received_total, one for each answer of the webhook
// route. Each starts at 0, so a rate can be taken before the first one.
var WebhookResults = []string{
	"created",      // 201: a build with jobs to run
	"exists",       // 200: the commit's build exists already
	"seen",         // 200: the delivery was received before
	"no_build",     // 200: an event that builds nothing (a deleted branch, [ci skip], a ping)
	"no_hooks",     // 200: the project has no hooks
	"ignored",      // 204: an event Kozmic does not handle
	"unauthorized", // 401: a missing or wrong signature
	"malformed",    // 400: a body that cannot be read
	"too_large",    // 413: a body over the limit
	"busy",         // 503: webhook bodies in flight fill their budget
	"not_found",    // 404: no such project
	"error",        // 500: Kozmic failed
}

// jobStatuses are the final job statuses, the values of the status label.
var jobStatuses = []store.JobStatus{store.JobSuccess, store.JobFailure, store.JobError}

// scrapeTimeout bounds the database queries of one scrape.
const scrapeTimeout = 5 * time.Second

// Metrics counts what the runner and the handlers report and serves every
// metric. It is safe for concurrent use.
type Metrics struct {
	jobsFinished *prometheus.CounterVec
	jobDuration  prometheus.Histogram
	queueWait    prometheus.Histogram
	logBytes     prometheus.Counter
	logRendered  prometheus.Counter
	webhooks     *prometheus.CounterVec
	engines      *engineCollector
	serve        http.Handler
}

// New returns the metrics, with the Go runtime's and the process's, and
// the database's read from src at each scrape. A failing query is logged
// and its metrics are left out of that scrape; the others are still served.
func New(src Source, log *slog.Logger) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kozmic_jobs_finished_total",
			Help: "Jobs the workers ran to a final status: success, failure or error."}, []string{"status"}),
		jobDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kozmic_job_duration_seconds",
			Help:    "Time from a job's start to its finish.",
			Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200}}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kozmic_job_queue_wait_seconds",
			Help:    "Time a job waited from being enqueued to its start.",
			Buckets: []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600}}),
		logBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kozmic_log_bytes_written_total",
			Help: "Bytes of job log written to the database: after masking secrets, before compression, up to each job's limit."}),
		logRendered: prometheus.NewCounter(prometheus.CounterOpts{Name: "kozmic_log_rendered_bytes_total",
			Help: "Bytes of job log rendered to HTML for log pages and live logs; the live followers of a job share one rendering."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kozmic_webhooks_received_total",
			Help: "Webhook deliveries by how they were answered."}, []string{"result"}),
		engines: newEngineCollector(),
	}
	for _, s := range jobStatuses {
		m.jobsFinished.WithLabelValues(string(s))
	}
	for _, r := range WebhookResults {
		m.webhooks.WithLabelValues(r)
	}
	reg.MustRegister(m.jobsFinished, m.jobDuration, m.queueWait, m.logBytes, m.logRendered, m.webhooks,
		newDBCollector(src, log), m.engines,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.serve = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return m
}

// ServeHTTP answers a scrape in the Prometheus text format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.serve.ServeHTTP(w, r) }

// SetEngines makes each scrape report the Docker engines engines returns
// (the runner's, in their configured order), each labelled with its name:
// its slots, the slots in use, whether it is up, and the jobs started on it
// and failed. engines is called at every scrape, so it must be cheap.
// Until it is set, no engine is reported.
func (m *Metrics) SetEngines(engines func() []Engine) { m.engines.read.Store(&engines) }

// JobStarted records how long a job waited in the queue.
func (m *Metrics) JobStarted(wait time.Duration) { m.queueWait.Observe(wait.Seconds()) }

// JobFinished counts a finished job by status and records how long it ran.
func (m *Metrics) JobFinished(status store.JobStatus, took time.Duration) {
	m.jobsFinished.WithLabelValues(string(status)).Inc()
	m.jobDuration.Observe(took.Seconds())
}

// LogBytes counts n bytes of job log stored.
func (m *Metrics) LogBytes(n int) { m.logBytes.Add(float64(n)) }

// LogRendered counts n bytes of job log rendered to HTML.
func (m *Metrics) LogRendered(n int) { m.logRendered.Add(float64(n)) }

// Webhook counts a webhook delivery by its result, one of WebhookResults.
func (m *Metrics) Webhook(result string) { m.webhooks.WithLabelValues(result).Inc() }

// dbCollector reads the gauges the database knows, at each scrape, in two
// queries that touch only indexes and the small status outbox.
type dbCollector struct {
	src                                          Source
	log                                          *slog.Logger
	enqueued, running, statusPending, statusFail *prometheus.Desc
}

func newDBCollector(src Source, log *slog.Logger) dbCollector {
	return dbCollector{src: src, log: log,
		enqueued: prometheus.NewDesc("kozmic_jobs_enqueued", "Jobs waiting in the queue for a worker.", nil, nil),
		running:  prometheus.NewDesc("kozmic_jobs_running", "Jobs running now.", nil, nil),
		statusPending: prometheus.NewDesc("kozmic_commit_statuses_pending",
			"Commit statuses waiting in the outbox to be posted (including those retried after a failure).", nil, nil),
		statusFail: prometheus.NewDesc("kozmic_commit_statuses_failed",
			"Commit statuses given up on after GitHub refused them, kept in the outbox with their error.", nil, nil),
	}
}

func (c dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.enqueued
	ch <- c.running
	ch <- c.statusPending
	ch <- c.statusFail
}

func (c dbCollector) Collect(ch chan<- prometheus.Metric) {
	// A Collector gets no context: the scrape's end is not known here.
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if enqueued, running, err := c.src.JobCounts(ctx); err != nil {
		c.log.Error("metrics: count jobs", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.enqueued, prometheus.GaugeValue, float64(enqueued))
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(running))
	}
	if pending, failed, err := c.src.StatusCounts(ctx); err != nil {
		c.log.Error("metrics: count commit statuses", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(c.statusPending, prometheus.GaugeValue, float64(pending))
		ch <- prometheus.MustNewConstMetric(c.statusFail, prometheus.GaugeValue, float64(failed))
	}
}

// engineCollector reports each Docker engine at each scrape, from what
// the runner last found of it.
type engineCollector struct {
	read                              atomic.Pointer[func() []Engine]
	slots, inUse, up, started, failed *prometheus.Desc
}

func newEngineCollector() *engineCollector {
	engine := []string{"engine"}
	return &engineCollector{
		slots: prometheus.NewDesc("kozmic_engine_slots", "Jobs a Docker engine runs at once.", engine, nil),
		inUse: prometheus.NewDesc("kozmic_engine_slots_in_use", "Jobs placed on a Docker engine now.", engine, nil),
		up: prometheus.NewDesc("kozmic_engine_up",
			"1 while a Docker engine answered its last ping, 0 while it does not: it takes no jobs.", engine, nil),
		started: prometheus.NewDesc("kozmic_engine_jobs_started_total", "Jobs placed on a Docker engine since the server started.", engine, nil),
		failed: prometheus.NewDesc("kozmic_engine_jobs_failed_total",
			"Jobs placed on a Docker engine since the server started that did not succeed.", engine, nil),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.slots
	ch <- c.inUse
	ch <- c.up
	ch <- c.started
	ch <- c.failed
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	read := c.read.Load()
	if read == nil {
		return
	}
	for _, e := range (*read)() {
		up := 0.0
		if e.Up {
			up = 1
		}
		for _, v := range []struct {
			desc  *prometheus.Desc
			kind  prometheus.ValueType
			value float64
		}{{c.slots, prometheus.GaugeValue, float64(e.Slots)}, {c.inUse, prometheus.GaugeValue, float64(e.Busy)},
			{c.up, prometheus.GaugeValue, up}, {c.started, prometheus.CounterValue, float64(e.Started)},
			{c.failed, prometheus.CounterValue, float64(e.Failed)}} {
			// A name that is no label value (not UTF-8) fails that series
			// alone; the scrape logs it and serves the rest.
			m, err := prometheus.NewConstMetric(v.desc, v.kind, v.value, e.Name)
			if err != nil {
				m = prometheus.NewInvalidMetric(v.desc, err)
			}
			ch <- m
		}
	}
}
