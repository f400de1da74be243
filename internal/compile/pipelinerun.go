package compile

import (
	"context"
	"errors"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/names"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/pipelinespec"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun"
	"github.com/tektoncd/pipeline/pkg/trustedresources"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/kmap"
	"knative.dev/pkg/kmeta"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// kubectlLastApplied is not propagated from definitions to runs
// (pkg/reconciler.KubectlLastAppliedAnnotationKey).
const kubectlLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// pipelineRun compiles a PipelineRun, following the order of Tekton's
// webhook (defaults, validation) and PipelineRun reconciler (reconcile()).
// Each of the reconciler's checks that fails the run with a reason of its
// own gives its error that reason; the others leave Tekton's generic
// FailedValidation.
func (c *compiler) pipelineRun(pr *v1.PipelineRun) (*Compiled, error) {
	ctx := c.ctx
	runAt := where{c.run.Display, "spec"}
	ref := pr.Spec.PipelineRef
	// A child run's pipeline is resolved with its PipelineTask.
	remotePipeline := ref != nil && ref.Resolver != "" && c.child == nil
	if remotePipeline && c.opts.Requester == nil {
		// Tekton would resolve it; here there is no resolver.
		return nil, remote(runAt, "pipelineRef.resolver", "Pipeline", string(ref.Resolver)).WithReason(v1.PipelineRunReasonCouldntGetPipeline)
	}
	if pr.Spec.PipelineSpec != nil {
		if err := checkPipelineSpec(where{c.run.Display, "spec.pipelineSpec"}, pr.Spec.PipelineSpec, c.opts.Requester != nil); err != nil {
			return nil, err
		}
	}
	create := apis.WithinCreate(ctx)
	pr.SetDefaults(create)
	if err := validation(c.run.Display, "", pr.DeepCopy().Validate(create)); err != nil {
		return nil, withReason(err, rejectedRunReason(pr))
	}
	if err := pipelineNameLabel(pr); err != nil {
		// GetPipelineData fails the same way for a run naming no Pipeline.
		return nil, runAt.errorf("", "%v", err).WithReason(v1.PipelineRunReasonCouldntGetPipeline)
	}

	// reconcile()
	pr.SetDefaults(ctx)
	specAt := where{c.run.Display, "spec.pipelineSpec"}
	var readErr error // the Lookup's, which Tekton's code does not keep
	getPipeline := func(_ context.Context, name string) (*v1.Pipeline, *v1.RefSource, *trustedresources.VerificationResult, error) {
		e, ok, err := c.objs.pipeline(name)
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
	if c.child != nil {
		getPipeline = func(context.Context, string) (*v1.Pipeline, *v1.RefSource, *trustedresources.VerificationResult, error) {
			specAt = c.child.specAt
			return &v1.Pipeline{ObjectMeta: c.child.meta, Spec: *c.child.spec.DeepCopy()}, nil, nil, nil
		}
	}
	if remotePipeline {
		// The reconciler's own: a ResolutionRequest, answered here.
		getPipeline = prresources.GetPipelineFunc(ctx, nil, c.webhook(), c.opts.Requester, pr, nil)
		specAt = where{resolvedDoc(c.run.Display, "spec.pipelineRef", ref.Resolver), "spec"}
	}
	pipelineMeta, spec, err := pipelinespec.GetPipelineData(ctx, pr, getPipeline)
	if err != nil {
		switch {
		case readErr != nil:
			return nil, unwrapRead(readErr)
		case inProgress(err):
			return nil, resolving(runAt, "pipelineRef", reasonResolvingPipeline)
		case errors.Is(err, errNotFound):
			return nil, runAt.errorf("pipelineRef.name", "Pipeline %q not found", ref.Name).WithReason(v1.PipelineRunReasonCouldntGetPipeline)
		case remotePipeline:
			e := runAt.errorf("pipelineRef", "resolver %q: %v", ref.Resolver, err).WithReason(v1.PipelineRunReasonCouldntGetPipeline)
			e.Tekton = fmt.Sprintf("Error retrieving pipeline for pipelinerun %s/%s: %s", pr.Namespace, pr.Name, err)
			return nil, e
		}
		return nil, runAt.errorf("", "%v", err).WithReason(v1.PipelineRunReasonCouldntGetPipeline)
	}
	c.resolvedFrom("", pipelineMeta.RefSource)
	if remotePipeline {
		if err := checkPipelineSpec(specAt, spec, true); err != nil {
			return nil, err
		}
	}
	storePipelineMeta(pr, spec, pipelineMeta.ObjectMeta)

	var hostDirs map[string]string
	if c.child == nil {
		// The command line's params and workspaces are the run's, and a
		// child run's storage is its parent's.
		hostDirs, err = c.overrideRun(&pr.Spec.Params, &pr.Spec.Workspaces, spec.Params, declaredWorkspaces(spec.Workspaces), "Pipeline "+pipelineMeta.Name)
		if err != nil {
			return nil, err
		}
		c.shared = sharedClaims(pr.Spec.Workspaces, hostDirs)
	}
	if _, err := dag.Build(v1.PipelineTaskList(spec.Tasks), v1.PipelineTaskList(spec.Tasks).Deps()); err != nil {
		return nil, specAt.errorf("tasks", "invalid graph: %v", err).WithReason(v1.PipelineRunReasonInvalidGraph)
	}
	if _, err := dag.Build(v1.PipelineTaskList(spec.Finally), map[string][]string{}); err != nil {
		return nil, specAt.errorf("finally", "invalid graph: %v", err).WithReason(v1.PipelineRunReasonInvalidGraph)
	}
	if err := validation(specAt.doc, specAt.path, spec.Validate(ctx)); err != nil {
		return nil, err
	}
	if err := c.pipelineRunParams(pr, spec); err != nil {
		return nil, err
	}
	if err := prresources.ValidateWorkspaceBindings(spec, pr); err != nil {
		return nil, runAt.errorf("workspaces", "%v", err).WithReason(v1.PipelineRunReasonInvalidWorkspaceBinding)
	}
	if err := prresources.ValidateTaskRunSpecs(spec, pr); err != nil {
		return nil, runAt.errorf("taskRunSpecs", "%v", err).WithReason(v1.PipelineRunReasonInvalidTaskRunSpec)
	}

	prresources.ApplyParametersToWorkspaceBindings(pr)
	spec, err = prresources.ApplyParameters(spec, pr)
	if err != nil {
		return nil, specAt.errorf("params", "%v", err)
	}
	spec = prresources.ApplyContexts(spec, pipelineMeta.Name, pr)
	spec = prresources.ApplyWorkspaces(spec, pr)
	pr.Status.PipelineSpec = spec
	for i, list := range [][]v1.PipelineTask{spec.Tasks, spec.Finally} {
		for j, pt := range list {
			// validatePipelineSpecAfterApplyParameters: onError may come from a param.
			if err := validation(specAt.doc, specAt.at(fmt.Sprintf("%s[%d]", section(i), j)), pt.ValidateOnError(ctx)); err != nil {
				return nil, err
			}
		}
	}

	state, err := c.resolvePipelineState(pr, spec, specAt)
	if err != nil {
		return nil, err
	}
	if err := prresources.ValidatePipelineTaskResults(withChildResults(state)); err != nil {
		return nil, specAt.errorf("tasks", "%v", err).WithReason(v1.PipelineRunReasonInvalidTaskResultReference)
	}
	if err := prresources.ValidatePipelineResults(spec, withChildResults(state)); err != nil {
		return nil, specAt.errorf("results", "%v", err).WithReason(v1.PipelineRunReasonInvalidPipelineResultReference)
	}
	if err := prresources.ValidateOptionalWorkspaces(spec.Workspaces, state); err != nil {
		return nil, specAt.errorf("workspaces", "%v", err).WithReason(v1.PipelineRunReasonRequiredWorkspaceMarkedOptional)
	}
	if err := evaluateCEL(specAt, pr.Name, spec, state); err != nil {
		return nil, err
	}

	plan := &planpb.Plan{
		Version:      planpb.Version,
		Kind:         planpb.RunKind_PIPELINE_RUN,
		Name:         pr.Name,
		Namespace:    pr.Namespace,
		Uid:          string(pr.UID),
		PipelineName: pipelineMeta.Name,
		Timeouts: &planpb.Timeouts{
			Pipeline: duration(pr.Spec.Timeouts.Pipeline),
			Tasks:    duration(pr.TasksTimeout()),
			Finally:  duration(pr.FinallyTimeout()),
		},
	}
	compiled := &Compiled{
		Plan: plan, PipelineRun: pr, PipelineSpec: spec,
		TaskSpecs: map[string]*v1.TaskSpec{}, TaskRuns: map[string]*v1.TaskRun{},
		TaskVolumes: map[string]*TaskVolumes{},
	}
	// No TaskRun exists yet: $(tasks.X.matrix.R.length), which counts
	// them, is the supervisor's (ApplyPipelineTaskContexts reads the state
	// only for it).
	facts := &prresources.PipelineRunFacts{}
	var wait waiting
	for i, rpt := range state {
		final := i >= len(spec.Tasks)
		index := i
		if final {
			index = i - len(spec.Tasks)
		}
		ptAt := where{specAt.doc, specAt.at(fmt.Sprintf("%s[%d]", section(btoi(final)), index))}
		ts, err := c.pipelineTaskRuns(pr, rpt, facts, ptAt, compiled)
		if wait.add(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if final {
			plan.Finally = append(plan.Finally, ts...)
		} else {
			plan.Tasks = append(plan.Tasks, ts...)
		}
	}
	if err := wait.result(); err != nil {
		return nil, err
	}
	if err := matrixRunAfter(plan, spec, specAt); err != nil {
		return nil, err
	}
	for _, r := range spec.Results {
		plan.Results = append(plan.Results, &planpb.PipelineResult{
			Name: r.Name, Type: valueType(string(r.Type)), Value: value(r.Value),
		})
	}
	if c.child == nil {
		plan.Volumes, err = c.volumes(pr.Spec.Workspaces, hostDirs, runAt)
		if err != nil {
			return nil, err
		}
	}
	return compiled, nil
}

func section(i int) string {
	if i == 0 {
		return "tasks"
	}
	return "finally"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

var errNotFound = errors.New("not found")

// pipelineRunParams runs the reconciler's checks of the run's params
// against the Pipeline's declarations.
func (c *compiler) pipelineRunParams(pr *v1.PipelineRun, spec *v1.PipelineSpec) error {
	runAt := where{c.run.Display, "spec"}
	if err := prresources.ValidateRequiredParametersProvided(&spec.Params, &pr.Spec.Params); err != nil {
		return runAt.errorf("params", "%v", err).WithReason(v1.PipelineRunReasonParameterMissing)
	}
	if err := prresources.ValidateParamTypesMatching(spec, pr); err != nil {
		return runAt.errorf(paramField(pr.Spec.Params, spec.Params), "%v", err).WithReason(v1.PipelineRunReasonParameterTypeMismatch)
	}
	if config.FromContextOrDefaults(c.ctx).FeatureFlags.EnableParamEnum {
		if err := taskrun.ValidateEnumParam(c.ctx, pr.Spec.Params, spec.Params); err != nil {
			return runAt.errorf("params", "%v", err).WithReason(v1.PipelineRunReasonInvalidParamValue)
		}
	}
	if err := prresources.ValidateObjectParamRequiredKeys(spec.Params, pr.Spec.Params); err != nil {
		return runAt.errorf("params", "%v", err).WithReason(v1.PipelineRunReasonObjectParameterMissKeys)
	}
	if err := prresources.ValidateParamArrayIndex(spec, pr.Spec.Params); err != nil {
		return runAt.errorf("params", "%v", err).WithReason(v1.PipelineRunReasonParamArrayIndexingInvalid)
	}
	return nil
}

// paramField is the path of the first given param whose type differs from
// its declaration, to point at it once Tekton found a mismatch.
func paramField(given v1.Params, declared v1.ParamSpecs) string {
	types := map[string]v1.ParamType{}
	for _, d := range declared {
		types[d.Name] = d.Type
	}
	for i, p := range given {
		if t, ok := types[p.Name]; ok && t != p.Value.Type {
			return fmt.Sprintf("params[%d].value", i)
		}
	}
	return "params"
}

// pipelineNameLabel is propagatePipelineNameLabelToPipelineRun (ReconcileKind).
func pipelineNameLabel(pr *v1.PipelineRun) error {
	if pr.Labels == nil {
		pr.Labels = map[string]string{}
	}
	if _, ok := pr.Labels[pipeline.PipelineLabelKey]; ok {
		return nil
	}
	switch {
	case pr.Spec.PipelineRef != nil && pr.Spec.PipelineRef.Name != "":
		pr.Labels[pipeline.PipelineLabelKey] = pr.Spec.PipelineRef.Name
	case pr.Spec.PipelineRef != nil && pr.Spec.PipelineRef.Resolver != "":
		// Labelled with the resolved Pipeline's name (storePipelineMeta).
	case pr.Spec.PipelineSpec != nil:
		name := pr.Name
		if pr.GenerateName != "" {
			if n := names.SimpleNameGenerator.RestrictLength(pr.GenerateName); n != "" {
				name = n
			}
		}
		pr.Labels[pipeline.PipelineLabelKey] = name
	default:
		return fmt.Errorf("pipelineRun %s not providing PipelineRef or PipelineSpec", pr.Name)
	}
	return nil
}

// storePipelineMeta is storePipelineSpecAndMergeMeta: the Pipeline's labels
// and annotations go to the run, which takes precedence.
func storePipelineMeta(pr *v1.PipelineRun, spec *v1.PipelineSpec, meta *metav1.ObjectMeta) {
	pr.Status.PipelineSpec = spec
	if meta == nil {
		return
	}
	pr.Labels = kmap.Union(meta.Labels, pr.Labels)
	if meta.Name != "" && (pr.Labels[pipeline.PipelineLabelKey] == "" || meta.GenerateName == "") {
		pr.Labels[pipeline.PipelineLabelKey] = meta.Name
	}
	pr.Annotations = kmap.Union(kmap.ExcludeKeys(meta.Annotations, kubectlLastApplied), pr.Annotations)
}

// pipelineTask compiles one resolved PipelineTask, or one TaskRun of a
// matrixed one (run), into a plan task, with the TaskRun Tekton would
// create for it (createTaskRun).
func (c *compiler) pipelineTask(pr *v1.PipelineRun, rpt *prresources.ResolvedPipelineTask, facts *prresources.PipelineRunFacts, ptAt where, compiled *Compiled, run taskRunOf) (*planpb.Task, error) {
	ctx := c.ctx
	// $(tasks.X.matrix.length) is the supervisor's too: the reconciler
	// substitutes it with a task's matrix context variables when it creates
	// the TaskRun, the first one in each param deciding which (a status
	// without the spec leaves it).
	pt := prresources.ApplyPipelineTaskContexts(rpt.PipelineTask, v1.PipelineRunStatus{}, facts)
	trSpec := pr.GetTaskRunSpec(pt.Name)
	// A matrix combination comes first (createTaskRun).
	trParams := append(run.combination.DeepCopy(), pt.Params...)
	tr := &v1.TaskRun{
		TypeMeta: metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      run.taskRunName,
			Namespace: pr.Namespace,
			// The API server's, on creation: $(context.taskRun.uid) needs it.
			UID:             uuid.NewUUID(),
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(pr)},
			Labels:          taskRunLabels(pr, pt),
			Annotations:     taskRunAnnotations(pr, pt),
		},
		Spec: v1.TaskRunSpec{
			Retries:            pt.Retries,
			Params:             trParams,
			ServiceAccountName: trSpec.ServiceAccountName,
			PodTemplate:        trSpec.PodTemplate,
			StepSpecs:          trSpec.StepSpecs,
			SidecarSpecs:       trSpec.SidecarSpecs,
			ComputeResources:   trSpec.ComputeResources,
		},
	}
	if pt.OnError == v1.PipelineTaskContinue {
		tr.Annotations[v1.PipelineTaskOnErrorAnnotation] = string(v1.PipelineTaskContinue)
	}
	if pt.Timeout != nil {
		tr.Spec.Timeout = pt.Timeout
	} else {
		tr.Spec.Timeout = pipelineRunTimeout(ctx, pr, isFinally(pr, pt.Name))
	}
	if trSpec.Timeout != nil {
		tr.Spec.Timeout = trSpec.Timeout
	}
	taskName := tr.Name // an embedded spec's task name is the TaskRun's (GetTaskData)
	var taskMeta *metav1.ObjectMeta
	specAt := where{ptAt.doc, ptAt.at("taskSpec")}
	switch remote := c.remoteTasks[pt.Name]; {
	case remote != nil:
		tr.Spec.TaskRef = pt.TaskRef
		taskName, taskMeta = remote.Name, &remote.ObjectMeta
		specAt = where{resolvedDoc(ptAt.doc, ptAt.at("taskRef"), pt.TaskRef.Resolver), "spec"}
	case rpt.ResolvedTask.TaskName != "":
		tr.Spec.TaskRef = pt.TaskRef
		e := c.objs.tasks[pt.TaskRef.Name]
		taskName, taskMeta = e.obj.Name, &e.obj.ObjectMeta
		specAt = where{e.doc.Display, "spec"}
	default:
		tr.Spec.TaskSpec = rpt.ResolvedTask.TaskSpec
	}
	ws, err := c.taskRunWorkspaces(pr, pt, rpt.ResolvedTask.TaskSpec, ptAt)
	if err != nil {
		return nil, err
	}
	tr.Spec.Workspaces = ws
	// The webhook defaults the TaskRun on creation (managed-by label, timeout).
	tr.SetDefaults(apis.WithinCreate(ctx))

	in := taskInput{
		name: run.name, tr: tr, spec: rpt.ResolvedTask.TaskSpec.DeepCopy(),
		taskName: taskName, taskMeta: taskMeta, specAt: specAt, trAt: ptAt,
		known: func(p v1.Param) bool { return !refersToTasks(p.Value) },
	}
	t, ts, err := c.task(in)
	if err != nil {
		return nil, err
	}
	t.DisplayName = pt.DisplayName
	t.RunAfter = pt.Deps()
	t.Params = params(trParams)
	t.Matrix = run.matrix
	t.When = when(pt.When)
	t.OnErrorContinue = pt.OnError == v1.PipelineTaskContinue
	for _, b := range ws {
		t.Workspaces = append(t.Workspaces, &planpb.WorkspaceBinding{Name: b.Name, Volume: c.volume(volumeOf(pt, b.Name)), SubPath: b.SubPath})
	}
	workspaceContext(t, ws, string(pr.UID))
	tv, err := c.taskVolumes(in, ts, t)
	if err != nil {
		return nil, err
	}
	if tv != nil {
		compiled.TaskVolumes[run.name] = tv
	}
	compiled.TaskSpecs[run.name] = ts
	compiled.TaskRuns[run.name] = tr
	return t, nil
}

func isFinally(pr *v1.PipelineRun, name string) bool {
	for _, f := range pr.Status.PipelineSpec.Finally {
		if f.Name == name {
			return true
		}
	}
	return false
}

// volumeOf is the run workspace a task workspace is bound to.
func volumeOf(pt *v1.PipelineTask, taskWorkspace string) string {
	for _, w := range pt.Workspaces {
		if w.Name == taskWorkspace && w.Workspace != "" {
			return w.Workspace
		}
	}
	return taskWorkspace
}

// pipelineRunTimeout is the reconciler's pipelineRunTimeout: the TaskRun
// timeout of a PipelineTask without its own. Nil lets the TaskRun default
// apply: the PipelineRun's own timers stop the task first.
func pipelineRunTimeout(ctx context.Context, pr *v1.PipelineRun, final bool) *metav1.Duration {
	prTimeout := pr.TasksTimeout()
	if final {
		prTimeout = pr.FinallyTimeout()
	}
	if prTimeout == nil {
		return nil
	}
	if prTimeout.Duration == config.NoTimeoutDuration {
		return prTimeout
	}
	if prTimeout.Duration > defaultTimeout(ctx) {
		return prTimeout
	}
	return nil
}

// taskRunLabels is combineTaskRunAndTaskSpecLabels.
func taskRunLabels(pr *v1.PipelineRun, pt *v1.PipelineTask) map[string]string {
	labels := map[string]string{}
	if s := pr.GetTaskRunSpec(pt.Name); s.Metadata != nil {
		addByPrecedence(labels, s.Metadata.Labels)
	}
	addByPrecedence(labels, childLabels(pr, pt.Name))
	if pt.TaskSpec != nil {
		addByPrecedence(labels, pt.TaskSpecMetadata().Labels)
	}
	return labels
}

// childLabels is createChildResourceLabels: the labels the reconciler gives
// every run it creates for a pipeline task (TaskRun or child PipelineRun),
// the run's own and which run and pipeline task it is of.
func childLabels(pr *v1.PipelineRun, pipelineTask string) map[string]string {
	labels := kmap.Copy(pr.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[pipeline.PipelineRunLabelKey] = pr.Name
	labels[pipeline.PipelineRunUIDLabelKey] = string(pr.UID)
	labels[pipeline.PipelineTaskLabelKey] = pipelineTask
	labels[pipeline.MemberOfLabelKey] = v1.PipelineTasks
	if isFinally(pr, pipelineTask) {
		labels[pipeline.MemberOfLabelKey] = v1.PipelineFinallyTasks
	}
	return labels
}

// childAnnotations is createChildResourceAnnotations: the run's own, but
// those Tekton reserves.
func childAnnotations(pr *v1.PipelineRun) map[string]string {
	return kmap.Filter(kmap.Copy(pr.Annotations), reservedAnnotation)
}

// taskRunAnnotations is combineTaskRunAndTaskSpecAnnotations.
func taskRunAnnotations(pr *v1.PipelineRun, pt *v1.PipelineTask) map[string]string {
	annotations := map[string]string{}
	if s := pr.GetTaskRunSpec(pt.Name); s.Metadata != nil {
		addByPrecedence(annotations, s.Metadata.Annotations)
	}
	addByPrecedence(annotations, childAnnotations(pr))
	if pt.TaskSpec != nil {
		addByPrecedence(annotations, pt.TaskSpecMetadata().Annotations)
	}
	return annotations
}

func addByPrecedence(m, added map[string]string) {
	for k, v := range added {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
}

// taskRunWorkspaces is getTaskrunWorkspaces: the TaskRun's bindings, each
// the run's binding under the task's workspace name, with the subPaths
// joined. Workspaces an embedded spec uses without declaring are propagated.
func (c *compiler) taskRunWorkspaces(pr *v1.PipelineRun, pt *v1.PipelineTask, ts *v1.TaskSpec, ptAt where) ([]v1.WorkspaceBinding, error) {
	bound := map[string]v1.WorkspaceBinding{}
	for _, b := range pr.Spec.Workspaces {
		bound[b.Name] = b
	}
	if pt.TaskSpec != nil {
		used, err := workspacesUsed(pt.TaskSpec.TaskSpec)
		if err != nil {
			// getTaskrunWorkspaces' errors are permanent: createTaskRun fails.
			return nil, ptAt.errorf("taskSpec", "%v", err).WithReason(v1.PipelineRunReasonCreateRunFailed)
		}
		have := map[string]bool{}
		for _, w := range pt.Workspaces {
			have[w.Name] = true
		}
		for _, name := range used {
			if !have[name] {
				pt.Workspaces = append(pt.Workspaces, v1.WorkspacePipelineTaskBinding{Name: name})
			}
		}
	}
	var out []v1.WorkspaceBinding
	for i, w := range pt.Workspaces {
		runWs := w.Workspace
		if runWs == "" {
			runWs = w.Name
		}
		b, ok := bound[runWs]
		if !ok {
			if !optionalIn(ts, w.Name) {
				return nil, ptAt.errorf(fmt.Sprintf("workspaces[%d]", i), "expected workspace %q to be provided by pipelinerun for pipeline task %q", runWs, pt.Name).
					WithReason(v1.PipelineRunReasonCreateRunFailed)
			}
			continue
		}
		binding := *b.DeepCopy()
		binding.Name = w.Name
		binding.SubPath = combinedSubPath(b.SubPath, w.SubPath)
		out = append(out, binding)
	}
	var pipelineName string
	if pr.Spec.PipelineRef != nil {
		pipelineName = pr.Spec.PipelineRef.Name
	}
	for i := range out {
		out[i].SubPath = applyReplacements(out[i].SubPath, prresources.GetContextReplacements(pipelineName, pr))
	}
	return out, nil
}

func optionalIn(ts *v1.TaskSpec, name string) bool {
	if ts == nil {
		return false
	}
	for _, d := range ts.Workspaces {
		if d.Name == name && d.Optional {
			return true
		}
	}
	return false
}

// evaluateCEL evaluates the tasks' CEL when expressions as Tekton's
// reconciler does once their params are substituted, before any task
// runs (EvaluateCEL): one that does not compile or is not a boolean fails
// the run. The supervisor evaluates them again, their task results
// substituted, when it decides whether a task runs.
func evaluateCEL(at where, run string, spec *v1.PipelineSpec, state prresources.PipelineRunState) error {
	for _, rpt := range state {
		if err := rpt.EvaluateCEL(); err != nil {
			field := "tasks"
			for i, list := range [][]v1.PipelineTask{spec.Tasks, spec.Finally} {
				for j, pt := range list {
					if pt.Name == rpt.PipelineTask.Name {
						field = fmt.Sprintf("%s[%d].when", section(i), j)
					}
				}
			}
			return at.errorf(field, "Error evaluating CEL %s: %v", run, err).WithReason(v1.PipelineRunReasonCELEvaluationFailed)
		}
	}
	return nil
}
