// Package loglines reads a container's log past a byte offset, line by
// line, so that a follower whose stream broke (a retry, a restarted API
// server or kubelet, `podman logs -f` ending) resumes where it stopped:
// nothing printed twice, nothing lost.
package loglines

import (
	"bufio"
	"errors"
	"io"
)

// From gives line each line of r past byte from, without its newline, and
// returns the offset after the last line given. A last line without its
// newline is given only when whole is set (the log is complete); else it
// is left for a later read, which gets it whole. An EOF before from is no
// error: nothing past from was written yet.
func From(r io.Reader, from int64, whole bool, line func(string)) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := io.CopyN(io.Discard, br, from); err != nil {
		if errors.Is(err, io.EOF) {
			return from, nil
		}
		return from, err
	}
	n := from
	for {
		s, err := br.ReadString('\n')
		switch {
		case err == nil:
			n += int64(len(s))
			line(s[:len(s)-1])
			continue
		case !errors.Is(err, io.EOF):
			return n, err
		case s != "" && whole:
			n += int64(len(s))
			line(s)
		}
		return n, nil
	}
}
