package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// A build script's ::error::, ::warning:: and ::notice:: lines are stored as
// annotations of its job, numbered as the log's lines, also when a line
// comes in several writes that land in different batches; groups, coloured
// lines and Kozmic's own lines are none. Past store.MaxAnnotations they are
// only counted. A secret in one is masked, as in the log.
func TestScriptAnnotationsAreStoredWithTheirLogLines(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "annotated", BuildScript: "#!/bin/sh\n" +
		"echo '::group::Compile'\n" +
		// One line in three writes, each flushed as a batch of its own.
		"printf '::err'; sleep 0.3; printf 'or file=app.go,line=12,col=3,title=Bad%%3A call::broken <b>'; sleep 0.3; printf 'here\\n'\n" +
		"echo '::endgroup::'\n" +
		"printf \"::warning::with crlf and $API_TOKEN\\r\\n\"\n" +
		"printf '\\033[33m::warning::coloured is text\\033[0m\\n'\n" +
		"echo '  ::notice::indented is text'\n" +
		"for i in $(seq 1 1005); do echo \"::notice::n $i\"; done\n" +
		"printf '::error::last line, no newline'\n"})
	if err := h.db.SetSecret(context.Background(), p.ID, store.Secret{Name: "API_TOKEN", Value: "tok-12345-secret"}); err != nil {
		t.Fatal(err)
	}
	j := h.runOK(p, rp.Git("rev-parse", "HEAD"))
	notes, counts, err := h.db.Annotations(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.AnnotationCounts{Errors: 2, Warnings: 1, Notices: 1005}); counts != want {
		t.Errorf("counts %+v, want %+v", counts, want)
	}
	if len(notes) != store.MaxAnnotations {
		t.Fatalf("kept %d annotations, want %d", len(notes), store.MaxAnnotations)
	}
	want := []store.Annotation{
		{Level: store.AnnotationError, File: "app.go", Line: 12, Col: 3, Title: "Bad: call", Message: "broken <b>here"},
		{Level: store.AnnotationWarning, Message: "with crlf and ********"},
		{Level: store.AnnotationNotice, Message: "n 1"},
	}
	lines := strings.Split(h.logOf(j.ID), "\n")
	for i, w := range want {
		got := notes[i]
		w.LogLine = got.LogLine
		if got != w {
			t.Errorf("annotation %d = %+v, want %+v", i, got, w)
		}
		if got.LogLine < 1 || got.LogLine > len(lines) || !strings.HasPrefix(lines[got.LogLine-1], "::"+string(w.Level)) {
			t.Errorf("annotation %d names log line %d, which is not its command", i, got.LogLine)
		}
	}
	if last := notes[len(notes)-1]; last.Message != fmt.Sprint("n ", store.MaxAnnotations-2) {
		t.Errorf("the last kept annotation is %+v, want the notice n %d", last, store.MaxAnnotations-2)
	}
}
