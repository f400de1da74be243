package compile

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/load"
)

// where locates a spec for messages: the document holding it and the path
// of the spec inside it ("spec", "spec.pipelineSpec", "spec.tasks[2].taskSpec").
type where struct {
	doc  string
	path string
}

// at is the path of a field below the spec.
func (w where) at(field string) string { return joinPath(w.path, field) }

// errorf is invalid input at a field below the spec.
func (w where) errorf(field, format string, args ...any) *load.Error {
	return load.Errorf(w.doc, w.at(field), format, args...)
}

func joinPath(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

// validation turns the errors of a Tekton Validate call into a *load.Error,
// or nil. Warnings are not errors: the webhook admits objects that only have
// warnings. prefix is prepended to the error's paths when the object's
// Validate reports them relative to a nested spec.
//
// Validate returns a *apis.FieldError; a nil one stored in an error
// interface is not nil, which is why this takes the concrete type.
//
// The webhook validates a copy of what it admits, and some Validate methods
// write to the object (TaskRun and PipelineRun validation merge declared
// object defaults into the run's param values): validate a DeepCopy.
func validation(doc, prefix string, fe *apis.FieldError) error {
	fe = fe.Filter(apis.ErrorLevel)
	if fe == nil {
		return nil
	}
	errs := slices.DeleteFunc(fe.WrappedErrors(), childResultRef)
	if len(errs) == 0 {
		return nil
	}
	first := errs[0]
	paths := make([]string, len(first.Paths))
	for i, p := range first.Paths {
		paths[i] = joinPath(prefix, p)
	}
	msg := first.Message
	if first.Details != "" {
		msg += ": " + first.Details
	}
	if len(errs) > 1 {
		rest := make([]string, 0, len(errs)-1)
		for _, e := range errs[1:] {
			rest = append(rest, e.Error())
		}
		msg += fmt.Sprintf(" (and %d more: %s)", len(rest), strings.Join(rest, "; "))
	}
	return &load.Error{Doc: doc, Field: strings.Join(paths, ", "), Msg: msg}
}

// withReason sets the reason of err, an error of validation (a *load.Error,
// or nil), and returns it.
func withReason(err error, reason v1.PipelineRunReason) error {
	var le *load.Error
	if errors.As(err, &le) {
		le.WithReason(reason)
	}
	return err
}

// graphReason is the reason for a pipeline spec the webhook rejects: the
// reconciler builds the graphs of its tasks and finally tasks before it
// validates the rest of the spec, so a spec whose graph does not build fails
// with InvalidGraph, whatever else is wrong with it. The webhook's message
// stays the error's; it reports the same dag.Build error (validateGraph).
func graphReason(spec *v1.PipelineSpec) v1.PipelineRunReason {
	tasks := v1.PipelineTaskList(spec.Tasks)
	if _, err := dag.Build(tasks, tasks.Deps()); err != nil {
		return v1.PipelineRunReasonInvalidGraph
	}
	if _, err := dag.Build(v1.PipelineTaskList(spec.Finally), map[string][]string{}); err != nil {
		return v1.PipelineRunReasonInvalidGraph
	}
	return ""
}

// rejectedRunReason is the reason for a PipelineRun the webhook rejects.
// The reconciler does not run the webhook's checks again; it fails such a
// run with the first of its own that fails: GetPipelineData, for a run that
// names no Pipeline and embeds none, then the graph of an embedded spec.
func rejectedRunReason(pr *v1.PipelineRun) v1.PipelineRunReason {
	ref := pr.Spec.PipelineRef
	switch {
	case ref != nil && ref.Name != "":
		// GetPipelineData reads the named Pipeline, checked on its own.
		return ""
	case pr.Spec.PipelineSpec != nil:
		return graphReason(pr.Spec.PipelineSpec)
	case ref != nil && ref.Resolver != "":
		return ""
	}
	return v1.PipelineRunReasonCouldntGetPipeline
}

// unsupported is the message for a Tekton feature pod-runner does not run yet.
func unsupported(w where, field, feature string) *load.Error {
	return w.errorf(field, "%s is not supported yet (pod-runner issue: %s)", feature, feature)
}

// remote is the message for a resolver reference.
func remote(w where, field, kind, resolver string) *load.Error {
	return w.errorf(field, "remote resolution (resolver %q) is not supported locally: give the %s as a document (-f FILE) and refer to it by name", resolver, kind)
}

// childResultRef is the one rule of Tekton's validation relaxed: a result
// reference to a PipelineTask that runs a pipeline
// (validatePipelineRefResultReferencesDisallowed, "not yet implemented" in
// v1.15), which pod-runner answers with the child pipeline's results, as
// TEP-0056 designs.
func childResultRef(e *apis.FieldError) bool {
	return strings.Contains(e.Message, "result propagation from child Pipelines is not yet implemented")
}
