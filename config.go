package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"kozmic/internal/password"
	"kozmic/store"
)

// Config is every setting of the server, read once at start from flags and
// KOZMIC_* environment variables (a flag wins over the variable).
type Config struct {
	Addr     string
	BaseURL  *url.URL
	Database string
	// SecretKey seals secrets at rest: KOZMIC_SECRET_KEY. When that is
	// unset, SecretKey is empty and SecretKeyFile names the file beside the
	// database the key is kept in; loadKeyFile reads it.
	SecretKey     []byte
	SecretKeyFile string

	// AdminPassword is the password of the "admin" user created at the
	// first start without GitHub; empty: generate one.
	AdminPassword string

	GitHubClientID     string
	GitHubClientSecret string
	GitHubURL          *url.URL
	// Who may sign in with GitHub: members of GitHubOrgs, the logins in
	// GitHubUsers and the Admins, or with OpenSignup every GitHub account.
	// Names are lower case (GitHub's are case-insensitive).
	GitHubOrgs  []string
	GitHubUsers []string
	OpenSignup  bool
	// Admins are the GitHub logins that are Kozmic admins, in lower case.
	Admins []string

	DockerHost     string
	DockerCertPath string // ca.pem, cert.pem and key.pem for an engine over TLS
	Workers        int
	// Engines are the Docker engines of KOZMIC_ENGINES; none: jobs run on
	// the one at DockerHost, with Workers slots.
	Engines           []EngineSetting
	StallTimeout      time.Duration
	JobTimeout        time.Duration
	CachedImagesLimit int
	MaxLogBytes       int64
	KeepLogs          time.Duration // logs of jobs that finished longer ago are deleted; 0: kept forever
	JobNetwork        string
	JobMemory         int64         // bytes; 0: no limit
	JobCPUs           float64       // 0: no limit
	GitProcs          int           // git processes at once
	GitTimeout        time.Duration // each git fetch of a job
	MinFreeDisk       int64         // bytes free beside the database below which /healthz answers 503; 0: none

	SMTPURL            *url.URL // nil: no mail
	MailFrom           *mail.Address
	EmailNotifications bool

	LogFormat string
	LogLevel  slog.Level

	// MetricsToken is the bearer token GET /metrics requires; empty: none.
	MetricsToken string

	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client; none: the client is the connection's peer.
	TrustedProxies []netip.Prefix

	ShutdownGrace time.Duration
}

// EngineSetting is one Docker engine of KOZMIC_ENGINES.
type EngineSetting struct {
	Name    string
	Host    string // a unix://, tcp://, http:// or https:// address
	CertDir string // ca.pem, cert.pem and key.pem for TLS; empty: none
	Slots   int    // jobs at once on it
}

// GitHubEnabled reports whether login with GitHub is configured.
func (c Config) GitHubEnabled() bool { return c.GitHubClientID != "" }

// setting is one row of the configuration table: its variable, its flag
// (none for secrets, which must not show in the process list), its default,
// its help text and how to store a value.
type setting struct {
	env, flag, def, help string
	set                  func(c *Config, v string) error
}

