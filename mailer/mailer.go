// Package mailer tells a project's people by e-mail when a build fails or
// errors (the original's set_status), through an SMTP server.
package mailer

import (
	"context"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

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
}

// Mailer is a runner Notifier that sends one mail per build that becomes a
// failure or an error. Mail goes out in the background; a failed send is
// logged and tried again after each of Retries, and never changes a build.
type Mailer struct {
	cfg     Config
	db      Store
	log     *slog.Logger
	sending sync.WaitGroup
	// Retries are the waits before each further attempt.
	Retries []time.Duration
}

// New returns a Mailer; with no SMTP server or notifications turned off it
// sends nothing.
func New(cfg Config, db Store, log *slog.Logger) *Mailer {
	return &Mailer{cfg: cfg, db: db, log: log, Retries: []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute}}
}

// JobChanged sends the mail when the change made the build fail or error.
func (m *Mailer) JobChanged(ctx context.Context, ch store.JobChanged) {
	if m.cfg.SMTP == nil || !m.cfg.Enabled || !ch.BuildChanged ||
		(ch.Build.Status != store.BuildFailure && ch.Build.Status != store.BuildError) {
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
	m.sending.Go(func() { m.deliver(to, subject, body) })
}

// Wait blocks until mail being sent is sent or given up.
func (m *Mailer) Wait() { m.sending.Wait() }

// Compose writes the mail for a build that failed or errored: the subject
// "[failure] owner/repo#12 (main — abc12345)" and a body with a link to
// the build.
func Compose(p store.Project, b store.Build, baseURL string) (subject, body string) {
	subject = fmt.Sprintf("[%s] %s#%d (%s — %s)", b.Status, p.FullName, b.Number, b.Branch(), b.ShortSHA())
	message, _, _ := strings.Cut(b.Message, "\n")
	body = fmt.Sprintf("Build #%d of %s %s.\n\nBranch: %s\nCommit: %s %s\nAuthor: %s\n\n%s%s\n\n-- \nKozmic\n",
		b.Number, p.FullName, b.Status.AsJob().Phrase(), b.Branch(), b.ShortSHA(), message, b.Author,
		strings.TrimRight(baseURL, "/"), paths.Build(p.ID, b.Number))
	return subject, body
}

func (m *Mailer) deliver(to []string, subject, body string) {
	var err error
	for attempt := 0; attempt <= len(m.Retries); attempt++ {
		if attempt > 0 {
			time.Sleep(m.Retries[attempt-1])
		}
		if err = m.send(to, subject, body); err == nil {
			return
		}
		m.log.Warn("mail: send failed", "subject", subject, "attempt", attempt+1, "err", err)
	}
	m.log.Error("mail: giving up", "subject", subject, "to", len(to), "err", err)
}

func (m *Mailer) send(to []string, subject, body string) error {
	msg := gomail.NewMsg()
	if err := msg.From(m.cfg.From.String()); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if err := msg.To(to...); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	msg.Subject(subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, body)

	u := m.cfg.SMTP
	opts := []gomail.Option{gomail.WithTimeout(30 * time.Second), gomail.WithTLSPolicy(gomail.TLSOpportunistic)}
	port := 587
	if u.Scheme == "smtps" {
		port = 465
		opts = append(opts, gomail.WithSSL())
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.DialAndSendWithContext(ctx, msg)
}
