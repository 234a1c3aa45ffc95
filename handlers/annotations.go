package handlers

import (
	"context"
	"html"
	"strings"

	"kozmic/internal/logcmd"
	"kozmic/store"
	"kozmic/views"
)

// appendLogCommand renders a log line that is a command (internal/logcmd)
// for lineRenderer.line, after its "<p id=L{n}": the rest of the start tag,
// with the class kozmic.js folds groups by, and the line's HTML instead of
// its text. A ::group:: line is the group's header, showing its title; an
// ::endgroup:: line is empty, a row of no height; an annotation is its
// icon, level, title, message and place. For any other line it appends
// nothing and reports false. Everything shown of the line is escaped.
func appendLogCommand(b, raw []byte) ([]byte, bool) {
	if !logcmd.IsCommand(raw) { // most lines: two bytes looked at
		return b, false
	}
	c, ok := logcmd.Parse(raw)
	if !ok {
		return b, false
	}
	switch c.Kind {
	case logcmd.GroupStart:
		b = append(b, ` class="`+views.GroupStartClass+`"><span class="group-title">`...)
		b = appendHTMLText(b, c.Title)
		b = append(b, "</span>"...)
	case logcmd.GroupEnd:
		b = append(b, ` class="`+views.GroupEndClass+`">`...)
	case logcmd.Annotation:
		level := store.AnnotationLevel(c.Level)
		b = append(b, ` class="`+views.AnnotationClass+" "+views.AnnotationClass+"-"...)
		b = append(b, level...)
		b = append(b, `"><span class="annotation-icon" aria-hidden="true">`...)
		b = append(b, views.AnnotationIcon(level)...)
		b = append(b, `</span> <strong class="annotation-level">`...)
		b = append(b, level...)
		b = append(b, "</strong> "...)
		if c.Title != "" {
			b = append(b, `<b class="annotation-title">`...)
			b = appendHTMLText(b, c.Title)
			b = append(b, "</b> "...)
		}
		b = appendHTMLText(b, c.Message)
		if w := views.AnnotationWhere(c.File, c.Line, c.Col); w != "" {
			b = append(b, ` <code class="annotation-where">`...)
			b = appendHTMLText(b, w)
			b = append(b, "</code>"...)
		}
	}
	return b, true
}

// htmlLineBreaks turns the line breaks a command's escapes (%0A) put in its
// text into <br>: a rendered log line holds none (see lineRenderer.event).
var htmlLineBreaks = strings.NewReplacer("\r\n", "<br>", "\n", "<br>", "\r", "<br>")

// appendHTMLText appends s escaped as HTML text, its line breaks as <br>.
func appendHTMLText(b []byte, s string) []byte {
	return append(b, htmlLineBreaks.Replace(html.EscapeString(s))...)
}

// annotationsView is the list of job j's annotations on its page.
func (h *Handler) annotationsView(ctx context.Context, p store.Project, b store.Build, j store.Job) (views.AnnotationsView, error) {
	notes, counts, err := h.db.Annotations(ctx, j.ID)
	v := views.AnnotationsView{Counts: counts}
	for _, a := range notes {
		v.Rows = append(v.Rows, views.AnnotationRow{Annotation: a, URL: views.AnnotationLineURL(p.ID, b.Number, j.ID, a.LogLine)})
	}
	return v, err
}
