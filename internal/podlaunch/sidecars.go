package podlaunch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/probe"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

var _ supervisor.SidecarAttempt = (*attempt)(nil)

// sidecarRun is a sidecar running in the background in its container.
type sidecarRun struct {
	name string // container
	l    *Launcher
	peer *peer
	seq  uint64
	sent time.Time
	done chan supervisor.StepExit // receives how it ended, once
	// ended is closed once done has received: for the probes, which stop
	// when the sidecar ends.
	ended chan struct{}
}

// StartSidecars waits for each sidecar's container to connect and tells
// it to run the sidecar, without waiting for it to end, then waits until
// each is Ready: a connected container is a running one, which is Ready
// when the sidecar has no probe; else once its probes passed (their exec
// commands run in its container, httpGet, tcpSocket and grpc from here,
// on the Pod's network).
func (a *attempt) StartSidecars(ctx context.Context, sidecars []*supervisor.Step) []*supervisor.StepExit {
	out := make([]*supervisor.StepExit, len(sidecars))
	a.sidecars = make([]*sidecarRun, len(sidecars))
	var probed []supervisor.ProbedSidecar
	for i, s := range sidecars {
		r, err := a.startSidecar(ctx, s)
		if err != nil {
			out[i] = err
			continue
		}
		a.sidecars[i] = r
		probed = append(probed, supervisor.ProbedSidecar{
			Step: s, Started: r.sent, Ended: r.ended, Exec: r.probeExec,
			Stop: func() { _ = r.stop(a.l.opts.Grace) },
			Log: func(format string, args ...any) {
				fmt.Fprintf(a.l.opts.Log, "pod-runner: sidecar container %q: %s\n", r.name, fmt.Sprintf(format, args...))
			},
		})
	}
	supervisor.AwaitSidecars(ctx, probed)
	for i, r := range a.sidecars {
		if r == nil {
			continue
		}
		select {
		case <-r.ended: // it could not start, ended at once, or failed its startup probe
			ex := <-r.done
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
	r := &sidecarRun{name: name, peer: c.peer, seq: l.nextSeq(), done: make(chan supervisor.StepExit, 1), ended: make(chan struct{}), l: l}
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
	defer close(r.ended)
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

// stop tells the sidecar's container to end it: SIGTERM, SIGKILL after
// grace. watch reports its end.
func (r *sidecarRun) stop(grace time.Duration) error {
	stop := &steppb.Stop{Seq: r.seq, GraceMs: grace.Milliseconds()}
	return r.peer.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: stop}})
}

// probeExec runs an exec probe in the sidecar's container (ProbeExec),
// which kills it at its timeout; an answer that does not come within
// stopMargin past that is a failed probe too.
func (r *sidecarRun) probeExec(ctx context.Context, command []string, timeout time.Duration) error {
	seq := r.l.nextSeq()
	answer := make(chan *steppb.ProbeResult, 1)
	r.peer.probeMu.Lock()
	if r.peer.probes == nil {
		r.peer.probes = map[uint64]chan *steppb.ProbeResult{}
	}
	r.peer.probes[seq] = answer
	r.peer.probeMu.Unlock()
	defer func() {
		r.peer.probeMu.Lock()
		delete(r.peer.probes, seq)
		r.peer.probeMu.Unlock()
	}()
	pe := &steppb.ProbeExec{Seq: seq, RunSeq: r.seq, Command: command, TimeoutMs: timeout.Milliseconds()}
	if err := r.peer.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_ProbeExec{ProbeExec: pe}}); err != nil {
		return fmt.Errorf("send the exec probe to container %q: %w", r.name, err)
	}
	late := time.NewTimer(timeout + stopMargin)
	defer late.Stop()
	select {
	case res := <-answer:
		var runErr error
		if e := res.GetError(); e != "" {
			runErr = errors.New(e)
		}
		return probe.ExecOutcome(command, int(res.GetExitCode()), runErr, res.GetOutput())
	case <-r.peer.gone:
		return fmt.Errorf("container %q ended during the exec probe", r.name)
	case <-late.C:
		return fmt.Errorf("container %q did not answer the exec probe within %v", r.name, timeout+stopMargin)
	case <-ctx.Done():
		return context.Cause(ctx)
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
		if err := r.stop(a.l.opts.Grace); err != nil {
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
