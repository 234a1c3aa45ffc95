package handlers

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// maxRequestIDLen is the longest X-Request-ID taken from a request.
const maxRequestIDLen = 128

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to (see
// Handler.ServeHTTP), or "" outside a request.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestID is the id of a request: its own X-Request-ID when that is sane
// (1 to 128 bytes of printable ASCII without spaces, so it is safe in a
// header and a log line), else a new random one of 26 characters.
func requestID(r *http.Request) string {
	id := r.Header.Get("X-Request-ID")
	if id == "" || len(id) > maxRequestIDLen {
		return rand.Text()
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return rand.Text()
		}
	}
	return id
}

// quietPath tells the paths polled by machines and browsers' caches
// (health checks, scrapes, static files), whose successful requests are
// logged at debug level only, so that they do not drown the others.
func quietPath(path string) bool {
	return path == "/healthz" || path == "/metrics" || strings.HasPrefix(path, "/static/")
}

// logRequest serves a request through next and then logs one line for it:
// "request" with method, path (no query, which may hold a login code),
// status, duration, bytes of body written and the request id, at info
// level, or at debug level for a quiet path that did not fail. The id is
// also set as the response's X-Request-ID and put in the request's context,
// where the handlers' own log lines find it (see withRequestID). A request
// whose handler aborted (http.ErrAbortHandler) is logged with aborted=true.
func (h *Handler) logRequest(w http.ResponseWriter, r *http.Request, next http.HandlerFunc) {
	start := time.Now()
	id := requestID(r)
	w.Header().Set("X-Request-ID", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	rec := &recordingWriter{ResponseWriter: w}
	completed := false
	defer func() {
		status := rec.status
		if status == 0 && completed {
			status = http.StatusOK // nothing written: net/http answers 200
		}
		level := slog.LevelInfo
		if quietPath(r.URL.Path) && status < 400 {
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Duration("duration", time.Since(start)), slog.Int64("bytes", rec.bytes)}
		if !completed {
			attrs = append(attrs, slog.Bool("aborted", true))
		}
		h.log.LogAttrs(r.Context(), level, "request", attrs...)
	}()
	next(rec, r)
	completed = true
}

// recordingWriter notes the status and the body bytes of a response. Unwrap
// lets http.ResponseController reach the server's writer, so flushing
// server-sent events works through it.
type recordingWriter struct {
	http.ResponseWriter
	status int   // the final status sent; 0 until then
	bytes  int64 // body bytes written
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are informational: the final status comes later
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withRequestID is a slog.Handler that adds the request id, when the
// context of a log call has one, as the attribute request_id: the handlers
// log with h.log.…Context(r.Context(), …) so their lines name the request.
type withRequestID struct{ slog.Handler }

func (h withRequestID) Handle(ctx context.Context, rec slog.Record) error {
	if id := RequestID(ctx); id != "" {
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h withRequestID) WithAttrs(attrs []slog.Attr) slog.Handler {
	return withRequestID{h.Handler.WithAttrs(attrs)}
}

func (h withRequestID) WithGroup(name string) slog.Handler {
	return withRequestID{h.Handler.WithGroup(name)}
}
