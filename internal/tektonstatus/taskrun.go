package tektonstatus

import (
	"strings"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/pod"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/changeset"
	"knative.dev/pkg/kmeta"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

var taskRunTypeMeta = metav1.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: pipeline.TaskRunControllerName}

// childTaskRun is the TaskRun the PipelineRun reconciler creates for a
// pipeline task (createTaskRun), defaulted by the webhook, with the status
// the TaskRun reconciler writes.
func (b *builder) childTaskRun(pr *v1.PipelineRun, ts *planpb.TaskStatus) *v1.TaskRun {
	name := ts.GetName()
	t := b.tasks[name]
	if t == nil {
		t = &planpb.Task{Name: name, TaskRunName: ts.GetTaskRunName()}
	}
	pt := b.pipelineTask(name)
	final := ts.GetFinally() || b.final[name]
	trSpec := pr.GetTaskRunSpec(b.pipelineTaskName(name))

	tr := &v1.TaskRun{
		TypeMeta: taskRunTypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            taskRunName(t, ts),
			Namespace:       pr.Namespace,
			OwnerReferences: []metav1.OwnerReference{*kmeta.NewControllerRef(pr)},
			Labels:          b.childLabels(pr, t, pt, trSpec),
			Annotations:     b.childAnnotations(pr, t, pt, trSpec),
		},
		Spec: v1.TaskRunSpec{
			Retries:            int(t.GetRetries()),
			Params:             params(ts.GetParams()),
			ServiceAccountName: trSpec.ServiceAccountName,
			PodTemplate:        trSpec.PodTemplate,
			StepSpecs:          trSpec.StepSpecs,
			SidecarSpecs:       trSpec.SidecarSpecs,
			ComputeResources:   trSpec.ComputeResources,
			Timeout:            b.childTimeout(pr, t, pt, final, trSpec),
			Workspaces:         b.childWorkspaces(pr, t, pt),
		},
	}
	switch {
	case pt != nil && pt.TaskRef != nil:
		tr.Spec.TaskRef = pt.TaskRef
	case pt != nil && pt.TaskSpec != nil:
		tr.Spec.TaskSpec = b.propagate(name, pt.TaskSpec.TaskSpec.DeepCopy())
	case t.GetTaskRefName() != "":
		tr.Spec.TaskRef = &v1.TaskRef{Name: t.GetTaskRefName()}
	default:
		tr.Spec.TaskSpec = b.taskSpec(name)
	}
	if tr.Spec.TaskRef != nil && t.GetTaskRefName() != "" {
		// The TaskRun reconciler labels runs of a referenced Task (storeTaskSpecAndMergeMeta).
		tr.Labels[pipeline.TaskLabelKey] = t.GetTaskRefName()
	}
	tr.SetDefaults(b.ctx)
	setCancelSpec(tr, ts.GetCondition())
	tr.Status = b.taskRunStatus(name, ts)
	return tr
}

