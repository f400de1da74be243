package compile

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"

	"github.com/e7763abc/pod-runner/internal/load"
)

// Lookup reads a Pipeline, Task or StepAction that a run refers to by name
// and that is not among the documents, as Tekton's reconcilers read one
// from the run's namespace; found is false when there is none. An error is
// the reader's own (the API server's, say): Compile returns it as it is,
// not as invalid input, so that the caller may try again.
type Lookup func(ctx context.Context, kind, name string) (doc load.Doc, found bool, err error)

// lookupError is a Lookup's own error on its way out of Tekton's code.
type lookupError struct{ err error }

func (e *lookupError) Error() string { return e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

// unwrapRead is what Compile returns for an error find gave: the Lookup's
// own, or the invalid input a looked up document is.
func unwrapRead(err error) error {
	var le *lookupError
	if errors.As(err, &le) {
		return le.err
	}
	return err
}

// find is the object called name of kind among the documents, or else read
// with the Lookup, then defaulted, validated and indexed as a given
// document is, and kept among those Compiled.Looked up. Safe for
// concurrent use: Tekton resolves a Task's StepActions in parallel.
func find[T any](o *objects, m map[string]entry[T], kind, name string) (entry[T], bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := m[name]; ok {
		return e, true, nil
	}
	key := kind + "/" + name
	if o.lookup == nil || o.missing[key] {
		return entry[T]{}, false, nil
	}
	d, found, err := o.lookup(o.ctx, kind, name)
	if err != nil {
		return entry[T]{}, false, &lookupError{fmt.Errorf("read %s %q: %w", kind, name, err)}
	}
	if !found {
		o.missing[key] = true
		return entry[T]{}, false, nil
	}
	doc := &d
	if err := o.index(doc); err != nil {
		return entry[T]{}, false, err
	}
	o.looked = append(o.looked, doc)
	e, ok := m[name]
	return e, ok, nil
}

func (o *objects) pipeline(name string) (entry[*v1.Pipeline], bool, error) {
	return find(o, o.pipelines, load.KindPipeline, name)
}

func (o *objects) task(name string) (entry[*v1.Task], bool, error) {
	return find(o, o.tasks, load.KindTask, name)
}

func (o *objects) stepAction(name string) (entry[*v1beta1.StepAction], bool, error) {
	return find(o, o.stepActions, load.KindStepAction, name)
}
