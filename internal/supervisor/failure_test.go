package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A step that fails its task gives the TaskRun Tekton's reason for the
// step's container (pkg/pod getFailureInfo) and keeps Tekton's message;
// the step's state has its container's terminated reason.
func TestStepFailureReasons(t *testing.T) {
	cases := []struct {
		name string
		out  outcome
		// want: the task's reason and message (a prefix when it ends
		// with "…"), the failing step's reason and exit code.
		reason, msg, stepReason string
		exit                    int32
	}{
		{"non-zero exit", outcome{exit: 2}, reasons.StepFailed, `"step-s" exited with code 2: Error`, reasons.StepError, 2},
		{"OOM-killed", outcome{exit: 137, reason: reasons.OOMKilled}, reasons.StepOOM, `"step-s" exited with code 137: OOMKilled`, reasons.OOMKilled, 137},
		{"killed by a signal", outcome{exit: 137, reason: "SIGKILL"}, reasons.StepFailed, `"step-s" exited with code 137: SIGKILL`, reasons.StepError, 137},
		{"container lost", outcome{exit: 1, reason: "ContainerEnded", err: errors.New("gone")}, reasons.StepFailed, `"step-s" failed: gone`, reasons.StepError, 1},
		{"container OOM-killed", outcome{err: errors.New("gone"), reason: reasons.OOMKilled}, reasons.StepOOM, `"step-s" failed: gone`, reasons.OOMKilled, 1},
		{"hermetic refusal", outcome{err: errors.New("hermetic task: cannot create the step's user and network namespaces")}, reasons.StepFailed, `"step-s" failed: hermetic task: …`, reasons.StepError, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, kind := range []planpb.RunKind{planpb.RunKind_PIPELINE_RUN, planpb.RunKind_TASK_RUN} {
				p := plan([]*planpb.Task{task("a", nil, step("s"), step("after"))})
				p.Kind = kind
				st := runPlan(t, context.Background(), p, newFake(map[string]outcome{"a/s": c.out}))
				ts := taskStatus(st, "a")
				cond := ts.GetCondition()
				msgOK := cond.GetMessage() == c.msg
				if prefix, ok := strings.CutSuffix(c.msg, "…"); ok {
					msgOK = strings.HasPrefix(cond.GetMessage(), prefix)
				}
				if cond.GetStatus() != "False" || cond.GetReason() != c.reason || !msgOK {
					t.Errorf("%v: task condition %v, want %s %q", kind, cond, c.reason, c.msg)
				}
				if s := ts.GetSteps()[0]; s.GetReason() != c.stepReason || s.GetExitCode() != c.exit {
					t.Errorf("%v: step %v, want %s %d", kind, s, c.stepReason, c.exit)
				}
				if s := ts.GetSteps()[1]; s.GetReason() != reasons.StepSkipped {
					t.Errorf("%v: next step %v, want skipped", kind, s)
				}
				// A PipelineRun stays Failed; a TaskRun run alone is its
				// task's TaskRun.
				want := reasons.Failed
				if kind == planpb.RunKind_TASK_RUN {
					want = c.reason
				}
				if got := st.GetCondition().GetReason(); got != want {
					t.Errorf("%v: run reason %q, want %q", kind, got, want)
				}
			}
		})
	}
}

