package controller

import (
	"bufio"
	"context"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// LogFollower streams a container's log as it is written (Pods/log with
// follow=true), from its first line.
type LogFollower interface {
	Follow(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error)
}

// followers keeps one log stream open per running supervisor, so that a
// task's start or end reaches its TaskRun within a round trip instead of a
// poll period: each event read wakes the run's reconcile (notify).
//
// A follower is only a faster path to what a full read of the log gives: a
// reconcile with no live follower (a restarted controller, a stream that
// broke, a Pod that ended) reads the whole log, as before.
type followers struct {
	logs   LogFollower
	notify func(owner types.NamespacedName)

	mu sync.Mutex
	m  map[types.UID]*follower
}

// follower is one supervisor's log stream and the events read from it.
type follower struct {
	cancel context.CancelFunc

	mu        sync.Mutex
	stream    sidecar.Stream
	connected bool      // the stream is open: nothing before was missed
	ended     time.Time // zero while live
}

// restartAfter is how long after a stream ended another may be opened to
// the same Pod: the kubelet reports a container's end a moment after its
// log stream closes, and the full reads meanwhile need no stream.
const restartAfter = 2 * time.Second

// current is the status the events read so far tell, and whether the
// stream is still live (a live stream has missed nothing).
func (f *follower) current() (*planpb.RunStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected || !f.ended.IsZero() {
		return nil, false
	}
	return f.stream.Current(), true
}

func (f *follower) endedAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended
}

// status is what pod's live follower has read, starting one while the Pod
// is active and has none. ok is false when the caller must read the whole
// log itself.
func (fs *followers) status(pod *corev1.Pod, owner types.NamespacedName) (st *planpb.RunStatus, ok bool) {
	if fs == nil || fs.logs == nil {
		return nil, false
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[pod.UID]; f != nil {
		if st, live := f.current(); live {
			return st, true
		}
		// Still opening its stream, or ended a moment ago: keep it.
		if ended := f.endedAt(); ended.IsZero() || ended.After(time.Now().Add(-restartAfter)) {
			return nil, false
		}
		delete(fs.m, pod.UID)
	}
	// Opened as soon as the Pod exists, not when the kubelet reports the
	// supervisor running (about a second after it starts): the stream is
	// retried until the container has started.
	if cs := containerStatus(pod, podlayout.SupervisorContainer); !podActive(pod) || (cs != nil && cs.State.Terminated != nil) {
		return nil, false
	}
	if fs.m == nil {
		fs.m = map[types.UID]*follower{}
	}
	fs.sweep()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{cancel: cancel}
	fs.m[pod.UID] = f
	go fs.run(ctx, f, pod.Namespace, pod.Name, owner)
	return nil, false
}

// run reads the stream until it ends (the container ended, the stream
// broke, stop): each event line wakes the owner's reconcile.
func (fs *followers) run(ctx context.Context, f *follower, namespace, pod string, owner types.NamespacedName) {
	defer func() {
		f.mu.Lock()
		f.ended = time.Now()
		f.mu.Unlock()
		f.cancel()
		// The last word is the full read's: wake the reconcile once more.
		fs.notify(owner)
	}()
	rc, ok := fs.open(ctx, namespace, pod)
	if !ok {
		return
	}
	defer rc.Close()
	f.mu.Lock()
	f.connected = true
	f.mu.Unlock()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		f.mu.Lock()
		event, err := f.stream.Add(sc.Text())
		f.mu.Unlock()
		if err != nil {
			return
		}
		if event {
			fs.notify(owner)
		}
	}
}

// Retries of a stream to a container that has not started yet: often
// while a Pod usually starts (the first task's status waits on it), then
// less often (a Pod can wait minutes to be scheduled or pulled).
const (
	firstRetry = 100 * time.Millisecond
	steadyFor  = 5 * time.Second
	maxRetry   = 2 * time.Second
)

// open opens the stream, retrying until the supervisor container has
// started (the API server refuses a waiting container's log) or ctx ends.
func (fs *followers) open(ctx context.Context, namespace, pod string) (io.ReadCloser, bool) {
	wait, start := firstRetry, time.Now()
	for {
		rc, err := fs.logs.Follow(ctx, namespace, pod, podlayout.SupervisorContainer)
		if err == nil {
			return rc, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
		if time.Since(start) > steadyFor {
			wait = min(2*wait, maxRetry)
		}
	}
}

// sweep forgets the followers whose stream ended a while ago: their Pod
// is gone or done (a run deleted mid-run is never reconciled done).
func (fs *followers) sweep() {
	for uid, f := range fs.m {
		if ended := f.endedAt(); !ended.IsZero() && ended.Before(time.Now().Add(-restartAfter)) {
			delete(fs.m, uid)
		}
	}
}

// stop ends pod's follower, if any: its run is done.
func (fs *followers) stop(uid types.UID) {
	if fs == nil {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[uid]; f != nil {
		f.cancel()
		delete(fs.m, uid)
	}
}

// stopAll ends every follower (the controller stops).
func (fs *followers) stopAll() {
	if fs == nil {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for uid, f := range fs.m {
		f.cancel()
		delete(fs.m, uid)
	}
}
