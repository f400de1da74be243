package compile

import (
	"errors"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonremote "github.com/tektoncd/pipeline/pkg/remote"
)

// ResolvingError is what Compile returns while a resolver has not answered
// yet for a ref the run needs: the Requester said the request is in
// progress (Tekton's remote.ErrRequestInProgress, which errors.Is finds
// through it). Nothing may be made of the run yet; compiling it again
// once the resolver answers goes further. Every ref compile could reach was
// submitted: one round per level of refs (Pipeline, then its Tasks, then
// their StepActions), not one per ref.
type ResolvingError struct {
	// Reason is the reason Tekton's PipelineRun reconciler gives the run
	// meanwhile: ResolvingPipelineRef, or ResolvingTaskRef for the Tasks
	// and StepActions.
	Reason string
	// Refs are the waiting refs, each as the document and field it is at.
	Refs []string
}

func (e *ResolvingError) Error() string {
	return "waiting for the resolvers to answer: " + strings.Join(e.Refs, ", ")
}

// Is makes errors.Is(err, tektonremote.ErrRequestInProgress) true, as Tekton's
// reconciler tests its own resolution errors.
func (e *ResolvingError) Is(target error) bool { return target == tektonremote.ErrRequestInProgress }

// inProgress tells whether err is a resolver's "not yet".
func inProgress(err error) bool { return errors.Is(err, tektonremote.ErrRequestInProgress) }

// resolving is the ResolvingError for the ref at w.field.
func resolving(w where, field, reason string) *ResolvingError {
	at := w.doc
	if p := w.at(field); p != "" {
		at += " " + p
	}
	return &ResolvingError{Reason: reason, Refs: []string{at}}
}

// waiting gathers the refs still in progress across a compile's tasks, so
// that one round submits all of them.
type waiting struct{ err *ResolvingError }

// add keeps err if it is a resolver's "not yet" and tells whether it was.
func (w *waiting) add(err error) bool {
	var re *ResolvingError
	if !errors.As(err, &re) {
		return false
	}
	if w.err == nil {
		w.err = &ResolvingError{Reason: re.Reason}
	}
	w.err.Refs = append(w.err.Refs, re.Refs...)
	return true
}

// result is the gathered ResolvingError, or nil.
func (w *waiting) result() error {
	if w.err == nil {
		return nil
	}
	return w.err
}

var (
	reasonResolvingPipeline = v1.PipelineRunReasonResolvingPipelineRef.String()
	reasonResolvingTask     = v1.TaskRunReasonResolvingTaskRef
)
