package tektonstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/pod"
	"github.com/tektoncd/pipeline/pkg/result"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
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
	results        map[string]string // task results in the results directory when the step ended
}

func (c container) status(t *testing.T) corev1.ContainerStatus {
	msg := []result.RunResult{{Key: "StartedAt", Value: t0.Add(time.Duration(c.started) * time.Second).Format("2006-01-02T15:04:05.000Z07:00"), ResultType: result.InternalTektonResultType}}
	for k, v := range c.internal {
		msg = append(msg, result.RunResult{Key: k, Value: v, ResultType: result.InternalTektonResultType})
	}
	for k, v := range c.results {
		msg = append(msg, result.RunResult{Key: k, Value: v, ResultType: result.TaskRunResultType})
	}
	sort.Slice(msg, func(i, j int) bool { return msg[i].Key < msg[j].Key })
	raw, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return corev1.ContainerStatus{Name: "step-" + c.name, ImageID: "img-" + c.name, ContainerID: "containerd://" + c.name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: c.exit, Reason: c.reason, Message: string(raw), ContainerID: "containerd://" + c.name,
		StartedAt:  mt(0), // the container starts with the pod; the step later
		FinishedAt: mt(c.ended),
	}}}
}

// TestStepStatesMatchMakeTaskRunStatus checks the step states we derive from
// the engine (with the task's results, and the Pod's container statuses)
// against what Tekton's pod.MakeTaskRunStatus derives from the pod the same
// outcomes leave behind: states, termination messages, image and container
// ids, provenance and artifacts.
func TestStepStatesMatchMakeTaskRunStatus(t *testing.T) {
	tests := []struct {
		name    string
		engine  []*planpb.StepState
		pod     []container
		results []*planpb.ResultValue
		failed  bool
	}{{
		name:   "all steps succeed",
		engine: []*planpb.StepState{done("a", 1, 2, 0, "Completed"), done("b", 2, 4, 0, "Completed")},
		pod: []container{{name: "a", reason: "Completed", started: 1, ended: 2, results: map[string]string{"out": "x", "list": `["p","q"]`}},
			{name: "b", reason: "Completed", started: 2, ended: 4, results: map[string]string{"out": "x", "list": `["p","q"]`}}},
		results: []*planpb.ResultValue{{Name: "out", Value: str("x")}, {Name: "list", Value: &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{"p", "q"}}}},
	}, {
		name: "a failed step skips the rest",
		engine: []*planpb.StepState{done("a", 1, 3, 2, "Error"),
			{Name: "b", Image: "img-b", Terminated: true, Skipped: true, ExitCode: 1, Reason: "Skipped"}},
		pod: []container{{name: "a", exit: 2, reason: "Error", started: 1, ended: 3, results: map[string]string{"out": "partial"}},
			{name: "b", exit: 1, reason: "Error", started: 3, ended: 3, internal: map[string]string{"Reason": "Skipped"}}},
		results: []*planpb.ResultValue{{Name: "out", Value: str("partial")}},
		failed:  true,
	}, {
		// The kubelet says OOMKilled for the container, which Tekton
		// copies into the step's terminated and terminationReason.
		name: "an OOM-killed step",
		engine: []*planpb.StepState{done("a", 1, 3, 137, "OOMKilled"),
			{Name: "b", Image: "img-b", Terminated: true, Skipped: true, ExitCode: 1, Reason: "Skipped"}},
		pod: []container{{name: "a", exit: 137, reason: "OOMKilled", started: 1, ended: 3},
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
			spec := &v1.TaskSpec{Results: []v1.TaskResult{{Name: "out", Type: v1.ResultsTypeString}, {Name: "list", Type: v1.ResultsTypeArray}}}
			tr := v1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "tr"}}
			var names []string
			for _, c := range tc.pod {
				names = append(names, c.name)
				spec.Steps = append(spec.Steps, v1.Step{Name: c.name, Image: "img-" + c.name})
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "step-" + c.name})
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, c.status(t))
				// What GetStepActionsData records before the pod exists.
				tr.Status.Steps = append(tr.Status.Steps, v1.StepState{Name: c.name, Provenance: &v1.Provenance{}})
			}
			c := cond("True", "Succeeded", "", 5)
			tr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"})
			if tc.failed {
				p.Status.Phase = corev1.PodFailed
				c = cond("False", "Failed", "", 5)
				tr.Status.MarkResourceFailed(v1.TaskRunReasonFailed, fmt.Errorf("failed"))
			}
			tekton, err := pod.MakeTaskRunStatus(ctx, logging.FromContext(ctx), tr, p, nil, spec)
			if err != nil {
				t.Fatalf("MakeTaskRunStatus: %v", err)
			}
			if len(tekton.Steps) != len(tc.pod) {
				t.Fatalf("Tekton reported %d steps, want %d", len(tekton.Steps), len(tc.pod))
			}
			b := newBuilder(nil, nil, ListOptions{ContainerStatuses: p.Status.ContainerStatuses})
			got := v1.TaskRunStatus{Status: conditions(c), TaskRunStatusFields: v1.TaskRunStatusFields{
				Steps: stepStates(names, tc.engine, c, at(1), at(5), "tr-pod", tektonStep)}}
			b.finishAttempt(&got, sortedResults(tc.results))
			if d := cmp.Diff(tekton.Steps, got.Steps, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("steps (-tekton +ours):\n%s", d)
			}
			if d := cmp.Diff(tekton.Artifacts, got.Artifacts); d != "" {
				t.Errorf("artifacts (-tekton +ours):\n%s", d)
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

// TestContainerOOM: a step container the kernel killed whole (its wrapper
// with it) is a lost container to the engine, StepFailed; the Pod says
// OOMKilled, and the TaskRun gets what Tekton's pod.MakeTaskRunStatus gives
// for that container: StepOOM, its message, the step's OOMKilled state.
func TestContainerOOM(t *testing.T) {
	ctx := context.Background()
	killed := corev1.ContainerStatus{Name: "step-a", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 137, Reason: "OOMKilled", StartedAt: mt(0), FinishedAt: mt(3)}}}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "tr-pod"}, Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{killed}}}
	p.Spec.Containers = []corev1.Container{{Name: "step-a"}}
	spec := &v1.TaskSpec{Steps: []v1.Step{{Name: "a", Image: "img-a"}}}
	tr := v1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "tr"}}
	tr.Status.Steps = []v1.StepState{{Name: "a"}}
	tekton, err := pod.MakeTaskRunStatus(ctx, logging.FromContext(ctx), tr, p, nil, spec)
	if err != nil {
		t.Fatalf("MakeTaskRunStatus: %v", err)
	}
	want := tekton.GetCondition(apis.ConditionSucceeded)

	// Ours: the step's container in the shared Pod is "task-a"; the engine
	// lost it.
	ours := v1.TaskRunStatus{}
	ours.Steps = []v1.StepState{{Name: "a", Container: "task-a", ContainerState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}
	ours.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse, Reason: "StepFailed", Message: `"step-a" exited with code 1: Error`})
	inPod := killed
	inPod.Name = "task-a"
	containerOOM(&ours, func(name string) *corev1.ContainerStatus {
		if name == inPod.Name {
			return &inPod
		}
		return nil
	})
	got := ours.GetCondition(apis.ConditionSucceeded)
	if got.Reason != want.Reason || got.Message != want.Message {
		t.Errorf("condition %s %q, Tekton's %s %q", got.Reason, got.Message, want.Reason, want.Message)
	}
	if s := ours.Steps[0]; s.Terminated.Reason != tekton.Steps[0].Terminated.Reason || s.Terminated.ExitCode != tekton.Steps[0].Terminated.ExitCode {
		t.Errorf("step terminated %+v, Tekton's %+v", s.Terminated, tekton.Steps[0].Terminated)
	}
}
