package controller

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// pipeLogs serves each Follow a fresh pipe whose writer the test holds.
// The first refuse calls fail, as the API server refuses the log of a
// container that has not started.
type pipeLogs struct {
	mu      sync.Mutex
	refuse  int
	calls   int
	writers []*io.PipeWriter
}

func (p *pipeLogs) tries() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (p *pipeLogs) Follow(ctx context.Context, _, _, container string) (io.ReadCloser, error) {
	if container != podlayout.SupervisorContainer {
		return nil, io.ErrUnexpectedEOF
	}
	p.mu.Lock()
	p.calls++
	if p.calls <= p.refuse {
		p.mu.Unlock()
		return nil, errors.New("container is waiting to start: ContainerCreating")
	}
	p.mu.Unlock()
	r, w := io.Pipe()
	p.mu.Lock()
	p.writers = append(p.writers, w)
	p.mu.Unlock()
	go func() { <-ctx.Done(); w.CloseWithError(ctx.Err()) }()
	return r, nil
}

func (p *pipeLogs) opened() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.writers)
}

func (p *pipeLogs) writer(i int) *io.PipeWriter {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writers[i]
}

func runningPod(uid types.UID) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "r", UID: uid},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: podlayout.SupervisorContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}}},
	}
}

// TestFollowerWakesTheRunOnEachEvent: the first reconcile of a running
// supervisor opens one stream and reads the log itself; each event read
// then wakes the run and is served without a read; the stream's end wakes
// the run once more and hands back to full reads, with no second stream
// opened at once.
func TestFollowerWakesTheRunOnEachEvent(t *testing.T) {
	logs := &pipeLogs{}
	woken := make(chan types.NamespacedName, 16)
	fs := &followers{logs: logs, notify: func(n types.NamespacedName) { woken <- n }}
	defer fs.stopAll()
	owner := types.NamespacedName{Namespace: ns, Name: "r"}
	pod := runningPod("u1")

	if _, ok := fs.status(pod, owner); ok {
		t.Fatal("a new follower answered before reading anything")
	}
	waitOpened(t, logs, 1)

	p := sidecar.NewPublisher(logs.writer(0))
	go func() {
		_, _ = io.WriteString(logs.writer(0), "pod-runner supervise: starting\n")
		p.Report(&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r", StartTime: ts(1), Condition: running}}})
		p.Report(taskEvent("a", 1, running, 0))
	}()
	for i := 0; i < 2; i++ {
		if got := wake(t, woken); got != owner {
			t.Fatalf("woke %v, want %v", got, owner)
		}
	}
	st, ok := fs.status(pod, owner)
	if !ok || len(st.GetTasks()) != 1 || st.GetTasks()[0].GetName() != "a" {
		t.Fatalf("live follower: ok %v status %v", ok, st)
	}
	if logs.opened() != 1 {
		t.Fatalf("%d streams opened, want 1", logs.opened())
	}

	_ = logs.writer(0).Close()
	wake(t, woken)
	if _, ok := fs.status(pod, owner); ok {
		t.Fatal("an ended follower still answered")
	}
	if logs.opened() != 1 {
		t.Fatalf("a stream reopened at once after the last ended: %d", logs.opened())
	}
}

// TestFollowerOpensBeforeTheKubeletReportsRunning: a stream is tried as
// soon as the Pod exists (the kubelet reports the supervisor running a
// second after it starts), retried while the API server refuses it, and
// answers only once open; none for a Pod or supervisor that ended.
func TestFollowerOpensBeforeTheKubeletReportsRunning(t *testing.T) {
	logs := &pipeLogs{refuse: 2}
	fs := &followers{logs: logs, notify: func(types.NamespacedName) {}}
	defer fs.stopAll()
	owner := types.NamespacedName{Namespace: ns, Name: "r"}

	ended := runningPod("u2")
	ended.Status.Phase = corev1.PodSucceeded
	supervisorDone := runningPod("u3")
	supervisorDone.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}
	var none *followers
	for _, pod := range []*corev1.Pod{ended, supervisorDone} {
		if _, ok := fs.status(pod, owner); ok {
			t.Errorf("pod %s: answered", pod.UID)
		}
	}
	if _, ok := none.status(runningPod("u4"), owner); ok {
		t.Error("no followers answered")
	}
	time.Sleep(50 * time.Millisecond)
	if logs.opened() != 0 || logs.tries() != 0 {
		t.Fatalf("%d streams tried for ended pods, want none", logs.tries())
	}

	waiting := runningPod("u1")
	waiting.Status.ContainerStatuses = nil
	waiting.Status.Phase = corev1.PodPending
	for range 3 { // reconciles while the stream is being opened
		if _, ok := fs.status(waiting, owner); ok {
			t.Error("answered before the stream was open")
		}
	}
	waitOpened(t, logs, 1)
	time.Sleep(300 * time.Millisecond) // past the first retry of any second follower
	if logs.tries() != 3 || logs.opened() != 1 {
		t.Errorf("%d tries, %d open: want one follower, 2 refused tries and 1 open", logs.tries(), logs.opened())
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, ok := fs.status(waiting, owner); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an open stream does not answer")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitOpened(t *testing.T, logs *pipeLogs, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); logs.opened() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams opened, want %d", logs.opened(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wake(t *testing.T, woken <-chan types.NamespacedName) types.NamespacedName {
	t.Helper()
	select {
	case n := <-woken:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("the run was not woken")
		return types.NamespacedName{}
	}
}

// TestSweepForgetsEndedFollowers: a follower whose stream ended a while
// ago (its run deleted mid-run, never reconciled done) is forgotten when
// the next one starts; one still opening or live is kept.
func TestSweepForgetsEndedFollowers(t *testing.T) {
	fs := &followers{logs: &pipeLogs{}, notify: func(types.NamespacedName) {}}
	defer fs.stopAll()
	old, recent, opening := &follower{cancel: func() {}}, &follower{cancel: func() {}}, &follower{cancel: func() {}}
	old.ended = time.Now().Add(-time.Minute)
	recent.ended = time.Now()
	fs.m = map[types.UID]*follower{"old": old, "recent": recent, "opening": opening}
	fs.status(runningPod("new"), types.NamespacedName{Namespace: ns, Name: "r"})
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for uid, want := range map[types.UID]bool{"old": false, "recent": true, "opening": true, "new": true} {
		if _, ok := fs.m[uid]; ok != want {
			t.Errorf("follower %s kept: %v, want %v", uid, ok, want)
		}
	}
}
