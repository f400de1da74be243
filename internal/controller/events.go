package controller

import (
	"context"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Event reasons, as Tekton's controller gives them
// (pkg/reconciler/events/k8sevent): a run's Running transitions use the
// condition's own reason ("Running"); a cancelled run is "Failed", its
// message saying it was cancelled.
const (
	EventReasonStarted   = "Started"
	EventReasonSucceeded = "Succeeded"
	EventReasonFailed    = "Failed"
)

// eventAction is the events.k8s.io/v1 action, which that API requires
// (Tekton's core/v1 Events have none).
const eventAction = "Reconcile"

// maxNote is the longest note events.k8s.io/v1 accepts: a longer one
// (a long compile error) would lose the whole Event.
const maxNote = 1024

// emit is Tekton's EmitK8sEvents (pkg/reconciler/events/k8sevent) on
// controller-runtime's recorder: an Event whenever the Succeeded condition
// changes — Started when it first appears Unknown, then the condition's
// reason and message while Unknown (Running, with Tekton's "Tasks
// Completed: …" message), Succeeded or Failed with its message when done.
func emit(rec events.EventRecorder, before, after *apis.Condition, obj runtime.Object) {
	if rec == nil || after == nil || equality.Semantic.DeepEqual(before, after) {
		return
	}
	switch after.Status {
	case corev1.ConditionTrue:
		event(rec, obj, corev1.EventTypeNormal, EventReasonSucceeded, after.Message)
	case corev1.ConditionFalse:
		event(rec, obj, corev1.EventTypeWarning, EventReasonFailed, after.Message)
	case corev1.ConditionUnknown:
		if before == nil {
			event(rec, obj, corev1.EventTypeNormal, EventReasonStarted, "")
		} else {
			event(rec, obj, corev1.EventTypeNormal, after.Reason, after.Message)
		}
	}
}

func event(rec events.EventRecorder, obj runtime.Object, typ, reason, msg string) {
	if len(msg) > maxNote {
		msg = msg[:maxNote-3] + "..."
	}
	rec.Eventf(obj, nil, typ, reason, eventAction, "%s", msg)
}

// transition is called after a PipelineRun's status was written, cur
// before and next after: it emits the run's Events and, when the run has
// just ended, counts its outcome.
//
// Tekton's first reconcile emits Started as soon as it initialises the
// conditions and then the change to whatever the reconcile ends with
// (Running, or Failed for an invalid run): pod-runner writes both in one
// update, so both Events are emitted here.
func (r *Reconciler) transition(ctx context.Context, cur, next *v1.PipelineRun) {
	after := next.Status.GetCondition(apis.ConditionSucceeded)
	if r.emitTransition(cur.Status.GetCondition(apis.ConditionSucceeded), after, next) {
		r.metrics().runEnded(next, after)
		// The reconcile's logger names the run (namespace, name).
		log.FromContext(ctx).Info("run ended", "status", string(after.Status), "reason", after.Reason)
	}
}

// emitTransition emits the Events of obj's Succeeded condition going from
// before to after, and tells whether the run has just ended.
func (r *Reconciler) emitTransition(before, after *apis.Condition, obj runtime.Object) bool {
	if after == nil {
		return false
	}
	if before == nil {
		started := &apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionUnknown, Reason: v1.PipelineRunReasonStarted.String()}
		emit(r.Recorder, nil, started, obj)
		before = started
		if after.IsUnknown() && after.Reason == started.Reason {
			before = after
		}
	}
	emit(r.Recorder, before, after, obj)
	return !after.IsUnknown() && before.IsUnknown()
}
