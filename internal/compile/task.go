package compile

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/pod"
	trresources "github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/workspace"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/kmap"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// taskInput is a TaskRun about to be created and what it runs.
type taskInput struct {
	// name of the plan task.
	name string
	// tr is the TaskRun as Tekton would create it, defaulted.
	tr *v1.TaskRun
	// spec is the resolved, defaulted TaskSpec (a copy the task may change).
	spec *v1.TaskSpec
	// taskName is what $(context.task.name) is (ResolvedTask.TaskName).
	taskName string
	// taskMeta is the referenced Task's metadata; nil for an embedded spec.
	taskMeta *metav1.ObjectMeta
	// specAt locates the spec, trAt the TaskRun (or PipelineTask), for messages.
	specAt, trAt where
	// known tells whether a param's value is known now; the others are only
	// known at run time (they use task results).
	known func(v1.Param) bool
}

// task does what the TaskRun reconciler does before it creates the pod
// (prepare): merge the Task's metadata, resolve StepActions; then what the
// pod builder does statically (stepTemplate, stepSpecs, env from ConfigMaps
// and Secrets). It returns the plan task and the TaskSpec Tekton would store
// in the TaskRun's status.
func (c *compiler) task(in taskInput) (*planpb.Task, *v1.TaskSpec, error) {
	tr, spec := in.tr, in.spec
	if in.taskMeta != nil {
		// storeTaskSpecAndMergeMeta: the TaskRun's metadata takes precedence.
		tr.Annotations = kmap.Union(kmap.ExcludeKeys(in.taskMeta.Annotations, kubectlLastApplied), tr.Annotations)
		tr.Labels = kmap.Union(in.taskMeta.Labels, tr.Labels)
		if tr.Spec.TaskRef != nil {
			tr.Labels[pipeline.TaskLabelKey] = in.taskMeta.Name
		}
	}
	steps, err := c.stepActions(in)
	if err != nil {
		return nil, nil, err
	}
	spec.Steps = steps
	// After StepActions, which may bring volumeMounts of their own.
	if err := checkTaskSpec(in.specAt, spec); err != nil {
		return nil, nil, err
	}
	status := spec.DeepCopy()

	merged, err := v1.MergeStepsWithStepTemplate(spec.StepTemplate, spec.Steps)
	if err != nil {
		return nil, nil, in.specAt.errorf("stepTemplate", "merge stepTemplate into steps: %v", err)
	}
	merged, err = v1.MergeStepsWithSpecs(merged, tr.Spec.StepSpecs)
	if err != nil {
		return nil, nil, in.trAt.errorf("stepSpecs", "%v", err)
	}

	ps := &planpb.TaskSpec{}
	for _, p := range spec.Params {
		ps.Params = append(ps.Params, paramSpec(p))
	}
	for _, r := range spec.Results {
		ps.Results = append(ps.Results, &planpb.ResultSpec{Name: r.Name, Type: valueType(string(r.Type)), Properties: sortedKeys(r.Properties)})
	}
	for i := range merged {
		s, err := c.step(&merged[i], in.specAt.at(fmt.Sprintf("steps[%d]", i)), in.specAt.doc)
		if err != nil {
			return nil, nil, err
		}
		ps.Steps = append(ps.Steps, s)
	}
	for i := range spec.Sidecars {
		s, err := c.sidecar(&spec.Sidecars[i], in.specAt.at(fmt.Sprintf("sidecars[%d]", i)), in.specAt.doc)
		if err != nil {
			return nil, nil, err
		}
		ps.Sidecars = append(ps.Sidecars, s)
	}
	decls, err := c.workspaceDeclarations(in)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range decls {
		ps.Workspaces = append(ps.Workspaces, &planpb.WorkspaceDeclaration{
			Name: d.Name, MountPath: d.GetMountPath(), ReadOnly: d.ReadOnly, Optional: d.Optional,
		})
	}

	// Tekton's pod builder reads the TaskRun's annotations (its own, the
	// PipelineRun's, taskRunSpecs' and the Task's, merged above). It honours
	// the annotation only with enable-api-fields: alpha; pod-runner always
	// does: it is an explicit request that only takes the network away.
	hermetic := tr.Annotations[pod.ExecutionModeAnnotation] == pod.ExecutionModeHermetic
	if hermetic {
		// As Tekton's pod builder: last in every step's env (not the
		// sidecars'), so that it wins.
		for _, s := range ps.Steps {
			s.Env = append(s.Env, &planpb.EnvVar{Name: pod.TektonHermeticEnvVar, Value: "1"})
		}
	}

	t := &planpb.Task{
		Name:        in.name,
		Hermetic:    hermetic,
		TaskRunName: tr.Name,
		Retries:     int32(tr.Spec.Retries),
		Timeout:     duration(tr.Spec.Timeout),
		Spec:        ps,
		// What getContextReplacements knows before the TaskRun runs;
		// context.task.retry-count is the supervisor's.
		Context: map[string]string{
			"context.taskRun.name":      tr.Name,
			"context.task.name":         in.taskName,
			"context.taskRun.namespace": tr.Namespace,
			"context.taskRun.uid":       string(tr.UID),
			// ApplyCredentialsPath: where creds-init writes.
			"credentials.path": pipeline.CredsDir,
		},
		Labels:      kmap.Copy(tr.Labels),
		Annotations: kmap.Copy(tr.Annotations),
	}
	if tr.Spec.TaskRef != nil {
		t.TaskRefName = tr.Spec.TaskRef.Name
	}
	return t, status, nil
}

