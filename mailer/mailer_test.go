package mailer

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/store"
)

// smtpServer is a real SMTP server on 127.0.0.1 that keeps what it gets;
// it refuses the first failFirst messages.
type smtpServer struct {
	mu        sync.Mutex
	received  []received
	failFirst int
	url       *url.URL
}

type received struct {
	from string
	to   []string
	data string
}

type session struct {
	srv *smtpServer
	msg received
}

func (s *session) Reset()                                      { s.msg = received{} }
func (s *session) Logout() error                               { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.msg.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.failFirst > 0 {
		s.srv.failFirst--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.msg.data = string(b)
	s.srv.received = append(s.srv.received, s.msg)
	return nil
}

func newSMTPServer(t *testing.T, failFirst int) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &smtpServer{failFirst: failFirst}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{srv: srv}, nil }))
	s.Domain = "localhost"
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	srv.url, _ = url.Parse("smtp://" + ln.Addr().String())
	return srv
}

func (s *smtpServer) mails() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

type fixture struct {
	db      *store.DB
	project store.Project
	jobs    []store.Job
}

func newFixture(t *testing.T) fixture {
	ctx := context.Background()
	db := testdb.Open(t)
	owner, _ := db.UpsertGitHubUser(ctx, store.GitHubUser{ID: 1, Login: "octocat", Email: "octocat@example.com"})
	db.UpsertGitHubUser(ctx, store.GitHubUser{ID: 2, Login: "hubot", Email: "hubot@example.com"})
	db.UpsertGitHubUser(ctx, store.GitHubUser{ID: 3, Login: "quiet"}) // no address: no mail
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGitHub, GitHubID: 7,
		FullName: "octocat/Hello-World", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	db.SyncMemberships(ctx, p.ID, []store.GitHubAccess{{GitHubID: 2}, {GitHubID: 3}})
	db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "i", BuildScript: "#!/bin/sh"})
	_, jobs, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main",
		SHA: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Author: "Codertocat", Message: "Break the build\n\nOn purpose."})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{db: db, project: p, jobs: jobs}
}

// finish runs the job to status s, telling m each step, as the runner does.
func (f fixture) finish(t *testing.T, m *Mailer, s store.JobStatus) {
	for _, st := range []store.JobStatus{store.JobRunning, s} {
		ch, err := f.db.UpdateJob(context.Background(), f.jobs[0].ID, store.JobUpdate{Status: st})
		if err != nil {
			t.Fatal(err)
		}
		m.JobChanged(context.Background(), ch)
	}
	m.Wait()
}

func newMailer(f fixture, srv *smtpServer, enabled bool) *Mailer {
	m := New(Config{SMTP: srv.url, From: &mail.Address{Name: "Kozmic", Address: "kozmic@ci.example.com"},
		BaseURL: "https://ci.example.com/", Enabled: enabled}, f.db, slog.New(slog.DiscardHandler))
	m.Retries = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	return m
}

func TestMailOnFailure(t *testing.T) {
	f := newFixture(t)
	srv := newSMTPServer(t, 0)
	f.finish(t, newMailer(f, srv, true), store.JobFailure)
	got := srv.mails()
	if len(got) != 1 {
		t.Fatalf("mails = %d, want 1 (running sends none)", len(got))
	}
	m := got[0]
	if m.from != "kozmic@ci.example.com" || strings.Join(m.to, ",") != "hubot@example.com,octocat@example.com" {
		t.Errorf("envelope = %s -> %v", m.from, m.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	if subject != "[failure] octocat/Hello-World#1 (main — 6113728f)" {
		t.Errorf("subject = %q", subject)
	}
	body, _ := io.ReadAll(msg.Body)
	for _, want := range []string{"Build #1 of octocat/Hello-World failed.", "https://ci.example.com/projects/1/builds/1", "Break the build"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}

func TestNoMailForSuccessOrWhenOff(t *testing.T) {
	f := newFixture(t)
	srv := newSMTPServer(t, 0)
	f.finish(t, newMailer(f, srv, true), store.JobSuccess)
	if n := len(srv.mails()); n != 0 {
		t.Errorf("success sent %d mails", n)
	}
	g := newFixture(t)
	g.finish(t, newMailer(g, srv, false), store.JobError)
	if n := len(srv.mails()); n != 0 {
		t.Errorf("KOZMIC_EMAIL_NOTIFICATIONS=false sent %d mails", n)
	}
}

// logTo makes m log as text into a buffer it returns.
func logTo(m *Mailer) *syncbuf.Buffer {
	logs := &syncbuf.Buffer{}
	m.log = slog.New(slog.NewTextHandler(logs, nil))
	return logs
}

func TestMailIsRetried(t *testing.T) {
	f := newFixture(t)
	srv := newSMTPServer(t, 2) // refuses twice, then takes it
	m := newMailer(f, srv, true)
	logs := logTo(m)
	f.finish(t, m, store.JobError)
	got := srv.mails()
	if len(got) != 1 || !strings.Contains(got[0].data, "Build #1 of octocat/Hello-World errored.") {
		t.Fatalf("mails after two refusals = %d", len(got))
	}
	if l := logs.String(); strings.Count(l, `msg="mail: send failed"`) != 2 || strings.Contains(l, "giving up") {
		t.Errorf("log after two refusals:\n%s", l)
	}
	// The build's result is untouched by mail trouble.
	if b, err := f.db.BuildByID(context.Background(), f.jobs[0].BuildID); err != nil || b.Status != store.BuildError {
		t.Errorf("build = %s, %v", b.Status, err)
	}
	// A server that never answers: given up, logged, and nothing else happens.
	dead := newFixture(t)
	srv.url.Host = "127.0.0.1:1"
	m = newMailer(dead, srv, true)
	logs = logTo(m)
	dead.finish(t, m, store.JobFailure)
	l := logs.String()
	if n := strings.Count(l, `msg="mail: send failed"`); n != 3 {
		t.Errorf("%d failed sends logged, want 3 (the first and each of 2 retries):\n%s", n, l)
	}
	if !strings.Contains(l, `level=ERROR msg="mail: giving up" subject="[failure] octocat/Hello-World#1 (main — 6113728f)" to=2 err=`) {
		t.Errorf("no giving-up line in the log:\n%s", l)
	}
	if b, err := dead.db.BuildByID(context.Background(), dead.jobs[0].BuildID); err != nil || b.Status != store.BuildFailure {
		t.Errorf("build after undeliverable mail = %s, %v; want failure", b.Status, err)
	}
	if n := len(srv.mails()); n != 1 {
		t.Errorf("mails = %d after the undeliverable one, want still 1", n)
	}
}
