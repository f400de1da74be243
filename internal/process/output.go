package process

import (
	"bytes"
	"io"
	"sync"
)

// maxLine bounds a buffered partial line: a step that prints a long line
// without a newline gets it split rather than held in memory.
const maxLine = 64 << 10

// lockedWriter serializes writes of all steps to the log, so that lines of
// parallel steps never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A failing log must not stop the step: its output pipe must keep
	// draining or the step would block.
	_, _ = l.w.Write(b)
}

// lineWriter prefixes each line of one stream and hands the log whole lines.
type lineWriter struct {
	out    *lockedWriter
	prefix string
	buf    []byte // the current partial line
}

// Write never fails, for the reason lockedWriter.write gives.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	var batch []byte
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLine {
				batch = w.line(batch, w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		if len(w.buf) > 0 {
			w.buf = append(w.buf, p[:i]...)
			batch = w.line(batch, w.buf)
			w.buf = w.buf[:0]
		} else {
			batch = w.line(batch, p[:i])
		}
		p = p[i+1:]
	}
	if len(batch) > 0 {
		w.out.write(batch)
	}
	return n, nil
}

// line appends one prefixed line to batch.
func (w *lineWriter) line(batch, text []byte) []byte {
	batch = append(batch, w.prefix...)
	batch = append(batch, text...)
	return append(batch, '\n')
}

// Flush writes a final partial line, newline-terminated.
func (w *lineWriter) Flush() {
	if len(w.buf) > 0 {
		w.out.write(w.line(nil, w.buf))
		w.buf = w.buf[:0]
	}
}

// copyFile is a stdoutConfig/stderrConfig copy; after a write error it says
// so in the log and drops the rest, so that the step's output keeps flowing.
type copyFile struct {
	w      io.Writer
	log    *lineWriter
	failed bool
}

func (c *copyFile) Write(p []byte) (int, error) {
	if !c.failed {
		if _, err := c.w.Write(p); err != nil {
			c.failed = true
			c.log.out.write(c.log.line(nil, []byte("pod-runner: output copy stopped: "+err.Error())))
		}
	}
	return len(p), nil
}
