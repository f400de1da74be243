package stepper

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/proto/steppb"
)

// A sidecar's exec probe runs in its container beside the sidecar's
// process, with the sidecar's environment and working directory, while the
// process goes on; a probe past its timeout is killed and says so.
func TestProbeExecBesideTheSidecar(t *testing.T) {
	s, f := start(t, true)
	f.accept()
	f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: &steppb.Run{
		Seq: 1, Command: []string{"sh", "-c", "sleep 0.3; touch ready; exec sleep 60"}, WorkingDir: "srv", Env: []string{"SIDECAR=yes"}}}})
	probe := func(seq uint64, runSeq uint64, timeout time.Duration, command ...string) *steppb.ProbeResult {
		t.Helper()
		f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_ProbeExec{ProbeExec: &steppb.ProbeExec{
			Seq: seq, RunSeq: runSeq, Command: command, TimeoutMs: timeout.Milliseconds(),
		}}})
		m := f.read()
		if m.GetProbeResult().GetSeq() != seq {
			t.Fatalf("answer %v, want ProbeResult seq %d", m, seq)
		}
		return m.GetProbeResult()
	}
	// Not ready yet: the file is not there.
	if r := probe(10, 1, time.Second, "test", "-e", "ready"); r.GetExitCode() != 1 || r.GetError() != "" {
		t.Errorf("probe before the sidecar is ready: %v, want exit code 1", r)
	}
	time.Sleep(500 * time.Millisecond)
	if r := probe(11, 1, time.Second, "test", "-e", "ready"); r.GetExitCode() != 0 || r.GetError() != "" {
		t.Errorf("probe once the sidecar is ready: %v, want exit code 0", r)
	}
	if r := probe(12, 1, time.Second, "sh", "-c", `echo "$SIDECAR $KEEP $(pwd)"`); r.GetOutput() != "yes container "+filepath.Join(s.dir, "workspace", "srv")+"\n" {
		t.Errorf("probe output %q, want the sidecar's env and working dir", r.GetOutput())
	}
	// An unknown run: the container's own environment.
	if r := probe(13, 99, time.Second, "sh", "-c", `echo "${SIDECAR:-none} $KEEP"`); r.GetOutput() != "none container\n" {
		t.Errorf("probe output %q, want the container's own environment", r.GetOutput())
	}
	start := time.Now()
	r := probe(14, 1, 200*time.Millisecond, "sleep", "10")
	if !strings.Contains(r.GetError(), "timed out after 200ms") || time.Since(start) > 5*time.Second {
		t.Errorf("probe past its timeout: %v after %v, want a timeout error", r, time.Since(start))
	}
	if r := probe(15, 1, time.Second, "no-such-probe"); !strings.Contains(r.GetError(), "not found") {
		t.Errorf("probe of a missing command: %v", r)
	}
	// The sidecar still runs: Stop ends it.
	f.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: &steppb.Stop{Seq: 1, GraceMs: 1000}}})
	if m := f.read(); m.GetExited().GetSeq() != 1 || m.GetExited().GetExitCode() != 143 {
		t.Errorf("after Stop: %v, want the sidecar's Exited with 143", m)
	}
}