// standaloneTaskRun is the TaskRun of a TaskRun plan.
func (b *builder) standaloneTaskRun() *v1.TaskRun {
	tr := &v1.TaskRun{}
	if b.c.TaskRun != nil {
		tr = b.c.TaskRun.DeepCopy()
	}
	tr.TypeMeta = taskRunTypeMeta
	if tr.Name == "" {
		tr.Name = b.plan.GetName()
	}
	if tr.Namespace == "" {
		tr.Namespace = b.plan.GetNamespace()
	}
	if tr.UID == "" {
		tr.UID = types.UID(b.plan.GetUid())
	}
	var ts *planpb.TaskStatus
	if tasks := b.st.GetTasks(); len(tasks) > 0 {
		ts = tasks[0]
	}
	var t *planpb.Task
	if tasks := b.plan.GetTasks(); len(tasks) > 0 {
		t = tasks[0]
	}
	// Task labels propagate to the TaskRun; the TaskRun's own win.
	labels := map[string]string{}
	for k, v := range t.GetLabels() {
		labels[k] = v
	}
	for k, v := range tr.Labels {
		labels[k] = v
	}
	if tr.Spec.TaskRef != nil && t.GetTaskRefName() != "" {
		labels[pipeline.TaskLabelKey] = t.GetTaskRefName()
	}
	tr.Labels = labels
	if tr.Annotations == nil {
		tr.Annotations = map[string]string{}
	}
	for k, v := range t.GetAnnotations() {
		if _, ok := tr.Annotations[k]; !ok {
			tr.Annotations[k] = v
		}
	}
	tr.Annotations[pod.ReleaseAnnotation] = changeset.Get()
	cond := ts.GetCondition()
	if ts == nil {
		cond = b.st.GetCondition()
	}
	if tr.Spec.Status == "" && cond.GetReason() == v1.TaskRunReasonCancelled.String() {
		tr.Spec.Status = v1.TaskRunSpecStatusCancelled
	}
	if ts == nil {
		tr.Status = v1.TaskRunStatus{Status: conditions(cond), TaskRunStatusFields: v1.TaskRunStatusFields{
			PodName: b.opts.PodName, StartTime: metaTime(b.st.GetStartTime()), CompletionTime: metaTime(b.st.GetCompletionTime()),
			TaskSpec: b.taskSpec(t.GetName()), Provenance: b.provenance("")}}
		return tr
	}
	tr.Status = b.taskRunStatus(ts.GetName(), ts)
	return tr
}

// taskRunStatus is the TaskRun's status: the last attempt, with earlier
// attempts in retriesStatus as retryTaskRun archives them.
func (b *builder) taskRunStatus(name string, ts *planpb.TaskStatus) v1.TaskRunStatus {
	spec := b.propagate(name, b.taskSpec(name))
	if spec == nil && len(b.c.TaskSpecs) == 1 {
		for _, s := range b.c.TaskSpecs {
			spec = s.DeepCopy()
		}
	}
	names := b.stepNames(name, spec)
	stepContainer, sidecarContainer := b.containers(name)
	results := sortedResults(ts.GetResults())
	status := v1.TaskRunStatus{
		Status: conditions(ts.GetCondition()),
		TaskRunStatusFields: v1.TaskRunStatusFields{
			PodName:        b.opts.PodName,
			StartTime:      metaTime(ts.GetStartTime()),
			CompletionTime: metaTime(ts.GetCompletionTime()),
			Steps:          b.stepSources(name, names, stepStates(names, ts.GetSteps(), ts.GetCondition(), ts.GetStartTime(), ts.GetCompletionTime(), b.opts.PodName, stepContainer)),
			Results:        taskRunResults(results),
			Sidecars:       sidecarStates(ts.GetSidecars(), ts.GetStartTime(), ts.GetCompletionTime(), sidecarContainer),
			Artifacts:      taskArtifacts(ts),
			TaskSpec:       b.runSpec(name, spec, ts.GetParams(), len(ts.GetRetries())),
			Provenance:     b.provenance(b.refSourceKey(name)),
		},
	}
	b.finishAttempt(&status, results)
	for i, a := range ts.GetRetries() {
		attempt := v1.TaskRunStatus{
			Status: conditions(a.GetCondition()),
			TaskRunStatusFields: v1.TaskRunStatusFields{
				PodName:        b.opts.PodName,
				StartTime:      metaTime(a.GetStartTime()),
				CompletionTime: metaTime(a.GetCompletionTime()),
				Steps:          b.stepSources(name, names, stepStates(names, a.GetSteps(), a.GetCondition(), a.GetStartTime(), a.GetCompletionTime(), b.opts.PodName, stepContainer)),
				TaskSpec:       b.runSpec(name, spec, ts.GetParams(), i),
				Provenance:     b.provenance(b.refSourceKey(name)),
			},
		}
		// An earlier attempt's results are not known (the engine keeps the last).
		b.finishAttempt(&attempt, nil)
		status.RetriesStatus = append(status.RetriesStatus, attempt)
	}
	return status
}