// Every attempt keeps the reason it ended with in retriesStatus.
func TestRetriesKeepTheirReasons(t *testing.T) {
	a := task("a", nil, step("s"))
	a.Retries = 2
	f := newFake(map[string]outcome{"a/s#0": {exit: 137, reason: reasons.OOMKilled}, "a/s#1": {exit: 1}, "a/s#2": {exit: 3}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	ts := taskStatus(st, "a")
	var got []string
	for _, r := range ts.GetRetries() {
		got = append(got, r.GetCondition().GetReason()+" "+r.GetCondition().GetMessage())
	}
	got = append(got, ts.GetCondition().GetReason()+" "+ts.GetCondition().GetMessage())
	want := []string{
		`StepOOM "step-s" exited with code 137: OOMKilled`,
		`StepFailed "step-s" exited with code 1: Error`,
		`StepFailed "step-s" exited with code 3: Error`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("attempts:\n got %q\nwant %q", got, want)
	}
}

// attemptFailure follows getFailureInfo's priority: sidecar OOM, step OOM,
// sidecar non-zero, step failure; a sidecar's end counts only if it had
// ended before the steps did, and only to name the failure of a task whose
// step failed.
func TestAttemptFailure(t *testing.T) {
	stepErr := &planpb.StepState{Container: "step-s", Reason: reasons.StepError, ExitCode: 2}
	stepOOM := &planpb.StepState{Container: "step-s", Reason: reasons.OOMKilled, ExitCode: 137}
	sc := func(name, reason string, exit int32) *planpb.StepState {
		return &planpb.StepState{Container: "sidecar-" + name, Reason: reason, ExitCode: exit, Terminated: true}
	}
	const stepMsg = "the step's message"
	cases := []struct {
		name     string
		step     *planpb.StepState
		sidecars []*planpb.StepState
		ended    []bool
		reason   string
		msg      string
	}{
		{"all succeeded", nil, nil, nil, "", ""},
		{"a step failed", stepErr, nil, nil, reasons.StepFailed, stepMsg},
		{"a step OOM-killed", stepOOM, nil, nil, reasons.StepOOM, stepMsg},
		{"a step failed, its sidecar was stopped", stepErr,
			[]*planpb.StepState{sc("db", SidecarCompleted, 143)}, []bool{false}, reasons.StepFailed, stepMsg},
		{"a step failed after a sidecar ended non-zero", stepErr,
			[]*planpb.StepState{sc("db", SidecarError, 1)}, []bool{true}, reasons.SidecarFailed, `"sidecar-db" exited with code 1: Error`},
		{"a step failed after a sidecar ended 0", stepErr,
			[]*planpb.StepState{sc("db", SidecarCompleted, 0)}, []bool{true}, reasons.StepFailed, stepMsg},
		{"a step OOM-killed after a sidecar ended non-zero", stepOOM,
			[]*planpb.StepState{sc("db", SidecarError, 1)}, []bool{true}, reasons.StepOOM, stepMsg},
		{"a step OOM-killed after a sidecar was OOM-killed", stepOOM,
			[]*planpb.StepState{sc("db", SidecarError, 1), sc("web", reasons.OOMKilled, 137)}, []bool{true, true}, reasons.SidecarOOM, `"sidecar-web" exited with code 137: OOMKilled`},
		{"the first sidecar by container name", stepErr,
			[]*planpb.StepState{sc("web", SidecarError, 3), sc("db", SidecarError, 1)}, []bool{true, true}, reasons.SidecarFailed, `"sidecar-db" exited with code 1: Error`},
		// Tekton's controller decides while the kubelet still reports
		// the Pod Running: measured on the cluster (test/cluster parity).
		{"steps succeeded, the only sidecar ended non-zero", nil,
			[]*planpb.StepState{sc("db", SidecarError, 2)}, []bool{true}, "", ""},
		{"steps succeeded, the only sidecar was OOM-killed", nil,
			[]*planpb.StepState{sc("db", reasons.OOMKilled, 137)}, []bool{true}, "", ""},
		{"steps succeeded, a sidecar ended non-zero, another still ran", nil,
			[]*planpb.StepState{sc("db", SidecarError, 2), sc("web", SidecarCompleted, 143)}, []bool{true, false}, "", ""},
		{"steps succeeded, every sidecar ended, all 0", nil,
			[]*planpb.StepState{sc("db", SidecarCompleted, 0)}, []bool{true}, "", ""},
		{"steps succeeded, a sidecar did not stop when told", nil,
			[]*planpb.StepState{sc("db", SidecarError, 1)}, []bool{false}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := ""
			if c.step != nil {
				msg = stepMsg
			}
			reason, gotMsg := attemptFailure(c.step, msg, c.sidecars, c.ended)
			if reason != c.reason || gotMsg != c.msg {
				t.Errorf("got %q %q, want %q %q", reason, gotMsg, c.reason, c.msg)
			}
		})
	}
}
