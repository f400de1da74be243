package tektonstatus

import (
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/substitution"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// pipelineRun is the PipelineRun as submitted and defaulted, with the labels
// the reconciler adds and the status it would have written.
func (b *builder) pipelineRun() *v1.PipelineRun {
	pr := &v1.PipelineRun{}
	if b.c.PipelineRun != nil {
		pr = b.c.PipelineRun.DeepCopy()
	}
	pr.TypeMeta = metav1.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: pipeline.PipelineRunControllerName}
	if pr.Name == "" {
		pr.Name = b.plan.GetName()
	}
	if pr.Namespace == "" {
		pr.Namespace = b.plan.GetNamespace()
	}
	if pr.UID == "" {
		pr.UID = types.UID(b.plan.GetUid())
	}
	// storePipelineSpecAndMergeMeta / propagatePipelineNameLabelToPipelineRun.
	if name := b.plan.GetPipelineName(); name != "" && pr.Labels[pipeline.PipelineLabelKey] == "" {
		if pr.Labels == nil {
			pr.Labels = map[string]string{}
		}
		pr.Labels[pipeline.PipelineLabelKey] = name
	}
	b.inferPipelineRunSpecStatus(pr)

	st := b.st
	pr.Status = v1.PipelineRunStatus{
		Status: conditions(st.GetCondition()),
		PipelineRunStatusFields: v1.PipelineRunStatusFields{
			StartTime:      metaTime(st.GetStartTime()),
			CompletionTime: metaTime(st.GetCompletionTime()),
			Results:        pipelineRunResults(st.GetResults()),
			Provenance:     b.provenance(""),
		},
	}
	if b.c.PipelineSpec != nil {
		pr.Status.PipelineSpec = b.c.PipelineSpec.DeepCopy()
	}
	pr.Status.ChildReferences, pr.Status.SkippedTasks = b.childrenAndSkipped()
	pr.Status.FinallyStartTime = b.finallyStartTime()
	return pr
}

// inferPipelineRunSpecStatus sets spec.status to the cancellation that must
// have been asked for: in Tekton a PipelineRun only ends "Cancelled" or
// "...RunningFinally" because someone set spec.status.
func (b *builder) inferPipelineRunSpecStatus(pr *v1.PipelineRun) {
	if pr.Spec.Status != "" {
		return
	}
	c := b.st.GetCondition()
	switch c.GetReason() {
	case v1.PipelineRunReasonCancelled.String():
		// Graceful requests leave their mark on the tasks they skipped.
		switch {
		case b.skippedFor(v1.GracefullyStoppedSkip):
			pr.Spec.Status = v1.PipelineRunSpecStatusStoppedRunFinally
		case b.skippedFor(v1.GracefullyCancelledSkip):
			pr.Spec.Status = v1.PipelineRunSpecStatusCancelledRunFinally
		default:
			pr.Spec.Status = v1.PipelineRunSpecStatusCancelled
		}
	case v1.PipelineRunReasonCancelledRunningFinally.String():
		pr.Spec.Status = v1.PipelineRunSpecStatusCancelledRunFinally
	case v1.PipelineRunReasonStoppedRunningFinally.String():
		pr.Spec.Status = v1.PipelineRunSpecStatusStoppedRunFinally
	}
}

func (b *builder) skippedFor(reason v1.SkippingReason) bool {
	for _, s := range b.st.GetSkipped() {
		if s.GetReason() == string(reason) {
			return true
		}
	}
	return false
}

