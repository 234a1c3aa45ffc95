package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	_ "modernc.org/sqlite"

	"kozmic/internal/password"
	"kozmic/internal/syncbuf"
	"kozmic/internal/testimage"
	"kozmic/migrations"
	"kozmic/store"
)

// env builds a getenv over a map, with the database in a fresh directory
// unless the map names one.
func env(t *testing.T, kv map[string]string) func(string) string {
	t.Helper()
	m := map[string]string{"KOZMIC_DATABASE": filepath.Join(t.TempDir(), "kozmic.db")}
	for k, v := range kv {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "kozmic.db")
	c, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_DATABASE": dbPath}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]bool{
		"addr :8080":               c.Addr == ":8080",
		"base url":                 c.BaseURL.String() == "http://localhost:8080",
		"github url":               c.GitHubURL.String() == "https://github.com",
		"github off":               !c.GitHubEnabled(),
		"docker host":              c.DockerHost == "unix:///var/run/docker.sock",
		"workers 2":                c.Workers == 2,
		"stall 15m":                c.StallTimeout == 15*time.Minute,
		"job timeout 1h":           c.JobTimeout == time.Hour,
		"cache limit 3":            c.CachedImagesLimit == 3,
		"max log 32 MiB":           c.MaxLogBytes == 32<<20,
		"network bridge":           c.JobNetwork == "bridge",
		"no memory limit":          c.JobMemory == 0,
		"no cpu limit":             c.JobCPUs == 0,
		"min free disk 256 MiB":    c.MinFreeDisk == 256<<20,
		"no smtp":                  c.SMTPURL == nil,
		"no trusted proxies":       c.TrustedProxies == nil,
		"mail from base host":      c.MailFrom.Address == "kozmic@localhost",
		"notifications on":         c.EmailNotifications,
		"log text":                 c.LogFormat == "text",
		"log info":                 c.LogLevel.String() == "INFO",
		"key not read yet":         c.SecretKey == nil,
		"key file beside database": c.SecretKeyFile == dbPath+".key",
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("default %s: wrong; config = %+v", name, c)
		}
	}
	// Parsing writes nothing: no key file, no database.
	for _, p := range []string{dbPath + ".key", dbPath} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("parsing the configuration made %s (%v)", p, err)
		}
	}
}

// Without KOZMIC_SECRET_KEY, the first command that opens the database
// generates the key file, readable by its owner only, and says so; later
// ones read the same key from it.
func TestKeyFileGeneratedOnce(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "kozmic.db")
	e := env(t, map[string]string{"KOZMIC_DATABASE": dbPath})
	code, _, errOut := runKozmic(context.Background(), []string{"migrate"}, e)
	if code != 0 || !strings.Contains(errOut, "generated a key") {
		t.Fatalf("first migrate: exit %d, %s", code, errOut)
	}
	key, err := os.ReadFile(dbPath + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dbPath + ".key"); err != nil || fi.Mode().Perm() != 0o600 || len(strings.TrimSpace(string(key))) != 64 {
		t.Errorf("key file: %v, mode %v, %q; want 0600 and 64 hex digits", err, fi.Mode().Perm(), key)
	}
	// A different key would be refused with exit 2: success is the same key.
	code, _, errOut = runKozmic(context.Background(), []string{"migrate"}, e)
	if code != 0 || !strings.Contains(errOut, "using the key kept beside the database") {
		t.Errorf("second command: exit %d, %s", code, errOut)
	}
	if again, _ := os.ReadFile(dbPath + ".key"); !bytes.Equal(again, key) {
		t.Errorf("the key file changed: %q -> %q", key, again)
	}
}

// What the configuration names on the machine is checked by the commands
// that open the database, not by parsing: a database path that cannot be
// written, or a key file that is unusable, parses, and then stops the
// command with exit 2 and one line naming the setting, before the database
// is made.
func TestRunChecksDatabasePathAndKeyFile(t *testing.T) {
	dir := t.TempDir()
	aFile := filepath.Join(dir, "file")
	if err := os.WriteFile(aFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	shortKeyDB := filepath.Join(t.TempDir(), "k.db")
	if err := os.WriteFile(shortKeyDB+".key", []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct{ db, setting, says string }{
		"missing directory":     {filepath.Join(dir, "missing-dir", "k.db"), "KOZMIC_DATABASE", "no such file or directory"},
		"file as directory":     {filepath.Join(aFile, "k.db"), "KOZMIC_DATABASE", "is not a directory"},
		"directory as database": {dir, "KOZMIC_DATABASE", "is not a regular file"},
		"unwritable directory":  {filepath.Join(unwritableDir(t), "k.db"), "KOZMIC_DATABASE", "cannot write in"},
		"short key file":        {shortKeyDB, "KOZMIC_SECRET_KEY", "holds 5 bytes"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			e := env(t, map[string]string{"KOZMIC_DATABASE": tt.db})
			if _, err := parseConfig("serve", nil, e, io.Discard); err != nil {
				t.Fatalf("parse: %v", err)
			}
			for _, cmd := range [][]string{nil, {"migrate"}, {"user", "add", "ann"}} {
				setting, says := tt.setting, tt.says
				if _, err := os.Stat(tt.db); err != nil && cmd != nil && cmd[0] == "user" {
					// user works on an existing database only.
					setting, says = "KOZMIC_DATABASE", tt.db
				}
				code, _, errOut := runKozmic(context.Background(), cmd, e)
				if code != 2 || !strings.HasPrefix(errOut, "kozmic: "+setting+": ") || !strings.Contains(errOut, says) ||
					strings.Count(errOut, "\n") != 1 {
					t.Errorf("%v: exit %d, %q; want 2 and one line naming %s and saying %q", cmd, code, errOut, setting, says)
				}
			}
			if _, err := os.Stat(tt.db); tt.db != dir && err == nil {
				t.Error("the database was made")
			}
		})
	}
}

// unwritableDir is a directory this process cannot create files in: a
// read-only temporary one, or for root, which writes there anyway, /sys.
func unwritableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, "/sys"} {
		f, err := os.CreateTemp(d, "probe-*")
		if err != nil {
			return d
		}
		f.Close()
		os.Remove(f.Name())
	}
	t.Skip("no directory here refuses this process's writes")
	return ""
}

