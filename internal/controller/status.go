package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/tektonstatus"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// writeStatus reads the supervisor's log and writes the PipelineRun's and
// its TaskRuns' status from it. It reports whether the run is done.
//
// The log's live follower (follow.go) only makes status come sooner: the
// controller keeps no state it could not rebuild from the Pod alone, so a
// restart loses nothing.
//
// end, when set, is why the controller ends the run (podFailure): it
// ends it unless the supervisor already published a final status.
func (r *Reconciler) writeStatus(ctx context.Context, pr *v1.PipelineRun, c *compile.Compiled, pod *corev1.Pod, end *ending) (bool, error) {
	next, done, err := r.nextStatus(ctx, pr, client.ObjectKeyFromObject(pr), c, pod, end, delegatedOwner)
	if err != nil {
		return false, err
	}
	return done, r.updatePipelineRun(ctx, pr, next)
}

// nextStatus is writeStatus without the PipelineRun's write: the status
// pr gets (pr is not changed) and whether the run is done. The TaskRuns of
// the tasks that started are written on the way, child, when set,
// adjusting each one first (a CustomRun's group gives them its owner).
// owner is the object the Pod's log events wake.
func (r *Reconciler) nextStatus(ctx context.Context, pr *v1.PipelineRun, owner types.NamespacedName, c *compile.Compiled, pod *corev1.Pod, end *ending, child func(*v1.TaskRun)) (*v1.PipelineRun, bool, error) {
	st, err := r.runStatus(ctx, pod, owner)
	if err != nil {
		return nil, false, err
	}
	if st == nil {
		next := pr.DeepCopy()
		if pr.Status.StartTime == nil {
			next.Status.InitializeConditions(r.clock())
		}
		if podActive(pod) && end == nil {
			// Nothing published yet: the run has started, no more is known.
			return next, false, nil
		}
		next.Status.PipelineSpec = c.PipelineSpec.DeepCopy()
		if end != nil {
			end.mark(next, r.clock().Now())
		} else {
			markPodEnded(next, pod, r.clock().Now())
		}
		if pr.IsCancelled() {
			markCancelled(next, r.clock().Now())
		}
		return next, true, nil
	}

	list := tektonstatus.ListWith(c, st, tektonstatus.ListOptions{PodName: pod.Name, Config: c.Config,
		ContainerStatuses: pod.Status.ContainerStatuses})
	want, ok := list.Items[0].Object.(*v1.PipelineRun)
	if !ok {
		return nil, false, fmt.Errorf("tektonstatus gave %T for the run", list.Items[0].Object)
	}
	next := pr.DeepCopy()
	next.Status = want.Status
	mergeMeta(next, want)
	if pr.Status.StartTime != nil {
		// Tekton's startTime is when the run was first reconciled.
		next.Status.StartTime = pr.Status.StartTime
	}
	idsPending := false
	// The API server gives a child PipelineRun its uid: the objects under
	// it name that one as their owner, not the compiled one.
	uids := map[types.UID]types.UID{}
	for _, it := range list.Items[1:] {
		if cpr, ok := it.Object.(*v1.PipelineRun); ok {
			if cpr.Status.StartTime == nil {
				continue
			}
			ownedBy(&cpr.ObjectMeta, uids)
			notControlledByRun(cpr.OwnerReferences)
			uid, err := r.applyChildPipelineRun(ctx, cpr)
			if err != nil {
				return nil, false, err
			}
			uids[cpr.UID] = uid
			continue
		}
		tr, ok := it.Object.(*v1.TaskRun)
		if !ok {
			continue
		}
		ownedBy(&tr.ObjectMeta, uids)
		idsPending = idsPending || containerIDsPending(tr)
		ending := end != nil && st.GetCompletionTime() == nil
		if tr.Status.StartTime == nil && tr.Status.GetCondition(apis.ConditionSucceeded) == nil && (!ending || tr.Name != end.taskRun) {
			// Tekton creates a task's TaskRun when it schedules it.
			continue
		}
		if ending {
			end.markTaskRun(tr, r.clock().Now())
		}
		if child != nil {
			child(tr)
		}
		if err := r.applyTaskRun(ctx, tr); err != nil {
			return nil, false, err
		}
	}
	// A run faster than the kubelet's first report of its containers
	// would end with steps that lack their containerID (Tekton's TaskRuns
	// have it): it is done once the kubelet has told them, or the Pod
	// ended, or idsWait passed (a container that never started has none).
	done := st.GetCompletionTime() != nil &&
		(!idsPending || !podActive(pod) || r.clock().Since(st.GetCompletionTime().AsTime()) > idsWait)
	if !done && end != nil {
		end.mark(next, r.clock().Now())
		done = true
	}
	if !done && !podActive(pod) {
		// The Pod ended before the supervisor published a final status.
		markPodEnded(next, pod, r.clock().Now())
		done = true
	}
	if pr.IsCancelled() && done {
		markCancelled(next, r.clock().Now())
	}
	if !done {
		holdCondition(next, pr)
	}
	return next, done, nil
}

