package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// `pod-runner control cancel-run-finally` run beside a supervising
// `pod-runner supervise` (as the controller runs it through pods/exec): the
// running step is stopped, finally runs, the run ends Cancelled.
func TestControlCancelRunFinally(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	plan := &planpb.Plan{
		Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr",
		Tasks: []*planpb.Task{{Name: "a", TaskRunName: "pr-a", Spec: &planpb.TaskSpec{
			Steps: []*planpb.Step{{Name: "s", Script: "touch " + ready + "; sleep 30"}}}}},
		Finally: []*planpb.Task{{Name: "fin", TaskRunName: "pr-fin", Spec: &planpb.TaskSpec{
			Steps: []*planpb.Step{{Name: "s", Command: []string{"true"}}}}}},
	}
	p := startPod(t, plan, "", "a-s", "fin-s")
	waitForFile(t, ready, "step a never started")
	socket := filepath.Join(p.dir, "run", "supervisor.sock")
	if out, err := exec.Command(inpod(t), "control", "--socket", socket, "cancel-run-finally").CombinedOutput(); err != nil {
		t.Fatalf("control: %v: %s", err, out)
	}
	code, msg := p.wait()
	summary, err := sidecar.ParseTermination(msg)
	if code != 1 || err != nil || summary.GetCondition().GetReason() != reasons.Cancelled {
		t.Fatalf("exit %d, termination message %s (%v)", code, msg, err)
	}
	s, err := sidecar.Read(strings.NewReader(p.stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	for _, ts := range s.Final.GetTasks() {
		if ts.GetName() == "fin" && ts.GetCondition().GetStatus() == "True" {
			ran = true
		}
	}
	if !ran {
		t.Errorf("finally did not succeed: %v", s.Final.GetTasks())
	}
}

// Usage errors exit 2; no supervisor listening exits 1.
func TestControlUsage(t *testing.T) {
	bin := inpod(t)
	none := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"control"}, 2},
		{[]string{"control", "pause"}, 2},
		{[]string{"control", "stop-run-finally", "extra"}, 2},
		{[]string{"control", "--socket", none, "stop-run-finally"}, 1},
	}
	for _, tc := range tests {
		err := exec.Command(bin, tc.args...).Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.want)
		}
	}
}