func TestParseConfigValues(t *testing.T) {
	c, err := parseConfig("serve", []string{"-workers", "5", "-addr", "127.0.0.1:9000"}, env(t, map[string]string{
		"KOZMIC_WORKERS":              "3", // the flag wins
		"KOZMIC_BASE_URL":             "https://ci.example.com/kozmic/",
		"KOZMIC_SECRET_KEY":           strings.Repeat("k", 32),
		"KOZMIC_GITHUB_CLIENT_ID":     "id",
		"KOZMIC_GITHUB_CLIENT_SECRET": "secret",
		"KOZMIC_GITHUB_URL":           "https://ghe.example.com",
		"KOZMIC_GITHUB_ORGS":          "Acme, acme-labs",
		"KOZMIC_GITHUB_USERS":         "Octocat",
		"KOZMIC_ADMINS":               "MonaLisa,managed_user",
		"DOCKER_HOST":                 "tcp://10.0.0.5:2376",
		"KOZMIC_STALL_TIMEOUT":        "90s",
		"KOZMIC_MAX_LOG_BYTES":        "512k",
		"KOZMIC_JOB_NETWORK":          "none",
		"KOZMIC_JOB_MEMORY":           "2GiB",
		"KOZMIC_JOB_CPUS":             "1.5",
		"KOZMIC_GIT_PROCS":            "3",
		"KOZMIC_GIT_TIMEOUT":          "2m",
		"KOZMIC_SMTP_URL":             "smtp://user:pw@mail.example.com:587",
		"KOZMIC_MAIL_FROM":            "CI <ci@example.com>",
		"KOZMIC_EMAIL_NOTIFICATIONS":  "false",
		"KOZMIC_LOG_FORMAT":           "json",
		"KOZMIC_LOG_LEVEL":            "debug",
		"KOZMIC_TRUSTED_PROXIES":      " 127.0.0.1, 10.1.2.3/8,,::1",
		"KOZMIC_MIN_FREE_DISK":        "1GiB",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Workers != 5 || c.Addr != "127.0.0.1:9000" || c.BaseURL.String() != "https://ci.example.com/kozmic" ||
		string(c.SecretKey) != strings.Repeat("k", 32) || c.SecretKeyFile != "" || !c.GitHubEnabled() ||
		c.GitHubURL.Host != "ghe.example.com" || c.DockerHost != "tcp://10.0.0.5:2376" ||
		c.StallTimeout != 90*time.Second || c.MaxLogBytes != 512<<10 || c.JobNetwork != "none" ||
		c.JobMemory != 2<<30 || c.JobCPUs != 1.5 || c.GitProcs != 3 || c.GitTimeout != 2*time.Minute || c.SMTPURL.Host != "mail.example.com:587" ||
		c.MailFrom.Address != "ci@example.com" || c.EmailNotifications || c.LogFormat != "json" || c.LogLevel.String() != "DEBUG" ||
		!slices.Equal(c.GitHubOrgs, []string{"acme", "acme-labs"}) || !slices.Equal(c.GitHubUsers, []string{"octocat"}) ||
		!slices.Equal(c.Admins, []string{"monalisa", "managed_user"}) || c.OpenSignup ||
		fmt.Sprint(c.TrustedProxies) != "[127.0.0.1/32 10.0.0.0/8 ::1/128]" || c.MinFreeDisk != 1<<30 {
		t.Errorf("config = %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		env     map[string]string
		args    []string
		setting string
	}{
		{map[string]string{"KOZMIC_BASE_URL": "ci.example.com"}, nil, "KOZMIC_BASE_URL"},
		{map[string]string{"KOZMIC_BASE_URL": "/relative/path"}, nil, "KOZMIC_BASE_URL"},
		{map[string]string{"KOZMIC_BASE_URL": "ftp://ci.example.com"}, nil, "KOZMIC_BASE_URL"},
		{nil, []string{"-database", ""}, "KOZMIC_DATABASE"},
		{map[string]string{"KOZMIC_SECRET_KEY": "too-short"}, nil, "KOZMIC_SECRET_KEY"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id"}, nil, "KOZMIC_GITHUB_CLIENT_SECRET"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_SECRET": "s"}, nil, "KOZMIC_GITHUB_CLIENT_SECRET"},
		{map[string]string{"KOZMIC_GITHUB_URL": "github.com"}, nil, "KOZMIC_GITHUB_URL"},
		{map[string]string{"DOCKER_HOST": "/var/run/docker.sock"}, nil, "DOCKER_HOST"},
		{map[string]string{"KOZMIC_WORKERS": "0"}, nil, "KOZMIC_WORKERS"},
		{map[string]string{"KOZMIC_WORKERS": "two"}, nil, "KOZMIC_WORKERS"},
		{map[string]string{"KOZMIC_STALL_TIMEOUT": "15 minutes"}, nil, "KOZMIC_STALL_TIMEOUT"},
		{map[string]string{"KOZMIC_STALL_TIMEOUT": "0"}, nil, "KOZMIC_STALL_TIMEOUT"},
		{map[string]string{"KOZMIC_STALL_TIMEOUT": "-1m"}, nil, "KOZMIC_STALL_TIMEOUT"},
		{map[string]string{"KOZMIC_JOB_TIMEOUT": "forever"}, nil, "KOZMIC_JOB_TIMEOUT"},
		{map[string]string{"KOZMIC_CACHED_IMAGES_LIMIT": "0"}, nil, "KOZMIC_CACHED_IMAGES_LIMIT"},
		{map[string]string{"KOZMIC_MAX_LOG_BYTES": "lots"}, nil, "KOZMIC_MAX_LOG_BYTES"},
		{map[string]string{"KOZMIC_MAX_LOG_BYTES": "10"}, nil, "KOZMIC_MAX_LOG_BYTES"},
		{map[string]string{"KOZMIC_JOB_NETWORK": "host"}, nil, "KOZMIC_JOB_NETWORK"},
		{map[string]string{"KOZMIC_JOB_NETWORK": "container:db"}, nil, "KOZMIC_JOB_NETWORK"},
		{map[string]string{"KOZMIC_JOB_NETWORK": "bad name"}, nil, "KOZMIC_JOB_NETWORK"},
		{map[string]string{"KOZMIC_JOB_MEMORY": "1m"}, nil, "KOZMIC_JOB_MEMORY"},
		{map[string]string{"KOZMIC_JOB_MEMORY": "2 gigs"}, nil, "KOZMIC_JOB_MEMORY"},
		{map[string]string{"KOZMIC_JOB_CPUS": "0"}, nil, "KOZMIC_JOB_CPUS"},
		{map[string]string{"KOZMIC_JOB_CPUS": "many"}, nil, "KOZMIC_JOB_CPUS"},
		{map[string]string{"KOZMIC_GIT_PROCS": "0"}, nil, "KOZMIC_GIT_PROCS"},
		{map[string]string{"KOZMIC_GIT_TIMEOUT": "-10"}, nil, "KOZMIC_GIT_TIMEOUT"},
		{map[string]string{"KOZMIC_JOB_TIMEOUT": "99999999999999999999"}, nil, "KOZMIC_JOB_TIMEOUT"},
		{map[string]string{"KOZMIC_SMTP_URL": "mail.example.com:25"}, nil, "KOZMIC_SMTP_URL"},
		{map[string]string{"KOZMIC_SMTP_URL": "http://mail.example.com"}, nil, "KOZMIC_SMTP_URL"},
		{map[string]string{"KOZMIC_MAIL_FROM": "not an address"}, nil, "KOZMIC_MAIL_FROM"},
		{map[string]string{"KOZMIC_EMAIL_NOTIFICATIONS": "maybe"}, nil, "KOZMIC_EMAIL_NOTIFICATIONS"},
		{map[string]string{"KOZMIC_LOG_FORMAT": "xml"}, nil, "KOZMIC_LOG_FORMAT"},
		{map[string]string{"KOZMIC_LOG_LEVEL": "loud"}, nil, "KOZMIC_LOG_LEVEL"},
		{map[string]string{"KOZMIC_MIN_FREE_DISK": "plenty"}, nil, "KOZMIC_MIN_FREE_DISK"},
		{nil, []string{"-workers", "-1"}, "KOZMIC_WORKERS"}, // a bad flag names the setting too
		{map[string]string{"KOZMIC_ADMIN_PASSWORD": "short"}, nil, "KOZMIC_ADMIN_PASSWORD"},
		{map[string]string{"KOZMIC_ADMIN_PASSWORD": "long enough", "KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "s"}, nil, "KOZMIC_ADMIN_PASSWORD"},
		{map[string]string{"KOZMIC_GITHUB_ORGS": "acme"}, nil, "KOZMIC_GITHUB_ORGS"}, // without GitHub
		{map[string]string{"KOZMIC_ADMINS": "ann"}, nil, "KOZMIC_ADMINS"},
		{map[string]string{"KOZMIC_OPEN_SIGNUP": "true"}, nil, "KOZMIC_OPEN_SIGNUP"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "s", "KOZMIC_GITHUB_USERS": "-ann"}, nil, "KOZMIC_GITHUB_USERS"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "s", "KOZMIC_GITHUB_ORGS": "acme/labs"}, nil, "KOZMIC_GITHUB_ORGS"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "s", "KOZMIC_GITHUB_USERS": "ann", "KOZMIC_ADMINS": "b@d"}, nil, "KOZMIC_ADMINS"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "s", "KOZMIC_OPEN_SIGNUP": "maybe"}, nil, "KOZMIC_OPEN_SIGNUP"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "s", "KOZMIC_GITHUB_USERS": "ann", "KOZMIC_OPEN_SIGNUP": "true"}, nil, "KOZMIC_OPEN_SIGNUP"},
		{map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "s"}, nil, "KOZMIC_GITHUB_ORGS, KOZMIC_GITHUB_USERS"},
		{map[string]string{"DOCKER_CERT_PATH": "/no/such/dir"}, nil, "DOCKER_CERT_PATH"},
		{map[string]string{"KOZMIC_SHUTDOWN_GRACE": "soon"}, nil, "KOZMIC_SHUTDOWN_GRACE"},
		{map[string]string{"KOZMIC_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, nil, "KOZMIC_TRUSTED_PROXIES"},
		{map[string]string{"KOZMIC_TRUSTED_PROXIES": "10.0.0.0/33"}, nil, "KOZMIC_TRUSTED_PROXIES"},
		{nil, []string{"-trusted-proxies", "10.0.0.0/8;192.0.2.0/24"}, "KOZMIC_TRUSTED_PROXIES"},
		{nil, []string{"-no-such-flag"}, "arguments"},
		{nil, []string{"extra"}, "arguments"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.setting, tt.env, tt.args), func(t *testing.T) {
			_, err := parseConfig("serve", tt.args, env(t, tt.env), io.Discard)
			ce, ok := err.(*ConfigError)
			if !ok || ce.Setting != tt.setting {
				t.Fatalf("err = %v, want a *ConfigError for %s", err, tt.setting)
			}
		})
	}
}

