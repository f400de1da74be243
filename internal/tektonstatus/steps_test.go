package tektonstatus

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/pod"
	"github.com/tektoncd/pipeline/pkg/result"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/logging"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// container is a step container as the kubelet reports it once Tekton's
// entrypoint has run the step: the container's own exit code and reason, and
// the termination message the entrypoint wrote.
type container struct {
	name           string
	exit           int32  // the container's exit code
	reason         string // the kubelet's reason
	started, ended int    // the step's start (entrypoint's StartedAt) and the container's end
	internal       map[string]string
}

func (c container) status(t *testing.T) corev1.ContainerStatus {
	msg := []result.RunResult{{Key: "StartedAt", Value: t0.Add(time.Duration(c.started) * time.Second).Format("2006-01-02T15:04:05.000Z07:00"), ResultType: result.InternalTektonResultType}}
	for k, v := range c.internal {
		msg = append(msg, result.RunResult{Key: k, Value: v, ResultType: result.InternalTektonResultType})
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return corev1.ContainerStatus{Name: "step-" + c.name, ImageID: "img-" + c.name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: c.exit, Reason: c.reason, Message: string(raw),
		StartedAt:  mt(0), // the container starts with the pod; the step later
		FinishedAt: mt(c.ended),
	}}}
}

// TestStepStatesMatchMakeTaskRunStatus checks the step states we derive from
// the engine against what Tekton's pod.MakeTaskRunStatus derives from the
// pod the same outcomes leave behind.
func TestStepStatesMatchMakeTaskRunStatus(t *testing.T) {
	tests := []struct {
		name   string
		engine []*planpb.StepState
		pod    []container
		failed bool
	}{{
		name:   "all steps succeed",
		engine: []*planpb.StepState{done("a", 1, 2, 0, "Completed"), done("b", 2, 4, 0, "Completed")},
		pod:    []container{{name: "a", reason: "Completed", started: 1, ended: 2}, {name: "b", reason: "Completed", started: 2, ended: 4}},
	}, {
		name: "a failed step skips the rest",
		engine: []*planpb.StepState{done("a", 1, 3, 2, "Error"),
			{Name: "b", Image: "img-b", Terminated: true, Skipped: true, ExitCode: 1, Reason: "Skipped"}},
		pod: []container{{name: "a", exit: 2, reason: "Error", started: 1, ended: 3},
			{name: "b", exit: 1, reason: "Error", started: 3, ended: 3, internal: map[string]string{"Reason": "Skipped"}}},
		failed: true,
	}, {
		name:   "onError continue",
		engine: []*planpb.StepState{done("a", 1, 3, 3, "Continued"), done("b", 3, 4, 0, "Completed")},
		pod: []container{{name: "a", reason: "Completed", started: 1, ended: 3, internal: map[string]string{"ExitCode": "3"}},
			{name: "b", reason: "Completed", started: 3, ended: 4}},
	}, {
		name: "step timeout",
		engine: []*planpb.StepState{done("a", 1, 5, -1, "TimeoutExceeded"),
			{Name: "b", Image: "img-b", Terminated: true, Skipped: true, ExitCode: 1, Reason: "Skipped"}},
		pod: []container{{name: "a", exit: 1, reason: "Error", started: 1, ended: 5, internal: map[string]string{"Reason": "TimeoutExceeded"}},
			{name: "b", exit: 1, reason: "Error", started: 5, ended: 5, internal: map[string]string{"Reason": "Skipped"}}},
		failed: true,
	}}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tr-pod"}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
			spec := &v1.TaskSpec{}
			var names []string
			for _, c := range tc.pod {
				names = append(names, c.name)
				spec.Steps = append(spec.Steps, v1.Step{Name: c.name, Image: "img-" + c.name})
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "step-" + c.name})
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, c.status(t))
			}
			c := cond("True", "Succeeded", "", 5)
			if tc.failed {
				p.Status.Phase = corev1.PodFailed
				c = cond("False", "Failed", "", 5)
			}
			tekton, err := pod.MakeTaskRunStatus(ctx, logging.FromContext(ctx), v1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "tr"}}, p, nil, spec)
			if err != nil {
				t.Fatalf("MakeTaskRunStatus: %v", err)
			}
			if len(tekton.Steps) != len(tc.pod) {
				t.Fatalf("Tekton reported %d steps, want %d", len(tekton.Steps), len(tc.pod))
			}
			got := stepStates(names, tc.engine, c, at(1), at(5), "tr-pod", tektonStep)
			// The message carries the step's results, which the engine reports per task.
			ignore := cmpopts.IgnoreFields(corev1.ContainerStateTerminated{}, "Message")
			if d := cmp.Diff(tekton.Steps, got, ignore, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("steps (-tekton +ours):\n%s", d)
			}
		})
	}
}

