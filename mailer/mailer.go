// Package mailer tells a project's people by e-mail when a build fails or
// errors (the original's set_status), through an SMTP server. Mail waits
// in an outbox in the database until it is sent, so an outage of the mail
// server or a restart loses none, and sending never holds a shutdown.
package mailer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"kozmic/internal/clip"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	terminal "github.com/buildkite/terminal-to-html/v3"
	gomail "github.com/wneessen/go-mail"

	"kozmic/internal/outbox"
	"kozmic/internal/paths"
	"kozmic/internal/when"
	"kozmic/store"
)

// Config says where mail goes and how it is signed.
type Config struct {
	SMTP    *url.URL // smtp://user:pass@host:587 (STARTTLS when offered) or smtps://…:465; nil: no mail
	From    *mail.Address
	BaseURL string // Kozmic's public URL, for links
	Enabled bool   // KOZMIC_EMAIL_NOTIFICATIONS
}

// Store is what the mailer needs of the database.
type Store interface {
	ProjectByID(ctx context.Context, id int64) (store.Project, error)
	ProjectRecipients(ctx context.Context, projectID int64) ([]string, error)
	Secrets(ctx context.Context, projectID int64) ([]store.Secret, error)
	Jobs(ctx context.Context, buildID int64) ([]store.Job, error)
	LogInfoOf(ctx context.Context, jobID int64) (store.LogInfo, error)
	ReadLog(ctx context.Context, jobID, from int64, max int) ([]byte, error)
	EnqueueMail(ctx context.Context, projectID int64, to []string, subject, body string) error
	DueMail(ctx context.Context, now time.Time, limit int) ([]store.Mail, error)
	NextMailDue(ctx context.Context) (time.Time, bool, error)
	MailDone(ctx context.Context, id int64) error
	MailFailed(ctx context.Context, id int64, next time.Time, lastErr string) error
}

// Mailer is a runner Notifier that, when a build becomes a failure or an
// error, puts one mail per recipient in the durable outbox in the
// database; Run sends them. A failed send is tried again after Backoff,
// doubling with each attempt up to an hour, also across restarts, until
// the mail server refuses it for good (a 5xx reply) or the mail would be
// older than MaxAge: then it is given up with a logged error. Mail trouble
// never changes a build, and never holds a shutdown.
type Mailer struct {
	cfg  Config
	db   Store
	log  *slog.Logger
	wake chan struct{}

	Backoff time.Duration
	MaxAge  time.Duration
}

// New returns a Mailer; with no SMTP server or notifications turned off it
// sends nothing.
func New(cfg Config, db Store, log *slog.Logger) *Mailer {
	return &Mailer{cfg: cfg, db: db, log: log, wake: make(chan struct{}, 1), Backoff: 30 * time.Second, MaxAge: 24 * time.Hour}
}

// on reports whether mail is sent at all: an SMTP server is set and
// notifications are turned on.
func (m *Mailer) on() bool { return m.cfg.SMTP != nil && m.cfg.Enabled }

