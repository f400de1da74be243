package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/sidecar"
)

// DefaultUnschedulableTimeout is how long a run's Pod may stay
// unschedulable before the run fails.
const DefaultUnschedulableTimeout = 5 * time.Minute

// DefaultTimeoutGrace is how long past timeouts.pipeline the controller
// lets the Pod's supervisor, which enforces the timeout itself, publish
// it before stopping the Pod.
const DefaultTimeoutGrace = 30 * time.Second

// Waiting reasons that fail a run, as Tekton's TaskRun reconciler
// (pkg/reconciler/taskrun: podFailureReasons) fails a TaskRun. ErrImagePull
// is left out as Tekton leaves it: the kubelet retries it.
const (
	waitImagePullBackOff           = "ImagePullBackOff"
	waitInvalidImageName           = "InvalidImageName"
	waitCreateContainerConfigError = "CreateContainerConfigError"
	waitCreateContainerError       = "CreateContainerError"
)

// Terminated reasons of a container whose process never started
// (containerd's StartError; Docker's ContainerCannotRun).
const (
	termStartError = "StartError"
	termCannotRun  = "ContainerCannotRun"
)

// ending is why the controller ends a run that its Pod cannot finish.
type ending struct {
	reason, message string
	// taskRun, when set, is the TaskRun of the task whose container
	// failed; it ends with taskReason and taskMessage (Tekton's).
	taskRun, taskReason, taskMessage string
}

// mark ends pr with e's condition.
func (e *ending) mark(pr *v1.PipelineRun, now time.Time) {
	pr.Status.MarkFailed(e.reason, "%s", e.message)
	setCompletion(pr, now)
}

// markTaskRun ends a TaskRun still going when its run was ended: the
// failing task's with Tekton's reason for the failure, the others as
// Tekton cancels a timed-out run's children.
func (e *ending) markTaskRun(tr *v1.TaskRun, now time.Time) {
	if c := tr.Status.GetCondition(apis.ConditionSucceeded); c != nil && !c.IsUnknown() {
		return
	}
	reason, msg := string(v1.TaskRunReasonCancelled), "TaskRun cancelled as the PipelineRun it belongs to has failed: "+e.message
	switch {
	case tr.Name == e.taskRun:
		reason, msg = e.taskReason, e.taskMessage
	case e.reason == string(v1.PipelineRunReasonTimedOut):
		msg = "TaskRun cancelled as the PipelineRun it belongs to has timed out."
	}
	tr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse, Reason: reason, Message: msg})
	t := metav1.NewTime(now)
	if tr.Status.StartTime == nil {
		tr.Status.StartTime = &t
	}
	tr.Status.CompletionTime = &t
}

func (r *Reconciler) unschedulableTimeout() time.Duration {
	if r.UnschedulableTimeout <= 0 {
		return DefaultUnschedulableTimeout
	}
	return r.UnschedulableTimeout
}

func (r *Reconciler) timeoutGrace() time.Duration {
	if r.TimeoutGrace <= 0 {
		return DefaultTimeoutGrace
	}
	return r.TimeoutGrace
}

// podFailure tells whether the run must end because of its Pod: a
// container that cannot start or whose start failed, eviction, an OOM-killed supervisor, a Pod
// unschedulable for too long, or timeouts.pipeline passed (plus a grace)
// with the Pod still running. nil: the Pod may still finish the run.
func (r *Reconciler) podFailure(ctx context.Context, pr *v1.PipelineRun, c *compile.Compiled, pod *corev1.Pod) *ending {
	now := r.clock().Now()
	if pod.Status.Phase == corev1.PodFailed && pod.Status.Reason == "Evicted" {
		return &ending{reason: string(v1.PipelineRunReasonFailed),
			message: fmt.Sprintf("pod %s was evicted: %s", pod.Name, pod.Status.Message)}
	}
	if e := waitingFailure(pr, c, pod); e != nil {
		return e
	}
	if cs := containerStatus(pod, podlayout.SupervisorContainer); cs != nil {
		if t := cs.State.Terminated; t != nil {
			if e := supervisorEnded(pod, t); e != nil {
				return e
			}
		} else if cs.RestartCount > 0 {
			return supervisorRestarted(pod, cs)
		}
	}
	if !podActive(pod) {
		return nil
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type != corev1.PodScheduled || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable {
			continue
		}
		since := cond.LastTransitionTime.Time
		if since.IsZero() {
			since = pod.CreationTimestamp.Time
		}
		if d := r.unschedulableTimeout(); now.Sub(since) >= d {
			return &ending{reason: string(v1.PipelineRunReasonFailed),
				message: fmt.Sprintf("pod %s could not be scheduled for %s: %s", pod.Name, d, cond.Message)}
		}
	}
	if c != nil && c.Config != nil {
		// The cluster's config-defaults decide a run's default timeout.
		ctx = config.ToContext(ctx, c.Config)
	}
	if timeout := pr.PipelineTimeout(ctx); timeout != config.NoTimeoutDuration && pr.Status.StartTime != nil &&
		now.Sub(pr.Status.StartTime.Time) > timeout+r.timeoutGrace() {
		return &ending{reason: string(v1.PipelineRunReasonTimedOut),
			message: fmt.Sprintf("PipelineRun %q failed to finish within %q", pr.Name, timeout.String())}
	}
	return nil
}

