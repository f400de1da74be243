package controller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

// fakeExec records pods/exec calls; err, when set, fails them.
type fakeExec struct {
	mu    sync.Mutex
	calls []execCall
	err   error
}

type execCall struct {
	namespace, pod, container string
	command                   []string
}

func (f *fakeExec) Exec(_ context.Context, namespace, pod, container string, command []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, execCall{namespace, pod, container, command})
	return f.err
}

func (f *fakeExec) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (e *env) setSpecStatus(name string, s v1.PipelineRunSpecStatus) {
	e.t.Helper()
	pr := e.pr(name)
	pr.Spec.Status = s
	if err := e.c.Update(context.Background(), pr); err != nil {
		e.t.Fatal(err)
	}
}

// CancelledRunFinally and StoppedRunFinally are handed to the running
// supervisor once, by `pod-runner control` in its container; the Pod keeps
// running (no deadline, not deleted) so that finally can run.
func TestGracefulCancelAndStop(t *testing.T) {
	tests := []struct {
		status v1.PipelineRunSpecStatus
		action string
	}{
		{v1.PipelineRunSpecStatusCancelledRunFinally, ActionCancelRunFinally},
		{v1.PipelineRunSpecStatusStoppedRunFinally, ActionStopRunFinally},
	}
	for _, tc := range tests {
		t.Run(string(tc.status), func(t *testing.T) {
			e := newEnv(t, append(defs(t), run("g", goodSpec, true))...)
			x := &fakeExec{}
			e.r.Exec = x
			e.reconcile("g")
			e.setSpecStatus("g", tc.status)
			// The supervisor has not started yet: nothing to tell.
			e.reconcile("g")
			if n := x.count(); n != 0 {
				t.Fatalf("%d execs before the supervisor runs", n)
			}
			e.setSupervisor("g", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
			e.reconcile("g")
			e.reconcile("g")
			// A restarted controller does not send it again.
			r := e.reconciler()
			r.Exec = x
			e.r = r
			e.reconcile("g")
			want := []execCall{{ns, "g", podlayout.SupervisorContainer, []string{podlayout.ImageBinary, "control", tc.action}}}
			if !slices.EqualFunc(x.calls, want, func(a, b execCall) bool {
				return a.namespace == b.namespace && a.pod == b.pod && a.container == b.container && slices.Equal(a.command, b.command)
			}) {
				t.Errorf("exec calls %+v, want %+v", x.calls, want)
			}
			pods := e.pods()
			if len(pods) != 1 {
				t.Fatalf("%d pods, want the one", len(pods))
			}
			if pods[0].Spec.ActiveDeadlineSeconds != nil {
				t.Errorf("activeDeadlineSeconds %d: a graceful cancel must not stop the Pod", *pods[0].Spec.ActiveDeadlineSeconds)
			}
			if got := pods[0].Annotations[ControlAnnotation]; got != tc.action {
				t.Errorf("annotation %s = %q, want %q", ControlAnnotation, got, tc.action)
			}
		})
	}
}

// A failed exec is not recorded and is tried again on the next reconcile;
// the reconcile itself still succeeds.
func TestGracefulCancelRetriedAfterExecError(t *testing.T) {
	e := newEnv(t, append(defs(t), run("g", goodSpec, true))...)
	x := &fakeExec{err: errors.New("container not found")}
	e.r.Exec = x
	e.reconcile("g")
	e.setSupervisor("g", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	e.setSpecStatus("g", v1.PipelineRunSpecStatusCancelledRunFinally)
	e.reconcile("g")
	if got := e.pods()[0].Annotations[ControlAnnotation]; got != "" {
		t.Errorf("annotation %q after a failed exec", got)
	}
	x.err = nil
	e.reconcile("g")
	e.reconcile("g")
	if n := x.count(); n != 2 {
		t.Errorf("%d exec calls, want 2 (one failed, one taken)", n)
	}
	if got := e.pods()[0].Annotations[ControlAnnotation]; got != ActionCancelRunFinally {
		t.Errorf("annotation %q", got)
	}
}
