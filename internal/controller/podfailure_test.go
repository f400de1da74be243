package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// setPod changes the Pod's status as the kubelet or scheduler would.
func (e *env) setPod(name string, f func(*corev1.Pod)) {
	e.t.Helper()
	pod := &corev1.Pod{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
		e.t.Fatal(err)
	}
	f(pod)
	if err := e.c.Status().Update(context.Background(), pod); err != nil {
		e.t.Fatal(err)
	}
}

func waiting(name, reason, msg string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
}

var supervisorRunning = corev1.ContainerStatus{Name: podlayout.SupervisorContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}

// Pod-level failures end the run Failed (Tekton's PipelineRun reason for a
// failed child) with a message naming the container and image; the task
// whose container failed ends with Tekton's TaskRun reason and message
// (pkg/reconciler/taskrun: checkContainerFailure); the Pod is stopped.
// Transient states (ErrImagePull, a CreateContainerError timeout, a short
// unschedulable spell) leave the run going.
func TestPodFailures(t *testing.T) {
	step := podlayout.StepContainer("first", "say")
	started := metav1.NewTime(t0)
	tests := []struct {
		name     string
		spec     string
		pod      func(*corev1.Pod)
		after    time.Duration // the clock, from t0
		reason   string        // "": the run goes on
		message  []string
		trReason string
		trMsg    string
	}{
		{
			name: "step image pull back-off",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, waiting(step, "ImagePullBackOff", `Back-off pulling image "busybox"`)}
			},
			reason:   "Failed",
			message:  []string{`container "first-say"`, `image "busybox"`, "ImagePullBackOff", "failed to pull"},
			trReason: "TaskRunImagePullFailed",
			trMsg:    `the step "say" in TaskRun "pf-first" failed to pull the image "busybox". The pod errored with the message: "Back-off pulling image "busybox"."`,
		},
		{
			name: "step invalid image name",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, waiting(step, "InvalidImageName", "bad ref")}
			},
			reason: "Failed", message: []string{`"first-say"`, "InvalidImageName"}, trReason: "TaskRunImagePullFailed",
		},
		{
			name: "step config error",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, waiting(step, "CreateContainerConfigError", `secret "s" not found`)}
			},
			reason: "Failed", message: []string{`"first-say"`, "failed to start", `secret "s" not found`}, trReason: "CreateContainerConfigError",
			trMsg: `the step "say" in TaskRun "pf-first" failed to start. The pod errored with the message: "secret "s" not found."`,
		},
		{
			name: "step whose start failed",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, {Name: step, State: corev1.ContainerState{
					Terminated: &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: "failed to start containerd task: context canceled"}}}}
			},
			reason: "Failed", message: []string{`"first-say"`, "failed to start", "StartError", "context canceled"}, trReason: "PodCreationFailed",
			trMsg: `the step "say" in TaskRun "pf-first" failed to start. The pod errored with the message: "failed to start containerd task: context canceled."`,
		},
		{
			name: "step that ended after it ran goes on",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, {Name: step, State: corev1.ContainerState{
					Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}
			},
		},
		{
			name: "supervisor image pull back-off",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{waiting(podlayout.SupervisorContainer, "ImagePullBackOff", "no such image")}
			},
			reason: "Failed", message: []string{`the pod-runner "pod-runner"`, "failed to pull the image"},
		},
		{
			name: "ErrImagePull is retried by the kubelet",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, waiting(step, "ErrImagePull", "timeout")}
			},
		},
		{
			name: "CreateContainerError timeout is given time",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, waiting(step, "CreateContainerError", "context deadline exceeded")}
			},
		},
		{
			name: "evicted",
			pod: func(p *corev1.Pod) {
				p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, "Evicted", "The node was low on resource: memory."
			},
			reason: "Failed", message: []string{"pf was evicted", "low on resource"},
		},
		{
			name: "supervisor OOMKilled",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
			},
			reason: "Failed", message: []string{"OOMKilled"},
		},
		{
			name: "supervisor killed",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}}}}
			},
			reason: "Failed", message: []string{"ended with exit code 137: Error before the run finished"}, trReason: "TaskRunCancelled",
		},
		{
			name: "supervisor exited 1, its step containers still ending",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}}
			},
		},
		{
			name: "supervisor failed",
			pod: func(p *corev1.Pod) {
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "decode plan: bad"}}}}
			},
			reason: "Failed", message: []string{"exit code 2", "decode plan: bad"},
		},
		{
			name: "supervisor as a native sidecar, restarted",
			pod: func(p *corev1.Pod) {
				p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer, RestartCount: 1,
					State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
					LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: step, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			},
			reason: "Failed", message: []string{`"pod-runner" of pod pf restarted before the run finished`, "exit code 137 (OOMKilled)"},
		},
		{
			name: "supervisor as a native sidecar, running",
			pod: func(p *corev1.Pod) {
				p.Status.InitContainerStatuses = []corev1.ContainerStatus{supervisorRunning}
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: step, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			},
		},
		{
			name: "supervisor as a native sidecar, OOMKilled",
			pod: func(p *corev1.Pod) {
				p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer,
					State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
			},
			reason: "Failed", message: []string{"OOMKilled"},
		},
		{
			name: "unschedulable past the deadline",
			pod: func(p *corev1.Pod) {
				p.Status.StartTime = nil
				p.Status.Phase = corev1.PodPending
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
					Message: "0/1 nodes are available: 1 Insufficient cpu.", LastTransitionTime: started}}
			},
			after: 6 * time.Minute, reason: "Failed", message: []string{"could not be scheduled for 5m0s", "Insufficient cpu"},
		},
		{
			name: "unschedulable for a while",
			pod: func(p *corev1.Pod) {
				p.Status.StartTime = nil
				p.Status.Phase = corev1.PodPending
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", LastTransitionTime: started}}
			},
			after: time.Minute,
		},
		{
			name:  "timeouts.pipeline passed with the grace",
			spec:  "  timeouts: {pipeline: 1m}\n",
			pod:   func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning} },
			after: time.Minute + DefaultTimeoutGrace + time.Second, reason: "PipelineRunTimeout",
			message: []string{`PipelineRun "pf" failed to finish within "1m0s"`}, trReason: "TaskRunCancelled",
			trMsg: "TaskRun cancelled as the PipelineRun it belongs to has timed out.",
		},
		{
			name:  "timeouts.pipeline passed within the grace",
			spec:  "  timeouts: {pipeline: 1m}\n",
			pod:   func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning} },
			after: time.Minute + DefaultTimeoutGrace/2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, append(defs(t), run("pf", goodSpec+tc.spec, true))...)
			e.reconcile("pf")
			e.logs["pf"] = supervisorLog(
				&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "pf", StartTime: ts(1), Condition: running}}},
				taskEvent("first", 2, running, 0))
			e.setPod("pf", func(p *corev1.Pod) {
				p.Status.StartTime = &started
				p.Status.Phase = corev1.PodRunning
				tc.pod(p)
			})
			e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(tc.after))
			res := e.reconcile("pf")
			pr := e.pr("pf")
			c := pr.Status.GetCondition("Succeeded")
			if tc.reason == "" {
				if pr.IsDone() || res.RequeueAfter == 0 {
					t.Fatalf("run ended (%+v) or not polled (%+v); want it going", c, res)
				}
				if pods := e.pods(); len(pods) != 1 || pods[0].Spec.ActiveDeadlineSeconds != nil {
					t.Errorf("the Pod of a run going on was stopped")
				}
				return
			}
			if c == nil || c.Status != corev1.ConditionFalse || c.Reason != tc.reason || pr.Status.CompletionTime == nil {
				t.Fatalf("condition %+v, completion %v; want False/%s", c, pr.Status.CompletionTime, tc.reason)
			}
			for _, m := range tc.message {
				if !strings.Contains(c.Message, m) {
					t.Errorf("message %q lacks %q", c.Message, m)
				}
			}
			if pods := e.pods(); len(pods) == 1 && podActive(&pods[0]) && pods[0].Spec.ActiveDeadlineSeconds == nil {
				t.Errorf("the Pod of an ended run is not stopped")
			}
			if tc.trReason != "" {
				tr, ok := e.taskRuns()["pf-first"]
				if !ok {
					t.Fatal("no TaskRun pf-first")
				}

				trc := tr.Status.GetCondition("Succeeded")
				if trc == nil || trc.Status != corev1.ConditionFalse || trc.Reason != tc.trReason || (tc.trMsg != "" && trc.Message != tc.trMsg) {
					t.Errorf("TaskRun condition %+v, want False/%s %q", trc, tc.trReason, tc.trMsg)
				}
				if tr.Status.CompletionTime == nil {
					t.Error("TaskRun has no completionTime")
				}
			}
			// Ended: the next reconcile leaves it as it is.
			before := pr.Status.DeepCopy()
			e.reconcile("pf")
			if after := e.pr("pf").Status; after.GetCondition("Succeeded").Reason != before.GetCondition("Succeeded").Reason {
				t.Errorf("condition changed on the next reconcile: %+v", after.GetCondition("Succeeded"))
			}
		})
	}
}

// A final status the supervisor published wins over a container that
// never started (a task skipped before its image could be pulled).
func TestPodFailureAfterFinalStatus(t *testing.T) {
	e := newEnv(t, append(defs(t), run("pf", goodSpec, true))...)
	e.reconcile("pf")
	e.logs["pf"] = supervisorLog(&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{
		Name: "pf", StartTime: ts(1), CompletionTime: ts(5),
		Condition: &planpb.Condition{Status: "True", Reason: "Succeeded", Message: "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"},
	}}})
	started := metav1.NewTime(t0)
	e.setPod("pf", func(p *corev1.Pod) {
		p.Status.StartTime = &started
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{supervisorRunning, waiting(podlayout.StepContainer("second", "run"), "ImagePullBackOff", "x")}
	})
	e.reconcile("pf")
	if c := e.pr("pf").Status.GetCondition("Succeeded"); c == nil || c.Reason != "Succeeded" {
		t.Errorf("condition %+v, want the supervisor's Succeeded", c)
	}
}
