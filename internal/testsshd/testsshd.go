// Package testsshd is a real SSH server on 127.0.0.1 for tests of what
// fetches over SSH: it takes one client key and answers exec requests for
// git-upload-pack of a repository below its root, and nothing else.
package testsshd

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Server is an SSH server that serves git fetches of the repositories below
// Root.
type Server struct {
	Addr    string     // 127.0.0.1:port
	HostKey ssh.Signer // the key the server shows
	Root    string

	ln   net.Listener
	cfg  *ssh.ServerConfig
	wg   sync.WaitGroup
	once sync.Once
}

// NewHostKey makes a fresh ed25519 host key.
func NewHostKey(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Start serves at addr ("127.0.0.1:0" for any free port) with hostKey,
// letting in only the client key clientKey (authorized_keys form), until
// Close or the end of the test. Repositories are served from below root.
func Start(t testing.TB, addr string, hostKey ssh.Signer, clientKey, root string) *Server {
	t.Helper()
	allowed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(clientKey))
	if err != nil {
		t.Fatal(err)
	}
	return StartAllowing(t, addr, hostKey, func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), allowed.Marshal()) }, root)
}

// StartAllowing is Start letting in the client keys allow approves at the
// time each connection offers them, as a git server whose deploy keys
// change does.
func StartAllowing(t testing.TB, addr string, hostKey ssh.Signer, allow func(ssh.PublicKey) bool, root string) *Server {
	t.Helper()
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if !allow(k) {
			return nil, errors.New("unknown key")
		}
		return nil, nil
	}}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), HostKey: hostKey, Root: root, ln: ln, cfg: cfg}
	s.wg.Go(s.serve)
	t.Cleanup(s.Close)
	return s
}

// URL is the ssh:// URL of the repository at path below Root.
func (s *Server) URL(path string) string { return "ssh://git@" + s.Addr + path }

// Close stops listening and waits for the connections to end.
func (s *Server) Close() {
	s.once.Do(func() { s.ln.Close() })
	s.wg.Wait()
}

func (s *Server) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.handle(conn) })
	}
}

func (s *Server) handle(conn net.Conn) {
	defer conn.Close()
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			return
		}
		s.session(ch, reqs)
	}
}

// session answers one exec request of git-upload-pack and refuses every
// other request.
func (s *Server) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" || len(req.Payload) < 4 {
			req.Reply(false, nil)
			continue
		}
		line := string(req.Payload[4:]) // a length-prefixed string
		path, ok := s.repoPath(line)
		req.Reply(ok, nil)
		if !ok {
			return
		}
		cmd := exec.Command("git", "upload-pack", path)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

// repoPath is the repository that `git-upload-pack '<path>'` asks for, if it
// is below Root.
func (s *Server) repoPath(line string) (string, bool) {
	name, arg, ok := strings.Cut(line, " ")
	if !ok || name != "git-upload-pack" || len(arg) < 2 || arg[0] != '\'' || arg[len(arg)-1] != '\'' {
		return "", false
	}
	path := filepath.Clean(arg[1 : len(arg)-1])
	if strings.Contains(path, "'") || !strings.HasPrefix(path, filepath.Clean(s.Root)+string(filepath.Separator)) {
		return "", false
	}
	return path, true
}
