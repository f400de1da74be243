package stepper

import (
	"bufio"
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/proto/steppb"
)

// FuzzReadMsg reads any bytes from a step container's socket as both ends
// do: nothing panics, a frame never claims more than MaxMessage, and what
// is read writes back to the same message.
func FuzzReadMsg(f *testing.F) {
	for _, m := range []proto.Message{
		&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: &steppb.Run{Seq: 1, Command: []string{"sh", "-c"}, Args: []string{"echo hi"}, Env: []string{"A=b"}, Name: "s"}}},
		&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: &steppb.Stop{}}},
		&steppb.StepMessage{Kind: &steppb.StepMessage_Hello{Hello: &steppb.Hello{Container: "t-s"}}},
		&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_ProbeExec{ProbeExec: &steppb.ProbeExec{Seq: 2, RunSeq: 1, Command: []string{"test", "-e", "/ready"}, TimeoutMs: 1000}}},
		&steppb.StepMessage{Kind: &steppb.StepMessage_ProbeResult{ProbeResult: &steppb.ProbeResult{Seq: 2, ExitCode: 1, Output: "no"}}},
	} {
		var b bytes.Buffer
		if err := WriteMsg(&b, m); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		f.Add(b.Bytes()[:b.Len()-1])
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&steppb.SupervisorMessage{}, &steppb.StepMessage{}} {
			r := bufio.NewReader(bytes.NewReader(data))
			for range 8 { // a stream of frames
				m := proto.Clone(m)
				proto.Reset(m)
				if err := ReadMsg(r, m); err != nil {
					break
				}
				var b bytes.Buffer
				if err := WriteMsg(&b, m); err != nil {
					t.Fatalf("a message read does not write back: %v", err)
				}
				again := proto.Clone(m)
				proto.Reset(again)
				if err := ReadMsg(bufio.NewReader(&b), again); err != nil || !proto.Equal(m, again) {
					t.Fatalf("read back %v (%v), want %v", again, err, m)
				}
			}
		}
	})
}
