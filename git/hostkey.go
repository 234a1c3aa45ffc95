package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Remote is a repository to fetch from, with what reaching it takes.
type Remote struct {
	URL       string // any URL that CheckURL accepts
	DeployKey string // private key for SSH URLs, unused for others
	// HostKey is the SSH host key pinned for URL's server, in
	// authorized_keys form ("ssh-ed25519 AAAA…"): the only key accepted.
	// "" means none is pinned yet: the key the server shows is accepted,
	// and handed to Pin once the command succeeds. Unused for GitHub's SSH
	// servers (GitHubSSH), whose published keys are the only ones accepted,
	// and for URLs not over SSH.
	HostKey string
	// Pin, if not nil, stores the host key accepted at a first successful
	// contact (HostKey ""); its error fails the command.
	Pin func(key string) error
}

// gitHubHostKeys are GitHub's published SSH host keys for github.com and
// ssh.github.com
// (https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/githubs-ssh-key-fingerprints,
// also in https://api.github.com/meta), fingerprints SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU,
// SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM and SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s.
var gitHubHostKeys = []string{
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
	"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
	"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+VTTvDP6mHBL9j1aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/wsjk=",
}

// hostKeyAlias is the name ssh files and looks up the server's host key
// under in a command's own known_hosts file: whatever ssh's configuration
// calls the server, its key is the one line of that file.
const hostKeyAlias = "git-server"

// offeredKeyTimeout bounds the connection that reads the key a server
// offers instead of the pinned one.
const offeredKeyTimeout = 15 * time.Second

// gitHubSSHAddresses are GitHub's SSH servers by host name and port
// number: github.com itself, and ssh.github.com on the HTTPS port
// (https://docs.github.com/en/authentication/troubleshooting-ssh/using-ssh-over-the-https-port),
// which shows the same keys.
var gitHubSSHAddresses = map[string]int{"github.com": 22, "ssh.github.com": 443}

// GitHubSSH says whether git reaches u over SSH at one of GitHub's SSH
// servers, github.com or ssh.github.com on port 443, whose published host
// keys are trusted instead of a pinned one. The host name is compared as
// DNS resolves it: in any case, with or without its final dot; the port as
// ssh reads it, a number ("022" is 22).
func GitHubSSH(u string) bool {
	host, port, ok := sshAddress(u)
	if !ok {
		return false
	}
	n, err := strconv.Atoi(port)
	want, known := gitHubSSHAddresses[strings.ToLower(strings.TrimSuffix(host, "."))]
	return err == nil && known && n == want
}

// Fingerprint is the SHA-256 fingerprint of an SSH public key in
// authorized_keys form, as ssh-keygen -l prints it: "SHA256:…". A key that
// cannot be read is an error.
func Fingerprint(key string) (string, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		return "", fmt.Errorf("read SSH host key: %w", err)
	}
	return ssh.FingerprintSHA256(k), nil
}

// HostKeyError is the failure of a command whose SSH server showed a host
// key other than the one trusted for it.
type HostKeyError struct {
	Host    string   // host:port of the server
	GitHub  bool     // Trusted are GitHub's published keys
	Trusted []string // fingerprints of the keys accepted: the pinned one, or GitHub's
	Offered string   // fingerprint of the key the server offered, "" if it could not be read
	Reason  string   // why Offered is "", for people
}

func (e *HostKeyError) Error() string {
	offered := "the server now offers " + e.Offered
	if e.Offered == "" {
		offered = "the key the server offers could not be read (" + e.Reason + ")"
	}
	if e.GitHub {
		return fmt.Sprintf("the SSH host key of %s is not one of GitHub's published keys (%s): %s; "+
			"someone may be intercepting the connection", e.Host, strings.Join(e.Trusted, ", "), offered)
	}
	return fmt.Sprintf("the SSH host key of %s has changed: Kozmic pinned %s at the first contact, %s. "+
		"If the server's key was replaced on purpose, a manager can reset the pinned key on the project page; "+
		"otherwise someone may be intercepting the connection", e.Host, strings.Join(e.Trusted, ", "), offered)
}

// transport is what the git commands that reach one Remote share: over SSH,
// the ssh command git runs, and a directory only this process can read with
// the deploy key and the known_hosts file of the server's trusted keys.
type transport struct {
	r          Remote
	env        []string // added to the environment of run
	dir        string   // "" unless over SSH
	host, port string   // the SSH server
	trusted    []string
	github     bool
}

