package mailer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"kozmic/internal/paths"
	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/store"
)

// smtpServer is a real SMTP server on 127.0.0.1 that keeps what it gets;
// it refuses the first failFirst messages for now (451), and the recipient
// refuse for good (550).
type smtpServer struct {
	mu        sync.Mutex
	received  []received
	failFirst int
	refuse    string
	url       *url.URL
}

type received struct {
	user string // signed in as, with AUTH PLAIN
	from string
	to   []string
	data string
}

type session struct {
	srv  *smtpServer
	user string
	msg  received
}

// AuthMechanisms and Auth take any password for any user over TLS.
func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, _ string) error { s.user = username; return nil }), nil
}

func (s *session) Reset()                                      { s.msg = received{} }
func (s *session) Logout() error                               { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.msg.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.srv.refuse {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
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
	s.msg.data, s.msg.user = string(b), s.user
	s.srv.received = append(s.srv.received, s.msg)
	return nil
}

func newSMTPServer(t *testing.T, failFirst int) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveSMTP(t, ln, "smtp", failFirst)
}

// serveSMTP runs an smtpServer on ln, reached with the URL scheme scheme.
func serveSMTP(t *testing.T, ln net.Listener, scheme string, failFirst int) *smtpServer {
	srv := &smtpServer{failFirst: failFirst}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{srv: srv}, nil }))
	s.Domain = "localhost"
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	srv.url, _ = url.Parse(scheme + "://" + ln.Addr().String())
	return srv
}

func (s *smtpServer) mails() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

type fixture struct {
	db      *store.DB
	path    string // of the database, to open it again
	project store.Project
	jobs    []store.Job
}

func newFixture(t *testing.T) fixture {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kozmic.db")
	db := testdb.OpenAt(t, path)
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
	return fixture{db: db, path: path, project: p, jobs: jobs}
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
}

// waiting is the mail waiting in db, due or not.
func waiting(t *testing.T, db *store.DB) []store.Mail {
	t.Helper()
	due, err := db.DueMail(context.Background(), time.Now().Add(1000*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	return due
}

// start runs m's sender, as serve does, until the returned stop is called,
// which returns once Run has.
func start(m *Mailer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// sendAll runs m's sender until db's outbox is empty.
func sendAll(t *testing.T, m *Mailer, db *store.DB) {
	t.Helper()
	stop := start(m)
	defer stop()
	for deadline := time.Now().Add(20 * time.Second); len(waiting(t, db)) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("mail still waiting: %+v", waiting(t, db))
		}
	}
}

func newMailer(db *store.DB, u *url.URL, enabled bool) *Mailer {
	m := New(Config{SMTP: u, From: &mail.Address{Name: "Kozmic", Address: "kozmic@ci.example.com"},
		BaseURL: "https://ci.example.com/", Enabled: enabled}, db, slog.New(slog.DiscardHandler))
	m.Backoff = 10 * time.Millisecond
	return m
}

// closedURL is an SMTP URL on 127.0.0.1 where nothing listens: connections
// are refused.
func closedURL(t *testing.T) *url.URL {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	u, _ := url.Parse("smtp://" + ln.Addr().String())
	return u
}

// subject decodes a mail's Subject header.
func subject(t *testing.T, r received) string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(r.data))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	return s
}

// recipients lists who got the mails, in order.
func recipients(mails []received) string {
	var to []string
	for _, m := range mails {
		to = append(to, strings.Join(m.to, "+"))
	}
	slices.Sort(to)
	return strings.Join(to, ",")
}

func TestMailOnFailure(t *testing.T) {
	f := newFixture(t)
	srv := newSMTPServer(t, 0)
	m := newMailer(f.db, srv.url, true)
	f.finish(t, m, store.JobFailure)
	if n := len(waiting(t, f.db)); n != 2 {
		t.Fatalf("outbox = %d mails, want 2 (one per recipient; running sends none)", n)
	}
	sendAll(t, m, f.db)
	got := srv.mails()
	// One mail per recipient: nobody learns the others' addresses.
	if recipients(got) != "hubot@example.com,octocat@example.com" {
		t.Fatalf("mails went to %s", recipients(got))
	}
	for _, r := range got {
		if r.from != "kozmic@ci.example.com" {
			t.Errorf("envelope from %s", r.from)
		}
		if s := subject(t, r); s != "[failure] octocat/Hello-World#1 (main — 6113728f)" {
			t.Errorf("subject = %q", s)
		}
		msg, _ := mail.ReadMessage(strings.NewReader(r.data))
		body, _ := io.ReadAll(msg.Body)
		for _, want := range []string{"Build #1 of octocat/Hello-World failed.", "https://ci.example.com/projects/1/builds/1", "Break the build"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("body lacks %q:\n%s", want, body)
			}
		}
	}
}

