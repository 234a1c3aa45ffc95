package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"
)

// A job's log is stored in its final form as it is written: each batch of
// output is deflated into a frame (a row of job_log_frames) that is never
// read back or rewritten. The log is cut into segments of logSegmentSize
// bytes as written; a segment is one deflate stream spread over its frames,
// each frame ending with a sync flush, so that the frames stored so far
// inflate to every byte stored so far. A reader inflates from the first
// frame of the segment that holds the offset it wants. A frame also carries
// the arrival times of its bytes (see LogMark), as varints.

// logSegmentSize is how many bytes of the log as written one segment holds.
// A read inflates only the segments it touches, each from its start, so
// this bounds the work of reading a page of however long a log; deflate
// looks back only 32 KiB, so longer segments would hardly compress better.
const logSegmentSize = 256 << 10

// logCompression is the deflate level of logs. A log is compressed as the
// job writes it, beside reading the container, so speed counts: BestSpeed
// still shrinks build output about tenfold.
const logCompression = flate.BestSpeed

// LogMark says that the bytes of a job's log from Offset on (until the next
// mark) arrived At after the job's log began: the time of the write that
// brought them.
type LogMark struct {
	Offset int64
	At     time.Duration
}

// LogFrame is one stored piece of a job's log, made by a LogEncoder and
// stored by AppendLogFrames.
type LogFrame struct {
	pos, seg  int64  // offsets in the log as written of its first byte and of its segment's
	size      int    // bytes of the log as written that it holds
	data      []byte // deflated, ending with a sync flush
	times     []byte // arrival marks (encodeMarks); nil when none were given
	truncated bool   // it ends the log at the size limit
	lines     int64  // line ends in the log before pos; -1 when not known
}

// Len is how many bytes of the log as written the frame holds.
func (f LogFrame) Len() int { return f.size }

// LogEncoder turns a job's log, batch by batch as it is written, into the
// frames it is stored as. It keeps the deflate stream of the current
// segment, so one encoder serves one log, from its first byte, and is not
// safe for concurrent use.
type LogEncoder struct {
	pos, seg int64 // the log's bytes encoded so far, and where the current segment begins
	fresh    bool  // the next frame starts a new segment
	at       int64 // milliseconds: the arrival time of the last byte encoded
	lines    int64 // line ends in the bytes encoded so far; -1 when not known (see AppendLog)
	zw       *flate.Writer
	buf      bytes.Buffer
}

// NewLogEncoder returns the encoder of a log that is still empty.
func NewLogEncoder() *LogEncoder { return &LogEncoder{fresh: true} }

// Encode deflates data, the next bytes of the log, into frames: one, or
// more where data crosses a segment boundary. marks (in ascending Offset,
// within data's part of the log) give the arrival times; a frame begins
// at the time of the mark before it, so that each frame can be read on its
// own. truncated marks the log as cut at the size limit. The frames must
// be stored (AppendLogFrames) before the next call, or handed to Lost.
// Empty data makes no frames.
func (e *LogEncoder) Encode(data []byte, marks []LogMark, truncated bool) []LogFrame {
	var frames []LogFrame
	for len(data) > 0 {
		if e.fresh || e.pos-e.seg >= logSegmentSize {
			e.seg, e.fresh = e.pos, false
			if e.zw == nil {
				e.zw, _ = flate.NewWriter(&e.buf, logCompression) // the level is valid
			} else {
				e.zw.Reset(&e.buf)
			}
		}
		n := min(len(data), int(e.seg+logSegmentSize-e.pos))
		e.buf.Reset()
		// Writing to a bytes.Buffer cannot fail.
		e.zw.Write(data[:n])
		e.zw.Flush()
		f := LogFrame{pos: e.pos, seg: e.seg, size: n, data: bytes.Clone(e.buf.Bytes()), lines: e.lines}
		if marks != nil {
			f.times, marks = e.encodeMarks(e.pos+int64(n), marks)
		}
		if e.lines >= 0 {
			e.lines += int64(bytes.Count(data[:n], []byte{'\n'}))
		}
		frames = append(frames, f)
		e.pos += int64(n)
		data = data[n:]
	}
	if len(frames) > 0 {
		frames[len(frames)-1].truncated = truncated
	}
	return frames
}

// encodeMarks encodes the arrival times of the frame from e.pos to end: a
// pair of uvarints per change of time, the offset from the pair before (the
// first from the frame's start, which always has one) and the milliseconds
// since the pair before (the first since the log began). It returns the
// marks left for later frames.
func (e *LogEncoder) encodeMarks(end int64, marks []LogMark) ([]byte, []LogMark) {
	type pair struct{ off, ms int64 }
	pairs := []pair{{e.pos, e.at}}
	for len(marks) > 0 && marks[0].Offset < end {
		m := marks[0]
		marks = marks[1:]
		// Times only go forward, so that deltas are unsigned.
		ms := max(m.At.Milliseconds(), e.at)
		last := &pairs[len(pairs)-1]
		switch {
		case m.Offset <= last.off:
			last.ms = ms
		case ms != last.ms:
			pairs = append(pairs, pair{m.Offset, ms})
		}
		e.at = ms
	}
	var out []byte
	prev := pair{e.pos, 0}
	for _, p := range pairs {
		out = binary.AppendUvarint(out, uint64(p.off-prev.off))
		out = binary.AppendUvarint(out, uint64(p.ms-prev.ms))
		prev = p
	}
	return out, marks
}

// Lost tells the encoder that frames it made were not stored: the log goes
// on at the offset where they began, in a new segment, as the part of the
// deflate stream they held is gone.
func (e *LogEncoder) Lost(frames []LogFrame) {
	if len(frames) > 0 {
		e.pos, e.fresh, e.lines = frames[0].pos, true, frames[0].lines
	}
}

// timeMark is a decoded arrival mark: the bytes from off on arrived ms
// milliseconds after the log began.
type timeMark struct{ off, ms int64 }

// decodeMarks appends the marks of a frame at pos to dst.
func decodeMarks(dst []timeMark, pos int64, b []byte) ([]timeMark, error) {
	prev := timeMark{pos, 0}
	for len(b) > 0 {
		off, n := binary.Uvarint(b)
		if n <= 0 {
			return dst, errors.New("bad arrival times")
		}
		ms, k := binary.Uvarint(b[n:])
		if k <= 0 {
			return dst, errors.New("bad arrival times")
		}
		b = b[n+k:]
		prev = timeMark{prev.off + int64(off), prev.ms + int64(ms)}
		dst = append(dst, prev)
	}
	return dst, nil
}

// segment is the text of one segment of a log, for the readers.
type segment struct {
	pos   int64      // offset of its first byte in the log as written
	text  []byte     // its bytes, up to what the reader asked for
	marks []timeMark // ascending; none in a log stored without times
}

// inflaters keeps flate readers for reuse: each holds a 32 KiB window and
// tables that a page read would otherwise allocate anew.
var inflaters sync.Pool

// inflate returns the first n bytes that the deflate stream z holds, in
// dst's memory. The stream may lack its end (a segment still being
// written), but must hold n bytes.
func inflate(dst, z []byte, n int) ([]byte, error) {
	src := bytes.NewReader(z)
	zr, _ := inflaters.Get().(io.ReadCloser)
	if zr == nil {
		zr = flate.NewReader(src)
	} else if err := zr.(flate.Resetter).Reset(src, nil); err != nil {
		return dst, err
	}
	defer inflaters.Put(zr)
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if _, err := io.ReadFull(zr, dst); err != nil {
		return dst, fmt.Errorf("inflate %d bytes: %w", n, err)
	}
	return dst, nil
}
