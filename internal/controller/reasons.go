package controller

import (
	"errors"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/internal/load"
)

// ReasonPodCreationFailed is the reason of a run whose Pod could not be
// built or created; Tekton gives a TaskRun the same reason
// (TaskRunReasonPodCreationFailed).
const ReasonPodCreationFailed = string(v1.TaskRunReasonPodCreationFailed)

// invalidReason is the reason Tekton's PipelineRun reconciler gives a run
// that fails before anything runs, for the invalid input compile reports:
// the one compile set where it made the error, knowing which of Tekton's
// checks failed, or Tekton's generic validation failure.
func invalidReason(err *load.Error) string {
	if err.Reason != "" {
		return err.Reason
	}
	return v1.PipelineRunReasonFailedValidation.String()
}

// asInvalid is err as invalid input, if it is.
func asInvalid(err error) (*load.Error, bool) {
	var le *load.Error
	ok := errors.As(err, &le)
	return le, ok
}