// A bare number is seconds, as in Kozmic CI's own settings
// (KOZMIC_STALL_TIMEOUT=900), for every duration and its flag; a number of
// seconds too large for a duration is refused, not wrapped around.
// KOZMIC_KEEP_LOGS is the exception: a bare 90 there meant 90 days to
// someone, and read as seconds it would delete every log.
func TestBareSecondsDurations(t *testing.T) {
	c, err := parseConfig("serve", []string{"-git-timeout", "600"}, env(t, map[string]string{
		"KOZMIC_STALL_TIMEOUT": "900", "KOZMIC_JOB_TIMEOUT": "7200", "KOZMIC_SHUTDOWN_GRACE": "30"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.StallTimeout != 15*time.Minute || c.JobTimeout != 2*time.Hour || c.ShutdownGrace != 30*time.Second || c.GitTimeout != 10*time.Minute {
		t.Errorf("stall %v, job %v, grace %v, git %v; want 15m, 2h, 30s, 10m", c.StallTimeout, c.JobTimeout, c.ShutdownGrace, c.GitTimeout)
	}
	code, _, errOut := runKozmic(context.Background(), []string{"migrate"}, env(t, map[string]string{"KOZMIC_KEEP_LOGS": "90"}))
	if code != 2 || !strings.HasPrefix(errOut, "kozmic: KOZMIC_KEEP_LOGS: ") || !strings.Contains(errOut, "90d") {
		t.Errorf("KOZMIC_KEEP_LOGS=90: exit %d, %q; want 2 suggesting 90d", code, errOut)
	}
}

// runKozmic runs the program in-process and returns its exit code and output.
func runKozmic(ctx context.Context, args []string, getenv func(string) string) (int, string, string) {
	var out, errOut syncbuf.Buffer
	code := run(ctx, args, getenv, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunVersionAndUsage(t *testing.T) {
	ctx := context.Background()
	if code, out, _ := runKozmic(ctx, []string{"version"}, env(t, nil)); code != 0 || !strings.HasPrefix(out, "kozmic ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, _, errOut := runKozmic(ctx, []string{"frobnicate"}, env(t, nil)); code != 2 || !strings.Contains(errOut, `"frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runKozmic(ctx, []string{"serve", "-h"}, env(t, nil)); code != 0 || !strings.Contains(errOut, "KOZMIC_STALL_TIMEOUT") {
		t.Errorf("-h: exit %d, usage %q", code, errOut)
	}
}

// With GitHub sign-in set up, a server that does not say who may sign in
// would admit every GitHub account to run jobs on this machine: it refuses
// to start (exit 2, one line naming the settings, no database made) unless
// an allowlist is given or KOZMIC_OPEN_SIGNUP declares an open server. The
// other commands, which sign nobody in, still work.
func TestServerRefusesOpenGitHubSignupUnlessDeclared(t *testing.T) {
	github := map[string]string{"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "secret",
		"KOZMIC_DATABASE": filepath.Join(t.TempDir(), "k.db"), "KOZMIC_SECRET_KEY": strings.Repeat("k", 32), "KOZMIC_ADDR": "127.0.0.1:0"}
	// Ended from the start: a server that did start stops at once.
	ended, end := context.WithCancel(context.Background())
	end()
	code, _, errOut := runKozmic(ended, []string{"serve"}, env(t, github))
	if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "kozmic: KOZMIC_GITHUB_ORGS, KOZMIC_GITHUB_USERS: ") ||
		!strings.Contains(errOut, "KOZMIC_OPEN_SIGNUP=true") {
		t.Errorf("serve with open GitHub sign-in: exit %d, %q; want 2 and one line naming the settings", code, errOut)
	}
	if _, err := os.Stat(github["KOZMIC_DATABASE"]); !os.IsNotExist(err) {
		t.Errorf("the refused server made its database (%v)", err)
	}
	if code, _, errOut := runKozmic(context.Background(), []string{"migrate"}, env(t, github)); code != 0 {
		t.Errorf("migrate: exit %d, %s", code, errOut)
	}
	for _, declared := range []map[string]string{{"KOZMIC_OPEN_SIGNUP": "true"}, {"KOZMIC_GITHUB_USERS": "octocat"}, {"KOZMIC_GITHUB_ORGS": "acme"}} {
		kv := maps.Clone(github)
		maps.Copy(kv, declared)
		c, err := parseConfig("serve", nil, env(t, kv), io.Discard)
		if err != nil || !c.GitHubEnabled() {
			t.Errorf("%v: %v", declared, err)
		}
	}
}

// A server starting with GitHub sign-in makes admins of exactly the logins
// in KOZMIC_ADMINS: someone taken off the list loses admin rights at once,
// not only at their next sign-in, while their session may still be open.
func TestServerStartAppliesKozmicAdmins(t *testing.T) {
	kv, key := migratedGitHubServer(t, "KOZMIC_GITHUB_ORGS", "acme")
	db := openTestStore(t, kv["KOZMIC_DATABASE"], key)
	ctx := context.Background()
	octocat, _ := db.UpsertGitHubUser(ctx, store.GitHubUser{ID: 1, Login: "octocat", IsAdmin: true})
	hubot, _ := db.UpsertGitHubUser(ctx, store.GitHubUser{ID: 2, Login: "hubot"})
	db.Close()

	serveUntilHealthy(t, kv)
	db = openTestStore(t, kv["KOZMIC_DATABASE"], key)
	o, _ := db.UserByID(ctx, octocat.ID)
	h, _ := db.UserByID(ctx, hubot.ID)
	if o.IsAdmin || !h.IsAdmin {
		t.Errorf("after the start: octocat admin %v, hubot admin %v; want false, true", o.IsAdmin, h.IsAdmin)
	}
}

// migratedGitHubServer is the settings of a GitHub-mode server that admits
// by the setting admit (with value) and has Hubot as its admin, and the
// key of its database, which it makes and migrates.
func migratedGitHubServer(t *testing.T, admit, value string) (map[string]string, string) {
	t.Helper()
	key := strings.Repeat("s", 40)
	kv := map[string]string{"KOZMIC_DATABASE": filepath.Join(t.TempDir(), "k.db"), "KOZMIC_SECRET_KEY": key,
		"KOZMIC_GITHUB_CLIENT_ID": "id", "KOZMIC_GITHUB_CLIENT_SECRET": "secret", admit: value,
		"KOZMIC_ADMINS": "Hubot", "KOZMIC_ADDR": freeAddr(t), "DOCKER_HOST": "tcp://127.0.0.1:1"}
	if code, _, errOut := runKozmic(context.Background(), []string{"migrate"}, env(t, kv)); code != 0 {
		t.Fatalf("migrate: exit %d, %s", code, errOut)
	}
	return kv, key
}

// serveUntilHealthy runs `kozmic` (serve) with kv until /healthz at
// KOZMIC_ADDR answers, stops it and checks that it exits 0.
func serveUntilHealthy(t *testing.T, kv map[string]string) {
	t.Helper()
	serving, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _, _ := runKozmic(serving, nil, env(t, kv))
		done <- code
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get("http://" + kv["KOZMIC_ADDR"] + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatal("the server never answered")
		}
	}
	stop()
	if code := <-done; code != 0 {
		t.Errorf("serve: exit %d", code)
	}
}

// A server that admits GitHub logins by name alone ends, when it starts,
// the sessions of GitHub users it no longer names (in KOZMIC_GITHUB_USERS
// or KOZMIC_ADMINS), so taking someone off the list and restarting shuts
// them out at once; the named keep theirs.
func TestServerStartEndsSessionsOfLoginsNoLongerAdmitted(t *testing.T) {
	kv, key := migratedGitHubServer(t, "KOZMIC_GITHUB_USERS", "octocat")
	db := openTestStore(t, kv["KOZMIC_DATABASE"], key)
	ctx := context.Background()
	for i, login := range []string{"octocat", "hubot", "mallory"} {
		u, err := db.UpsertGitHubUser(ctx, store.GitHubUser{ID: int64(i + 1), Login: login})
		if err != nil {
			t.Fatal(err)
		}
		b, err := scs.GobCodec{}.Encode(time.Now().Add(time.Hour), map[string]any{store.SessionUser: u.ID})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Sessions().CommitCtx(ctx, login, b, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	serveUntilHealthy(t, kv)
	db = openTestStore(t, kv["KOZMIC_DATABASE"], key)
	for login, want := range map[string]bool{"octocat": true, "hubot": true, "mallory": false} {
		if _, found, err := db.Sessions().FindCtx(ctx, login); err != nil || found != want {
			t.Errorf("%s's session after the start: found %v, %v; want %v", login, found, err, want)
		}
	}
}

func TestRunBadConfigExits2WithOneLine(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "k.db")
	code, _, errOut := runKozmic(context.Background(), nil, env(t, map[string]string{
		"KOZMIC_DATABASE": dbPath, "KOZMIC_JOB_TIMEOUT": "soon"}))
	if code != 2 {
		t.Errorf("exit code = %d, want 2", code)
	}
	if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "KOZMIC_JOB_TIMEOUT") {
		t.Errorf("stderr = %q, want one line naming KOZMIC_JOB_TIMEOUT", errOut)
	}
	if _, err := os.Stat(dbPath); !os.IsNotExist(err) {
		t.Errorf("a bad configuration created the database (%v)", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestServeHealthzAndGracefulShutdown(t *testing.T) {
	addr := freeAddr(t)
	dbPath := filepath.Join(t.TempDir(), "k.db")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut string
	go func() {
		var code int
		code, _, errOut = runKozmic(ctx, nil, env(t, map[string]string{"KOZMIC_ADDR": addr, "KOZMIC_DATABASE": dbPath,
			"KOZMIC_SECRET_KEY": strings.Repeat("s", 40), "KOZMIC_LOG_FORMAT": "json",
			"DOCKER_HOST": "tcp://127.0.0.1:1"})) // no engine answers there: healthz says so
		done <- code
	}()

	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		resp, err = http.Get("http://" + addr + "/healthz")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var body map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 503 || body["status"] != "unavailable" || body["database"] != "ok" || body["docker"] != "unreachable" {
		t.Errorf("healthz without Docker = %d %v", resp.StatusCode, body)
	}
	// The runner's engine is in the metrics, down.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{`kozmic_engine_up{engine="local"} 0`, `kozmic_engine_slots{engine="local"} 2`} {
		if !strings.Contains(string(scrape), "\n"+line+"\n") {
			t.Errorf("the scrape has no line %s:\n%s", line, scrape)
		}
	}
	resp, err = http.Get("http://" + addr + "/no/such/page")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(page), "Page not found") {
		t.Errorf("unknown page = %d %q", resp.StatusCode, page)
	}

	cancel() // what SIGINT/SIGTERM do in main
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code after shutdown = %d, want 0; log:\n%s", code, errOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop after its context ended")
	}
	if !strings.Contains(errOut, `"msg":"shutting down"`) {
		t.Errorf("no JSON shutdown line in the log:\n%s", errOut)
	}
	// Without GitHub, the first start made an admin with a generated
	// password, written to the log once, which signs in.
	m := regexp.MustCompile(`"msg":"created the user admin[^"]*","username":"admin","password":"([A-Z2-7]{26})"`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("no generated admin password in the log:\n%s", errOut)
	}
	db := openTestStore(t, dbPath, strings.Repeat("s", 40))
	if u, err := db.UserByUsername(context.Background(), "admin"); err != nil || !u.IsAdmin || !password.Matches(u.PasswordHash, m[1]) {
		t.Errorf("admin = %+v, %v; the logged password does not match", u, err)
	}
	fi, err := os.Stat(dbPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
}

func schemaOf(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT type || ' ' || name FROM sqlite_master ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	return names
}

// A database the migrations cannot apply to stops the server before it
// listens, and is left as it was: another program's file is refused before
// anything is written, and a migration that fails is rolled back.
func TestServeRefusesDatabaseItCannotMigrate(t *testing.T) {
	tests := map[string]struct {
		setup, wantLog string
		untouched      bool
	}{
		"another program's file": {
			setup:     `CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('someone else''s data');`,
			wantLog:   "another program's database",
			untouched: true,
		},
		"a failing migration": {
			// Migration history at version 0 and a table that migration 1
			// also creates, so migration 1 fails halfway through.
			setup: `CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT, version_id INTEGER NOT NULL,
					is_applied INTEGER NOT NULL, tstamp TIMESTAMP DEFAULT (datetime('now')));
				INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, 1);
				CREATE TABLE projects (name TEXT);`,
			wantLog: "table projects already exists",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dbPath := filepath.Join(t.TempDir(), "other.db")
			db, err := sql.Open("sqlite", dbPath)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(tt.setup); err != nil {
				t.Fatal(err)
			}
			db.Close()
			before := schemaOf(t, dbPath)
			beforeBytes, err := os.ReadFile(dbPath)
			if err != nil {
				t.Fatal(err)
			}

			code, _, errOut := runKozmic(context.Background(), nil, env(t, map[string]string{"KOZMIC_ADDR": freeAddr(t),
				"KOZMIC_DATABASE": dbPath, "KOZMIC_SECRET_KEY": strings.Repeat("s", 40)}))
			if code != 1 || !strings.Contains(errOut, tt.wantLog) {
				t.Errorf("exit %d, log %q; want 1 and %q", code, errOut, tt.wantLog)
			}
			if strings.Contains(errOut, "listening") {
				t.Error("the server started listening")
			}
			if after := schemaOf(t, dbPath); !slices.Equal(before, after) {
				t.Errorf("schema changed by the failed start: %v -> %v", before, after)
			}
			// Another program's file is not written at all, not even its header.
			if afterBytes, _ := os.ReadFile(dbPath); tt.untouched && !bytes.Equal(beforeBytes, afterBytes) {
				t.Error("the refused file's bytes changed")
			}
		})
	}
}

func TestRunWrongSecretKeyExits2(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "k.db")
	e := map[string]string{"KOZMIC_DATABASE": dbPath, "KOZMIC_SECRET_KEY": strings.Repeat("a", 32)}
	if code, _, errOut := runKozmic(context.Background(), []string{"migrate"}, env(t, e)); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut)
	}
	e["KOZMIC_SECRET_KEY"] = strings.Repeat("b", 32)
	code, _, errOut := runKozmic(context.Background(), []string{"migrate"}, env(t, e))
	if code != 2 || !strings.HasPrefix(errOut, "kozmic: KOZMIC_SECRET_KEY: ") {
		t.Errorf("wrong key: exit %d, %q; want 2 naming KOZMIC_SECRET_KEY", code, errOut)
	}
	// No key at all: the key generated for it is not the database's and is
	// not left behind to be mistaken for it.
	delete(e, "KOZMIC_SECRET_KEY")
	code, _, errOut = runKozmic(context.Background(), []string{"migrate"}, env(t, e))
	if code != 2 || !strings.Contains(errOut, "kozmic: KOZMIC_SECRET_KEY: ") {
		t.Errorf("no key: exit %d, %q; want 2 naming KOZMIC_SECRET_KEY", code, errOut)
	}
	if _, err := os.Stat(dbPath + ".key"); !os.IsNotExist(err) {
		t.Errorf("a generated key file was left beside a database with another key (%v)", err)
	}
}