// stepIndex finds the step GetStepActionsData names in its errors.
var stepIndex = regexp.MustCompile(`\(index (\d+)\)`)

// stepActions resolves the steps that refer to a StepAction with Tekton's
// GetStepActionsData, which applies the step's params to the StepAction as
// the TaskRun reconciler does. Params whose values are only known at run
// time are passed as references to themselves ("$(params.p)"), so they stay
// for the supervisor to substitute with the task's other params.
func (c *compiler) stepActions(in taskInput) ([]v1.Step, error) {
	for i, s := range in.spec.Steps {
		if s.Ref == nil {
			continue
		}
		at := fmt.Sprintf("steps[%d].ref", i)
		if s.Ref.Resolver != "" {
			if c.opts.Requester == nil {
				return nil, remote(in.specAt, at+".resolver", "StepAction", string(s.Ref.Resolver))
			}
			if name, j := in.runtimeParamIn(s.Ref.Params); name != "" {
				// Tekton asks once the TaskRun exists, results known; the
				// Pod's containers are fixed before any task runs.
				return nil, in.specAt.errorf(fmt.Sprintf("%s.params[%d]", at, j),
					"the StepAction's resolver is given $(params.%s), which a task result sets: it is known only at run time, and the run (its Pod) is compiled before", name)
			}
			continue
		}
		_, ok, err := c.objs.stepAction(s.Ref.Name)
		if err != nil {
			return nil, unwrapRead(err)
		}
		if !ok {
			// Tekton's TaskRun reconciler resolves StepActions: the run
			// cannot get what its task needs.
			return nil, in.specAt.errorf(at+".name", "StepAction %q not found", s.Ref.Name).WithReason(v1.PipelineRunReasonCouldntGetTask)
		}
	}
	tr := in.knownParams()
	steps, err := trresources.GetStepActionsData(c.ctx, *in.spec, tr, c.stepActionClient(in.spec), nil, c.opts.Requester)
	if inProgress(err) {
		return nil, resolving(in.specAt, "steps", reasonResolvingTask)
	}
	if err != nil {
		field := "steps"
		if m := stepIndex.FindStringSubmatch(err.Error()); m != nil {
			field = fmt.Sprintf("steps[%s].params", m[1])
		}
		return nil, in.specAt.errorf(field, "%v", err)
	}
	c.keepStepSources(in.name, tr.Status.Steps)
	return steps, nil
}

// keepStepSources keeps where resolvers found the task's StepActions:
// GetStepActionsData records one step state per step, in order, a resolved
// StepAction's with its refSource.
func (c *compiler) keepStepSources(task string, states []v1.StepState) {
	var sources []*v1.RefSource
	found := false
	for _, st := range states {
		var src *v1.RefSource
		if st.Provenance != nil && st.Provenance.RefSource != nil {
			src, found = st.Provenance.RefSource.DeepCopy(), true
		}
		sources = append(sources, src)
	}
	if !found {
		return
	}
	if c.stepSources == nil {
		c.stepSources = map[string][]*v1.RefSource{}
	}
	c.stepSources[task] = sources
}

// runtimeParamIn is the first of the task's params known only at run time
// that params refer to, and the index of the one that does; "" when none.
func (in taskInput) runtimeParamIn(params v1.Params) (string, int) {
	if in.known == nil {
		return "", 0
	}
	for _, p := range in.tr.Spec.Params {
		if in.known(p) {
			continue
		}
		for j, rp := range params {
			b, err := json.Marshal(rp.Value)
			if err == nil && (strings.Contains(string(b), "$(params."+p.Name+")") || strings.Contains(string(b), "$(params."+p.Name+"[") ||
				strings.Contains(string(b), "$(params."+p.Name+".")) {
				return p.Name, j
			}
		}
	}
	return "", 0
}

