package oracle

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/pod"

	"github.com/e7763abc/pod-runner/internal/supervisor"
)

// TestReasons pins every exported constant of internal/supervisor/reasons.go
// to the Tekton constant it stands for.
func TestReasons(t *testing.T) {
	cases := []struct {
		name, ours, tekton string
		// known is a key of known, while the two differ.
		known string
	}{
		{"ReasonSucceeded", supervisor.ReasonSucceeded, v1.TaskRunReasonSuccessful.String(), ""},
		{"ReasonFailed", supervisor.ReasonFailed, v1.TaskRunReasonFailed.String(), ""},
		{"ReasonTaskTimeout", supervisor.ReasonTaskTimeout, v1.TaskRunReasonTimedOut.String(), ""},
		{"ReasonTaskCancelled", supervisor.ReasonTaskCancelled, v1.TaskRunReasonCancelled.String(), ""},
		{"ReasonRunning", supervisor.ReasonRunning, v1.TaskRunReasonRunning.String(), ""},
		{"ReasonTaskValidation", supervisor.ReasonTaskValidation, v1.TaskRunReasonFailedValidation.String(), ""},
		{"ReasonFailureIgnored", supervisor.ReasonFailureIgnored, v1.TaskRunReasonFailureIgnored.String(), ""},
		{"ReasonStepFailed", supervisor.ReasonStepFailed, v1.TaskRunReasonStepFailed.String(), ""},
		{"ReasonStepOOM", supervisor.ReasonStepOOM, v1.TaskRunReasonStepOOM.String(), ""},
		{"ReasonSidecarFailed", supervisor.ReasonSidecarFailed, v1.TaskRunReasonSidecarFailed.String(), ""},
		{"ReasonSidecarOOM", supervisor.ReasonSidecarOOM, v1.TaskRunReasonSidecarOOM.String(), ""},

		{"ReasonCompleted", supervisor.ReasonCompleted, v1.PipelineRunReasonCompleted.String(), ""},
		{"ReasonPipelineTimeout", supervisor.ReasonPipelineTimeout, v1.PipelineRunReasonTimedOut.String(), ""},
		{"ReasonCancelled", supervisor.ReasonCancelled, v1.PipelineRunReasonCancelled.String(), ""},
		{"ReasonStopping", supervisor.ReasonStopping, v1.PipelineRunReasonStopping.String(), ""},
		{"ReasonCancelledRunningFinally", supervisor.ReasonCancelledRunningFinally, v1.PipelineRunReasonCancelledRunningFinally.String(), ""},
		{"ReasonStoppedRunningFinally", supervisor.ReasonStoppedRunningFinally, v1.PipelineRunReasonStoppedRunningFinally.String(), ""},
		{"ReasonTimedOutRunningFinally", supervisor.ReasonTimedOutRunningFinally, v1.PipelineRunReasonTimedOutRunningFinally.String(), ""},
		{"ReasonCouldntGetPipelineResult", supervisor.ReasonCouldntGetPipelineResult, v1.PipelineRunReasonCouldntGetPipelineResult.String(), ""},
		{"ReasonInvalidMatrixTypes", supervisor.ReasonInvalidMatrixTypes, v1.PipelineRunReasonInvalidMatrixParameterTypes.String(), ""},
		{"ReasonFailedValidation", supervisor.ReasonFailedValidation, v1.PipelineRunReasonFailedValidation.String(), ""},
		// The PipelineRun's Succeeded reason is the TaskRun's one too.
		{"ReasonSucceeded (PipelineRun)", supervisor.ReasonSucceeded, v1.PipelineRunReasonSuccessful.String(), ""},
		{"ReasonFailed (PipelineRun)", supervisor.ReasonFailed, v1.PipelineRunReasonFailed.String(), ""},
		{"ReasonRunning (PipelineRun)", supervisor.ReasonRunning, v1.PipelineRunReasonRunning.String(), ""},

		{"SkipWhen", supervisor.SkipWhen, string(v1.WhenExpressionsSkip), ""},
		{"SkipParent", supervisor.SkipParent, string(v1.ParentTasksSkip), ""},
		{"SkipStopping", supervisor.SkipStopping, string(v1.StoppingSkip), ""},
		{"SkipGracefullyCancelled", supervisor.SkipGracefullyCancelled, string(v1.GracefullyCancelledSkip), ""},
		{"SkipGracefullyStopped", supervisor.SkipGracefullyStopped, string(v1.GracefullyStoppedSkip), ""},
		{"SkipMissingResults", supervisor.SkipMissingResults, string(v1.MissingResultsSkip), ""},
		{"SkipPipelineTimedOut", supervisor.SkipPipelineTimedOut, string(v1.PipelineTimedOutSkip), ""},
		{"SkipTasksTimedOut", supervisor.SkipTasksTimedOut, string(v1.TasksTimedOutSkip), ""},
		{"SkipFinallyTimedOut", supervisor.SkipFinallyTimedOut, string(v1.FinallyTimedOutSkip), ""},
		{"SkipEmptyMatrix", supervisor.SkipEmptyMatrix, string(v1.EmptyArrayInMatrixParams), ""},

		{"StepTimeoutExceeded", supervisor.StepTimeoutExceeded, pod.TerminationReasonTimeoutExceeded, ""},
		{"StepCancelled", supervisor.StepCancelled, pod.TerminationReasonCancelled, ""},
		{"StepContinued", supervisor.StepContinued, pod.TerminationReasonContinued, ""},
		{"StepSkipped", supervisor.StepSkipped, pod.TerminationReasonSkipped, ""},

		{"MsgCancelledByPipeline", supervisor.MsgCancelledByPipeline, string(v1.TaskRunCancelledByPipelineMsg), ""},
		{"MsgCancelledByPipelineTimeout", supervisor.MsgCancelledByPipelineTimeout, string(v1.TaskRunCancelledByPipelineTimeoutMsg), ""},
		// Kubernetes' own container terminated reasons, which Tekton copies
		// into steps[].terminated.reason; no Go package exports them.
		{"StepCompleted", supervisor.StepCompleted, "Completed", ""},
		{"StepError", supervisor.StepError, "Error", ""},
		// pkg/pod's oomKilled, unexported; its docs/taskruns.md names it.
		{"OOMKilled", supervisor.OOMKilled, "OOMKilled", ""},
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
	for _, name := range exportedConstants(t, "../../internal/supervisor/reasons.go") {
		if !pinned[name] {
			t.Errorf("supervisor.%s is not pinned to a Tekton constant", name)
		}
	}
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
