package compile

import (
	"context"
	"fmt"
	"slices"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/pipelinespec"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	trresources "github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/trustedresources"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"knative.dev/pkg/kmeta"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// childScope is what compiling a child pipeline (pipelines in pipelines)
// takes from its parent: the pipeline already resolved, where it came
// from, and the parent's plan volumes behind the child run's workspaces.
type childScope struct {
	meta   metav1.ObjectMeta
	spec   *v1.PipelineSpec
	specAt where
	// volumes maps the child run's workspace bindings to the plan volumes
	// behind them (the parent's: a child run's binding is a copy of one).
	volumes map[string]string
	// ancestors are the tekton.dev/pipeline labels of the runs above,
	// outermost first.
	ancestors []string
}

// childPipelineGetter is the GetPipeline ResolvePipelineTask calls for a
// PipelineTask that runs a pipeline: from the documents, or, for a
// pipelineRef with a resolver, the reconciler's own resolution.
func (c *compiler) childPipelineGetter(pr *v1.PipelineRun, pt *v1.PipelineTask, readErr *error) pipelinespec.GetPipeline {
	if pt.PipelineRef != nil && pt.PipelineRef.Resolver != "" && c.opts.Requester != nil {
		return prresources.GetChildPipelineFunc(c.ctx, nil, c.webhook(), c.opts.Requester, pr, pt.PipelineRef, nil)
	}
	return func(_ context.Context, name string) (*v1.Pipeline, *v1.RefSource, *trustedresources.VerificationResult, error) {
		e, ok, err := c.objs.pipeline(name)
		if err != nil {
			*readErr = err
			return nil, nil, nil, err
		}
		if !ok {
			return nil, nil, nil, fmt.Errorf("pipelines.tekton.dev %q not found", name)
		}
		return e.obj.DeepCopy(), nil, nil, nil
	}
}

// childPipeline compiles a PipelineTask that runs a pipeline into the plan
// task that runs it: the child PipelineRun Tekton's reconciler would create
// (createChildPipelineRun), compiled as a run of its own whose tasks join
// the plan as CHILD.TASK. Beyond Tekton v1.15 (TEP-0056), the
// PipelineTask's timeout bounds the child run.
func (c *compiler) childPipeline(pr *v1.PipelineRun, rpt *prresources.ResolvedPipelineTask, ptAt where, compiled *Compiled) (*planpb.Task, error) {
	pt := rpt.PipelineTask
	switch {
	case pt.IsMatrixed():
		return nil, unsupported(ptAt, "matrix", "a matrix over a child pipeline")
	case pt.Retries > 0:
		return nil, unsupported(ptAt, "retries", "retries of a child pipeline")
	}
	for i, p := range pt.Params {
		if refersToTasks(p.Value) {
			return nil, unsupported(ptAt, fmt.Sprintf("params[%d]", i), "a child pipeline's param fed by task results")
		}
	}
	name := rpt.ResolvedPipeline.PipelineName
	ancestors := c.ancestors(pr)
	if pt.PipelineRef != nil && name != "" && slices.Contains(ancestors, name) {
		return nil, ptAt.errorf("pipelineRef", "pipeline task %q of Pipeline %q runs Pipeline %q, which is already running in its ancestor chain %v: a cycle",
			pt.Name, pr.Labels[pipeline.PipelineLabelKey], name, ancestors).WithReason(v1.PipelineRunReasonCreateRunFailed)
	}

	labels := childLabels(pr, pt.Name)
	if name != "" {
		labels[pipeline.PipelineLabelKey] = name
	}
	ws, volumes, err := c.childWorkspaces(pr, pt, ptAt)
	if err != nil {
		return nil, err
	}
	child := &v1.PipelineRun{
		TypeMeta: metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "PipelineRun"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            rpt.ChildPipelineRunNames[0],
			Namespace:       pr.Namespace,
			UID:             uuid.NewUUID(),
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(pr)},
			Labels:          labels,
			Annotations:     childAnnotations(pr),
		},
		Spec: v1.PipelineRunSpec{
			TaskRunTemplate: pr.Spec.TaskRunTemplate,
			Params:          pt.Params,
			Workspaces:      ws,
			PipelineRef:     pt.PipelineRef,
			PipelineSpec:    pt.PipelineSpec,
		},
	}
	if pt.PipelineRef == nil {
		child.Spec.PipelineSpec = rpt.ResolvedPipeline.PipelineSpec
	}
	if pt.Timeout != nil {
		child.Spec.Timeouts = &v1.TimeoutFields{Pipeline: pt.Timeout}
	}
	specAt := where{ptAt.doc, ptAt.at("pipelineSpec")}
	if pt.PipelineRef != nil {
		specAt = where{resolvedDoc(ptAt.doc, ptAt.at("pipelineRef"), pt.PipelineRef.Resolver), "spec"}
		if pt.PipelineRef.Resolver == "" {
			if e, ok, _ := c.objs.pipeline(name); ok {
				specAt = where{e.doc.Display, "spec"}
			}
		}
	}
	if err := checkPipelineSpec(specAt, rpt.ResolvedPipeline.PipelineSpec, c.opts.Requester != nil); err != nil {
		return nil, err
	}
	sub := &compiler{
		ctx: c.ctx, opts: c.opts, objs: c.objs, tekton: c.tekton, shared: c.shared,
		run:         &load.Doc{Kind: load.KindPipelineRun, Display: fmt.Sprintf("%s, child PipelineRun of pipeline task %q", c.run.Display, pt.Name)},
		remoteTasks: map[string]*v1.Task{},
		child: &childScope{
			meta: metav1.ObjectMeta{Name: name}, spec: rpt.ResolvedPipeline.PipelineSpec, specAt: specAt,
			volumes: volumes, ancestors: ancestors,
		},
	}
	cc, err := sub.pipelineRun(child)
	if err != nil {
		return nil, err
	}
	c.noteLocal(sub.localErr)
	cc.RefSources, cc.StepRefSources = sub.refSources, sub.stepSources
	cc.Config = compiled.Config
	prefixChild(cc, pt.Name+".")
	compiled.adopt(pt.Name, cc)

	cp := cc.Plan
	t := &planpb.Task{
		Name: pt.Name, TaskRunName: child.Name, DisplayName: pt.DisplayName,
		RunAfter: pt.Deps(), Params: params(pt.Params), When: when(pt.When),
		OnErrorContinue: pt.OnError == v1.PipelineTaskContinue,
		Timeout:         duration(pt.Timeout),
		Child: &planpb.ChildPipeline{
			Uid: cp.GetUid(), PipelineName: cp.GetPipelineName(),
			Tasks: cp.GetTasks(), Finally: cp.GetFinally(), Results: cp.GetResults(), Timeouts: cp.GetTimeouts(),
		},
	}
	return t, nil
}

