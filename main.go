// Command kozmic is a self-hosted continuous-integration server: GitHub (or
// any git server) sends a webhook, Kozmic runs each of the project's hooks in
// Docker and reports the result.
//
// Usage:
//
//	kozmic [serve] [flags]   run the server (the default)
//	kozmic migrate [flags]   apply pending database migrations and exit
//	kozmic user add NAME [-admin] | passwd NAME   make a local account, or set its password
//	kozmic exec [flags] DIR  run a hook definition on a working tree, as a job would
//	kozmic backup FILE [-force] [flags]   write a checked copy of the database, also while it runs
//	kozmic version           print the version
//
// Every flag has a KOZMIC_* environment variable; see the README.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/gh"
	"kozmic/git"
	"kozmic/handlers"
	"kozmic/mailer"
	"kozmic/metrics"
	"kozmic/migrations"
	"kozmic/runner"
	"kozmic/store"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// it comes from the module's build information.
var version = ""

func main() {
	// The first SIGINT or SIGTERM ends ctx: the server stops taking work and
	// lets running jobs finish. A second one ends the grace at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	soft, stop := context.WithCancel(context.Background())
	hard, stopNow := context.WithCancel(context.Background())
	go func() {
		<-sigs
		stop()
		<-sigs
		stopNow()
	}()
	code := run(withHardStop(soft, hard), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(code)
}

type hardStopKey struct{}

// withHardStop returns ctx carrying hard, whose end cuts a graceful
// shutdown short.
func withHardStop(ctx, hard context.Context) context.Context {
	return context.WithValue(ctx, hardStopKey{}, hard)
}

// hardStop is the context whose end cuts ctx's graceful shutdown short;
// one that never ends when there is none.
func hardStop(ctx context.Context) context.Context {
	if h, ok := ctx.Value(hardStopKey{}).(context.Context); ok {
		return h
	}
	return context.Background()
}

// Exit codes: 0 done, 1 failed while running, 2 bad command line or configuration.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// run is the whole program; ctx ends it (a signal, in main).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "kozmic", buildVersion())
		return exitOK
	case "exec":
		return runExec(ctx, args, getenv, stdout, stderr)
	case "user":
		return runUser(ctx, args, getenv, stdin, stdout, stderr)
	case "backup":
		return runBackup(ctx, args, getenv, stdout, stderr)
	case "serve", "migrate":
	default:
		fmt.Fprintf(stderr, "kozmic: unknown command %q; commands are serve, migrate, user, exec, backup and version\n", cmd)
		return exitUsage
	}

	cfg, code, ok := loadConfig(cmd, args, getenv, stderr, "")
	if !ok {
		return code
	}
	var engines []runner.EngineConfig
	if cmd == "serve" {
		var err error
		if engines, err = dockerEngines(cfg); err != nil {
			fmt.Fprintf(stderr, "kozmic: %v\n", err)
			return exitUsage
		}
	}
	log := newLogger(cfg, stderr)
	db, code := openStore(ctx, cfg, log, stderr)
	if db == nil {
		return code
	}
	defer db.Close()

	if cmd == "migrate" {
		v, err := db.SchemaVersion(ctx)
		if err != nil {
			log.Error("read schema version", "err", err)
			return exitFailed
		}
		log.Info("database is up to date", "path", cfg.Database, "version", v)
		return exitOK
	}
	if !cfg.GitHubEnabled() {
		if err := ensureAdmin(ctx, cfg, db, log); err != nil {
			log.Error("local accounts", "err", err)
			return exitFailed
		}
	} else {
		// Sign-ins keep admin rights in step with KOZMIC_ADMINS; this
		// catches up with a changed list before anyone's next sign-in.
		n, err := db.SetGitHubAdmins(ctx, cfg.Admins)
		if err != nil {
			log.Error("admins from KOZMIC_ADMINS", "err", err)
			return exitFailed
		}
		if n > 0 {
			log.Info("admins changed to follow KOZMIC_ADMINS", "users", n)
		}
		// With logins alone the list says who is admitted; whom the
		// organizations admit only GitHub knows, at their next sign-in.
		if !cfg.OpenSignup && len(cfg.GitHubOrgs) == 0 {
			n, err := db.Sessions().DeleteGitHubSessionsExcept(ctx, slices.Concat(cfg.GitHubUsers, cfg.Admins))
			if err != nil {
				log.Error("end sessions of logins not admitted", "err", err)
				return exitFailed
			}
			if n > 0 {
				log.Info("sessions ended of GitHub users no longer admitted", "sessions", n)
			}
		}
	}
	if err := serve(ctx, cfg, engines, db, log); err != nil {
		log.Error("serve", "err", err)
		return exitFailed
	}
	return exitOK
}

