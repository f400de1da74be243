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

// stepActionClient is the Tekton clientset Tekton's GetStepActionsData
// reads a StepAction referred to by name from
// (LocalStepActionRefResolver: TektonV1beta1().StepActions(ns).Get), served
// from the documents; a resolved StepAction is validated by the webhook,
// which only a spec that resolves one needs.
type stepActionClient struct {
	clientset.Interface // the webhook, or nil
	objs                *objects
}

func (c *compiler) stepActionClient(spec *v1.TaskSpec) stepActionClient {
	client := stepActionClient{objs: c.objs}
	for _, s := range spec.Steps {
		if s.Ref != nil && s.Ref.Resolver != "" {
			client.Interface = c.webhook()
		}
	}
	return client
}

func (c stepActionClient) TektonV1beta1() typedv1beta1.TektonV1beta1Interface {
	g := stepActionGroup{objs: c.objs}
	if c.Interface != nil {
		g.TektonV1beta1Interface = c.Interface.TektonV1beta1()
	}
	return g
}

type stepActionGroup struct {
	typedv1beta1.TektonV1beta1Interface
	objs *objects
}

func (g stepActionGroup) StepActions(namespace string) typedv1beta1.StepActionInterface {
	get := stepActionGetter{objs: g.objs, namespace: namespace}
	if g.TektonV1beta1Interface != nil {
		get.StepActionInterface = g.TektonV1beta1Interface.StepActions(namespace)
	}
	return get
}

type stepActionGetter struct {
	typedv1beta1.StepActionInterface
	objs      *objects
	namespace string
}

func (g stepActionGetter) Get(_ context.Context, name string, _ metav1.GetOptions) (*v1beta1.StepAction, error) {
	// Looked up already (stepActions): the index has it or nothing does.
	e, ok, err := g.objs.stepAction(name)
	if err != nil || !ok || g.namespace != g.objs.namespace {
		return nil, apierrors.NewNotFound(v1beta1.SchemeGroupVersion.WithResource("stepactions").GroupResource(), name)
	}
	return e.obj.DeepCopy(), nil
}

// checkPipelineSpec rejects what pod-runner does not run yet, before Tekton's
// validation reports it less helpfully.
func checkPipelineSpec(at where, spec *v1.PipelineSpec, resolvable bool) error {
	for i, list := range [][]v1.PipelineTask{spec.Tasks, spec.Finally} {
		for j := range list {
			if err := checkPipelineTask(where{at.doc, at.at(fmt.Sprintf("%s[%d]", section(i), j))}, &list[j], resolvable); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPipelineTask rejects what pod-runner does not run yet in one
// PipelineTask; a resolver reference only when nothing can resolve it.
func checkPipelineTask(at where, pt *v1.PipelineTask, resolvable bool) error {
	switch {
	case pt.PipelineRef != nil && pt.PipelineRef.Resolver != "" && !resolvable:
		return remote(at, "pipelineRef.resolver", "Pipeline", string(pt.PipelineRef.Resolver))
	case pt.TaskRef.IsCustomTask():
		return unsupported(at, "taskRef", "custom tasks")
	case pt.TaskSpec.IsCustomTask():
		return unsupported(at, "taskSpec", "custom tasks")
	case pt.TaskRef != nil && pt.TaskRef.Resolver != "" && !resolvable:
		return remote(at, "taskRef.resolver", "Task", string(pt.TaskRef.Resolver))
	}
	return nil
}
