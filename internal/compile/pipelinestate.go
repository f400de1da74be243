package compile

import (
	"context"
	"errors"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	trresources "github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/trustedresources"
	"knative.dev/pkg/kmeta"
)

// resolvePipelineState is the reconciler's resolvePipelineState plus its
// checks of each task against its Task (ValidateResolvedTask).
func (c *compiler) resolvePipelineState(pr *v1.PipelineRun, spec *v1.PipelineSpec, specAt where) (prresources.PipelineRunState, error) {
	ctx := c.ctx
	var state prresources.PipelineRunState
	var wait waiting
	tasks := append(append([]v1.PipelineTask{}, spec.Tasks...), spec.Finally...)
	for i, pt := range tasks {
		final := i >= len(spec.Tasks)
		index := i
		if final {
			index -= len(spec.Tasks)
		}
		ptAt := where{specAt.doc, specAt.at(fmt.Sprintf("%s[%d]", section(btoi(final)), index))}
		if err := checkPipelineTask(ptAt, &pt, c.opts.Requester != nil); err != nil {
			return nil, err
		}
		var readErr error
		getTask := func(_ context.Context, name string) (*v1.Task, *v1.RefSource, *trustedresources.VerificationResult, error) {
			e, ok, err := c.objs.task(name)
			if err != nil {
				readErr = err
				return nil, nil, nil, err
			}
			if !ok {
				return nil, nil, nil, errNotFound
			}
			return e.obj.DeepCopy(), nil, nil, nil
		}
		remoteTask := pt.TaskRef != nil && pt.TaskRef.Resolver != ""
		if remoteTask {
			resolve := trresources.GetTaskFunc(ctx, nil, c.webhook(), c.opts.Requester, pr, pt.TaskRef,
				kmeta.ChildName(pr.Name, "-"+pt.Name), pr.Namespace, pr.Spec.TaskRunTemplate.ServiceAccountName, nil)
			name := pt.Name
			getTask = func(ctx context.Context, ref string) (*v1.Task, *v1.RefSource, *trustedresources.VerificationResult, error) {
				t, src, vr, err := resolve(ctx, ref)
				if err == nil {
					c.resolvedFrom(name, src)
					c.remoteTasks[name] = t
				}
				return t, src, vr, err
			}
		}
		noTaskRun := func(string) (*v1.TaskRun, error) { return nil, nil }
		noChildRun := func(string) (*v1.PipelineRun, error) { return nil, nil }
		rpt, err := prresources.ResolvePipelineTask(ctx, *pr, noChildRun, c.childPipelineGetter(pr, &pt, &readErr), getTask, noTaskRun, nil, pt, state)
		if err != nil {
			var notFound *prresources.TaskNotFoundError
			switch {
			case readErr != nil:
				return nil, unwrapRead(readErr)
			case inProgress(err):
				// Every task's request is submitted in this round.
				wait.add(resolving(ptAt, "taskRef", reasonResolvingTask))
				continue
			case remoteTask:
				e := ptAt.errorf("taskRef", "resolver %q: %v", pt.TaskRef.Resolver, err).WithReason(v1.PipelineRunReasonCouldntGetTask)
				e.Tekton = fmt.Sprintf("Pipeline %s/%s can't be Run; it contains Tasks that don't exist: %s", pr.Namespace, pr.Labels[pipeline.PipelineLabelKey], err)
				return nil, e
			case errors.As(err, &notFound):
				return nil, ptAt.errorf("taskRef.name", "Task %q not found", notFound.Name).WithReason(v1.PipelineRunReasonCouldntGetTask)
			case pt.PipelineRef != nil:
				return nil, ptAt.errorf("pipelineRef", "%v", err).WithReason(v1.PipelineRunReasonCouldntGetPipeline)
			}
			return nil, ptAt.errorf("", "%v", err)
		}
		if rpt.IsChildPipeline() {
			// Its pipeline is checked when it is compiled (childPipeline).
			state = append(state, rpt)
			continue
		}
		if err := taskrun.ValidateResolvedTask(ctx, rpt.PipelineTask.Params, rpt.PipelineTask.Matrix, rpt.ResolvedTask); err != nil {
			return nil, ptAt.errorf("params", "%v", err)
		}
		if config.FromContextOrDefaults(ctx).FeatureFlags.EnableParamEnum {
			if err := prresources.ValidateParamEnumSubset(pt.Params, spec.Params, rpt.ResolvedTask); err != nil {
				return nil, ptAt.errorf("params", "%v", err)
			}
		}
		state = append(state, rpt)
	}
	if err := wait.result(); err != nil {
		return nil, err
	}
	return state, nil
}