// loadConfig reads the configuration of command cmd. When it cannot go on
// it has said why on stderr (with usage, if given, after -h) and returns
// ok false and the exit code: 0 for -h, 2 for a bad setting.
func loadConfig(cmd string, args []string, getenv func(string) string, stderr io.Writer, usage string) (cfg Config, code int, ok bool) {
	cfg, err := parseConfig(cmd, args, getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		if usage != "" {
			fmt.Fprintln(stderr, usage)
		}
		return cfg, exitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "kozmic: %v\n", err)
		return cfg, exitUsage, false
	}
	return cfg, exitOK, true
}

// openStore readies and opens the database for a command that writes it:
// it checks that the database file and its directory can be written, takes
// the secret key from the key file beside the database when
// KOZMIC_SECRET_KEY is unset (generating the file the first time), and opens
// (creating and migrating) the database. It returns nil and the exit code
// when that fails: 2, with one line naming the setting, for a database path
// it cannot write, an unusable key file or a wrong key; else 1.
func openStore(ctx context.Context, cfg Config, log *slog.Logger, stderr io.Writer) (*store.DB, int) {
	if err := checkWritable(cfg.Database); err != nil {
		fmt.Fprintf(stderr, "kozmic: %v\n", &ConfigError{Setting: "KOZMIC_DATABASE", Err: err})
		return nil, exitUsage
	}
	generated := false
	if cfg.SecretKeyFile != "" {
		var err error
		if generated, err = cfg.loadKeyFile(true); err != nil {
			fmt.Fprintf(stderr, "kozmic: %v\n", err)
			return nil, exitUsage
		}
		if generated {
			log.Warn("KOZMIC_SECRET_KEY is not set: generated a key; back it up with the database, secrets cannot be read without it", "file", cfg.SecretKeyFile)
		} else {
			log.Warn("KOZMIC_SECRET_KEY is not set: using the key kept beside the database", "file", cfg.SecretKeyFile)
		}
	}
	db, err := store.Open(ctx, cfg.Database, store.Options{SecretKey: cfg.SecretKey, Migrations: migrations.FS, Logger: log})
	if errors.Is(err, store.ErrWrongKey) {
		if generated {
			// A key made just now cannot be this database's: it must not
			// stay to be mistaken for it.
			os.Remove(cfg.SecretKeyFile)
		}
		fmt.Fprintf(stderr, "kozmic: KOZMIC_SECRET_KEY: %v\n", err)
		return nil, exitUsage
	} else if err != nil {
		log.Error("open database", "path", cfg.Database, "err", err)
		return nil, exitFailed
	}
	return db, exitOK
}

// existingDatabase is the absolute path of the database for a command that
// works on the server's data (user, backup), which must not make one: run
// in the wrong directory it would make an empty database of its own that
// the server never reads. The error, a *ConfigError for KOZMIC_DATABASE,
// names the path looked at.
func existingDatabase(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", &ConfigError{Setting: "KOZMIC_DATABASE", Err: err}
	}
	_, err = os.Stat(abs)
	switch {
	case err == nil:
		return abs, nil
	case errors.Is(err, fs.ErrNotExist):
		err = fmt.Errorf("there is no database at %s; run this where the server keeps its database, or set KOZMIC_DATABASE to its path", abs)
	default:
		err = fmt.Errorf("database %s: %w", abs, errors.Unwrap(err))
	}
	return "", &ConfigError{Setting: "KOZMIC_DATABASE", Err: err}
}