// settings is the configuration table, in the order values are applied:
// KOZMIC_DATABASE comes before KOZMIC_SECRET_KEY, whose file lives beside it.
var settings = []setting{
	{"KOZMIC_ADDR", "addr", ":8080", "Address to listen on.", func(c *Config, v string) error {
		c.Addr = v
		return nil
	}},
	{"KOZMIC_BASE_URL", "base-url", "http://localhost:8080", "Public URL of the server, used in webhook URLs, status links, badges and cookies.", func(c *Config, v string) error {
		u, err := parseHTTPURL(v)
		c.BaseURL = u
		return err
	}},
	{"KOZMIC_DATABASE", "database", "kozmic.db", "Path of the SQLite database file; created if missing.", func(c *Config, v string) error {
		if v == "" {
			return errors.New("empty path")
		}
		c.Database = v
		return nil
	}},
	{"KOZMIC_SECRET_KEY", "", "", "Key (at least 32 bytes) that encrypts secrets at rest. If unset, one is generated once and kept in `<database>.key` (mode 0600); back that file up with the database.", func(c *Config, v string) error {
		if v == "" {
			c.SecretKeyFile = c.Database + ".key"
			return nil
		}
		if len(v) < store.MinSecretKeyLen {
			return fmt.Errorf("%d bytes, need at least %d (make one with: openssl rand -hex 32)", len(v), store.MinSecretKeyLen)
		}
		c.SecretKey = []byte(v)
		return nil
	}},
	{"KOZMIC_GITHUB_CLIENT_ID", "github-client-id", "", "Client ID of the GitHub OAuth app; unset means local accounts only.", func(c *Config, v string) error {
		c.GitHubClientID = v
		return nil
	}},
	{"KOZMIC_GITHUB_CLIENT_SECRET", "", "", "Client secret of the GitHub OAuth app.", func(c *Config, v string) error {
		if (v == "") != (c.GitHubClientID == "") {
			return errors.New("set both KOZMIC_GITHUB_CLIENT_ID and KOZMIC_GITHUB_CLIENT_SECRET, or neither")
		}
		c.GitHubClientSecret = v
		return nil
	}},
	{"KOZMIC_GITHUB_URL", "github-url", "https://github.com", "GitHub web URL; set it to a GitHub Enterprise server to log in and call the API there.", func(c *Config, v string) error {
		u, err := parseHTTPURL(v)
		c.GitHubURL = u
		return err
	}},
	{"KOZMIC_GITHUB_ORGS", "github-orgs", "", "GitHub organizations whose members may sign in, separated by commas.", func(c *Config, v string) (err error) {
		c.GitHubOrgs, err = parseGitHubNames(c, v)
		return err
	}},
	{"KOZMIC_GITHUB_USERS", "github-users", "", "GitHub logins that may sign in, separated by commas.", func(c *Config, v string) (err error) {
		c.GitHubUsers, err = parseGitHubNames(c, v)
		return err
	}},
	{"KOZMIC_ADMINS", "admins", "", "GitHub logins that are Kozmic admins (and may sign in), separated by commas.", func(c *Config, v string) (err error) {
		c.Admins, err = parseGitHubNames(c, v)
		return err
	}},
	{"KOZMIC_OPEN_SIGNUP", "open-signup", "false", "With GitHub, true lets every GitHub account sign in; without it, KOZMIC_GITHUB_ORGS or KOZMIC_GITHUB_USERS must say who may.", func(c *Config, v string) (err error) {
		if c.OpenSignup, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		switch {
		case c.OpenSignup && !c.GitHubEnabled():
			return errGitHubOff
		case c.OpenSignup && len(c.GitHubOrgs)+len(c.GitHubUsers) > 0:
			return errors.New("true lets every GitHub account in, which KOZMIC_GITHUB_ORGS and KOZMIC_GITHUB_USERS would narrow: set one or the other")
		}
		return nil
	}},
	{"KOZMIC_ADMIN_PASSWORD", "", "", "Without GitHub: the password of the `admin` user made at the first start (8 to 72 bytes). If unset, one is generated and printed once to the log.", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		if c.GitHubEnabled() {
			return errors.New("is for local accounts, which are off while KOZMIC_GITHUB_CLIENT_ID is set")
		}
		c.AdminPassword = v
		return password.Check(v)
	}},
	{"KOZMIC_SHUTDOWN_GRACE", "shutdown-grace", "10m", "On SIGINT or SIGTERM, how long running jobs may go on before they are stopped (and run again at the next start); a second signal stops them at once.", func(c *Config, v string) (err error) {
		c.ShutdownGrace, err = parseDuration(v)
		return err
	}},
	{"DOCKER_HOST", "docker-host", "unix:///var/run/docker.sock", "Docker engine that runs the jobs.", func(c *Config, v string) error {
		if err := checkDockerHost(v); err != nil {
			return err
		}
		c.DockerHost = v
		return nil
	}},
	{"DOCKER_CERT_PATH", "docker-cert-path", "", "Directory with ca.pem, cert.pem and key.pem, for a Docker engine that wants TLS (a remote one at tcp://host:2376).", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		if err := checkCertDir(v); err != nil {
			return err
		}
		c.DockerCertPath = v
		return nil
	}},
	{"KOZMIC_WORKERS", "workers", "2", "Jobs that run at the same time; with KOZMIC_ENGINES, the slots of each engine that does not say.", func(c *Config, v string) (err error) {
		c.Workers, err = parseInt(v, 1, 256)
		return err
	}},
	{"KOZMIC_ENGINES", "engines", "", "Docker engines that run the jobs, instead of DOCKER_HOST: name=address[;slots=N][;tls=DIR] separated by commas, such as local=unix:///var/run/docker.sock;slots=2,b=tcp://10.0.0.5:2376;slots=4;tls=/etc/kozmic/b.", func(c *Config, v string) (err error) {
		c.Engines, err = parseEngines(v, c.Workers)
		return err
	}},
	{"KOZMIC_STALL_TIMEOUT", "stall-timeout", "15m", "A job that prints nothing for this long is killed.", func(c *Config, v string) (err error) {
		c.StallTimeout, err = parseDuration(v)
		return err
	}},
	{"KOZMIC_JOB_TIMEOUT", "job-timeout", "1h", "A job that runs longer than this is killed.", func(c *Config, v string) (err error) {
		c.JobTimeout, err = parseDuration(v)
		return err
	}},
	{"KOZMIC_CACHED_IMAGES_LIMIT", "cached-images-limit", "3", "Install-script images kept per project for its own builds, and as many again for all its forks' builds together; the least recently used go first.", func(c *Config, v string) (err error) {
		c.CachedImagesLimit, err = parseInt(v, 1, 1000)
		return err
	}},
	{"KOZMIC_MAX_LOG_BYTES", "max-log-bytes", "32MiB", "Log stored per job; beyond it storing stops and the job goes on.", func(c *Config, v string) (err error) {
		c.MaxLogBytes, err = parseSize(v, 1<<10)
		return err
	}},
	{"KOZMIC_KEEP_LOGS", "keep-logs", "90d", "Logs of jobs that finished longer ago than this are deleted (builds and jobs stay): days such as 90d, or a duration such as 720h; 0 or forever keeps them.", func(c *Config, v string) (err error) {
		c.KeepLogs, err = parseKeepLogs(v)
		return err
	}},
	{"KOZMIC_JOB_NETWORK", "job-network", "bridge", "Docker network of job containers: bridge, none, or a network's name.", func(c *Config, v string) error {
		if v == "host" || strings.HasPrefix(v, "container:") {
			return fmt.Errorf("%q would share a network namespace with the host or another container; use bridge, none or a network name", v)
		}
		if !networkName.MatchString(v) {
			return fmt.Errorf("%q is not a Docker network name", v)
		}
		c.JobNetwork = v
		return nil
	}},
	{"KOZMIC_JOB_MEMORY", "job-memory", "", "Memory limit of each job container, such as 2GiB; unset: no limit.", func(c *Config, v string) (err error) {
		if v == "" {
			return nil
		}
		c.JobMemory, err = parseSize(v, 6<<20) // Docker refuses less than 6 MiB
		return err
	}},
	{"KOZMIC_JOB_CPUS", "job-cpus", "", "CPUs each job container may use, such as 1.5; unset: no limit.", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("%q is not a positive number of CPUs", v)
		}
		c.JobCPUs = f
		return nil
	}},
	{"KOZMIC_GIT_PROCS", "git-procs", "8", "git processes that run at the same time; more wait for one to end, a Run build request at most 10 seconds before it is answered 503.", func(c *Config, v string) (err error) {
		c.GitProcs, err = parseInt(v, 1, 256)
		return err
	}},
	{"KOZMIC_GIT_TIMEOUT", "git-timeout", "10m", "A git fetch of a job that runs longer than this is stopped (the git commands of Run build have 30 seconds).", func(c *Config, v string) (err error) {
		c.GitTimeout, err = parseDuration(v)
		return err
	}},
	{"KOZMIC_MIN_FREE_DISK", "min-free-disk", "256MiB", "Free space in the database's directory below which GET /healthz answers 503 (\"disk\":\"low\"); 0 turns the check off.", func(c *Config, v string) (err error) {
		c.MinFreeDisk, err = parseSize(v, 0)
		return err
	}},
	{"KOZMIC_SMTP_URL", "smtp-url", "", "Mail server for notifications, as smtp://user:password@host:587 (STARTTLS) or smtps://…:465; unset: no mail.", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			return errors.New("not an smtp:// or smtps:// URL with a host") // the URL may hold a password: not echoed
		}
		c.SMTPURL = u
		return nil
	}},
	{"KOZMIC_MAIL_FROM", "mail-from", "", "Sender of notification mail; default kozmic@ the base URL's host.", func(c *Config, v string) error {
		if v == "" {
			v = "Kozmic <kozmic@" + c.BaseURL.Hostname() + ">"
		}
		a, err := mail.ParseAddress(v)
		if err != nil {
			return fmt.Errorf("%q is not an e-mail address", v)
		}
		c.MailFrom = a
		return nil
	}},
	{"KOZMIC_EMAIL_NOTIFICATIONS", "email-notifications", "true", "Send e-mail when a build fails or errors.", func(c *Config, v string) (err error) {
		c.EmailNotifications, err = strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		return nil
	}},
	{"KOZMIC_LOG_FORMAT", "log-format", "text", "Log format: text or json.", func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("%q is not text or json", v)
		}
		c.LogFormat = v
		return nil
	}},
	{"KOZMIC_LOG_LEVEL", "log-level", "info", "Least important log level written: debug, info, warn or error.", func(c *Config, v string) error {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("%q is not debug, info, warn or error", v)
		}
		return nil
	}},
	{"KOZMIC_METRICS_TOKEN", "", "", "Bearer token that GET /metrics requires (at least 16 printable characters, no spaces); unset: /metrics is public.", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		if len(v) < 16 {
			return fmt.Errorf("%d characters, need at least 16 (make one with: openssl rand -hex 32)", len(v))
		}
		for _, r := range v {
			if r <= ' ' || r > '~' {
				return errors.New("holds a space or a character that is not printable ASCII") // a secret: not echoed
			}
		}
		c.MetricsToken = v
		return nil
	}},
	{"KOZMIC_TRUSTED_PROXIES", "trusted-proxies", "", "Reverse proxies, as comma-separated CIDRs or addresses such as 127.0.0.1/32,10.0.0.0/8, from which the client's address is the rightmost X-Forwarded-For entry not in them; unset: it is the connection's peer.", func(c *Config, v string) (err error) {
		c.TrustedProxies, err = parseProxies(v)
		return err
	}},
}