// A commit's subject line is the pusher's to choose; a mail shows its first
// maxSubjectLine bytes, not the megabytes a webhook may carry.
func TestFailureMailClipsAHugeCommitSubject(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	_, body := Compose(store.Project{ID: 1, FullName: "octocat/Hello-World"},
		store.Build{Number: 1, Ref: "refs/heads/main", SHA: strings.Repeat("a", 40), Message: huge + "\nmore", Status: store.BuildFailure},
		nil, "https://ci.example.com")
	if len(body) > 2*maxSubjectLine+400 || !strings.Contains(body, strings.Repeat("x", maxSubjectLine)+"…") {
		t.Errorf("a mail of a 1 MiB subject line has %d bytes; want it cut to %d and marked", len(body), maxSubjectLine)
	}
}

// A failure mail writes how long each job ran as the pages and commit
// statuses do (when.Duration): 1m03s, not 1m3s.
func TestFailureMailWritesDurationsAsPagesDo(t *testing.T) {
	start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var failed []FailedJob
	for i, ran := range []time.Duration{63 * time.Second, 2*time.Hour + 5*time.Minute + 400*time.Millisecond} {
		failed = append(failed, FailedJob{Job: store.Job{ID: int64(i + 1), HookTitle: fmt.Sprintf("job%d", i+1), Status: store.JobFailure,
			StartedAt: start, FinishedAt: start.Add(ran)}})
	}
	_, body := Compose(store.Project{ID: 1, FullName: "octocat/Hello-World"},
		store.Build{Number: 1, Ref: "refs/heads/main", SHA: strings.Repeat("a", 40), Status: store.BuildFailure},
		failed, "https://ci.example.com")
	for _, want := range []string{"\njob1 failed after 1m03s\n", "\njob2 failed after 2h05m\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("the mail lacks %q:\n%s", want, body)
		}
	}
}

func TestNoMailForSuccessOrWhenOff(t *testing.T) {
	f := newFixture(t)
	srv := newSMTPServer(t, 0)
	f.finish(t, newMailer(f.db, srv.url, true), store.JobSuccess)
	if n := len(waiting(t, f.db)); n != 0 {
		t.Errorf("success put %d mails in the outbox", n)
	}
	g := newFixture(t)
	g.finish(t, newMailer(g.db, srv.url, false), store.JobError)
	if n := len(waiting(t, g.db)); n != 0 {
		t.Errorf("KOZMIC_EMAIL_NOTIFICATIONS=false put %d mails in the outbox", n)
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
	srv := newSMTPServer(t, 2) // refuses twice, then takes them
	m := newMailer(f.db, srv.url, true)
	logs := logTo(m)
	f.finish(t, m, store.JobError)
	sendAll(t, m, f.db)
	got := srv.mails()
	if len(got) != 2 || !strings.Contains(got[0].data, "Build #1 of octocat/Hello-World errored.") {
		t.Fatalf("mails after two refusals = %d", len(got))
	}
	if l := logs.String(); strings.Count(l, `msg="mail: send failed"`) != 2 || strings.Contains(l, "giving up") {
		t.Errorf("log after two refusals:\n%s", l)
	}
	// The build's result is untouched by mail trouble.
	if b, err := f.db.BuildByID(context.Background(), f.jobs[0].BuildID); err != nil || b.Status != store.BuildError {
		t.Errorf("build = %s, %v", b.Status, err)
	}
}

func TestUndeliverableMailIsGivenUpAfterMaxAge(t *testing.T) {
	f := newFixture(t)
	m := newMailer(f.db, closedURL(t), true)
	m.MaxAge = 200 * time.Millisecond
	logs := logTo(m)
	f.finish(t, m, store.JobFailure)
	sendAll(t, m, f.db) // returns once both are given up
	l := logs.String()
	if n := strings.Count(l, `level=ERROR msg="mail: giving up" to=`); n != 2 {
		t.Errorf("%d mails given up in the log, want 2:\n%s", n, l)
	}
	if !strings.Contains(l, `to=hubot@example.com subject="[failure] octocat/Hello-World#1 (main — 6113728f)"`) ||
		!strings.Contains(l, `msg="mail: send failed"`) {
		t.Errorf("the log does not show the retries and whose mail was given up:\n%s", l)
	}
	if b, err := f.db.BuildByID(context.Background(), f.jobs[0].BuildID); err != nil || b.Status != store.BuildFailure {
		t.Errorf("build after undeliverable mail = %s, %v; want failure", b.Status, err)
	}
}

func TestRecipientRefusedForGoodIsGivenUpAloneAndOthersGetOneMail(t *testing.T) {
	f := newFixture(t)
	srv := newSMTPServer(t, 0)
	srv.refuse = "hubot@example.com"
	m := newMailer(f.db, srv.url, true)
	logs := logTo(m)
	f.finish(t, m, store.JobFailure)
	sendAll(t, m, f.db)
	if got := recipients(srv.mails()); got != "octocat@example.com" {
		t.Errorf("mails went to %q, want octocat once", got)
	}
	l := logs.String()
	if !strings.Contains(l, `level=ERROR msg="mail: giving up" to=hubot@example.com`) || !strings.Contains(l, "attempts=1 ") ||
		strings.Contains(l, `msg="mail: send failed"`) {
		t.Errorf("a 550 is not given up at the first attempt:\n%s", l)
	}
}

func TestFailureMailSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	down := newMailer(f.db, closedURL(t), true)
	f.finish(t, down, store.JobFailure)
	// The first server tries while the mail server is down, then stops.
	stop := start(down)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if o := waiting(t, f.db); len(o) == 2 && o[0].Attempts > 0 && o[1].Attempts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mail was never tried: %+v", waiting(t, f.db))
		}
	}
	stop()
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}

	// The next start, with the mail server back, sends each mail once.
	db := testdb.OpenAt(t, f.path)
	if n := len(waiting(t, db)); n != 2 {
		t.Fatalf("after the restart the outbox holds %d mails, want 2", n)
	}
	srv := newSMTPServer(t, 0)
	sendAll(t, newMailer(db, srv.url, true), db)
	got := srv.mails()
	if recipients(got) != "hubot@example.com,octocat@example.com" {
		t.Fatalf("after the restart mails went to %q, want hubot and octocat once each", recipients(got))
	}
	if s := subject(t, got[0]); s != "[failure] octocat/Hello-World#1 (main — 6113728f)" {
		t.Errorf("subject = %q", s)
	}
}