// loadKeyFile sets c.SecretKey from the key file c.SecretKeyFile. With
// generate, a missing file is first created with a fresh random key,
// readable by its owner only, and generated is true; without, a missing file
// is an error. Every error is a *ConfigError for KOZMIC_SECRET_KEY.
func (c *Config) loadKeyFile(generate bool) (generated bool, err error) {
	fail := func(format string, args ...any) (bool, error) {
		return false, &ConfigError{Setting: "KOZMIC_SECRET_KEY", Err: fmt.Errorf(format, args...)}
	}
	b, err := os.ReadFile(c.SecretKeyFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && generate:
		raw := make([]byte, 32)
		rand.Read(raw)
		b = []byte(hex.EncodeToString(raw))
		f, err := os.OpenFile(c.SecretKeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail("unset, and no key file can be created: %w", err)
		}
		_, werr := f.Write(append(b, '\n'))
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			os.Remove(c.SecretKeyFile)
			return fail("unset, and writing %s failed: %w", c.SecretKeyFile, err)
		}
		generated = true
	case errors.Is(err, os.ErrNotExist):
		return fail("unset, and there is no key file %s", c.SecretKeyFile)
	case err != nil:
		return fail("unset, and the key file cannot be read: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < store.MinSecretKeyLen {
		return fail("unset, and %s holds %d bytes, need at least %d", c.SecretKeyFile, len(key), store.MinSecretKeyLen)
	}
	c.SecretKey = []byte(key)
	return generated, nil
}

// checkWritable tells whether the database file can be created or opened
// for writing, and whether SQLite can create its -wal and -shm files beside it.
func checkWritable(path string) error {
	if path == "" {
		return errors.New("empty path")
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	probe, err := os.CreateTemp(dir, ".kozmic-write-check-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, errors.Unwrap(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot open %s for writing: %w", path, errors.Unwrap(err))
	}
	return nil
}

// dockerEngines makes a client for each engine of cfg.Engines, for
// runner.Config.Engines; none without them. An engine whose client cannot
// be made, as when its tls= files hold no certificate and key that go
// together, is a *ConfigError for KOZMIC_ENGINES naming the engine.
func dockerEngines(cfg Config) ([]runner.EngineConfig, error) {
	var engines []runner.EngineConfig
	for _, e := range cfg.Engines {
		dc, err := runner.NewDockerTLSClient(e.Host, e.CertDir)
		if err != nil {
			return nil, &ConfigError{Setting: "KOZMIC_ENGINES", Err: fmt.Errorf("engine %q: %w", e.Name, err)}
		}
		engines = append(engines, runner.EngineConfig{Name: e.Name, Client: dc, Slots: e.Slots})
	}
	return engines, nil
}

