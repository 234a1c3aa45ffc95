package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"kozmic/internal/syncbuf"
)

// certDir makes a directory with the three files of a Docker client over
// TLS; their contents are text, not certificates.
func certDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not a certificate\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestEnginesSetting(t *testing.T) {
	tls := certDir(t)
	tests := []struct {
		v, workers string
		want       []EngineSetting
	}{
		{"", "", nil},
		{"local=unix:///var/run/docker.sock", "", []EngineSetting{{Name: "local", Host: "unix:///var/run/docker.sock", Slots: 2}}},
		// Slots default to KOZMIC_WORKERS; spaces around the separators are dropped.
		{"local=unix:///var/run/docker.sock;slots=2, b-2 = tcp://10.0.0.5:2376 ; slots=4 ;tls=" + tls + ",c=https://builder.internal:2376;tls=" + tls, "3",
			[]EngineSetting{{Name: "local", Host: "unix:///var/run/docker.sock", Slots: 2},
				{Name: "b-2", Host: "tcp://10.0.0.5:2376", CertDir: tls, Slots: 4},
				{Name: "c", Host: "https://builder.internal:2376", CertDir: tls, Slots: 3}}},
		// The loopback interface may go without TLS (an SSH tunnel, say).
		{"t=tcp://127.0.0.1:2375;slots=256,u=tcp://localhost:2375,v=http://[::1]:2375;slots=1", "", []EngineSetting{
			{Name: "t", Host: "tcp://127.0.0.1:2375", Slots: 256}, {Name: "u", Host: "tcp://localhost:2375", Slots: 2},
			{Name: "v", Host: "http://[::1]:2375", Slots: 1}}},
	}
	for _, tt := range tests {
		c, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_ENGINES": tt.v, "KOZMIC_WORKERS": tt.workers}), io.Discard)
		if err != nil || !reflect.DeepEqual(c.Engines, tt.want) {
			t.Errorf("KOZMIC_ENGINES=%q: %+v, %v; want %+v", tt.v, c.Engines, err, tt.want)
		}
	}
	c, err := parseConfig("serve", []string{"-engines", "a=unix:///run/a.sock;slots=5"}, env(t, map[string]string{"KOZMIC_ENGINES": "b=unix:///run/b.sock"}), io.Discard)
	if want := []EngineSetting{{Name: "a", Host: "unix:///run/a.sock", Slots: 5}}; err != nil || !reflect.DeepEqual(c.Engines, want) {
		t.Errorf("-engines over KOZMIC_ENGINES: %+v, %v; want %+v", c.Engines, err, want)
	}
}