// ancestors are the tekton.dev/pipeline labels of pr and the runs above
// it, outermost first: the pipelines a child of pr must not run again
// (detectPipelineRefCycle).
func (c *compiler) ancestors(pr *v1.PipelineRun) []string {
	var out []string
	if c.child != nil {
		out = append(out, c.child.ancestors...)
	}
	if name := pr.Labels[pipeline.PipelineLabelKey]; name != "" {
		out = append(out, name)
	}
	return out
}

// childWorkspaces is getChildPipelineRunWorkspaces: each of the
// PipelineTask's workspaces, the parent run's binding under the child
// pipeline's workspace name with the subPaths joined, and the plan volume
// behind each.
func (c *compiler) childWorkspaces(pr *v1.PipelineRun, pt *v1.PipelineTask, ptAt where) ([]v1.WorkspaceBinding, map[string]string, error) {
	bound := map[string]v1.WorkspaceBinding{}
	for _, b := range pr.Spec.Workspaces {
		bound[b.Name] = b
	}
	var out []v1.WorkspaceBinding
	volumes := map[string]string{}
	for _, w := range pt.Workspaces {
		parent := w.Workspace
		if parent == "" {
			parent = w.Name
		}
		b, ok := bound[parent]
		if !ok {
			// Tekton leaves it out; the child run then lacks it.
			continue
		}
		binding := *b.DeepCopy()
		binding.Name = w.Name
		binding.SubPath = combinedSubPath(b.SubPath, w.SubPath)
		out = append(out, binding)
		volumes[w.Name] = c.volume(parent)
	}
	return out, volumes, nil
}

