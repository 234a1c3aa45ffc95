package runner

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certs is a CA with a server and a client certificate, as PEM files.
type certs struct {
	pool   *x509.CertPool
	server tls.Certificate
}

// writeCerts makes a CA and, in dir, the client's ca.pem, cert.pem and
// key.pem; the server's certificate (for 127.0.0.1) is returned.
func writeCerts(t *testing.T, dir string) certs {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	pemOf := func(kind string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}) }
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "test"}, IPAddresses: ips,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return pemOf("CERTIFICATE", der), pemOf("EC PRIVATE KEY", kder)
	}
	serverCert, serverKey := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	clientCert, clientKey := issue(3, x509.ExtKeyUsageClientAuth, nil)
	for name, data := range map[string][]byte{"ca.pem": pemOf("CERTIFICATE", caDER), "cert.pem": clientCert, "key.pem": clientKey} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return certs{pool: pool, server: pair}
}

// An engine behind TLS with client certificates is reached with the
// certificates in the directory, and refuses a client without them.
func TestDockerOverTLS(t *testing.T) {
	dir := t.TempDir()
	c := writeCerts(t, dir)
	pinged := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			pinged++
			w.Write([]byte("OK"))
			return
		}
		http.NotFound(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.server}, ClientCAs: c.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()

	dc, err := NewDockerTLSClient(host, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.Ping(); err != nil || pinged != 1 {
		t.Fatalf("ping over TLS: %v (server saw %d pings)", err, pinged)
	}
	plain, _ := NewDockerClient("https://" + srv.Listener.Addr().String())
	if err := plain.Ping(); err == nil {
		t.Error("a client without certificates was let in")
	}
}
