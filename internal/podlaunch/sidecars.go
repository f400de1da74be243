package podlaunch

import (
	"context"
	"fmt"
	"time"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

var _ supervisor.SidecarAttempt = (*attempt)(nil)

// sidecarRun is a sidecar running in the background in its container.
type sidecarRun struct {
	name string // container
	peer *peer
	seq  uint64
	sent time.Time
	done chan supervisor.StepExit // receives how it ended, once
}

// StartSidecars waits for each sidecar's container to connect and tells
// it to run the sidecar, without waiting for it to end: a connected
// container is a running one, which is when Tekton starts the steps of a
// task whose sidecars have no readiness probe.
func (a *attempt) StartSidecars(ctx context.Context, sidecars []*supervisor.Step) []*supervisor.StepExit {
	out := make([]*supervisor.StepExit, len(sidecars))
	a.sidecars = make([]*sidecarRun, len(sidecars))
	for i, s := range sidecars {
		r, err := a.startSidecar(ctx, s)
		if err != nil {
			out[i] = err
			continue
		}
		a.sidecars[i] = r
		select {
		case ex := <-r.done: // it could not start, or ended at once
			a.sidecars[i] = nil
			out[i] = &ex
		default:
		}
	}
	return out
}

func (a *attempt) startSidecar(ctx context.Context, s *supervisor.Step) (*sidecarRun, *supervisor.StepExit) {
	l := a.l
	name := podlayout.SidecarContainer(a.task, results.StepName(s.Name, s.Index))
	c, err := l.connected(ctx, name)
	if err != nil {
		return nil, &supervisor.StepExit{ExitCode: 1, Err: fmt.Errorf("sidecar container %q never connected: %w", name, err)}
	}
	r := &sidecarRun{name: name, peer: c.peer, seq: l.nextSeq(), done: make(chan supervisor.StepExit, 1)}
	run := &steppb.Run{
		Seq: r.seq, Command: s.Command, Args: s.Args, Script: s.Script,
		Env: s.Env, WorkingDir: s.WorkingDir,
		StdoutPath: s.StdoutPath, StderrPath: s.StderrPath, Name: "sidecar-" + results.StepName(s.Name, s.Index),
	}
	select {
	case <-r.peer.gone:
		return nil, r.lost()
	default:
	}
	r.sent = time.Now()
	if err := r.peer.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: run}}); err != nil {
		<-r.peer.gone
		return nil, r.lost()
	}
	go r.watch()
	return r, nil
}

// watch waits for the sidecar's end: its Exited, or its container gone.
func (r *sidecarRun) watch() {
	for {
		select {
		case ex := <-r.peer.exited:
			if ex.GetSeq() == r.seq {
				r.done <- toExit(ex)
				return
			}
		case <-r.peer.gone:
			r.done <- *r.lost()
			return
		}
	}
}

func (r *sidecarRun) lost() *supervisor.StepExit {
	return &supervisor.StepExit{Started: r.sent, Finished: time.Now(), ExitCode: 1, Reason: ReasonContainerEnded,
		Err: fmt.Errorf("sidecar container %q ended unexpectedly (%v)", r.name, r.peer.err)}
}

// StopSidecars tells every sidecar still running to stop (SIGTERM, SIGKILL
// after the grace period), all at once, and waits for each to end. Their
// containers stay, idle, until the run ends.
func (a *attempt) StopSidecars() ([]supervisor.StepExit, []bool) {
	exits := make([]supervisor.StepExit, len(a.sidecars))
	stopped := make([]bool, len(a.sidecars))
	for i, r := range a.sidecars {
		if r == nil {
			continue
		}
		select {
		case ex := <-r.done: // ended on its own
			exits[i] = ex
			a.sidecars[i] = nil
			continue
		default:
		}
		stop := &steppb.Stop{Seq: r.seq, GraceMs: a.l.opts.Grace.Milliseconds()}
		if err := r.peer.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: stop}}); err != nil {
			continue // the connection is going: watch reports it
		}
		stopped[i] = true
	}
	wait, cancel := context.WithTimeout(context.Background(), a.l.opts.Grace+stopMargin)
	defer cancel()
	for i, r := range a.sidecars {
		if r == nil {
			continue
		}
		select {
		case exits[i] = <-r.done:
		case <-wait.Done():
			exits[i] = supervisor.StepExit{Started: r.sent, Finished: time.Now(), ExitCode: 1,
				Err: fmt.Errorf("sidecar container %q did not stop its sidecar within %v", r.name, a.l.opts.Grace+stopMargin)}
			stopped[i] = false
		}
	}
	a.sidecars = nil
	return exits, stopped
}