// tarpit is a mail server that takes connections and never says a word.
// Its channel receives each connection it takes.
func tarpit(t *testing.T) (*url.URL, <-chan net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			conns <- c
		}
	}()
	u, _ := url.Parse("smtp://" + ln.Addr().String())
	return u, conns
}

func TestStoppingTheSenderCutsAStalledSMTPConversation(t *testing.T) {
	f := newFixture(t)
	u, conns := tarpit(t)
	m := newMailer(f.db, u, true)
	f.finish(t, m, store.JobFailure)
	stop := start(m)
	conn := <-conns // the sender waits for a greeting that never comes
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second): // go-mail would wait 30 s for the greeting
		t.Fatal("the sender did not stop while the mail server said nothing")
	}
	// It hung up: the server reads the end of the connection.
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the server read %v, want the sender's hang-up", err)
	}
	o := waiting(t, f.db)
	if len(o) != 2 || o[0].Attempts != 0 {
		t.Errorf("outbox after a cut attempt = %+v, want both mails as they were", o)
	}
}

// testCA is the certificate trustedCert serves, made once per process: Go
// reads SSL_CERT_FILE only when a client first verifies a certificate, so a
// second one (as with -count=2) would not be trusted.
var testCA = sync.OnceValues(func() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test mail server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
})

// trustedCert is a certificate for 127.0.0.1 that this test process's TLS
// clients trust: its issuer is the only root in SSL_CERT_FILE.
func trustedCert(t *testing.T) tls.Certificate {
	cert, err := testCA()
	if err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", roots)
	return cert
}

func TestSMTPSDeliversOverImplicitTLSWithPassword(t *testing.T) {
	cert := trustedCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveSMTP(t, ln, "smtps", 0)
	u := *srv.url
	u.User = url.UserPassword("kozmic", "mail password")
	f := newFixture(t)
	m := newMailer(f.db, &u, true)
	f.finish(t, m, store.JobFailure)
	sendAll(t, m, f.db)
	got := srv.mails()
	if len(got) != 2 || got[0].user != "kozmic" || got[1].user != "kozmic" {
		t.Errorf("mails over smtps = %+v, want 2 sent as kozmic", got)
	}
}