// serve runs the job runner on engines (or without them the one at
// cfg.DockerHost) and answers HTTP until ctx ends; then it stops taking
// requests and jobs, lets running jobs finish for up to cfg.ShutdownGrace
// (or until the hard stop in ctx) and leaves the rest to the next start's
// recovery.
func serve(ctx context.Context, cfg Config, engines []runner.EngineConfig, db *store.DB, log *slog.Logger) error {
	started := time.Now()
	var dc *docker.Client // the one engine, when KOZMIC_ENGINES names none
	if len(engines) == 0 {
		var err error
		if dc, err = runner.NewDockerTLSClient(cfg.DockerHost, cfg.DockerCertPath); err != nil {
			return err
		}
	}
	github := gh.New(gh.Config{WebURL: cfg.GitHubURL, ClientID: cfg.GitHubClientID,
		ClientSecret: cfg.GitHubClientSecret, BaseURL: cfg.BaseURL,
		SignIn: gh.SignIn{Orgs: cfg.GitHubOrgs, Users: cfg.GitHubUsers, Admins: cfg.Admins, Open: cfg.OpenSignup}})
	statuses := gh.NewStatuses(github, db, log)
	postCtx, stopPosting := context.WithCancel(context.WithoutCancel(ctx))
	posting := make(chan struct{})
	go func() { statuses.Run(postCtx); close(posting) }()
	defer func() { stopPosting(); <-posting }()

	mail := mailer.New(mailer.Config{SMTP: cfg.SMTPURL, From: cfg.MailFrom, BaseURL: cfg.BaseURL.String(),
		Enabled: cfg.EmailNotifications}, db, log)
	// Mail still due at shutdown stays in the outbox for the next start:
	// stopping cuts a conversation with the mail server short, so it is
	// only waited for until it has noticed.
	mailing := make(chan struct{})
	go func() { mail.Run(postCtx); close(mailing) }()
	defer func() { stopPosting(); <-mailing }()

	git.SetLimits(git.Limits{Procs: cfg.GitProcs, FetchTimeout: cfg.GitTimeout})
	mets := metrics.New(db, log)
	// One for the runner and the handlers: see handlers.Deps.Projects.
	projects := gh.NewProjects(github, db, log)
	jobs := runner.New(runner.Config{
		Workers: cfg.Workers, StallTimeout: cfg.StallTimeout, JobTimeout: cfg.JobTimeout,
		CachedImagesLimit: cfg.CachedImagesLimit, MaxLogBytes: cfg.MaxLogBytes, Network: cfg.JobNetwork,
		Memory: cfg.JobMemory, CPUs: cfg.JobCPUs, Instance: db.InstanceID(), Metrics: mets,
		DeployKeys: projects, Engines: engines,
	}, db, dc, notifiers{statuses, mail}, log)
	mets.SetEngines(func() []metrics.Engine { return engineMetrics(jobs.Engines()) })
	jobs.Start(ctx)

	go sweepSessions(postCtx, db, log)
	// Waited for at shutdown, so that it is out of the database before it closes.
	maintaining := make(chan struct{})
	go func() { maintainLogs(postCtx, db, cfg.KeepLogs, log); close(maintaining) }()
	defer func() { stopPosting(); <-maintaining }()
	h := handlers.New(handlers.Deps{DB: db, Jobs: jobs, GitHub: github, Projects: projects, Sessions: db.Sessions(), BaseURL: cfg.BaseURL,
		GitHubURL: cfg.GitHubURL, Log: log, Metrics: mets, MetricsToken: cfg.MetricsToken, TrustedProxies: cfg.TrustedProxies,
		MinFreeDisk: uint64(cfg.MinFreeDisk), Version: buildVersion(), Started: started})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("kozmic is listening", "addr", ln.Addr().String(), "url", cfg.BaseURL.String(), "version", buildVersion())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	// Running jobs may finish within the grace; a second signal ends it.
	grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	defer cancel()
	defer context.AfterFunc(hardStop(ctx), cancel)()
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Shutdown(grace) }() // stops listening now; idle connections close
	jobs.Shutdown(grace)
	if grace.Err() != nil {
		log.Warn("stopped before every running job finished: the next start runs them again")
	}
	// Live log streams never go idle: once the jobs are done they are cut.
	srv.Close()
	if serr := <-httpDone; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, context.Canceled) &&
		!errors.Is(serr, context.DeadlineExceeded) && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	return err
}

// engineMetrics is the runner's engines as a scrape reports them.
func engineMetrics(states []runner.EngineState) []metrics.Engine {
	out := make([]metrics.Engine, len(states))
	for i, e := range states {
		out[i] = metrics.Engine{Name: e.Name, Slots: e.Slots, Busy: e.Busy, Up: !e.Down, Started: e.Started, Failed: e.Failed}
	}
	return out
}

// notifiers passes every job change to each notifier in turn.
type notifiers []runner.Notifier

func (ns notifiers) JobChanged(ctx context.Context, ch store.JobChanged) {
	for _, n := range ns {
		n.JobChanged(ctx, ch)
	}
}

// sweepSessions deletes expired sessions every hour until ctx ends.
func sweepSessions(ctx context.Context, db *store.DB, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := db.Sessions().DeleteExpired(ctx); err != nil {
				log.Error("delete expired sessions", "err", err)
			} else if n > 0 {
				log.Info("deleted expired sessions", "count", n)
			}
		}
	}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