// engineName is the name of an engine of KOZMIC_ENGINES.
var engineName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// parseEngines reads KOZMIC_ENGINES: engines separated by commas, each
// name=address followed by options separated by semicolons: slots=N (1 to
// 256; default slots) and tls=DIR (see checkCertDir). An address other
// than unix:// or the loopback interface must have tls: a Docker API
// reached over the network without TLS client certificates is open to
// anyone on the way, and the jobs' secrets cross it. The errors name the
// engine, or its place in the list when it has no name.
func parseEngines(v string, slots int) ([]EngineSetting, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var engines []EngineSetting
	seen := map[string]bool{}
	for i, entry := range strings.Split(v, ",") {
		options := strings.Split(entry, ";")
		name, host, ok := strings.Cut(options[0], "=")
		name, host = strings.TrimSpace(name), strings.TrimSpace(host)
		switch {
		case strings.TrimSpace(entry) == "":
			return nil, fmt.Errorf("engine %d is empty; engines are separated by one comma", i+1)
		case !ok:
			return nil, fmt.Errorf("engine %d: %q is not name=address, such as b=tcp://10.0.0.5:2376", i+1, strings.TrimSpace(options[0]))
		case !engineName.MatchString(name):
			return nil, fmt.Errorf("engine %d: %q is not a name of up to 32 lower-case letters, digits and hyphens, starting with a letter or digit", i+1, name)
		}
		fail := func(format string, args ...any) ([]EngineSetting, error) {
			return nil, fmt.Errorf("engine %q: "+format, append([]any{name}, args...)...)
		}
		if seen[name] {
			return fail("named twice")
		}
		seen[name] = true
		if host == "" {
			return fail("no address after %s=", name)
		}
		if err := checkDockerHost(host); err != nil {
			return fail("%w", err)
		}
		e := EngineSetting{Name: name, Host: host, Slots: slots}
		given := map[string]bool{}
		for _, o := range options[1:] {
			key, val, _ := strings.Cut(o, "=")
			key, val = strings.TrimSpace(key), strings.TrimSpace(val)
			if given[key] {
				return fail("%s given twice", key)
			}
			given[key] = true
			switch key {
			case "slots":
				n, err := parseInt(val, 1, 256)
				if err != nil {
					return fail("slots: %w", err)
				}
				e.Slots = n
			case "tls":
				if strings.HasPrefix(host, "unix:") {
					return fail("tls is for an engine over the network, not a unix:// socket")
				}
				if val == "" {
					return fail("tls= names no directory")
				}
				if err := checkCertDir(val); err != nil {
					return fail("tls: %w", err)
				}
				e.CertDir = val
			default:
				return fail("unknown option %q; the options are slots=N and tls=DIR", strings.TrimSpace(o))
			}
		}
		if e.CertDir == "" && !localDockerHost(host) {
			return fail("%s without tls=DIR would give anyone on the network root on that machine and show them the jobs' secrets: "+
				"give the engine TLS client certificates (see docs/deploy.md)", host)
		}
		engines = append(engines, e)
	}
	return engines, nil
}

