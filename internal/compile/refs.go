package compile

import (
	"context"
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	clientset "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	typedv1beta1 "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/typed/pipeline/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stepActionClient is the one call of the Tekton clientset that Tekton's
// GetStepActionsData makes for a StepAction referred to by name
// (LocalStepActionRefResolver: TektonV1beta1().StepActions(ns).Get), served
// from the documents. Any other call panics on the nil embedded interfaces:
// nothing else is expected to be called.
type stepActionClient struct {
	clientset.Interface
	objs *objects
}

func (c stepActionClient) TektonV1beta1() typedv1beta1.TektonV1beta1Interface {
	return stepActionGroup{objs: c.objs}
}

type stepActionGroup struct {
	typedv1beta1.TektonV1beta1Interface
	objs *objects
}

func (g stepActionGroup) StepActions(namespace string) typedv1beta1.StepActionInterface {
	return stepActionGetter{objs: g.objs, namespace: namespace}
}

type stepActionGetter struct {
	typedv1beta1.StepActionInterface
	objs      *objects
	namespace string
}

func (g stepActionGetter) Get(_ context.Context, name string, _ metav1.GetOptions) (*v1beta1.StepAction, error) {
	e, ok := g.objs.stepActions[name]
	if !ok || g.namespace != g.objs.namespace {
		return nil, apierrors.NewNotFound(v1beta1.SchemeGroupVersion.WithResource("stepactions").GroupResource(), name)
	}
	return e.obj.DeepCopy(), nil
}

// checkPipelineSpec rejects what pod-runner does not run yet, before Tekton's
// validation reports it less helpfully (pipelines in pipelines are alpha).
func checkPipelineSpec(at where, spec *v1.PipelineSpec) error {
	for i, list := range [][]v1.PipelineTask{spec.Tasks, spec.Finally} {
		for j := range list {
			if err := checkPipelineTask(where{at.doc, at.at(fmt.Sprintf("%s[%d]", section(i), j))}, &list[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPipelineTask(at where, pt *v1.PipelineTask) error {
	switch {
	case pt.PipelineRef != nil:
		return unsupported(at, "pipelineRef", "pipelines in pipelines")
	case pt.PipelineSpec != nil:
		return unsupported(at, "pipelineSpec", "pipelines in pipelines")
	case pt.TaskRef.IsCustomTask():
		return unsupported(at, "taskRef", "custom tasks")
	case pt.TaskSpec.IsCustomTask():
		return unsupported(at, "taskSpec", "custom tasks")
	case pt.TaskRef != nil && pt.TaskRef.Resolver != "":
		return remote(at, "taskRef.resolver", "Task", string(pt.TaskRef.Resolver))
	}
	return nil
}
