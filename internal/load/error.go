package load

import (
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// Error is invalid input: it names the document and the field at fault.
// Commands print it and exit with code 2; nothing runs.
type Error struct {
	// Doc names the document: "file.yaml#2 (Pipeline/build)"; empty when the
	// fault is not in one document (a missing Task, say).
	Doc string
	// Field is the path of the field at fault, e.g. "spec.tasks[1].taskRef.name".
	Field string
	Msg   string
	// Reason is the condition reason Tekton's PipelineRun reconciler fails
	// a run with for this fault, before anything runs (CouldntGetTask, say).
	// Empty is its generic validation failure (PipelineRunReasonFailedValidation).
	// It is set where the error is made, by the code that knows which of
	// Tekton's checks failed.
	Reason string
	// Tekton is the message Tekton's reconciler gives the run for this
	// fault, where compile knows it and it says more than its form (a
	// resolver's failure): the controller writes it as the run's message,
	// a local run prints Error(), which says where the fault is.
	Tekton string
}

func (e *Error) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Doc != "" {
		s = e.Doc + ": " + s
	}
	return s
}

// WithReason sets the reason Tekton gives a run failing with e, and
// returns e.
func (e *Error) WithReason(reason v1.PipelineRunReason) *Error {
	e.Reason = reason.String()
	return e
}

// Errorf builds an *Error.
func Errorf(doc, field, format string, args ...any) *Error {
	return &Error{Doc: doc, Field: field, Msg: fmt.Sprintf(format, args...)}
}