// idsWait bounds how long a finished run waits for the kubelet to report
// its step containers (it does so within its one-second relist).
const idsWait = 5 * time.Second

// containerIDsPending tells whether a step of tr ran in a container the
// kubelet has not reported yet (its containerID comes from the Pod's
// status).
func containerIDsPending(tr *v1.TaskRun) bool {
	for _, s := range tr.Status.Steps {
		if t := s.Terminated; t != nil && s.TerminationReason != "Skipped" && t.ContainerID == "" {
			return true
		}
	}
	return false
}

// delegatedOwner makes the run a TaskRun's owner but not its controller.
// Tekton's own PipelineRun controller (v1.15.1) reconciles the controller
// of every TaskRun that changes, without checking that run's
// spec.managedBy: with a controller reference, each of our TaskRun writes
// would have Tekton take the delegated run over and make TaskRuns of its
// own. An owner reference without the controller flag still has the
// garbage collector delete the TaskRuns with their run.
// A child PipelineRun (pipelines in pipelines) names its parent the same
// way, for the same reason.
func delegatedOwner(tr *v1.TaskRun) { notControlledByRun(tr.OwnerReferences) }

func notControlledByRun(owners []metav1.OwnerReference) {
	for i := range owners {
		if owners[i].Kind == pipeline.PipelineRunControllerName {
			owners[i].Controller = nil
		}
	}
}

// ChildRun tells whether pr is the status-only child PipelineRun of a
// pipeline task that runs a pipeline: its parent's Pod runs it, so it is
// never reconciled as a run of its own.
func ChildRun(pr *v1.PipelineRun) bool {
	for _, o := range pr.OwnerReferences {
		if o.Kind == pipeline.PipelineRunControllerName {
			return true
		}
	}
	return false
}

// ownedBy replaces the compiled uids of child PipelineRuns in meta's owner
// references and tekton.dev/pipelineRunUID label by the ones they got.
func ownedBy(meta *metav1.ObjectMeta, uids map[types.UID]types.UID) {
	for i, o := range meta.OwnerReferences {
		if uid, ok := uids[o.UID]; ok {
			meta.OwnerReferences[i].UID = uid
		}
	}
	if uid, ok := uids[types.UID(meta.Labels[pipeline.PipelineRunUIDLabelKey])]; ok {
		meta.Labels[pipeline.PipelineRunUIDLabelKey] = string(uid)
	}
}

// applyChildPipelineRun creates a child PipelineRun, delegated to this
// controller, when it does not exist yet, and writes its status. It gives
// the run's uid.
func (r *Reconciler) applyChildPipelineRun(ctx context.Context, want *v1.PipelineRun) (types.UID, error) {
	managed := ManagedBy
	want.Spec.ManagedBy = &managed
	cur, err := getOrCreate(ctx, r.Client, client.ObjectKeyFromObject(want), &v1.PipelineRun{}, func() *v1.PipelineRun {
		pr := want.DeepCopy()
		pr.Status = v1.PipelineRunStatus{}
		return pr
	})
	if err != nil {
		return "", fmt.Errorf("child pipelinerun %s: %w", want.Name, err)
	}
	if equality.Semantic.DeepEqual(cur.Status, want.Status) {
		return cur.UID, nil
	}
	next := cur.DeepCopy()
	next.Status = want.Status
	if err := r.Client.Status().Update(ctx, next); err != nil {
		return "", fmt.Errorf("child pipelinerun %s status: %w", want.Name, err)
	}
	// Its own Events, as Tekton's reconciler emits a child run's; the
	// run's metrics count its parent only.
	r.emitTransition(cur.Status.GetCondition(apis.ConditionSucceeded), next.Status.GetCondition(apis.ConditionSucceeded), next)
	return cur.UID, nil
}