// stepNames are the task's step names in order, as the pod names them.
func (b *builder) stepNames(name string, spec *v1.TaskSpec) []string {
	var names []string
	if t := b.tasks[name]; t != nil && len(t.GetSpec().GetSteps()) > 0 {
		for i, s := range t.GetSpec().GetSteps() {
			names = append(names, stepName(s.GetName(), i))
		}
		return names
	}
	if spec != nil {
		for i, s := range spec.Steps {
			names = append(names, stepName(s.Name, i))
		}
	}
	return names
}

// childLabels are combineTaskRunAndTaskSpecLabels; the plan's labels, when
// the compiler set them, take precedence.
func (b *builder) childLabels(pr *v1.PipelineRun, t *planpb.Task, pt *v1.PipelineTask, trSpec v1.PipelineTaskRunSpec) map[string]string {
	labels := map[string]string{}
	for k, v := range t.GetLabels() {
		labels[k] = v
	}
	if trSpec.Metadata != nil {
		addMissing(labels, trSpec.Metadata.Labels)
	}
	addMissing(labels, pr.Labels)
	addMissing(labels, map[string]string{
		pipeline.PipelineRunLabelKey:    pr.Name,
		pipeline.PipelineRunUIDLabelKey: string(pr.UID),
		pipeline.PipelineTaskLabelKey:   t.GetName(),
	})
	if _, ok := labels[pipeline.MemberOfLabelKey]; !ok {
		if b.final[t.GetName()] {
			labels[pipeline.MemberOfLabelKey] = v1.PipelineFinallyTasks
		} else if b.tasks[t.GetName()] != nil {
			labels[pipeline.MemberOfLabelKey] = v1.PipelineTasks
		}
	}
	if pt != nil && pt.TaskSpec != nil {
		addMissing(labels, pt.TaskSpec.Metadata.Labels)
	}
	return labels
}

// childAnnotations are combineTaskRunAndTaskSpecAnnotations plus the onError
// annotation createTaskRun adds.
func (b *builder) childAnnotations(pr *v1.PipelineRun, t *planpb.Task, pt *v1.PipelineTask, trSpec v1.PipelineTaskRunSpec) map[string]string {
	ann := map[string]string{}
	for k, v := range t.GetAnnotations() {
		ann[k] = v
	}
	if trSpec.Metadata != nil {
		addMissing(ann, trSpec.Metadata.Annotations)
	}
	addMissing(ann, pr.Annotations)
	if pt != nil && pt.TaskSpec != nil {
		addMissing(ann, pt.TaskSpec.Metadata.Annotations)
	}
	if t.GetOnErrorContinue() {
		ann[v1.PipelineTaskOnErrorAnnotation] = string(v1.PipelineTaskContinue)
	}
	// updateLabelsAndAnnotations: the release of the controller that ran it.
	ann[pod.ReleaseAnnotation] = changeset.Get()
	return ann
}

// addMissing is addMetadataByPrecedence: keys already set win.
func addMissing(dst, src map[string]string) {
	for k, v := range src {
		if _, ok := dst[k]; !ok {
			dst[k] = v
		}
	}
}

