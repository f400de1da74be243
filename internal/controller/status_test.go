package controller

import (
	"context"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestStatusAsTektonWritesIt: what Tekton's reconcilers add beyond the
// engine's status reaches the cluster: the run's tekton.dev/pipeline label
// (its own labels kept), and each step's imageID and containerID from the
// Pod's step container.
func TestStatusAsTektonWritesIt(t *testing.T) {
	pr := run("r3", goodSpec, true)
	pr.Labels = map[string]string{"team": "a", pipeline.PipelineLabelKey: "kept"}
	e := newEnv(t, append(defs(t), pr)...)
	e.reconcile("r3")

	e.logs["r3"] = supervisorLog(
		&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r3", StartTime: ts(1), Condition: running}}},
		taskEvent("first", 2, succeeded, 3))
	pod := &corev1.Pod{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "r3"}, pod); err != nil {
		t.Fatal(err)
	}
	step := podlayout.StepContainer("first", "say")
	pod.Status.Phase = corev1.PodRunning
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: podlayout.SupervisorContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		{Name: step, ImageID: "docker.io/library/busybox@sha256:abc", ContainerID: "containerd://123",
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
	}
	if err := e.c.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	e.reconcile("r3")

	got := e.pr("r3")
	if got.Labels["team"] != "a" || got.Labels[pipeline.PipelineLabelKey] != "kept" {
		t.Errorf("labels %v: the run's own were changed", got.Labels)
	}
	first := e.taskRuns()["r3-first"]
	if len(first.Status.Steps) != 1 {
		t.Fatalf("steps %+v", first.Status.Steps)
	}
	s := first.Status.Steps[0]
	if s.Container != step || s.ImageID != "docker.io/library/busybox@sha256:abc" || s.Terminated == nil || s.Terminated.ContainerID != "containerd://123" {
		t.Errorf("step %+v: want the Pod's container %s, its imageID and containerID", s, step)
	}
	if first.Annotations["pipeline.tekton.dev/release"] == "" {
		t.Errorf("annotations %v: no release", first.Annotations)
	}

	// A run without the label gets the Pipeline's name, as Tekton labels it.
	pr4 := run("r4", goodSpec, true)
	e = newEnv(t, append(defs(t), pr4)...)
	e.reconcile("r4")
	e.setSupervisor("r4", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	e.logs["r4"] = supervisorLog(
		&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r4", StartTime: ts(1), Condition: running}}},
		taskEvent("first", 2, running, 0))
	e.reconcile("r4")
	if got := e.pr("r4"); got.Labels[pipeline.PipelineLabelKey] != "build" || got.Status.GetCondition("Succeeded") == nil {
		t.Errorf("labels %v, condition %+v: want tekton.dev/pipeline=build and the status written", got.Labels, got.Status.GetCondition("Succeeded"))
	}
}
