package compile

import (
	"context"
	"errors"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	trresources "github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/trustedresources"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// taskRun compiles a TaskRun, following Tekton's webhook (defaults,
// validation) and the TaskRun reconciler's prepare().
func (c *compiler) taskRun(tr *v1.TaskRun) (*Compiled, error) {
	ctx := c.ctx
	runAt := where{c.run.Display, "spec"}
	if ref := tr.Spec.TaskRef; ref != nil {
		switch {
		case ref.IsCustomTask():
			return nil, unsupported(runAt, "taskRef", "custom tasks")
		case ref.Resolver != "" && c.opts.Requester == nil:
			return nil, remote(runAt, "taskRef.resolver", "Task", string(ref.Resolver))
		}
	}
	create := apis.WithinCreate(ctx)
	tr.SetDefaults(create)
	if err := validation(c.run.Display, "", tr.DeepCopy().Validate(create)); err != nil {
		return nil, err
	}

	tr.SetDefaults(ctx)
	specAt := where{c.run.Display, "spec.taskSpec"}
	var readErr error // the Lookup's, which Tekton's code does not keep
	getTask := func(_ context.Context, name string) (*v1.Task, *v1.RefSource, *trustedresources.VerificationResult, error) {
		e, ok, err := c.objs.task(name)
		if err != nil {
			readErr = err
			return nil, nil, nil, err
		}
		if !ok {
			return nil, nil, nil, errNotFound
		}
		specAt = where{e.doc.Display, "spec"}
		return e.obj.DeepCopy(), nil, nil, nil
	}
	remoteTask := tr.Spec.TaskRef != nil && tr.Spec.TaskRef.Resolver != ""
	if remoteTask {
		// The reconciler's own: a ResolutionRequest, answered here.
		getTask = trresources.GetTaskFuncFromTaskRun(ctx, nil, c.webhook(), c.opts.Requester, tr, nil)
		specAt = where{resolvedDoc(c.run.Display, "spec.taskRef", tr.Spec.TaskRef.Resolver), "spec"}
	}
	taskMeta, spec, err := trresources.GetTaskData(ctx, tr, getTask)
	if err != nil {
		switch {
		case readErr != nil:
			return nil, unwrapRead(readErr)
		case inProgress(err):
			return nil, resolving(runAt, "taskRef", reasonResolvingTask)
		case errors.Is(err, errNotFound):
			return nil, runAt.errorf("taskRef.name", "Task %q not found", tr.Spec.TaskRef.Name)
		case remoteTask:
			// The TaskRun reconciler's reason (TaskRunResolutionFailed).
			e := runAt.errorf("taskRef", "resolver %q: %v", tr.Spec.TaskRef.Resolver, err)
			e.Reason = v1.TaskRunReasonFailedResolution.String()
			return nil, e
		}
		return nil, runAt.errorf("", "%v", err)
	}
	c.resolvedFrom("", taskMeta.RefSource)
	var declaredWs map[string]bool
	if tr.Spec.TaskRef != nil {
		declaredWs = map[string]bool{}
		for _, w := range spec.Workspaces {
			declaredWs[w.Name] = true
		}
	}
	hostDirs, err := c.overrideRun(&tr.Spec.Params, &tr.Spec.Workspaces, spec.Params, declaredWs, "Task "+taskMeta.Name)
	if err != nil {
		return nil, err
	}
	c.shared = sharedClaims(tr.Spec.Workspaces, hostDirs)

	rtr := &trresources.ResolvedTask{TaskName: taskMeta.Name, TaskSpec: spec, Kind: trresources.GetTaskKind(tr)}
	if err := taskrun.ValidateResolvedTask(ctx, tr.Spec.Params, &v1.Matrix{}, rtr); err != nil {
		return nil, runAt.errorf(paramField(tr.Spec.Params, spec.Params), "%v", err)
	}
	if config.FromContextOrDefaults(ctx).FeatureFlags.EnableParamEnum {
		if err := taskrun.ValidateEnumParam(ctx, tr.Spec.Params, spec.Params); err != nil {
			return nil, runAt.errorf("params", "%v", err)
		}
	}
	if err := trresources.ValidateParamArrayIndex(spec, tr.Spec.Params); err != nil {
		return nil, runAt.errorf("params", "%v", err)
	}

	var meta = taskMeta.ObjectMeta
	if tr.Spec.TaskRef == nil {
		meta = nil // the TaskRun's own metadata: nothing to merge
	}
	in := taskInput{
		name: tr.Name, tr: tr, spec: spec.DeepCopy(), taskName: taskMeta.Name, taskMeta: meta,
		specAt: specAt, trAt: runAt,
	}
	t, ts, err := c.task(in)
	if err != nil {
		return nil, err
	}
	t.Params = params(tr.Spec.Params)
	for _, b := range tr.Spec.Workspaces {
		t.Workspaces = append(t.Workspaces, &planpb.WorkspaceBinding{Name: b.Name, Volume: volumeFor(c.shared, b.Name), SubPath: b.SubPath})
	}
	workspaceContext(t, tr.Spec.Workspaces, string(tr.UID))
	tv, err := c.taskVolumes(in, ts, t)
	if err != nil {
		return nil, err
	}
	volumes := map[string]*TaskVolumes{}
	if tv != nil {
		volumes[tr.Name] = tv
	}
	tr.Status.TaskSpec = ts
	plan := &planpb.Plan{
		Version:   planpb.Version,
		Kind:      planpb.RunKind_TASK_RUN,
		Name:      tr.Name,
		Namespace: tr.Namespace,
		Uid:       string(tr.UID),
		Tasks:     []*planpb.Task{t},
	}
	plan.Volumes, err = c.volumes(tr.Spec.Workspaces, hostDirs, runAt)
	if err != nil {
		return nil, err
	}
	return &Compiled{
		Plan: plan, TaskRun: tr,
		TaskSpecs:   map[string]*v1.TaskSpec{tr.Name: ts},
		TaskRuns:    map[string]*v1.TaskRun{tr.Name: tr},
		TaskVolumes: volumes,
	}, nil
}