// body decodes a mail's text body, with its line ends as \n.
func body(t *testing.T, r received) string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(r.data))
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		rd = quotedprintable.NewReader(rd)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// A failure mail names each job whose latest attempt failed or errored (not
// one restarted since),
// with a link, how long it ran and the last 20 lines of its log as plain
// text: read from the end of a log far longer than the mail, terminal codes
// applied and dropped, each line cut to 500 bytes, and secrets masked, also
// one the job printed in pieces between colour codes, which the runner's
// masking of the stored log cannot see.
func TestFailureMailNamesFailedJobsWithTheirLastLines(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	const secret = "hunter2-s3cret"
	if err := f.db.SetSecret(ctx, f.project.ID, store.Secret{Name: "TOKEN", Value: secret}); err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"docs", "lint"} {
		if _, err := f.db.CreateHook(ctx, store.Hook{ProjectID: f.project.ID, Title: title, DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	b, jobs, err := f.db.CreateBuild(ctx, store.NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main",
		SHA: "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d", Author: "Codertocat", Message: "Break it twice"})
	if err != nil {
		t.Fatal(err)
	}
	job := map[string]store.Job{}
	for _, j := range jobs {
		job[j.HookTitle] = j
	}

	// The log of "test" as the runner stores it: a secret printed whole is
	// masked already.
	var log strings.Builder
	for i := range 6000 { // 100 KiB: more than a mail reads
		fmt.Fprintf(&log, "early line %04d\r\n", i)
	}
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&log, "\x1b[32mstep %02d\x1b[0m ok\r\n", i)
	}
	log.WriteString("Downloading 10%\rDownloading 100%\r\n")
	log.WriteString("token is ********\r\n")
	log.WriteString("pieces: hunter2\x1b[1m-s3cret\x1b[0m\r\n")
	log.WriteString(strings.Repeat("x", 2000) + "\r\n")
	log.WriteString("\x1b[1;31m==> The build script exited with 1\x1b[0m\r\n")
	if _, err := f.db.AppendLog(ctx, job["test"].ID, []byte(log.String()), false); err != nil {
		t.Fatal(err)
	}

	srv := newSMTPServer(t, 0)
	m := newMailer(f.db, srv.url, true)
	step := func(hook string, to store.JobStatus, why string) {
		t.Helper()
		ch, err := f.db.UpdateJob(ctx, job[hook].ID, store.JobUpdate{Status: to, Error: why})
		if err != nil {
			t.Fatal(err)
		}
		m.JobChanged(ctx, ch)
	}
	// docs fails (a first failure mail), is restarted and passes: its
	// failed attempt is no longer the build's.
	step("docs", store.JobRunning, "")
	step("docs", store.JobFailure, "")
	ch, err := f.db.RestartJob(ctx, job["docs"].ID, store.User{})
	if err != nil {
		t.Fatal(err)
	}
	job["docs"] = ch.Job
	step("docs", store.JobRunning, "")
	step("docs", store.JobSuccess, "")
	step("lint", store.JobError, "Canceled by octocat.") // the build errors: an error mail
	step("test", store.JobRunning, "")
	step("test", store.JobFailure, "") // the build fails again: the mail looked at here
	sendAll(t, m, f.db)

	var mails []string
	for _, r := range srv.mails() {
		if r.to[0] == "octocat@example.com" && subject(t, r) == "[failure] octocat/Hello-World#2 (main — 7fd1a60b)" {
			mails = append(mails, body(t, r))
		}
	}
	if len(mails) != 2 || !strings.Contains(mails[0], "\ndocs failed after ") {
		t.Fatalf("octocat got %d failure mails of build 2, want 2, the first naming docs:\n%s", len(mails), strings.Join(mails, "\n\n"))
	}
	got := mails[1]
	lines := func(from, to int) string {
		var s strings.Builder
		for i := from; i <= to; i++ {
			fmt.Fprintf(&s, "| step %02d ok\n", i)
		}
		return s.String()
	}
	wantTail := lines(11, 25) + "| Downloading 100%\n| token is ********\n| pieces: ********\n| " +
		strings.Repeat("x", maxLineShown) + "…\n| ==> The build script exited with 1\n"
	base := "https://ci.example.com" + paths.Build(f.project.ID, b.Number)
	for _, want := range []string{
		"\nlint errored before it started: Canceled by octocat.\n" + base + "/jobs/" + strconv.FormatInt(job["lint"].ID, 10) + "\n",
		"\n" + base + "/jobs/" + strconv.FormatInt(job["test"].ID, 10) + "\n" + wantTail + "\n-- \n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the mail lacks\n%s\nin\n%s", want, got)
		}
	}
	if !regexp.MustCompile(`\ntest failed after \d+(s|m\d\ds|h\d\dm)\n`).MatchString(got) {
		t.Errorf("the mail does not say how long test ran:\n%s", got)
	}
	for _, not := range []string{secret, "docs", "step 10", "early line", "\x1b"} {
		if strings.Contains(got, not) {
			t.Errorf("the mail shows %q:\n%s", not, got)
		}
	}
}