// volume is the plan volume behind a workspace binding of the run being
// compiled: its own, one a claim shares, or in a child run its parent's.
func (c *compiler) volume(binding string) string {
	if c.child != nil {
		if v, ok := c.child.volumes[binding]; ok {
			return v
		}
	}
	return volumeFor(c.shared, binding)
}

// prefixChild names the tasks of a compiled child run PREFIX+TASK in its
// plan and maps, so that they are unique in the whole plan; their
// pipeline_task keeps the name their pipeline knows them by.
func prefixChild(cc *Compiled, prefix string) {
	renamed := map[string]string{}
	prefixTasks(append(slices.Clone(cc.Plan.GetTasks()), cc.Plan.GetFinally()...), prefix, renamed)
	rekeyAll(cc, renamed)
}

// rekeyAll renames the keys of cc's maps and its children's.
func rekeyAll(cc *Compiled, renamed map[string]string) {
	for _, ch := range cc.Children {
		rekeyAll(ch, renamed)
	}
	for old, nu := range renamed {
		rekey(cc.TaskSpecs, old, nu)
		rekey(cc.TaskRuns, old, nu)
		rekey(cc.TaskVolumes, old, nu)
		rekey(cc.StepRefSources, old, nu)
		rekey(cc.Children, old, nu)
	}
}

func prefixTasks(tasks []*planpb.Task, prefix string, renamed map[string]string) {
	for _, t := range tasks {
		if t.GetPipelineTask() == "" && t.GetMatrix() == nil {
			t.PipelineTask = t.GetName()
		}
		renamed[t.GetName()] = prefix + t.GetName()
		t.Name = prefix + t.GetName()
		for i, a := range t.GetRunAfter() {
			t.RunAfter[i] = prefix + a
		}
		if ch := t.GetChild(); ch != nil {
			prefixTasks(append(slices.Clone(ch.GetTasks()), ch.GetFinally()...), prefix, renamed)
		}
	}
}

func rekey[T any](m map[string]T, old, nu string) {
	if v, ok := m[old]; ok {
		delete(m, old)
		m[nu] = v
	}
}

// adopt makes a compiled child run part of c: its tasks' specs, TaskRuns
// and volumes join c's maps, by their plan names.
func (c *Compiled) adopt(planTask string, child *Compiled) {
	if c.Children == nil {
		c.Children = map[string]*Compiled{}
	}
	c.Children[planTask] = child
	for k, v := range child.TaskSpecs {
		c.TaskSpecs[k] = v
	}
	for k, v := range child.TaskRuns {
		c.TaskRuns[k] = v
	}
	for k, v := range child.TaskVolumes {
		c.TaskVolumes[k] = v
	}
	if len(child.StepRefSources) > 0 && c.StepRefSources == nil {
		c.StepRefSources = map[string][]*v1.RefSource{}
	}
	for k, v := range child.StepRefSources {
		c.StepRefSources[k] = v
	}
}

// withChildResults is state with each PipelineTask that runs a pipeline
// standing as a task whose results are the child pipeline's, so that
// Tekton's checks of result references check those to a child's results
// too (the rule childResultRef relaxes).
func withChildResults(state prresources.PipelineRunState) prresources.PipelineRunState {
	out := make(prresources.PipelineRunState, len(state))
	for i, rpt := range state {
		out[i] = rpt
		if !rpt.IsChildPipeline() || rpt.ResolvedPipeline.PipelineSpec == nil {
			continue
		}
		spec := &v1.TaskSpec{}
		for _, r := range rpt.ResolvedPipeline.PipelineSpec.Results {
			spec.Results = append(spec.Results, v1.TaskResult{Name: r.Name, Type: v1.ResultsType(r.Type)})
		}
		stand := *rpt
		stand.ResolvedTask = &trresources.ResolvedTask{TaskSpec: spec}
		out[i] = &stand
	}
	return out
}
