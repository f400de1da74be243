package controller

import (
	"context"
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/load"
)

// gather returns the documents compile.Compile needs for pr: the run and
// every Pipeline, Task and StepAction it refers to by name, read from the
// run's namespace. A missing object is left out: Compile then reports it as
// invalid input, with the same message a local run gives. Other read errors
// are returned (the reconcile is retried). ConfigMaps and Secrets are not
// read: the Pod refers to them by name and the kubelet reads them, as for
// Tekton's pods, so the controller needs no access to their data.
func gather(ctx context.Context, r client.Reader, pr *v1.PipelineRun) ([]load.Doc, error) {
	ns := pr.Namespace
	docs := []load.Doc{doc(load.KindPipelineRun, pr.Name, pr.DeepCopy())}
	get := func(kind, name string, obj client.Object) (bool, error) {
		if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, fmt.Errorf("get %s %s/%s: %w", kind, ns, name, err)
		}
		docs = append(docs, doc(kind, name, obj))
		return true, nil
	}

	spec := pr.Spec.PipelineSpec
	if ref := pr.Spec.PipelineRef; ref != nil && ref.Name != "" && ref.Resolver == "" {
		p := &v1.Pipeline{}
		found, err := get(load.KindPipeline, ref.Name, p)
		if err != nil {
			return nil, err
		}
		if found {
			spec = &p.Spec
		}
	}
	if spec == nil {
		return docs, nil
	}

	var taskSpecs []*v1.TaskSpec
	seen := map[string]bool{}
	for _, pt := range append(append([]v1.PipelineTask{}, spec.Tasks...), spec.Finally...) {
		switch ref := pt.TaskRef; {
		case ref != nil && ref.Name != "" && ref.Resolver == "" && (ref.Kind == "" || ref.Kind == v1.NamespacedTaskKind):
			if seen["Task/"+ref.Name] {
				continue
			}
			seen["Task/"+ref.Name] = true
			t := &v1.Task{}
			found, err := get(load.KindTask, ref.Name, t)
			if err != nil {
				return nil, err
			}
			if found {
				taskSpecs = append(taskSpecs, &t.Spec)
			}
		case pt.TaskSpec != nil:
			taskSpecs = append(taskSpecs, &pt.TaskSpec.TaskSpec)
		}
	}

	for _, ts := range taskSpecs {
		for _, s := range ts.Steps {
			if s.Ref == nil || s.Ref.Name == "" || s.Ref.Resolver != "" || seen["StepAction/"+s.Ref.Name] {
				continue
			}
			seen["StepAction/"+s.Ref.Name] = true
			if _, err := get(load.KindStepAction, s.Ref.Name, &v1beta1.StepAction{}); err != nil {
				return nil, err
			}
		}
	}
	return docs, nil
}

// doc wraps a cluster object as compile reads a document, named
// "cluster (Kind/name)" in messages.
func doc(kind, name string, obj client.Object) load.Doc {
	return load.Doc{Display: fmt.Sprintf("cluster (%s/%s)", kind, name), File: "cluster", Kind: kind, Name: name, Object: obj}
}
