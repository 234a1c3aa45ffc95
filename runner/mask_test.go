package runner

import "testing"

func TestMaskerMasksSecretsSplitAnywhere(t *testing.T) {
	secrets := []string{"hunter2-long-secret", "tok", "abcd", "abcdef-longer"}
	stream := "start hunter2-long-secret mid abcdef-longer abcd end abc tok hunter2-lo"
	want := "start ******** mid ******** ******** end abc tok hunter2-lo"
	// Every way of cutting the stream into two writes, and byte by byte.
	for cut := 0; cut <= len(stream); cut++ {
		m := newMasker(secrets)
		got := string(m.write([]byte(stream[:cut]))) + string(m.write([]byte(stream[cut:]))) + string(m.flush())
		if got != want {
			t.Fatalf("cut at %d: %q, want %q", cut, got, want)
		}
	}
	m := newMasker(secrets)
	var got []byte
	for i := range len(stream) {
		got = append(got, m.write([]byte{stream[i]})...)
	}
	if got = append(got, m.flush()...); string(got) != want {
		t.Errorf("byte by byte: %q", got)
	}
	// Nothing to mask: the stream passes untouched and nothing is held.
	if out := newMasker(nil).write([]byte("plain")); string(out) != "plain" {
		t.Errorf("no secrets: %q", out)
	}
}