// supervisorRestarted ends a run whose supervisor, a native sidecar, the
// kubelet restarted: it exits only once the step containers ended, so a
// restart means it died mid-run, and the restart runs nothing again.
func supervisorRestarted(pod *corev1.Pod, cs *corev1.ContainerStatus) *ending {
	msg := fmt.Sprintf("the supervisor container %q of pod %s restarted before the run finished", podlayout.SupervisorContainer, pod.Name)
	if t := cs.LastTerminationState.Terminated; t != nil {
		msg += fmt.Sprintf(": it had ended with exit code %d", t.ExitCode)
		if t.Reason != "" {
			msg += " (" + t.Reason + ")"
		}
	}
	return &ending{reason: string(v1.PipelineRunReasonFailed), message: msg}
}

// supervisorEnded is the ending of a run whose supervisor container ended
// other than by finishing the run (exit code 0 or 1, its final status
// published): OOM-killed, killed from outside, or failed. The step
// containers would wait for it forever; nil when it finished.
func supervisorEnded(pod *corev1.Pod, t *corev1.ContainerStateTerminated) *ending {
	if t.Reason != "OOMKilled" && (t.ExitCode == 0 || t.ExitCode == 1) {
		return nil
	}
	msg := fmt.Sprintf("the supervisor container %q of pod %s was OOMKilled", podlayout.SupervisorContainer, pod.Name)
	if t.Reason != "OOMKilled" {
		msg = fmt.Sprintf("the supervisor container %q of pod %s ended with exit code %d", podlayout.SupervisorContainer, pod.Name, t.ExitCode)
		if t.Signal != 0 {
			msg += fmt.Sprintf(" (signal %d)", t.Signal)
		}
		if t.Reason != "" {
			msg += ": " + t.Reason
		}
		msg += " before the run finished"
		if d := sidecar.TerminationDetail(t.Message); d != "" {
			msg += ": " + d
		}
	}
	return &ending{reason: string(v1.PipelineRunReasonFailed), message: msg}
}

// podContainer is what a container of the run's Pod runs.
type podContainer struct {
	kind    string // "step", "sidecar", or "pod-runner" for the supervisor and init
	name    string // the step's or sidecar's name, else the container's
	taskRun string
}

// containersOf maps the Pod's container names to their steps and sidecars.
func containersOf(c *compile.Compiled) map[string]podContainer {
	out := map[string]podContainer{}
	for _, t := range c.Plan.AllTasks() {
		for i, s := range t.GetSpec().GetSteps() {
			n := results.StepName(s.GetName(), i)
			out[podlayout.StepContainer(t.GetName(), n)] = podContainer{"step", n, t.GetTaskRunName()}
		}
		for i, s := range t.GetSpec().GetSidecars() {
			n := results.StepName(s.GetName(), i)
			out[podlayout.SidecarContainer(t.GetName(), n)] = podContainer{"sidecar", n, t.GetTaskRunName()}
		}
	}
	return out
}

// waitingFailure is the first container of the Pod that cannot start, as
// Tekton's checkContainerFailure judges it, or that the runtime could not
// start (StartError), with its messages.
func waitingFailure(pr *v1.PipelineRun, c *compile.Compiled, pod *corev1.Pod) *ending {
	var known map[string]podContainer
	images := map[string]string{}
	for _, ct := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		images[ct.Name] = ct.Image
	}
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		w := cs.State.Waiting
		if t := cs.State.Terminated; t != nil && (t.Reason == termStartError || t.Reason == termCannotRun) {
			// The runtime made the container but could not start its
			// process (a cancelled start, an unusable image): its
			// `pod-runner step` never connects, and the supervisor would
			// wait for it until the run's timeout.
			w = &corev1.ContainerStateWaiting{Reason: t.Reason, Message: t.Message}
		}
		if w == nil {
			continue
		}
		pull := w.Reason == waitImagePullBackOff || w.Reason == waitInvalidImageName
		start := w.Reason == waitCreateContainerConfigError || w.Reason == termStartError || w.Reason == termCannotRun ||
			// Tekton gives the runtime time to recover from a timeout.
			(w.Reason == waitCreateContainerError && !strings.Contains(w.Message, "context deadline exceeded"))
		if !pull && !start {
			continue
		}
		if known == nil {
			known = containersOf(c)
		}
		pc, ok := known[cs.Name]
		if !ok {
			pc = podContainer{kind: "pod-runner", name: cs.Name}
		}
		image := images[cs.Name]
		what := "failed to start"
		taskReason := string(v1.TaskRunReasonPodCreationFailed)
		switch {
		case pull:
			what = fmt.Sprintf("failed to pull the image %q", image)
			taskReason = string(v1.TaskRunReasonImagePullFailed)
		case w.Reason == waitCreateContainerConfigError:
			taskReason = string(v1.TaskRunReasonCreateContainerConfigError)
		}
		e := &ending{reason: string(v1.PipelineRunReasonFailed),
			message: fmt.Sprintf("the %s %q (container %q, image %q) of PipelineRun %q %s: %s: %s", pc.kind, pc.name, cs.Name, image, pr.Name, what, w.Reason, w.Message)}
		if pc.taskRun != "" {
			e.taskRun, e.taskReason = pc.taskRun, taskReason
			// Tekton's message (checkContainerFailure).
			e.taskMessage = fmt.Sprintf(`the %s %q in TaskRun %q %s. The pod errored with the message: "%s."`, pc.kind, pc.name, pc.taskRun, what, w.Message)
		}
		return e
	}
	return nil
}
