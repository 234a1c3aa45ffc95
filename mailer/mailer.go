// Package mailer tells a project's people by e-mail when a build fails or
// errors (the original's set_status), through an SMTP server. Mail waits
// in an outbox in the database until it is sent, so an outage of the mail
// server or a restart loses none, and sending never holds a shutdown.
package mailer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"kozmic/internal/clip"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"kozmic/internal/outbox"
	"kozmic/internal/paths"
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
// fail or error.
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
	subject, body := Compose(p, ch.Build, m.cfg.BaseURL)
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
	for ctx.Err() == nil {
		due, err := m.db.DueMail(ctx, time.Now(), 20)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Error("mail: list due", "err", err)
			}
			return
		}
		if len(due) == 0 {
			return
		}
		for _, ml := range due {
			if ctx.Err() != nil {
				return
			}
			m.attempt(ctx, ml)
		}
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

// Compose writes the mail for a build that failed or errored: the subject
// "[failure] owner/repo#12 (main — abc12345)" and a body with a link to
// the build. The commit's subject line is cut to maxSubjectLine bytes.
func Compose(p store.Project, b store.Build, baseURL string) (subject, body string) {
	subject = fmt.Sprintf("[%s] %s#%d (%s — %s)", b.Status, p.FullName, b.Number, b.Branch(), b.ShortSHA())
	message, _, _ := strings.Cut(b.Message, "\n")
	// A commit's subject line is the pusher's to choose, and can be megabytes.
	message = clip.To(message, maxSubjectLine)
	body = fmt.Sprintf("Build #%d of %s %s.\n\nBranch: %s\nCommit: %s %s\nAuthor: %s\n\n%s%s\n\n-- \nKozmic\n",
		b.Number, p.FullName, b.Status.AsJob().Phrase(), b.Branch(), b.ShortSHA(), message, b.Author,
		strings.TrimRight(baseURL, "/"), paths.Build(p.ID, b.Number))
	return subject, body
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
