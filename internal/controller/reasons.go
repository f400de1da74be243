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

// invalidMessage is the message of a run failing with err: Tekton's own
// where compile knows it, else err's (which says where the fault is).
func invalidMessage(err *load.Error) string {
	if err.Tekton != "" {
		return err.Tekton
	}
	return err.Error()
}

// asInvalid is err as invalid input, if it is.
func asInvalid(err error) (*load.Error, bool) {
	var le *load.Error
	ok := errors.As(err, &le)
	return le, ok
}
