package runner

import (
	"context"

	"kozmic/internal/logcmd"
	"kozmic/store"
)

// notes are the annotations of a batch of a job's log: the ones kept
// (store.MaxAnnotations per job) and a count of all.
type notes struct {
	kept []store.Annotation
	seen store.AnnotationCounts
}

// annotate adds the command c on line n of the log to the batch, if it is
// an annotation; l.mu is held. Past store.MaxAnnotations of the job it is
// only counted, so a script printing them without end costs no memory.
func (l *jobLog) annotate(n int, c logcmd.Command) {
	if c.Kind != logcmd.Annotation {
		return
	}
	level := store.AnnotationLevel(c.Level)
	l.cur.seen.Add(level)
	if l.kept < store.MaxAnnotations {
		l.kept++
		l.cur.kept = append(l.cur.kept, store.Annotation{LogLine: n, Level: level, File: c.File, Line: c.Line,
			Col: c.Col, Title: c.Title, Message: c.Message})
	}
}

// storeNotes stores a batch's annotations once its log is stored, trying
// again while the database refuses them; the writer calls it.
func (l *jobLog) storeNotes(n notes) {
	if n.seen.Total() == 0 {
		return
	}
	err := retryWrite(l.ctx, l.log, "store job annotations", l.jobID, func() error {
		return l.store.AddAnnotations(context.WithoutCancel(l.ctx), l.jobID, n.kept, n.seen)
	})
	if err != nil {
		l.log.Error("store job annotations: they are lost", "job", l.jobID, "annotations", n.seen.Total(), "err", err)
	}
}
