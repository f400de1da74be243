package process

import (
	"context"
	"fmt"
	"time"

	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/probe"
	"github.com/e7763abc/pod-runner/internal/stepexec"
	"github.com/e7763abc/pod-runner/internal/supervisor"
)

var _ supervisor.SidecarAttempt = (*attempt)(nil)

// StartSidecars starts each sidecar as a host process in the background,
// as a container beside the steps, and returns once each is Ready: at once
// for a sidecar without probes (started is running), else once its probes
// passed (an exec probe runs on the host with the sidecar's environment
// and working directory, as in its container).
func (a *attempt) StartSidecars(ctx context.Context, sidecars []*supervisor.Step) []*supervisor.StepExit {
	out := make([]*supervisor.StepExit, len(sidecars))
	a.sidecars = make([]*running, len(sidecars))
	var probed []supervisor.ProbedSidecar
	for i, s := range sidecars {
		r, failed := a.start(s, sidecarRole)
		if failed != nil {
			// As a container that cannot start shows in its events.
			a.l.log.write(fmt.Appendf(nil, "[%s/sidecar-%s] pod-runner: %v\n", s.Task, s.Name, failed.Err))
			out[i] = failed
			continue
		}
		a.sidecars[i] = r
		probed = append(probed, supervisor.ProbedSidecar{
			Step: s, Started: r.proc.Started(), Ended: r.ended,
			Exec: func(ctx context.Context, command []string, timeout time.Duration) error {
				ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("command timed out after %v", timeout))
				defer cancel()
				argv := command
				if v := r.files.view; v != nil {
					// In the sidecar's view (Tekton's paths), as in its container.
					var err error
					if argv, err = mountns.Args(a.l.opts.Self, *v, command); err != nil {
						return err
					}
				}
				res, err := stepexec.RunCommand(ctx, stepexec.Command{Argv: argv, Env: r.files.env, Dir: r.files.dir})
				return probe.ExecOutcome(command, res.Code, err, res.Output)
			},
			Stop: func() { r.proc.Stop(a.l.opts.Grace) },
			Log: func(format string, args ...any) {
				a.l.log.write([]byte(fmt.Sprintf("[%s/sidecar-%s] pod-runner: %s\n", s.Task, s.Name, fmt.Sprintf(format, args...))))
			},
		})
	}
	supervisor.AwaitSidecars(ctx, probed)
	for i, r := range a.sidecars {
		if r == nil {
			continue
		}
		select {
		case <-r.ended: // it ended at once, or failed its startup probe
			ex := r.finish(<-r.waited)
			out[i] = &ex
			a.sidecars[i] = nil
		default:
		}
	}
	return out
}

// StopSidecars stops the sidecars still running, all at once (SIGTERM to
// each group, SIGKILL after the grace period), and tells how each ended.
func (a *attempt) StopSidecars() (exits []supervisor.StepExit, stopped []bool) {
	exits = make([]supervisor.StepExit, len(a.sidecars))
	stopped = make([]bool, len(a.sidecars))
	for i, r := range a.sidecars {
		if r == nil {
			continue
		}
		select {
		case end := <-r.waited: // ended on its own
			exits[i] = r.finish(end)
			a.sidecars[i] = nil
		default:
			r.proc.Stop(a.l.opts.Grace)
			stopped[i] = true
		}
	}
	for i, r := range a.sidecars {
		if r != nil {
			exits[i] = r.finish(<-r.waited)
		}
	}
	a.sidecars = nil
	return exits, stopped
}
