package oracle

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/pod"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/reasons"
)

// TestReasons pins every exported constant of internal/reasons/reasons.go
// to the Tekton constant it stands for.
func TestReasons(t *testing.T) {
	cases := []struct {
		name, ours, tekton string
		// known is a key of known, while the two differ.
		known string
	}{
		{"Succeeded", reasons.Succeeded, v1.TaskRunReasonSuccessful.String(), ""},
		{"Failed", reasons.Failed, v1.TaskRunReasonFailed.String(), ""},
		{"TaskTimeout", reasons.TaskTimeout, v1.TaskRunReasonTimedOut.String(), ""},
		{"TaskCancelled", reasons.TaskCancelled, v1.TaskRunReasonCancelled.String(), ""},
		{"Running", reasons.Running, v1.TaskRunReasonRunning.String(), ""},
		{"TaskValidation", reasons.TaskValidation, v1.TaskRunReasonFailedValidation.String(), ""},
		{"FailureIgnored", reasons.FailureIgnored, v1.TaskRunReasonFailureIgnored.String(), ""},
		{"StepFailed", reasons.StepFailed, v1.TaskRunReasonStepFailed.String(), ""},
		{"StepOOM", reasons.StepOOM, v1.TaskRunReasonStepOOM.String(), ""},
		{"SidecarFailed", reasons.SidecarFailed, v1.TaskRunReasonSidecarFailed.String(), ""},
		{"SidecarOOM", reasons.SidecarOOM, v1.TaskRunReasonSidecarOOM.String(), ""},

		{"Completed", reasons.Completed, v1.PipelineRunReasonCompleted.String(), ""},
		{"PipelineTimeout", reasons.PipelineTimeout, v1.PipelineRunReasonTimedOut.String(), ""},
		{"Cancelled", reasons.Cancelled, v1.PipelineRunReasonCancelled.String(), ""},
		{"Stopping", reasons.Stopping, v1.PipelineRunReasonStopping.String(), ""},
		{"CancelledRunningFinally", reasons.CancelledRunningFinally, v1.PipelineRunReasonCancelledRunningFinally.String(), ""},
		{"StoppedRunningFinally", reasons.StoppedRunningFinally, v1.PipelineRunReasonStoppedRunningFinally.String(), ""},
		{"TimedOutRunningFinally", reasons.TimedOutRunningFinally, v1.PipelineRunReasonTimedOutRunningFinally.String(), ""},
		{"CouldntGetPipelineResult", reasons.CouldntGetPipelineResult, v1.PipelineRunReasonCouldntGetPipelineResult.String(), ""},
		{"InvalidMatrixTypes", reasons.InvalidMatrixTypes, v1.PipelineRunReasonInvalidMatrixParameterTypes.String(), ""},
		{"FailedValidation", reasons.FailedValidation, v1.PipelineRunReasonFailedValidation.String(), ""},
		// The PipelineRun's Succeeded reason is the TaskRun's one too.
		{"ReasonSucceeded (PipelineRun)", reasons.Succeeded, v1.PipelineRunReasonSuccessful.String(), ""},
		{"ReasonFailed (PipelineRun)", reasons.Failed, v1.PipelineRunReasonFailed.String(), ""},
		{"ReasonRunning (PipelineRun)", reasons.Running, v1.PipelineRunReasonRunning.String(), ""},

		{"SkipWhen", reasons.SkipWhen, string(v1.WhenExpressionsSkip), ""},
		{"SkipParent", reasons.SkipParent, string(v1.ParentTasksSkip), ""},
		{"SkipStopping", reasons.SkipStopping, string(v1.StoppingSkip), ""},
		{"SkipGracefullyCancelled", reasons.SkipGracefullyCancelled, string(v1.GracefullyCancelledSkip), ""},
		{"SkipGracefullyStopped", reasons.SkipGracefullyStopped, string(v1.GracefullyStoppedSkip), ""},
		{"SkipMissingResults", reasons.SkipMissingResults, string(v1.MissingResultsSkip), ""},
		{"SkipPipelineTimedOut", reasons.SkipPipelineTimedOut, string(v1.PipelineTimedOutSkip), ""},
		{"SkipTasksTimedOut", reasons.SkipTasksTimedOut, string(v1.TasksTimedOutSkip), ""},
		{"SkipFinallyTimedOut", reasons.SkipFinallyTimedOut, string(v1.FinallyTimedOutSkip), ""},
		{"SkipEmptyMatrix", reasons.SkipEmptyMatrix, string(v1.EmptyArrayInMatrixParams), ""},

		{"StepTimeoutExceeded", reasons.StepTimeoutExceeded, pod.TerminationReasonTimeoutExceeded, ""},
		{"StepCancelled", reasons.StepCancelled, pod.TerminationReasonCancelled, ""},
		{"StepContinued", reasons.StepContinued, pod.TerminationReasonContinued, ""},
		{"StepSkipped", reasons.StepSkipped, pod.TerminationReasonSkipped, ""},

		{"MsgCancelledByPipeline", reasons.MsgCancelledByPipeline, string(v1.TaskRunCancelledByPipelineMsg), ""},
		{"MsgCancelledByPipelineTimeout", reasons.MsgCancelledByPipelineTimeout, string(v1.TaskRunCancelledByPipelineTimeoutMsg), ""},
		{"MsgTaskRunning", reasons.MsgTaskRunning, runningMessage(t), ""},
		// Kubernetes' own container terminated reasons, which Tekton copies
		// into steps[].terminated.reason; no Go package exports them.
		{"StepCompleted", reasons.StepCompleted, "Completed", ""},
		{"StepError", reasons.StepError, "Error", ""},
		// pkg/pod's oomKilled, unexported; its docs/taskruns.md names it.
		{"OOMKilled", reasons.OOMKilled, "OOMKilled", ""},
	}
	pinned := map[string]bool{}
	for _, c := range cases {
		pinned[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			switch {
			case c.known != "" && c.ours == c.tekton:
				t.Errorf("%s now equals Tekton's %q: drop the known mark", c.name, c.tekton)
			case c.known != "":
				seenKnown[c.known] = true
				t.Skipf("known disagreement: %s: ours %q, Tekton %q", c.known, c.ours, c.tekton)
			case c.ours != c.tekton:
				t.Errorf("%s = %q, Tekton's is %q", c.name, c.ours, c.tekton)
			}
		})
	}
	// A constant added to reasons.go must be pinned here too.
	for _, name := range exportedConstants(t, "../../internal/reasons/reasons.go") {
		if !pinned[name] {
			t.Errorf("reasons.%s is not pinned to a Tekton constant", name)
		}
	}
}

// runningMessage is the condition message Tekton's pod status code gives
// a TaskRun whose Pod runs a step (it is a literal there, no constant).
func runningMessage(t *testing.T) string {
	t.Helper()
	running := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "step-s"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "step-s", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		}},
	}
	tr := v1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "tr", Namespace: "ns"}}
	st, err := pod.MakeTaskRunStatus(context.Background(), zap.NewNop().Sugar(), tr, running, fake.NewSimpleClientset(running), &v1.TaskSpec{Steps: []v1.Step{{Name: "s"}}})
	if err != nil {
		t.Fatalf("Tekton's MakeTaskRunStatus: %v", err)
	}
	c := st.GetCondition(apis.ConditionSucceeded)
	if c == nil || c.Reason != v1.TaskRunReasonRunning.String() {
		t.Fatalf("Tekton's status of a running Pod: %+v", c)
	}
	return c.Message
}

func exportedConstants(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				if n.IsExported() {
					names = append(names, n.Name)
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("%s: no exported constants found", path)
	}
	return names
}
