package controller

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestPerRunStateIsCleared runs 500 runs to every kind of ending — success,
// deletion mid-run, cancel before the Pod, invalid input — and checks that
// the controller keeps nothing of any of them afterwards.
func TestPerRunStateIsCleared(t *testing.T) {
	e := newEnv(t, defs(t)...)
	ctx := context.Background()
	const n = 500
	for i := range n {
		name := fmt.Sprintf("r%d", i)
		spec := goodSpec
		if i%4 == 3 {
			spec = "  pipelineSpec:\n    tasks: [{name: a, taskRef: {name: missing}}]\n"
		}
		pr := run(name, spec, true)
		if i%4 == 2 {
			pr.Spec.Status = "Cancelled"
		}
		if err := e.c.Create(ctx, pr); err != nil {
			t.Fatal(err)
		}
		e.reconcile(name)
		switch i % 4 {
		case 0: // it succeeds
			e.logs[name] = supervisorLog(&planpb.Event{Time: ts(6), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: name, StartTime: ts(1), CompletionTime: ts(6),
				Condition: &planpb.Condition{Status: "True", Reason: "Succeeded"},
				Tasks:     []*planpb.TaskStatus{taskEvent("first", 2, succeeded, 3).GetTask(), taskEvent("second", 4, succeeded, 5).GetTask()}}}})
			e.setSupervisor(name, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}, corev1.PodSucceeded)
			e.reconcile(name)
		case 1: // it is deleted while it runs
			if err := e.c.Delete(ctx, e.pr(name)); err != nil {
				t.Fatal(err)
			}
			e.reconcile(name)
		}
		if i%4 != 1 && !e.pr(name).IsDone() {
			t.Fatalf("%s did not end: %+v", name, e.pr(name).Status.GetCondition("Succeeded"))
		}
		// The watch brings one more reconcile of an ended run.
		if i%4 != 1 {
			e.reconcile(name)
		}
	}
	if got := len(e.r.compiled.m); got != 0 {
		t.Errorf("the controller still keeps %d runs' compilations after all %d ended", got, n)
	}
}