// Each bad entry of KOZMIC_ENGINES is refused with a message that names
// the engine, or its place in the list when it has no name, and says
// what is wrong.
func TestEnginesSettingErrorsNameTheEngine(t *testing.T) {
	tls := certDir(t)
	noKey := t.TempDir()
	os.WriteFile(filepath.Join(noKey, "ca.pem"), nil, 0o600)
	os.WriteFile(filepath.Join(noKey, "cert.pem"), nil, 0o600)
	dirKey := t.TempDir()
	os.WriteFile(filepath.Join(dirKey, "ca.pem"), nil, 0o600)
	os.WriteFile(filepath.Join(dirKey, "cert.pem"), nil, 0o600)
	os.Mkdir(filepath.Join(dirKey, "key.pem"), 0o700)
	for v, want := range map[string]string{
		"a=unix:///a.sock,,b=unix:///b.sock":        `engine 2 is empty; engines are separated by one comma`,
		"a=unix:///a.sock,":                         `engine 2 is empty; engines are separated by one comma`,
		"unix:///var/run/docker.sock":               `engine 1: "unix:///var/run/docker.sock" is not name=address, such as b=tcp://10.0.0.5:2376`,
		"a=unix:///a.sock,Builder=unix:///b.sock":   `engine 2: "Builder" is not a name of up to 32 lower-case letters, digits and hyphens, starting with a letter or digit`,
		"-a=unix:///a.sock":                         `engine 1: "-a" is not a name of up to 32 lower-case letters, digits and hyphens, starting with a letter or digit`,
		strings.Repeat("a", 33) + "=unix:///a.sock": `engine 1: "` + strings.Repeat("a", 33) + `" is not a name of up to 32 lower-case letters, digits and hyphens, starting with a letter or digit`,
		"=unix:///a.sock":                           `engine 1: "" is not a name of up to 32 lower-case letters, digits and hyphens, starting with a letter or digit`,
		"a=unix:///a.sock,a=unix:///b.sock":         `engine "a": named twice`,
		"a=;slots=2":                                `engine "a": no address after a=`,
		"a=/var/run/docker.sock":                    `engine "a": "/var/run/docker.sock" is not a unix://, tcp://, http:// or https:// address`,
		"a=ssh://me@host":                           `engine "a": "ssh://me@host" is not a unix://, tcp://, http:// or https:// address`,
		"a=tcp://:2376":                             `engine "a": "tcp://:2376" is not a unix://, tcp://, http:// or https:// address`,
		"a=tcp://127.0.0.1:70000":                   `engine "a": "tcp://127.0.0.1:70000" is not a unix://, tcp://, http:// or https:// address`,
		"a=unix://docker.sock":                      `engine "a": "unix://docker.sock" is not a unix://, tcp://, http:// or https:// address`,
		"builder2=unix:///b.sock;slots=x":           `engine "builder2": slots: "x" is not a whole number from 1 to 256`,
		"builder2=unix:///b.sock;slots=0":           `engine "builder2": slots: "0" is not a whole number from 1 to 256`,
		"builder2=unix:///b.sock;slots=257":         `engine "builder2": slots: "257" is not a whole number from 1 to 256`,
		"a=unix:///a.sock;slots=1;slots=2":          `engine "a": slots given twice`,
		"a=unix:///a.sock;slot=2":                   `engine "a": unknown option "slot=2"; the options are slots=N and tls=DIR`,
		"a=unix:///a.sock;":                         `engine "a": unknown option ""; the options are slots=N and tls=DIR`,
		"a=unix:///a.sock;tls=" + tls:               `engine "a": tls is for an engine over the network, not a unix:// socket`,
		"a=tcp://10.0.0.5:2376;tls=":                `engine "a": tls= names no directory`,
		"a=tcp://10.0.0.5:2376;tls=" + noKey:        `engine "a": tls: ` + noKey + ` has no key.pem`,
		"a=tcp://10.0.0.5:2376;tls=" + dirKey:       `engine "a": tls: ` + filepath.Join(dirKey, "key.pem") + ` is not a file`,
		"a=tcp://10.0.0.5:2376;tls=/no/such/dir":    `engine "a": tls: /no/such/dir has no ca.pem`,
		"a=tcp://10.0.0.5:2376":                     `engine "a": tcp://10.0.0.5:2376 without tls=DIR would give anyone on the network root on that machine and show them the jobs' secrets: give the engine TLS client certificates (see docs/deploy.md)`,
		"a=https://builder.internal:2376":           `engine "a": https://builder.internal:2376 without tls=DIR would give anyone on the network root on that machine and show them the jobs' secrets: give the engine TLS client certificates (see docs/deploy.md)`,
	} {
		_, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_ENGINES": v}), io.Discard)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Setting != "KOZMIC_ENGINES" || ce.Err.Error() != want {
			t.Errorf("KOZMIC_ENGINES=%q: %v\nwant KOZMIC_ENGINES: %s", v, err, want)
		}
	}
}

// A tls= file this process cannot read is refused at start, not at the
// first job on that engine: one that opens to nothing (a symbolic link to
// itself, which root cannot read either), and, unless the tests run as
// root, who reads every file, one without read permission.
func TestEnginesSettingRefusesUnreadableCertificates(t *testing.T) {
	loop := certDir(t)
	key := filepath.Join(loop, "key.pem")
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("key.pem", key); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{loop: "too many levels of symbolic links"}
	if os.Geteuid() != 0 {
		denied := certDir(t)
		if err := os.Chmod(filepath.Join(denied, "key.pem"), 0); err != nil {
			t.Fatal(err)
		}
		cases[denied] = "permission denied"
	}
	for tls, why := range cases {
		_, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_ENGINES": "b=tcp://10.0.0.5:2376;tls=" + tls}), io.Discard)
		if want := `KOZMIC_ENGINES: engine "b": tls: cannot read ` + filepath.Join(tls, "key.pem") + `: ` + why; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
	}
}