// checkDockerHost accepts the address of a Docker engine as the Docker
// client takes it: unix:///path, or tcp://, http:// or https:// with a host
// and, if it has one, a port from 1 to 65535.
func checkDockerHost(v string) error {
	u, err := url.Parse(v)
	ok := err == nil
	if ok {
		switch u.Scheme {
		case "unix":
			ok = u.Host == "" && u.Path != ""
		case "tcp", "http", "https":
			port, perr := strconv.Atoi(u.Port())
			ok = u.Hostname() != "" && !strings.HasSuffix(u.Host, ":") && (u.Port() == "" || perr == nil && port >= 1 && port <= 65535)
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%q is not a unix://, tcp://, http:// or https:// address", v)
	}
	return nil
}

// localDockerHost says whether a Docker address checkDockerHost accepted
// stays on this machine: a unix socket, or the loopback interface.
func localDockerHost(v string) bool {
	u, _ := url.Parse(v)
	if u.Scheme == "unix" || u.Hostname() == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(u.Hostname())
	return err == nil && a.IsLoopback()
}

// checkCertDir checks that dir holds ca.pem, cert.pem and key.pem, the
// files of a Docker client over TLS, and that this process may read them.
func checkCertDir(dir string) error {
	for _, name := range []string{"ca.pem", "cert.pem", "key.pem"} {
		f, err := os.Open(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("%s has no %s", dir, name)
		case err != nil:
			return fmt.Errorf("cannot read %s: %w", filepath.Join(dir, name), errors.Unwrap(err))
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a file", filepath.Join(dir, name))
		}
	}
	return nil
}

var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// errGitHubOff refuses a GitHub sign-in setting while GitHub sign-in is off.
var errGitHubOff = errors.New("is for GitHub sign-in, which is off while KOZMIC_GITHUB_CLIENT_ID is unset")

// githubName is a GitHub login or organization name in lower case: letters,
// digits, hyphens and (for managed users' logins) underscores, starting
// with a letter or digit.
var githubName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,99}$`)

// parseGitHubNames reads a list of GitHub logins or organization names,
// separated by commas or spaces, into lower case. A list is refused while
// GitHub sign-in is off.
func parseGitHubNames(c *Config, v string) ([]string, error) {
	names := strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(names) > 0 && !c.GitHubEnabled() {
		return nil, errGitHubOff
	}
	for _, n := range names {
		if !githubName.MatchString(n) {
			return nil, fmt.Errorf("%q is not a GitHub login or organization name", n)
		}
	}
	return names, nil
}

// checkSignIn refuses a server whose GitHub sign-in would let every GitHub
// account in without KOZMIC_OPEN_SIGNUP saying that is intended: anyone
// who signs in may run jobs on this machine.
func (c Config) checkSignIn() error {
	if !c.GitHubEnabled() || c.OpenSignup || len(c.GitHubOrgs)+len(c.GitHubUsers) > 0 {
		return nil
	}
	return &ConfigError{Setting: "KOZMIC_GITHUB_ORGS, KOZMIC_GITHUB_USERS", Err: errors.New("neither is set, so every GitHub account " +
		"could sign in and run jobs here: name the organizations or logins that may, or set KOZMIC_OPEN_SIGNUP=true if an open server is intended")}
}

// ConfigError is a bad setting. Its text names the setting and what is wrong.
type ConfigError struct {
	Setting string
	Err     error
}

func (e *ConfigError) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// parseConfig fills a Config for command cmd from its arguments and the
// environment. It parses: it writes nothing, and reads no file (it only
// looks that DOCKER_CERT_PATH and each tls= of KOZMIC_ENGINES hold their
// three, readable), so the key file and the database's directory are the
// commands' to check. KOZMIC_ENGINES cannot go with DOCKER_HOST or
// DOCKER_CERT_PATH, which it replaces. For serve it also
// refuses GitHub sign-in open to everyone unless KOZMIC_OPEN_SIGNUP says
// so (see checkSignIn). Every failure is a *ConfigError, or flag.ErrHelp
// for -h.
func parseConfig(cmd string, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("kozmic "+cmd, flag.ContinueOnError)
	fs.SetOutput(usage)
	flags := map[string]*string{}
	for _, s := range settings {
		if s.flag != "" {
			flags[s.flag] = fs.String(s.flag, "", s.help+" (env "+s.env+", default "+strconv.Quote(s.def)+")")
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, &ConfigError{Setting: "arguments", Err: err}
	}
	if fs.NArg() > 0 {
		return Config{}, &ConfigError{Setting: "arguments", Err: fmt.Errorf("unexpected %q", fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var c Config
	for _, s := range settings {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		if s.flag != "" && given[s.flag] {
			v = *flags[s.flag]
		}
		if err := s.set(&c, v); err != nil {
			return Config{}, &ConfigError{Setting: s.env, Err: err}
		}
	}
	if len(c.Engines) > 0 {
		// KOZMIC_ENGINES names every engine: a DOCKER_HOST beside it
		// would be left unused without a word.
		for _, s := range []struct{ env, flag string }{{"DOCKER_HOST", "docker-host"}, {"DOCKER_CERT_PATH", "docker-cert-path"}} {
			if getenv(s.env) != "" || given[s.flag] {
				return Config{}, &ConfigError{Setting: "KOZMIC_ENGINES", Err: fmt.Errorf("%s is set too: set one or the other "+
					"(the engine at DOCKER_HOST can be one of KOZMIC_ENGINES, such as local=unix:///var/run/docker.sock)", s.env)}
			}
		}
	}
	if cmd == "serve" {
		// Only a server signs people in; the other commands work on its data.
		if err := c.checkSignIn(); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// parseProxies reads comma-separated CIDRs (10.0.0.0/8) or single addresses
// (192.0.2.1, ::1); empty entries are skipped. An address inside a CIDR
// (10.1.2.3/8) stands for its whole range.
func parseProxies(v string) ([]netip.Prefix, error) {
	var proxies []netip.Prefix
	for entry := range strings.SplitSeq(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			a, aerr := netip.ParseAddr(entry)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an IP address", entry)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		proxies = append(proxies, p.Masked())
	}
	return proxies, nil
}

// parseHTTPURL accepts an absolute http or https URL and drops a trailing slash.
func parseHTTPURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http or https URL", v)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
	}
	return n, nil
}

// parseDuration reads a positive duration: a bare whole number of seconds
// (900, the form Kozmic CI's settings took) or a Go duration such as 90s,
// 15m or 1h30m.
func parseDuration(v string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a positive duration such as 900 (seconds), 90s, 15m or 1h", v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > math.MaxInt64/int64(time.Second) {
			return 0, bad
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

var sizePattern = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$`)

// parseSize reads a byte count such as 512, 64k, 32MiB or 2g. K, M, G and T
// are powers of 1024, as Docker reads them.
func parseSize(v string, min int64) (int64, error) {
	m := sizePattern.FindStringSubmatch(strings.ToLower(strings.TrimSpace(v)))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size such as 512MiB or 2GiB", v)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m[2]]
	n := int64(f * float64(int64(1)<<shift))
	if n < min {
		return 0, fmt.Errorf("%q is below the minimum of %d bytes", v, min)
	}
	return n, nil
}