// newTransport readies what git commands that fetch from r need beyond the
// environment run gives them. Over SSH, ssh reads no configuration file,
// authenticates with the deploy key alone (none if r has none: never a key
// of the account Kozmic runs as or its agent), and accepts only GitHub's
// published keys for GitHub's SSH hosts, only r.HostKey if it is set, and
// otherwise the key the server shows, noted to be pinned. close removes the
// key and must be called once the commands have ended.
func newTransport(r Remote) (*transport, error) {
	t := &transport{r: r}
	var ok bool
	if t.host, t.port, ok = sshAddress(r.URL); !ok {
		return t, nil
	}
	t.github = GitHubSSH(r.URL)
	switch {
	case t.github:
		t.trusted = gitHubHostKeys
	case r.HostKey != "":
		t.trusted = []string{r.HostKey}
	}
	known := ""
	for _, k := range t.trusted {
		if _, err := Fingerprint(k); err != nil {
			return nil, fmt.Errorf("the pinned %w", err)
		}
		known += hostKeyAlias + " " + k + "\n"
	}
	dir, err := os.MkdirTemp("", "kozmic-ssh-*") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("ssh directory: %w", err)
	}
	t.dir = dir
	if err := os.WriteFile(t.knownHosts(), []byte(known), 0o600); err != nil {
		t.close()
		return nil, fmt.Errorf("ssh known hosts: %w", err)
	}
	strict := "yes"
	if t.trusted == nil {
		strict = "accept-new"
	}
	// -F /dev/null: ssh reads neither the system's configuration nor that of
	// the account Kozmic runs as (its home is not HOME but the account's),
	// whose identities, proxy commands or host aliases would otherwise
	// apply. Every connection checks the host key (no shared master
	// connection), against this file alone, under the alias, and never
	// learns more keys.
	sshCmd := []string{"ssh", "-F /dev/null", "-o BatchMode=yes", "-o StrictHostKeyChecking=" + strict,
		"-o UserKnownHostsFile=" + shellQuote(t.knownHosts()), "-o GlobalKnownHostsFile=/dev/null",
		"-o HostKeyAlias=" + hostKeyAlias, "-o CheckHostIP=no", "-o UpdateHostKeys=no", "-o HashKnownHosts=no",
		"-o ControlPath=none", "-o LogLevel=ERROR", "-o IdentitiesOnly=yes", "-o IdentityAgent=none"}
	// Without -i, ssh would try the account's default keys (~/.ssh/id_*).
	identity := "-o IdentityFile=none"
	if r.DeployKey != "" {
		keyFile := filepath.Join(dir, "deploy-key")
		key := r.DeployKey
		if !strings.HasSuffix(key, "\n") {
			key += "\n" // ssh refuses a key without its final newline
		}
		if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
			t.close()
			return nil, fmt.Errorf("deploy key: %w", err)
		}
		identity = "-i " + shellQuote(keyFile)
	}
	t.env = []string{"GIT_SSH_COMMAND=" + strings.Join(append(sshCmd, identity), " ")}
	return t, nil
}

func (t *transport) knownHosts() string { return filepath.Join(t.dir, "known_hosts") }

// close removes the deploy key and known_hosts file.
func (t *transport) close() {
	if t.dir != "" {
		os.RemoveAll(t.dir)
	}
}

// pin hands the host key a successful first contact accepted to r.Pin. It
// does nothing when a key was trusted before or nothing was learned.
func (t *transport) pin() error {
	if t.dir == "" || t.trusted != nil || t.r.Pin == nil {
		return nil
	}
	data, err := os.ReadFile(t.knownHosts())
	if err != nil {
		return fmt.Errorf("read the SSH host key: %w", err)
	}
	_, hosts, key, _, _, err := ssh.ParseKnownHosts(data)
	if errors.Is(err, io.EOF) {
		return nil
	} else if err != nil || !slices.Contains(hosts, hostKeyAlias) {
		return fmt.Errorf("read the SSH host key: ssh wrote %q", data)
	}
	if err := t.r.Pin(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))); err != nil {
		return fmt.Errorf("pin the SSH host key of %s: %w", net.JoinHostPort(t.host, t.port), err)
	}
	return nil
}

// hostKeyError is a *HostKeyError when ssh's standard error says it refused
// the server's host key, naming the trusted keys and the one the server
// offers (read over a connection of its own); otherwise nil.
func (t *transport) hostKeyError(ctx context.Context, stderr string) error {
	if t.dir == "" || !strings.Contains(stderr, "Host key verification failed") {
		return nil
	}
	addr := net.JoinHostPort(t.host, t.port)
	e := &HostKeyError{Host: addr, GitHub: t.github}
	var algos []string
	for _, k := range t.trusted {
		fp, _ := Fingerprint(k) // newTransport read every one
		e.Trusted = append(e.Trusted, fp)
		pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(k))
		algos = append(algos, algorithmsOf(pk.Type())...)
	}
	offered, err := offeredKey(ctx, addr, algos)
	if err != nil {
		e.Reason = err.Error()
	} else {
		e.Offered = ssh.FingerprintSHA256(offered)
	}
	return e
}

// offeredKey is the host key the SSH server at addr offers, preferring the
// algorithms algos, as ssh does for the key types it knows for a host.
func offeredKey(ctx context.Context, addr string, algos []string) (ssh.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, offeredKeyTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	var offered ssh.PublicKey
	errSeen := errors.New("host key seen")
	supported := ssh.SupportedAlgorithms().HostKeys
	cfg := &ssh.ClientConfig{
		User: "kozmic",
		// The preferred algorithms first, then any other the server may insist on.
		HostKeyAlgorithms: slices.Compact(append(slices.Clone(algos), supported...)),
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			offered = k
			return errSeen
		},
	}
	if _, _, _, err := ssh.NewClientConn(conn, addr, cfg); offered == nil {
		return nil, err
	}
	return offered, nil
}

// algorithmsOf are the host key algorithms that use keys of type keyType.
func algorithmsOf(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// sshAddress is the host and port git reaches u at over SSH, if it does.
func sshAddress(u string) (host, port string, ok bool) {
	kind, pu, err := parseGitURL(u)
	switch {
	case err != nil:
		return "", "", false
	case kind == schemeURL && pu.Scheme == "ssh":
		port = pu.Port()
		if port == "" {
			port = "22"
		}
		return pu.Hostname(), port, true
	case kind == scpLike:
		hostPart, _, _ := strings.Cut(u, ":")
		if _, h, ok := strings.Cut(hostPart, "@"); ok {
			hostPart = h
		}
		return hostPart, "22", true
	}
	return "", "", false
}

// shellQuote quotes s for the shell git runs GIT_SSH_COMMAND with.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