// The README's configuration table lists exactly the settings the program reads.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `((?:KOZMIC_|DOCKER_)[A-Z_]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented = append(documented, m[1])
	}
	var read []string
	for _, s := range settings {
		read = append(read, s.env)
	}
	slices.Sort(documented)
	slices.Sort(read)
	if !slices.Equal(documented, read) {
		t.Errorf("README documents %v\nprogram reads %v", documented, read)
	}
}

// openTestStore opens a database the program made.
func openTestStore(t *testing.T, path, key string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path, store.Options{SecretKey: []byte(key), Migrations: migrations.FS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestUserCommand(t *testing.T) {
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "k.db")
	e := env(t, map[string]string{"KOZMIC_DATABASE": dbPath, "KOZMIC_SECRET_KEY": strings.Repeat("k", 40)})
	if code, _, errOut := runKozmic(ctx, []string{"migrate"}, e); code != 0 {
		t.Fatalf("migrate: exit %d, %s", code, errOut)
	}
	user := func(stdin string, args ...string) (int, string, string) {
		var out, errOut syncbuf.Buffer
		code := run(ctx, append([]string{"user"}, args...), e, strings.NewReader(stdin), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, out, errOut := user("first password\n", "add", "ann", "-admin"); code != 0 || out != "user ann added to "+dbPath+"\n" {
		t.Fatalf("add: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := user("another password\n", "add", "bob"); code != 0 {
		t.Fatalf("add bob: exit %d, %q", code, errOut)
	}
	for _, tt := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"x\n", []string{"add"}, "usage: kozmic user"},
		{"x\n", []string{"remove", "ann"}, "usage: kozmic user"},
		{"long enough\n", []string{"add", "ANN"}, `the username "ANN" is taken`},
		{"short\n", []string{"add", "carl"}, "at least 8 characters"},
		{"", []string{"add", "carl"}, "no password on stdin"},
		{"long enough\n", []string{"add", "-carl"}, "usage: kozmic user"},
		{"long enough\n", []string{"add", "carl/x"}, "a username has"},
		{"long enough\n", []string{"passwd", "nobody"}, `there is no local user "nobody"`},
	} {
		code, _, errOut := user(tt.stdin, tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
			t.Errorf("user %v: exit %d, %q; want 2 and %q", tt.args, code, errOut, tt.want)
		}
	}
	db := openTestStore(t, dbPath, strings.Repeat("k", 40))
	ann, _ := db.UserByUsername(ctx, "ann")
	session, err := scs.GobCodec{}.Encode(time.Now().Add(time.Hour), map[string]any{store.SessionUser: ann.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Sessions().CommitCtx(ctx, "ann's browser", session, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := user("changed password\r\n", "passwd", "ann"); code != 0 || out != "password of ann changed in "+dbPath+"\n" {
		t.Fatalf("passwd: exit %d, %q", code, out)
	}
	if _, found, err := db.Sessions().FindCtx(ctx, "ann's browser"); found || err != nil {
		t.Errorf("ann's session outlived the password change: %v %v", found, err)
	}
	ann, _ = db.UserByUsername(ctx, "ann")
	bob, _ := db.UserByUsername(ctx, "bob")
	if !ann.IsAdmin || bob.IsAdmin || !password.Matches(ann.PasswordHash, "changed password") || password.Matches(ann.PasswordHash, "first password") ||
		!password.Matches(bob.PasswordHash, "another password") {
		t.Errorf("ann = %+v, bob = %+v", ann, bob)
	}
	if users, _ := db.LocalUsers(ctx); len(users) != 2 {
		t.Errorf("%d local users after the refusals, want 2", len(users))
	}
}

// Run where the server's database is not, `kozmic user` used to make an
// empty database and key of its own there and say the user was added, to
// a server that never heard of them. It refuses, naming the path it looked
// at, and makes nothing; given the server's database, it says which one it
// changed.
func TestUserAddRefusesMissingDatabase(t *testing.T) {
	ctx := context.Background()
	elsewhere := t.TempDir()
	t.Chdir(elsewhere)
	defaultDB := env(t, map[string]string{"KOZMIC_DATABASE": ""}) // kozmic.db in the working directory
	for _, args := range [][]string{{"user", "add", "bob"}, {"user", "passwd", "admin"}} {
		var out, errOut syncbuf.Buffer
		code := run(ctx, args, defaultDB, strings.NewReader("bobs password\n"), &out, &errOut)
		want := "kozmic: KOZMIC_DATABASE: there is no database at " + filepath.Join(elsewhere, "kozmic.db") + ";"
		if code != 2 || !strings.HasPrefix(errOut.String(), want) || strings.Count(errOut.String(), "\n") != 1 || out.String() != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and one line starting %q", args, code, out.String(), errOut.String(), want)
		}
	}
	if made, _ := os.ReadDir(elsewhere); len(made) != 0 {
		t.Errorf("the refused commands left %v", made)
	}

	dbPath := filepath.Join(t.TempDir(), "kozmic.db")
	server := env(t, map[string]string{"KOZMIC_DATABASE": dbPath})
	if code, _, errOut := runKozmic(ctx, []string{"migrate"}, server); code != 0 {
		t.Fatalf("migrate: exit %d, %s", code, errOut)
	}
	var out, errOut syncbuf.Buffer
	if code := run(ctx, []string{"user", "add", "bob"}, server, strings.NewReader("bobs password\n"), &out, &errOut); code != 0 ||
		out.String() != "user bob added to "+dbPath+"\n" {
		t.Fatalf("user add with the server's database: exit %d, %q, %s", code, out.String(), errOut.String())
	}
	key, _ := os.ReadFile(dbPath + ".key")
	if _, err := openTestStore(t, dbPath, strings.TrimSpace(string(key))).UserByUsername(ctx, "bob"); err != nil {
		t.Errorf("bob is not in the server's database: %v", err)
	}
}

// Kozmic ships as one static binary: it must build without cgo.
func TestBuildsWithoutCgo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kozmic")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "kozmic ") {
		t.Errorf("built binary: version = %q, %v", out, err)
	}
}

func TestExecSubcommand(t *testing.T) {
	needTestImage(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "message.txt"), []byte("hello from the working tree"), 0o644)
	script := filepath.Join(t.TempDir(), "build.sh")
	os.WriteFile(script, []byte("#!/bin/sh\ncat message.txt\necho\nexit 7\n"), 0o644)

	code, out, errOut := runKozmic(context.Background(), []string{"exec", "-image", testimage.Name,
		"-build-script", script, "-network", "none", dir}, env(t, nil))
	if code != 7 || !strings.Contains(out, "hello from the working tree") {
		t.Errorf("exec: exit %d, stdout %q, stderr %q; want 7 and the file's content", code, out, errOut)
	}
	if code, _, errOut := runKozmic(context.Background(), []string{"exec", "-image", testimage.Name}, env(t, nil)); code != 2 || !strings.Contains(errOut, "-build-script") {
		t.Errorf("exec without a script: exit %d, %q", code, errOut)
	}
}
