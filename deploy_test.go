package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"kozmic/internal/testengine"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
)

// deploySection is the text of docs/deploy.md's section that starts with
// heading, up to the next heading.
func deploySection(t *testing.T, heading string) string {
	t.Helper()
	doc, err := os.ReadFile("docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, text, ok := strings.Cut(string(doc), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q in docs/deploy.md", heading)
	}
	if i := regexp.MustCompile(`\n##+ `).FindStringIndex(text); i != nil {
		text = text[:i[0]]
	}
	return text
}

// codeBlock is the first code block of a Markdown text in language lang.
func codeBlock(t *testing.T, text, lang string) string {
	t.Helper()
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s block in:\n%s", lang, text)
	}
	return m[1]
}

// docs/deploy.md's two-machine setup, done as it says on this machine:
// its openssl commands make the CA and the certificates, a second dockerd
// listens on TCP with its daemon.json's TLS settings, and the binary, given
// the client's three files in KOZMIC_ENGINES's tls=, runs a build's job on
// that engine alone. A client without a certificate of the CA is refused
// there, and so is Kozmic with a certificate of another CA.
func TestDeployedSecondEngineOverTLSRunsJobs(t *testing.T) {
	needTestImage(t)
	testengine.Skip(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("no openssl to make the certificates with: %v", err)
	}
	const docDir, docIP = "/etc/docker/tls", "10.0.0.5"
	certs := makeDeployCerts(t)

	// dockerd with daemon.json's settings as flags: its unix socket is
	// testengine's own, and B's address a free port of 127.0.0.1 here.
	var conf map[string]any
	if err := json.Unmarshal([]byte(codeBlock(t, deploySection(t, "### 2. dockerd on B"), "json")), &conf); err != nil {
		t.Fatalf("daemon.json: %v", err)
	}
	onB := false
	var flags []string
	for key, v := range conf {
		switch key {
		case "hosts":
			for _, h := range v.([]any) {
				if strings.HasPrefix(h.(string), "tcp://"+docIP+":") {
					onB = true
				} else if !strings.HasPrefix(h.(string), "unix://") {
					t.Fatalf("daemon.json listens on %s", h)
				}
			}
		case "tlsverify":
			if v != true {
				t.Fatalf("daemon.json has tlsverify %v", v)
			}
			flags = append(flags, "--tlsverify")
		case "tlscacert", "tlscert", "tlskey":
			flags = append(flags, "--"+key+"="+strings.Replace(v.(string), docDir, certs, 1))
		default:
			t.Fatalf("daemon.json has %q, which this test does not know", key)
		}
	}
	if !onB || len(flags) != 4 {
		t.Fatalf("daemon.json: no tcp://%s host, or not the four TLS settings: %v", docIP, conf)
	}
	tcp := freeAddr(t)
	testengine.StartWith(t, append(flags, "-H", "tcp://"+tcp)...)

	// Step 3: the client's three files, in a directory of their own.
	client := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		b, err := os.ReadFile(filepath.Join(certs, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(client, f), b, 0o600)
	}
	// Without a client certificate, the engine answers nobody.
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(certs, "ca.pem"))
	pool.AppendCertsFromPEM(ca)
	anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if res, err := anon.Get("https://" + tcp + "/_ping"); err == nil {
		res.Body.Close()
		t.Fatalf("the engine answered a client without a certificate: %s", res.Status)
	}

	bin := kozmicBinary(t)
	dir := t.TempDir()
	s := startServerAt(t, bin, dir, "DOCKER_HOST=", "DOCKER_CERT_PATH=", "KOZMIC_ENGINES=b=tcp://"+tcp+";tls="+client)
	c := newClient(t, s)
	if code := c.signIn("admin's password"); code != 303 {
		t.Fatalf("sign in: %d", code)
	}
	r := testrepo.Init(t)
	sha := r.Commit(map[string]string{"src.txt": "src-v1"}, nil)
	id := c.createProject(r.Path, "team/app", url.Values{"title": {"test"}, "image": {testimage.Name},
		"build": {"#!/bin/sh\necho \"building $(cat src.txt) on $(hostname)\"\n"}})
	_, page := c.do("GET", fmt.Sprintf("/projects/%d", id), nil)
	m := secretInPage.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no webhook secret on the project page:\n%s", page)
	}
	if code := webhook(t, s, id, m[1], sha, "d-1"); code != 201 {
		t.Fatalf("webhook: %d", code)
	}
	if status, log := c.waitBuild(s, id, 1); status != "passed" || !strings.Contains(log, "building src-v1 on ") {
		t.Fatalf("build %s; log:\n%s\nserver log:\n%s", status, log, s.logs)
	}
	// The job ran on b, by the server's own record.
	key, err := os.ReadFile(filepath.Join(dir, "kozmic.db.key"))
	if err != nil {
		t.Fatal(err)
	}
	db := openTestStore(t, filepath.Join(dir, "kozmic.db"), strings.TrimSpace(string(key)))
	b, err := db.BuildByNumber(context.Background(), id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if jobs, err := db.Jobs(context.Background(), b.ID); err != nil || len(jobs) != 1 || jobs[0].Engine != "b" {
		t.Errorf("jobs of build 1: %+v, %v; want one, on engine b", jobs, err)
	}
	if res, body := c.do("GET", "/healthz", nil); res.StatusCode != 200 || !strings.Contains(body, `"docker":"ok"`) {
		t.Errorf("healthz = %d %s", res.StatusCode, body)
	}

	// The same engine with a client certificate of another CA: Kozmic
	// reaches it not, and says so by the engine's name.
	other := makeDeployCerts(t)
	s2 := startServer(t, bin, "DOCKER_HOST=", "DOCKER_CERT_PATH=", "KOZMIC_ENGINES=b=tcp://"+tcp+";tls="+other)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(s2.logs.String(), `msg="the Docker engine is not reachable: it takes no jobs until it answers" engine=b`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a client of another CA: no unreachable engine b in the log:\n%s", s2.logs)
		}
	}
}

// makeDeployCerts runs the openssl commands of docs/deploy.md's step 1 in a
// directory of its own, for B at localhost and 127.0.0.1, and returns it.
func makeDeployCerts(t *testing.T) string {
	t.Helper()
	script := codeBlock(t, deploySection(t, "### 1. Certificates (on B, as root)"), "sh")
	const hostLine = "B_HOST=builder2.internal B_IP=10.0.0.5\n"
	if !strings.HasPrefix(script, hostLine) {
		t.Fatalf("step 1 does not start with %q:\n%s", hostLine, script)
	}
	dir := t.TempDir()
	script = strings.ReplaceAll("B_HOST=localhost B_IP=127.0.0.1\n"+strings.TrimPrefix(script, hostLine), "/etc/docker/tls", dir)
	if out, err := exec.Command("sh", "-e", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("step 1: %v\n%s", err, out)
	}
	return dir
}