// JobChanged puts the mail in the outbox when the change made the build
// fail or error. It names the jobs that failed or errored so far, each with
// the last lines of its log; a log it cannot read is named as such, and the
// mail goes out all the same.
func (m *Mailer) JobChanged(ctx context.Context, ch store.JobChanged) {
	if !m.on() || !ch.BuildChanged || (ch.Build.Status != store.BuildFailure && ch.Build.Status != store.BuildError) {
		return
	}
	p, err := m.db.ProjectByID(ctx, ch.Build.ProjectID)
	if err != nil {
		m.log.Error("mail: load project", "project", ch.Build.ProjectID, "err", err)
		return
	}
	to, err := m.db.ProjectRecipients(ctx, p.ID)
	if err != nil {
		m.log.Error("mail: list recipients", "project", p.ID, "err", err)
		return
	}
	if len(to) == 0 {
		return
	}
	subject, body := Compose(p, ch.Build, m.failedJobs(ctx, p, ch.Build), m.cfg.BaseURL)
	if err := m.db.EnqueueMail(ctx, p.ID, to, subject, body); err != nil {
		m.log.Error("mail: enqueue", "project", p.ID, "build", ch.Build.Number, "err", err)
		return
	}
	select {
	case m.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Run sends due mail until ctx ends, sleeping until the next is due or new
// mail arrives; with mail off it returns at once and the outbox keeps what
// it holds. The end of ctx cuts a conversation with the mail server short:
// that mail stays in the outbox as it was, for the next start.
func (m *Mailer) Run(ctx context.Context) {
	if !m.on() {
		return
	}
	outbox.Run(ctx, m.wake, m.db.NextMailDue, m.sendDue)
}

func (m *Mailer) sendDue(ctx context.Context) {
	due := func(ctx context.Context) ([]store.Mail, error) { return m.db.DueMail(ctx, time.Now(), 20) }
	if err := outbox.Drain(ctx, due, m.attempt); err != nil && ctx.Err() == nil {
		m.log.Error("mail: list due", "err", err)
	}
}

// attempt sends one mail once, unless it is older than MaxAge, and records
// what happened.
func (m *Mailer) attempt(ctx context.Context, ml store.Mail) {
	// Once a mail went out it must leave the outbox, shutdown or not, or the
	// next start sends it again.
	record := context.WithoutCancel(ctx)
	now := time.Now()
	if now.Sub(ml.CreatedAt) > m.MaxAge {
		m.giveUp(record, ml, fmt.Errorf("not sent within %s; the last attempt: %s", m.MaxAge, ml.LastError))
		return
	}
	err := m.send(ctx, ml)
	switch {
	case err == nil:
		if err := m.db.MailDone(record, ml.ID); err != nil {
			m.log.Error("mail: record sent", "mail", ml.ID, "err", err)
		}
	case ctx.Err() != nil:
		// Cut short by shutdown: not the mail server's failure.
	default:
		next := m.retryAt(err, ml, now)
		if next.IsZero() {
			m.giveUp(record, ml, err)
			return
		}
		m.log.Warn("mail: send failed", "to", ml.To, "subject", ml.Subject, "attempt", ml.Attempts+1, "retry_at", next, "err", err)
		if err := m.db.MailFailed(record, ml.ID, next, err.Error()); err != nil {
			m.log.Error("mail: record failure", "mail", ml.ID, "err", err)
		}
	}
}

// giveUp logs why a mail is not sent and removes it from the outbox.
func (m *Mailer) giveUp(ctx context.Context, ml store.Mail, why error) {
	m.log.Error("mail: giving up", "to", ml.To, "subject", ml.Subject, "attempts", ml.Attempts+1, "err", why)
	if err := m.db.MailDone(ctx, ml.ID); err != nil {
		m.log.Error("mail: remove given-up mail", "mail", ml.ID, "err", err)
	}
}

// retryAt says when to try a mail again after err, or zero to give up:
// never after the server refused it for good (a 5xx reply, such as an
// unknown recipient), nor past MaxAge from when the mail was written.
func (m *Mailer) retryAt(err error, ml store.Mail, now time.Time) time.Time {
	if se := (*gomail.SendError)(nil); errors.As(err, &se) && se.ErrorCode() >= 500 {
		return time.Time{}
	}
	// The shift is bounded so that it cannot overflow; an hour is reached long before.
	next := now.Add(min(m.Backoff<<min(ml.Attempts, 20), time.Hour))
	if next.Sub(ml.CreatedAt) > m.MaxAge {
		return time.Time{}
	}
	return next
}

// maxSubjectLine is the bytes of a commit's subject line a mail shows.
const maxSubjectLine = 200

// What a mail shows of a failed job's log, which its script writes and can
// make gigabytes of: the last tailLines lines, each cut to maxLineShown
// bytes of text, found in the last tailWindow bytes of the log, for at most
// maxJobsWithLog jobs (the others are named and linked only).
const (
	tailLines      = 20
	maxLineShown   = 500
	tailWindow     = 64 << 10
	maxLineRaw     = 4 * maxLineShown // of a line as written, colour codes and all
	maxJobsWithLog = 10
)

// FailedJob is a job a failure mail names: the latest attempt of one of the
// build's jobs, which failed or errored.
type FailedJob struct {
	Job  store.Job
	Tail []string // the last lines of its log as plain text, secrets masked
	// NoTail says why Tail is empty when the log has lines: it was deleted,
	// or it could not be read.
	NoTail string
}

// failedJobs lists the latest attempts of build b's jobs that failed or
// errored, by hook title, each with the tail of its log. Trouble reading
// the database is logged and leaves the mail shorter, never unsent; when
// the project's secrets cannot be read no log line is shown, as none could
// be masked.
func (m *Mailer) failedJobs(ctx context.Context, p store.Project, b store.Build) []FailedJob {
	jobs, err := m.db.Jobs(ctx, b.ID)
	if err != nil {
		m.log.Error("mail: list jobs", "project", p.ID, "build", b.Number, "err", err)
		return nil
	}
	masker, secretsErr := m.masker(ctx, p.ID)
	if secretsErr != nil {
		m.log.Error("mail: load secrets to mask logs", "project", p.ID, "err", secretsErr)
	}
	var failed []FailedJob
	for i, j := range jobs {
		// Jobs lists each job's attempts in order: only the last counts.
		if (i+1 < len(jobs) && jobs[i+1].HookCallID == j.HookCallID) || (j.Status != store.JobFailure && j.Status != store.JobError) {
			continue
		}
		fj := FailedJob{Job: j}
		switch {
		case len(failed) >= maxJobsWithLog:
			fj.NoTail = fmt.Sprintf("Its log is on its page: a mail shows the logs of %d jobs at most.", maxJobsWithLog)
		case secretsErr != nil:
			fj.NoTail = "The log is not shown: its secrets could not be read to mask them."
		default:
			fj.Tail, fj.NoTail = m.tail(ctx, j.ID, masker)
		}
		failed = append(failed, fj)
	}
	return failed
}

// masker returns what replaces the project's secret values (of at least
// store.MinMaskedLen bytes) with store.SecretMask in a log line. The stored
// log is masked as it was written, but a secret the job printed in pieces
// with terminal codes between them comes together again as plain text.
func (m *Mailer) masker(ctx context.Context, projectID int64) (*strings.Replacer, error) {
	secrets, err := m.db.Secrets(ctx, projectID)
	if err != nil {
		return nil, err
	}
	var values []string
	for _, s := range secrets {
		if len(s.Value) >= store.MinMaskedLen {
			values = append(values, s.Value)
		}
	}
	// A Replacer tries its pairs in order: longest first, so that a secret
	// containing another is masked whole.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(values))
	for _, v := range values {
		pairs = append(pairs, v, store.SecretMask)
	}
	return strings.NewReplacer(pairs...), nil
}

// tail reads the last tailLines lines of job jobID's log, from its last
// tailWindow bytes only, as plain text: terminal codes applied (a \r
// progress bar shows its last state) and dropped, control characters
// dropped, secrets masked, each line cut to maxLineShown bytes. When it
// has none, it says why, or "" for an empty log.
func (m *Mailer) tail(ctx context.Context, jobID int64, masker *strings.Replacer) ([]string, string) {
	li, err := m.db.LogInfoOf(ctx, jobID)
	if err == nil && !li.DeletedAt.IsZero() {
		return nil, "The log was deleted."
	}
	var raw []byte
	from := max(0, li.Size-tailWindow)
	if err == nil {
		raw, err = m.db.ReadLog(ctx, jobID, from, tailWindow)
	}
	if err != nil {
		m.log.Error("mail: read log", "job", jobID, "err", err)
		return nil, "The log could not be read."
	}
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	if len(raw) == 0 {
		return nil, ""
	}
	lines := bytes.Split(raw, []byte("\n"))
	if from > 0 && len(lines) > 1 {
		lines = lines[1:] // the window began inside this line
	}
	lines = lines[max(0, len(lines)-tailLines):]
	tail := make([]string, len(lines))
	for i, l := range lines {
		tail[i] = clip.To(masker.Replace(plainText(l)), maxLineShown)
	}
	return tail, ""
}

// plainText renders one line of terminal output as the text a terminal
// shows, of its first maxLineRaw bytes.
func plainText(line []byte) string {
	line = line[:min(len(line), maxLineRaw)]
	// Wide enough that the line never wraps, so it stays one line.
	screen, _ := terminal.NewScreen(terminal.WithSize(maxLineRaw, 1))
	screen.Write(line)
	return strings.Map(func(r rune) rune {
		if r != '\t' && unicode.IsControl(r) {
			return -1
		}
		return r
	}, screen.AsPlainText())
}

// Compose writes the mail for a build that failed or errored: the subject
// "[failure] owner/repo#12 (main — abc12345)" and a body with a link to
// the build, then each of failed with a link, how long it ran and the tail
// of its log. The commit's subject line is cut to maxSubjectLine bytes.
func Compose(p store.Project, b store.Build, failed []FailedJob, baseURL string) (subject, body string) {
	subject = fmt.Sprintf("[%s] %s#%d (%s — %s)", b.Status, p.FullName, b.Number, b.Branch(), b.ShortSHA())
	message, _, _ := strings.Cut(b.Message, "\n")
	// A commit's subject line is the pusher's to choose, and can be megabytes.
	message = clip.To(message, maxSubjectLine)
	base := strings.TrimRight(baseURL, "/")
	var w strings.Builder
	fmt.Fprintf(&w, "Build #%d of %s %s.\n\nBranch: %s\nCommit: %s %s\nAuthor: %s\n\n%s%s\n",
		b.Number, p.FullName, b.Status.AsJob().Phrase(), b.Branch(), b.ShortSHA(), message, b.Author,
		base, paths.Build(p.ID, b.Number))
	for _, fj := range failed {
		j := fj.Job
		fmt.Fprintf(&w, "\n%s %s", clip.To(j.HookTitle, maxSubjectLine), j.Status.Phrase())
		if j.StartedAt.IsZero() {
			w.WriteString(" before it started")
		} else {
			fmt.Fprintf(&w, " after %s", when.Duration(j.FinishedAt.Sub(j.StartedAt)))
		}
		if j.Error != "" {
			fmt.Fprintf(&w, ": %s", clip.To(j.Error, maxLineShown))
		}
		fmt.Fprintf(&w, "\n%s%s\n", base, paths.Job(p.ID, b.Number, j.ID))
		if fj.NoTail != "" {
			fmt.Fprintf(&w, "%s\n", fj.NoTail)
		}
		for _, l := range fj.Tail {
			fmt.Fprintf(&w, "| %s\n", l)
		}
	}
	w.WriteString("\n-- \nKozmic\n")
	return subject, w.String()
}

// send delivers one mail through the SMTP server. The end of ctx, or a
// minute, closes the connection at once, whatever the conversation waits
// for (a greeting, a reply).
func (m *Mailer) send(ctx context.Context, ml store.Mail) error {
	msg := gomail.NewMsg()
	if err := msg.From(m.cfg.From.String()); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := msg.To(ml.To); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	msg.Subject(ml.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, ml.Body)

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	u := m.cfg.SMTP
	port := 587
	var dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	} = &net.Dialer{}
	opts := []gomail.Option{gomail.WithTimeout(30 * time.Second), gomail.WithTLSPolicy(gomail.TLSOpportunistic)}
	if u.Scheme == "smtps" {
		port = 465
		opts = append(opts, gomail.WithSSL())
		// go-mail dials TLS itself only without a dial function of ours.
		dialer = &tls.Dialer{Config: &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}}
	}
	opts = append(opts, gomail.WithDialContextFunc(func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(dctx, network, addr)
		if err == nil {
			// ctx, not dctx, which ends when dialing does.
			context.AfterFunc(ctx, func() { conn.Close() })
		}
		return conn, err
	}))
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			port = n
		}
	}
	opts = append(opts, gomail.WithPort(port))
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	c, err := gomail.NewClient(u.Hostname(), opts...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, msg)
}
