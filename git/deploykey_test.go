package git

import (
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// The key pair is real: the private half parses as an ed25519 key and
// matches the public half, which carries the comment; two keys differ.
func TestGenerateDeployKey(t *testing.T) {
	priv, pub, err := GenerateDeployKey("kozmic acme/widget")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(priv, "-----BEGIN OPENSSH PRIVATE KEY-----\n") {
		t.Errorf("private key is not in OpenSSH PEM form:\n%s", priv)
	}
	signer, err := ssh.ParsePrivateKey([]byte(priv))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " kozmic acme/widget"
	if pub != want || signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("public key %q; want %q of type %s", pub, want, ssh.KeyAlgoED25519)
	}
	if _, again, err := GenerateDeployKey("kozmic acme/widget"); err != nil || again == pub {
		t.Errorf("second key = %q, %v; want a different key", again, err)
	}
}