// holdCondition keeps a run that is not done yet from looking done: the
// supervisor publishes a run's final condition (a timeout, say) a moment
// before its tasks' last states and its completion time, and whoever waits
// for the run to be done must then find every TaskRun final too.
func holdCondition(next, cur *v1.PipelineRun) {
	c := next.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil || c.IsUnknown() {
		return
	}
	if prev := cur.Status.GetCondition(apis.ConditionSucceeded); prev != nil && prev.IsUnknown() {
		next.Status.SetCondition(prev)
		return
	}
	next.Status.MarkRunning(string(v1.PipelineRunReasonRunning), "%s", c.Message)
}

// runStatus is the run's status as the supervisor's log tells it, nil
// while the supervisor has not started: what the log's live follower has
// read, or else the whole log read now. owner is the run the Pod's events
// wake.
func (r *Reconciler) runStatus(ctx context.Context, pod *corev1.Pod, owner types.NamespacedName) (*planpb.RunStatus, error) {
	cs := containerStatus(pod, podlayout.SupervisorContainer)
	if cs == nil || cs.State.Terminated == nil {
		// A live follower may hear the supervisor before the kubelet
		// reports it running; once it ended, the full read is the word.
		if st, ok := r.follow.status(pod, owner); ok {
			return st, nil
		}
		if cs == nil || cs.State.Running == nil {
			return nil, nil
		}
	}
	rc, err := r.Logs.Log(ctx, pod.Namespace, pod.Name, podlayout.SupervisorContainer)
	if err != nil {
		return nil, fmt.Errorf("read supervisor log of %s: %w", pod.Name, err)
	}
	defer rc.Close()
	s, err := sidecar.Read(rc)
	if err != nil {
		return nil, fmt.Errorf("supervisor log of %s: %w", pod.Name, err)
	}
	st := s.Current()
	if st == nil && cs.State.Terminated != nil {
		// No events at all: the termination message says why.
		if final, err := sidecar.ParseTermination(cs.State.Terminated.Message); err == nil {
			return final, nil
		}
	}
	return st, nil
}

// containerStatus is the status of the Pod's container name, regular or
// init (the supervisor as a native sidecar).
func containerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, statuses := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for i := range statuses {
			if statuses[i].Name == name {
				return &statuses[i]
			}
		}
	}
	return nil
}

// getOrCreate reads the object at key into cur, first creating it as
// fresh makes it (the API server gives it its uid) when it does not exist;
// a create that loses a race reads the winner's. It gives the object read
// or created.
func getOrCreate[T client.Object](ctx context.Context, c client.Client, key client.ObjectKey, cur T, fresh func() T) (T, error) {
	err := c.Get(ctx, key, cur)
	if !apierrors.IsNotFound(err) {
		return cur, err
	}
	created := fresh()
	created.SetResourceVersion("")
	created.SetUID("")
	if err = c.Create(ctx, created); apierrors.IsAlreadyExists(err) {
		return cur, c.Get(ctx, key, cur)
	}
	return created, err
}

// applyTaskRun creates the task's TaskRun when it does not exist yet and
// writes its status through the status subresource.
func (r *Reconciler) applyTaskRun(ctx context.Context, want *v1.TaskRun) error {
	managed := ManagedBy
	want.Spec.ManagedBy = &managed
	cur, err := getOrCreate(ctx, r.Client, client.ObjectKeyFromObject(want), &v1.TaskRun{}, func() *v1.TaskRun {
		tr := want.DeepCopy()
		tr.Status = v1.TaskRunStatus{}
		return tr
	})
	if err != nil {
		return fmt.Errorf("taskrun %s: %w", want.Name, err)
	}
	if cur.Spec.Status != want.Spec.Status {
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.Status, cur.Spec.StatusMessage = want.Spec.Status, want.Spec.StatusMessage
		if err := r.Client.Patch(ctx, cur, patch); err != nil {
			return fmt.Errorf("taskrun %s spec.status: %w", want.Name, err)
		}
	}
	if equality.Semantic.DeepEqual(cur.Status, want.Status) {
		return nil
	}
	first := cur.Status.StartTime == nil
	var before *apis.Condition
	if c := cur.Status.GetCondition(apis.ConditionSucceeded); c != nil {
		before = c.DeepCopy()
	}
	cur.Status = want.Status
	if err := r.Client.Status().Update(ctx, cur); err != nil {
		return fmt.Errorf("taskrun %s status: %w", want.Name, err)
	}
	r.metrics().taskRunWritten(first, cur, r.clock().Now())
	// Tekton's TaskRun reconciler emits the TaskRun's own Events (Started,
	// Running, Succeeded or Failed), which tools and Tekton's e2e tests
	// read.
	r.emitTransition(before, cur.Status.GetCondition(apis.ConditionSucceeded), cur)
	return nil
}