// childTimeout is the TaskRun timeout createTaskRun sets: the PipelineTask's,
// else the PipelineRun's tasks (finally) timeout when it exceeds the default
// or is "no timeout", overridden by taskRunSpecs[].timeout. Defaulting fills
// the rest.
func (b *builder) childTimeout(pr *v1.PipelineRun, t *planpb.Task, pt *v1.PipelineTask, final bool, trSpec v1.PipelineTaskRunSpec) *metav1.Duration {
	var timeout *metav1.Duration
	switch {
	case pt != nil && pt.Timeout != nil:
		timeout = pt.Timeout.DeepCopy()
	case t.GetTimeout() != nil:
		timeout = &metav1.Duration{Duration: t.GetTimeout().AsDuration()}
	default:
		prTimeout := pr.TasksTimeout()
		if final {
			prTimeout = pr.FinallyTimeout()
		}
		defaultTimeout := time.Duration(config.FromContextOrDefaults(b.ctx).Defaults.DefaultTimeoutMinutes) * time.Minute
		if prTimeout != nil && (prTimeout.Duration == config.NoTimeoutDuration || prTimeout.Duration > defaultTimeout) {
			timeout = prTimeout.DeepCopy()
		}
	}
	if trSpec.Timeout != nil {
		timeout = trSpec.Timeout.DeepCopy()
	}
	return timeout
}

// childWorkspaces are getTaskrunWorkspaces: each of the task's workspaces
// bound to a copy of the PipelineRun binding, with the plan's combined and
// resolved subPath. A volumeClaimTemplate stays as it is: no claim is
// created for it.
func (b *builder) childWorkspaces(pr *v1.PipelineRun, t *planpb.Task, pt *v1.PipelineTask) []v1.WorkspaceBinding {
	bindings := map[string]v1.WorkspaceBinding{}
	for _, wb := range pr.Spec.Workspaces {
		bindings[wb.Name] = wb
	}
	var out []v1.WorkspaceBinding
	for _, w := range t.GetWorkspaces() {
		pipelineWS := w.GetVolume()
		if pt != nil {
			for _, ptw := range pt.Workspaces {
				if ptw.Name == w.GetName() {
					pipelineWS = ptw.Workspace
					if pipelineWS == "" {
						pipelineWS = ptw.Name
					}
				}
			}
		}
		wb, ok := bindings[pipelineWS]
		if !ok {
			continue
		}
		binding := *wb.DeepCopy()
		binding.Name = w.GetName()
		binding.SubPath = w.GetSubPath()
		out = append(out, binding)
	}
	return out
}

// setCancelSpec records on a TaskRun the spec.status and statusMessage its
// PipelineRun patched in to cancel it (cancelPipelineTaskRunsForTaskNames,
// timeoutPipelineTasksForTaskNames).
func setCancelSpec(tr *v1.TaskRun, c *planpb.Condition) {
	if c.GetReason() != v1.TaskRunReasonCancelled.String() {
		return
	}
	tr.Spec.Status = v1.TaskRunSpecStatusCancelled
	for _, msg := range []v1.TaskRunSpecStatusMessage{v1.TaskRunCancelledByPipelineMsg, v1.TaskRunCancelledByPipelineTimeoutMsg} {
		if strings.HasSuffix(c.GetMessage(), string(msg)) {
			tr.Spec.StatusMessage = msg
		}
	}
}

// refSourceKey is the key of a plan task's Task in Compiled.RefSources:
// its pipeline task's name, or "" for the task of a TaskRun plan.
func (b *builder) refSourceKey(name string) string {
	if b.c.PipelineRun == nil {
		return ""
	}
	return b.pipelineTaskName(name)
}

// stepSources gives each step of plan task name that is a resolved
// StepAction the refSource its resolver reported, in its provenance, as
// Tekton's GetStepActionsData records it (names are the steps', in order).
func (b *builder) stepSources(name string, names []string, steps []v1.StepState) []v1.StepState {
	sources := b.c.StepRefSources[name]
	if len(sources) == 0 {
		return steps
	}
	byName := map[string]*v1.RefSource{}
	for i, src := range sources {
		if src != nil && i < len(names) {
			byName[names[i]] = src
		}
	}
	for i := range steps {
		if src := byName[steps[i].Name]; src != nil {
			steps[i].Provenance = &v1.Provenance{RefSource: src.DeepCopy()}
		}
	}
	return steps
}
