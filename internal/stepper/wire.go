package stepper

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// MaxMessage bounds one framed message: a Run carries a step's script and
// environment, far below this.
const MaxMessage = 16 << 20

// DoneFile is created in the socket's directory by a supervisor that has
// finished and no longer accepts connections: a step container that starts
// after that exits at once instead of waiting for a socket that will never
// answer.
const DoneFile = "supervisor.done"

// WriteMsg writes m as one frame: a 4-byte big-endian length, then the
// binary proto. The caller serializes writers.
func WriteMsg(w io.Writer, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if len(b) > MaxMessage {
		return fmt.Errorf("message of %d bytes exceeds %d", len(b), MaxMessage)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// ReadMsg reads one frame into m. io.EOF means the peer closed the
// connection between messages.
func ReadMsg(r *bufio.Reader, m proto.Message) error {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > MaxMessage {
		return fmt.Errorf("message of %d bytes exceeds %d", n, MaxMessage)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read message: %w", io.ErrUnexpectedEOF)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode message: %w", err)
	}
	return nil
}