// mergeMeta adds the labels and annotations Tekton's reconciler gives a
// run (storePipelineSpecAndMergeMeta: tekton.dev/pipeline and the
// Pipeline's own) to next; the run's own values win.
func mergeMeta(next, want *v1.PipelineRun) {
	for k, v := range want.Labels {
		if _, ok := next.Labels[k]; !ok {
			if next.Labels == nil {
				next.Labels = map[string]string{}
			}
			next.Labels[k] = v
		}
	}
	for k, v := range want.Annotations {
		if _, ok := next.Annotations[k]; !ok {
			if next.Annotations == nil {
				next.Annotations = map[string]string{}
			}
			next.Annotations[k] = v
		}
	}
}

// updatePipelineRun writes next's labels and annotations (a merge patch,
// first, as Tekton's updateLabelsAndAnnotations) and its status, each when
// it changed.
func (r *Reconciler) updatePipelineRun(ctx context.Context, cur, next *v1.PipelineRun) error {
	if !maps.Equal(cur.Labels, next.Labels) || !maps.Equal(cur.Annotations, next.Annotations) {
		patched := cur.DeepCopy()
		patched.Labels, patched.Annotations = next.Labels, next.Annotations
		if err := r.Client.Patch(ctx, patched, client.MergeFrom(cur)); err != nil {
			return fmt.Errorf("pipelinerun %s labels and annotations: %w", cur.Name, err)
		}
		next.ResourceVersion = patched.ResourceVersion
	}
	if equality.Semantic.DeepEqual(cur.Status, next.Status) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, next); err != nil {
		return fmt.Errorf("pipelinerun %s status: %w", cur.Name, err)
	}
	r.transition(ctx, cur, next)
	return nil
}

// markPodEnded fails a run whose Pod ended (evicted, deadline, killed)
// before its supervisor published a final status.
func markPodEnded(pr *v1.PipelineRun, pod *corev1.Pod, now time.Time) {
	msg := fmt.Sprintf("pod %s ended (%s) before the run finished", pod.Name, pod.Status.Phase)
	if pod.Status.Reason != "" {
		msg += ": " + pod.Status.Reason
	}
	if pod.Status.Message != "" {
		msg += ": " + pod.Status.Message
	}
	if cs := containerStatus(pod, podlayout.SupervisorContainer); cs != nil && cs.State.Terminated != nil {
		if d := sidecar.TerminationDetail(cs.State.Terminated.Message); d != "" {
			msg += ": " + d
		}
	}
	if pod.DeletionTimestamp != nil {
		msg = fmt.Sprintf("pod %s was deleted before the run finished", pod.Name)
	}
	pr.Status.MarkFailed(string(v1.PipelineRunReasonFailed), "%s", msg)
	setCompletion(pr, now)
}

// markCancelled gives a cancelled run Tekton's condition
// (pipelinerun.go: cancelPipelineRun), whatever the supervisor published
// before it was stopped.
func markCancelled(pr *v1.PipelineRun, now time.Time) {
	if c := pr.Status.GetCondition(apis.ConditionSucceeded); c != nil && c.Reason == string(v1.PipelineRunReasonCancelled) && c.IsFalse() {
		setCompletion(pr, now)
		return
	}
	pr.Status.MarkFailed(string(v1.PipelineRunReasonCancelled), "PipelineRun %q was cancelled", pr.Name)
	setCompletion(pr, now)
}

func setCompletion(pr *v1.PipelineRun, now time.Time) {
	if pr.Status.CompletionTime == nil {
		t := metav1.NewTime(now)
		pr.Status.CompletionTime = &t
	}
}

// cancelled ends a run cancelled before its Pod was created.
func (r *Reconciler) cancelled(ctx context.Context, pr *v1.PipelineRun, c *compile.Compiled) error {
	next := pr.DeepCopy()
	next.Status.InitializeConditions(r.clock())
	if c != nil && c.PipelineSpec != nil {
		next.Status.PipelineSpec = c.PipelineSpec.DeepCopy()
	}
	markCancelled(next, r.clock().Now())
	if err := r.updatePipelineRun(ctx, pr, next); err != nil {
		return err
	}
	r.compiled.drop(key(pr))
	return nil
}