// KOZMIC_ENGINES replaces DOCKER_HOST and DOCKER_CERT_PATH: one set beside
// it, by variable or by flag, is refused rather than left unused without a
// word. KOZMIC_WORKERS goes with it, as the slots of engines that do not say.
func TestEnginesSettingRefusesDockerHostBesideIt(t *testing.T) {
	engines := map[string]string{"KOZMIC_ENGINES": "local=unix:///var/run/docker.sock"}
	tls := certDir(t)
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"DOCKER_HOST": "unix:///var/run/docker.sock"}, nil, "DOCKER_HOST"},
		{nil, []string{"-docker-host", "tcp://127.0.0.1:2375"}, "DOCKER_HOST"},
		{map[string]string{"DOCKER_CERT_PATH": tls}, nil, "DOCKER_CERT_PATH"},
		{nil, []string{"-docker-cert-path", tls}, "DOCKER_CERT_PATH"},
	} {
		kv := map[string]string{"KOZMIC_ENGINES": engines["KOZMIC_ENGINES"]}
		for k, v := range tt.env {
			kv[k] = v
		}
		_, err := parseConfig("serve", tt.args, env(t, kv), io.Discard)
		want := "KOZMIC_ENGINES: " + tt.want + " is set too: set one or the other " +
			"(the engine at DOCKER_HOST can be one of KOZMIC_ENGINES, such as local=unix:///var/run/docker.sock)"
		if err == nil || err.Error() != want {
			t.Errorf("%v %v: err = %v\nwant %s", tt.env, tt.args, err, want)
		}
	}
	c, err := parseConfig("serve", nil, env(t, map[string]string{"KOZMIC_ENGINES": engines["KOZMIC_ENGINES"], "KOZMIC_WORKERS": "6"}), io.Discard)
	if err != nil || len(c.Engines) != 1 || c.Engines[0].Slots != 6 {
		t.Errorf("with KOZMIC_WORKERS=6: %+v, %v; want one engine of 6 slots", c.Engines, err)
	}
}

// A bad KOZMIC_ENGINES stops every command with exit code 2 and one line
// naming the setting and the engine, before any database is made; so do
// tls= files that hold no certificate, found when the server makes the
// engine's client.
func TestRunBadEnginesExits2WithOneLine(t *testing.T) {
	for v, want := range map[string]string{
		"builder2=unix:///b.sock;slots=x":         `kozmic: KOZMIC_ENGINES: engine "builder2": slots: "x" is not a whole number from 1 to 256`,
		"b=tcp://10.0.0.5:2376;tls=" + certDir(t): `kozmic: KOZMIC_ENGINES: engine "b": docker client for tcp://10.0.0.5:2376: tls: failed to find any PEM data in certificate input`,
	} {
		dbPath := filepath.Join(t.TempDir(), "k.db")
		// A server that started anyway stops, to fail the test, not hang it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		code, _, errOut := runKozmic(ctx, nil, env(t, map[string]string{"KOZMIC_DATABASE": dbPath, "KOZMIC_ADDR": "127.0.0.1:0", "KOZMIC_ENGINES": v}))
		cancel()
		if code != 2 || errOut != want+"\n" {
			t.Errorf("KOZMIC_ENGINES=%q: exit %d, %q\nwant exit 2, %q", v, code, errOut, want)
		}
		if _, err := os.Stat(dbPath); !os.IsNotExist(err) {
			t.Errorf("KOZMIC_ENGINES=%q made the database (%v)", v, err)
		}
	}
}

// The server runs its jobs on the engines KOZMIC_ENGINES names, by their
// names, and no longer on the one at DOCKER_HOST's default: with none of
// them answering, the runner says so of each, by name and address.
func TestServeRunsJobsOnTheEnginesOfKozmicEngines(t *testing.T) {
	addr := freeAddr(t)
	sock := filepath.Join(t.TempDir(), "none.sock")
	var logs syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, nil, env(t, map[string]string{"KOZMIC_ADDR": addr, "KOZMIC_SECRET_KEY": strings.Repeat("s", 40),
			"KOZMIC_ENGINES": "first=tcp://127.0.0.1:1;slots=3,second=unix://" + sock}), strings.NewReader(""), io.Discard, &logs)
	}()
	want := []string{
		`msg="the Docker engine is not reachable: it takes no jobs until it answers" engine=first endpoint=tcp://127.0.0.1:1`,
		`msg="the Docker engine is not reachable: it takes no jobs until it answers" engine=second endpoint=unix://` + sock,
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		all := true
		for _, w := range want {
			all = all && strings.Contains(logs.String(), w)
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the log does not name both engines as unreachable:\n%s", logs.String())
		}
	}
	if strings.Contains(logs.String(), "engine=local") {
		t.Errorf("the server used the engine at DOCKER_HOST too:\n%s", logs.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d; log:\n%s", code, logs.String())
	}
}