func TestStepConstantsAreTektons(t *testing.T) {
	for _, c := range []struct{ ours, tekton string }{
		{stepCancelled, pod.TerminationReasonCancelled},
		{stepContinued, pod.TerminationReasonContinued},
		{stepSkipped, pod.TerminationReasonSkipped},
		{stepTimeout, pod.TerminationReasonTimeoutExceeded},
	} {
		if c.ours != c.tekton {
			t.Errorf("constant %q, Tekton's is %q", c.ours, c.tekton)
		}
	}
	for i, name := range []string{"build", "", "x"} {
		if got, want := "step-"+stepName(name, i), pod.StepName(name, i); got != want {
			t.Errorf("container of step %d %q = %q, Tekton's is %q", i, name, got, want)
		}
		if got, want := stepName(name, i), pod.TrimStepPrefix(pod.StepName(name, i)); got != want {
			t.Errorf("name of step %d %q = %q, Tekton's is %q", i, name, got, want)
		}
	}
}

// TestStepStatesStopped pins the terminateStepsInPod shape (that function is
// private to Tekton's TaskRun reconciler): a cancelled or timed-out TaskRun
// ends its running and waiting steps with exit code 1 and its own reason.
func TestStepStatesStopped(t *testing.T) {
	engine := []*planpb.StepState{done("a", 1, 2, 0, "Completed"), done("b", 2, 3, 137, "Cancelled")}
	for _, reason := range []string{v1.TaskRunReasonCancelled.String(), v1.TaskRunReasonTimedOut.String()} {
		got := stepStates([]string{"a", "b", "c"}, engine, cond("False", reason, "", 4), at(1), at(4), "p", tektonStep)
		want := []v1.StepState{
			term("a", 0, "Completed", "Completed", 1, 2),
			stopped("b", reason, "p", 2, 4),
			withImage(stopped("c", reason, "p", 1, 4), ""),
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", reason, d)
		}
	}
	// A task that failed before any step ran had no pod: no steps.
	if got := stepStates([]string{"a"}, nil, cond("False", "Failed", "could not start", 1), at(1), at(1), "", tektonStep); got != nil {
		t.Errorf("steps of a task that never started = %v, want none", got)
	}
}

// TestSidecarStates: a sidecar stopped when the steps ended is terminated
// with its exit code and reason; a running one is running; one never
// started waits.
func TestSidecarStates(t *testing.T) {
	stoppedSidecar := done("db", 1, 3, 143, "Completed")
	running := &planpb.StepState{Name: "proxy", Running: true, StartedAt: at(2), Image: "envoy"}
	got := sidecarStates([]*planpb.StepState{stoppedSidecar, running, {Name: "late"}}, at(1), at(4), tektonSidecar)
	want := []v1.SidecarState{
		{Name: "db", Container: "sidecar-db", ImageID: stoppedSidecar.GetImage(), ContainerState: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 143, Reason: "Completed", StartedAt: *metaTime(at(1)), FinishedAt: *metaTime(at(3))}}},
		{Name: "proxy", Container: "sidecar-proxy", ImageID: "envoy", ContainerState: corev1.ContainerState{
			Running: &corev1.ContainerStateRunning{StartedAt: *metaTime(at(2))}}},
		{Name: "late", Container: "sidecar-late", ContainerState: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