// knownParams is a copy of the TaskRun (Tekton's code may write to the
// one it is given) whose params known only at run time are references to
// themselves.
func (in taskInput) knownParams() *v1.TaskRun {
	tr := in.tr.DeepCopy()
	given := tr.Spec.Params
	tr.Spec.Params = nil
	for _, p := range given {
		if in.known == nil || in.known(p) {
			tr.Spec.Params = append(tr.Spec.Params, p)
		} else {
			tr.Spec.Params = append(tr.Spec.Params, selfReference(p, in.spec.Params))
		}
	}
	return tr
}

// selfReference is a param whose value is the reference to itself, of the
// declared type.
func selfReference(p v1.Param, declared v1.ParamSpecs) v1.Param {
	t := p.Value.Type
	var props []string
	for _, d := range declared {
		if d.Name == p.Name {
			t = d.Type
			props = sortedKeys(d.Properties)
		}
	}
	switch t {
	case v1.ParamTypeArray:
		return v1.Param{Name: p.Name, Value: *v1.NewStructuredValues("$(params." + p.Name + "[*])")}
	case v1.ParamTypeObject:
		obj := map[string]string{}
		for k := range p.Value.ObjectVal {
			props = append(props, k)
		}
		for _, k := range props {
			obj[k] = "$(params." + p.Name + "." + k + ")"
		}
		return v1.Param{Name: p.Name, Value: *v1.NewObject(obj)}
	}
	return v1.Param{Name: p.Name, Value: *v1.NewStructuredValues("$(params." + p.Name + ")")}
}

// workspaceDeclarations are the spec's declarations plus a bare one for each
// binding the spec does not declare (workspace.Apply propagates them), after
// checking the bindings as the TaskRun reconciler does (ValidateBindings).
func (c *compiler) workspaceDeclarations(in taskInput) ([]v1.WorkspaceDeclaration, error) {
	decls := in.spec.Workspaces
	if in.tr.Spec.TaskSpec != nil {
		// Embedded specs may use workspaces they do not declare.
		var bound []v1.WorkspaceDeclaration
		for _, b := range in.tr.Spec.Workspaces {
			bound = append(bound, v1.WorkspaceDeclaration{Name: b.Name})
		}
		decls = append(bound, decls...)
	}
	if err := workspace.ValidateBindings(c.ctx, decls, in.tr.Spec.Workspaces); err != nil {
		return nil, in.trAt.errorf("workspaces", "%v", err)
	}
	out := append([]v1.WorkspaceDeclaration{}, in.spec.Workspaces...)
	for _, b := range in.tr.Spec.Workspaces {
		declared := false
		for _, d := range out {
			declared = declared || d.Name == b.Name
		}
		if !declared {
			out = append(out, v1.WorkspaceDeclaration{Name: b.Name})
		}
	}
	return out, nil
}

// workspacesUsed are the workspaces a spec's steps, sidecars and
// stepTemplate refer to, sorted.
func workspacesUsed(ts v1.TaskSpec) ([]string, error) {
	used, err := workspace.FindWorkspacesUsedByTask(ts)
	if err != nil {
		return nil, err
	}
	return used.List(), nil
}

// checkTaskSpec rejects what the plan cannot express yet.
func checkTaskSpec(at where, spec *v1.TaskSpec) error {
	for i, s := range spec.Steps {
		if len(s.VolumeDevices) > 0 {
			return unsupported(at, fmt.Sprintf("steps[%d].volumeDevices", i), "volume devices")
		}
	}
	return nil
}

// refersToTasks tells whether a value uses task results or statuses, which
// are only known at run time.
func refersToTasks(v v1.ParamValue) bool {
	for _, s := range append([]string{v.StringVal}, v.ArrayVal...) {
		if strings.Contains(s, "$(tasks.") {
			return true
		}
	}
	for _, s := range v.ObjectVal {
		if strings.Contains(s, "$(tasks.") {
			return true
		}
	}
	return false
}

// workspaceContext adds what Tekton's ApplyWorkspaces knows of each bound
// workspace before the pod exists: $(workspaces.W.claim), the claim behind
// it or "", and $(workspaces.W.volume), the name of its volume in the run's
// pod (podlayout.WorkspaceVolume: "ws-", the plan volume and the run's
// suffix, where Tekton generates "ws-" and a random suffix).
func workspaceContext(t *planpb.Task, bindings []v1.WorkspaceBinding, uid string) {
	volumes := map[string]string{}
	for _, b := range t.Workspaces {
		volumes[b.GetName()] = b.GetVolume()
	}
	for _, b := range bindings {
		claim := ""
		if b.PersistentVolumeClaim != nil {
			claim = b.PersistentVolumeClaim.ClaimName
		}
		t.Context["workspaces."+b.Name+".claim"] = claim
		t.Context["workspaces."+b.Name+".volume"] = podlayout.WorkspaceVolume(volumes[b.Name], uid)
	}
}