// childrenAndSkipped are status.childReferences and status.skippedTasks, as
// GetChildReferences and GetSkippedTasks build them: children in pipeline
// order (tasks, then finally), with the when expressions of the PipelineTask
// after the results of done tasks were applied.
func (b *builder) childrenAndSkipped() ([]v1.ChildStatusReference, []v1.SkippedTask) {
	ran := map[string]*planpb.TaskStatus{}
	for _, ts := range b.st.GetTasks() {
		ran[ts.GetName()] = ts
	}
	skipped := map[string]bool{}
	for _, s := range b.st.GetSkipped() {
		skipped[s.GetName()] = true
	}
	r := newReplacer(b.st)
	b.matrixResults(r)
	var children []v1.ChildStatusReference
	for _, t := range append(append([]*planpb.Task(nil), b.plan.GetTasks()...), b.plan.GetFinally()...) {
		ts := ran[t.GetName()]
		if skipped[b.pipelineTaskName(t.GetName())] || (ts != nil && taskDone(ts)) {
			r.resolve(b.resolvedPipelineTask(t))
		}
		if ts == nil {
			continue
		}
		if t.GetChild() != nil {
			// getChildRefForChildPipelineRun
			children = append(children, v1.ChildStatusReference{
				TypeMeta:         runtime.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: pipeline.PipelineRunControllerName},
				Name:             taskRunName(t, ts),
				DisplayName:      r.text(t.GetDisplayName()),
				PipelineTaskName: b.pipelineTaskName(t.GetName()),
				WhenExpressions:  r.when(t.GetWhen()),
			})
			continue
		}
		children = append(children, v1.ChildStatusReference{
			TypeMeta:         runtime.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: pipeline.TaskRunControllerName},
			Name:             taskRunName(t, ts),
			DisplayName:      b.matrixDisplayName(t, displayName(r.text(t.GetDisplayName()), ts.GetParams()), ts.GetParams()),
			PipelineTaskName: b.pipelineTaskName(t.GetName()),
			WhenExpressions:  r.when(t.GetWhen()),
		})
	}
	// Tasks that ran but are not in the plan (should not happen) still get a reference.
	for _, ts := range b.st.GetTasks() {
		if b.tasks[ts.GetName()] == nil {
			children = append(children, v1.ChildStatusReference{
				TypeMeta:         runtime.TypeMeta{APIVersion: v1.SchemeGroupVersion.String(), Kind: pipeline.TaskRunControllerName},
				Name:             ts.GetTaskRunName(),
				PipelineTaskName: ts.GetName(),
			})
		}
	}
	var skips []v1.SkippedTask
	for _, s := range b.st.GetSkipped() {
		skips = append(skips, v1.SkippedTask{Name: s.GetName(), Reason: v1.SkippingReason(s.GetReason()), WhenExpressions: r.when(s.GetWhen())})
	}
	return children, skips
}

// resolvedPipelineTask is the PipelineTask with the plan's params and when
// expressions (pipeline params already applied), for result reference lookup.
func (b *builder) resolvedPipelineTask(t *planpb.Task) *v1.PipelineTask {
	pt := b.pipelineTask(t.GetName())
	if pt == nil {
		pt = &v1.PipelineTask{Name: t.GetName()}
	}
	pt.Params = params(t.GetParams())
	pt.When = whenExpressions(t.GetWhen())
	pt.DisplayName = t.GetDisplayName()
	return pt
}

// displayName is getDisplayName: the PipelineTask's displayName with the
// TaskRun's string params applied.
func displayName(name string, ps []*planpb.Param) string {
	if name == "" {
		return ""
	}
	repl := map[string]string{}
	for _, p := range ps {
		if p.GetValue().GetType() == planpb.ValueType_STRING {
			repl[v1.ParamsPrefix+"."+p.GetName()] = p.GetValue().GetStringValue()
		}
	}
	return substitution.ApplyReplacements(name, repl)
}

func taskRunName(t *planpb.Task, ts *planpb.TaskStatus) string {
	if n := ts.GetTaskRunName(); n != "" {
		return n
	}
	return t.GetTaskRunName()
}

// taskDone tells whether a task's condition is final.
func taskDone(ts *planpb.TaskStatus) bool {
	s := ts.GetCondition().GetStatus()
	return s == "True" || s == "False"
}

// finallyStartTime is when the first finally task started. Tekton stamps
// it when it schedules the finally tasks, also when all of them are then
// skipped; the engine's status does not record that moment, so a run whose
// finally tasks were all skipped has none.
func (b *builder) finallyStartTime() *metav1.Time {
	var first *metav1.Time
	for _, ts := range b.st.GetTasks() {
		if !ts.GetFinally() && !b.final[ts.GetName()] {
			continue
		}
		if t := metaTime(firstStart(ts)); t != nil && (first == nil || t.Before(first)) {
			first = t
		}
	}
	return first
}
