package controller

import (
	"context"
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
)

// lookup reads the Pipelines, Tasks and StepActions a run in namespace
// names, as compile asks for them (those a resolved Pipeline or Task names
// too), from r. A missing one is not found: compile then reports it as
// invalid input, with the same message a local run gives. ConfigMaps and
// Secrets are never read: the Pod refers to them by name and the kubelet
// reads them, as for Tekton's pods, so the controller needs no access to
// their data.
func lookup(r client.Reader, namespace string) compile.Lookup {
	return func(ctx context.Context, kind, name string) (load.Doc, bool, error) {
		obj := readable(kind)
		if obj == nil {
			return load.Doc{}, false, fmt.Errorf("compile asked for a %s, which the controller does not read", kind)
		}
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return load.Doc{}, false, nil
			}
			return load.Doc{}, false, fmt.Errorf("get %s %s/%s: %w", kind, namespace, name, err)
		}
		return doc(kind, name, obj), true, nil
	}
}

// readable is an empty object of a kind the controller reads for a run
// (a Pipeline, Task or StepAction), or nil for any other kind.
func readable(kind string) client.Object {
	switch kind {
	case load.KindPipeline:
		return &v1.Pipeline{}
	case load.KindTask:
		return &v1.Task{}
	case load.KindStepAction:
		return &v1beta1.StepAction{}
	}
	return nil
}

// doc wraps a cluster object as compile reads a document, named
// "cluster (Kind/name)" in messages.
func doc(kind, name string, obj client.Object) load.Doc {
	return load.Doc{Display: fmt.Sprintf("cluster (%s/%s)", kind, name), File: "cluster", Kind: kind, Name: name, Object: obj}
}
