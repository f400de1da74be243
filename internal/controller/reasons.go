package controller

import (
	"errors"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/internal/load"
)

// ReasonPodCreationFailed is the reason of a run whose Pod could not be
// built or created; Tekton gives a TaskRun the same reason
// (TaskRunReasonPodCreationFailed).
const ReasonPodCreationFailed = string(v1.TaskRunReasonPodCreationFailed)

// invalidReason is the reason Tekton's PipelineRun reconciler gives a run
// that fails before anything runs, for the invalid input compile reports.
// compile's errors carry no class, only the field at fault and Tekton's
// own message: the reason is read from them, in the order the reconciler
// checks (pkg/reconciler/pipelinerun.reconcile).
func invalidReason(err *load.Error) string {
	f, msg := err.Field, err.Msg
	switch {
	case strings.HasSuffix(f, "pipelineRef.name") && strings.Contains(msg, "not found"):
		return string(v1.PipelineRunReasonCouldntGetPipeline)
	case strings.Contains(f, "pipelineRef"):
		return string(v1.PipelineRunReasonCouldntGetPipeline)
	case strings.Contains(f, "taskRef") && strings.Contains(msg, "not found"):
		return string(v1.PipelineRunReasonCouldntGetTask)
	case strings.Contains(msg, "StepAction") && strings.Contains(msg, "not found"):
		// Tekton resolves StepActions in the TaskRun reconciler; the run
		// cannot get what its task needs.
		return string(v1.PipelineRunReasonCouldntGetTask)
	case strings.Contains(msg, "invalid graph"), strings.Contains(msg, "cycle detected"):
		return string(v1.PipelineRunReasonInvalidGraph)
	case strings.HasPrefix(f, "spec.params") && strings.Contains(msg, "missing object keys"):
		return string(v1.PipelineRunReasonObjectParameterMissKeys)
	case strings.HasPrefix(f, "spec.params") && strings.Contains(msg, "missing"):
		return string(v1.PipelineRunReasonParameterMissing)
	case strings.HasPrefix(f, "spec.params") && strings.Contains(msg, "inconsistent types"):
		return string(v1.PipelineRunReasonParameterTypeMismatch)
	case strings.HasPrefix(f, "spec.params") && strings.Contains(msg, "non-existent"):
		return string(v1.PipelineRunReasonParamArrayIndexingInvalid)
	case f == "spec.workspaces":
		return string(v1.PipelineRunReasonInvalidWorkspaceBinding)
	case f == "spec.taskRunSpecs":
		return string(v1.PipelineRunReasonInvalidTaskRunSpec)
	case strings.HasSuffix(f, ".results"):
		return string(v1.PipelineRunReasonInvalidPipelineResultReference)
	}
	return string(v1.PipelineRunReasonFailedValidation)
}

// asInvalid is err as invalid input, if it is.
func asInvalid(err error) (*load.Error, bool) {
	var le *load.Error
	ok := errors.As(err, &le)
	return le, ok
}
