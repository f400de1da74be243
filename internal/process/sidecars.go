package process

import (
	"context"
	"fmt"

	"github.com/e7763abc/pod-runner/internal/supervisor"
)

var _ supervisor.SidecarAttempt = (*attempt)(nil)

// StartSidecars starts each sidecar as a host process in the background,
// as a container beside the steps: started is running, which is when
// Tekton starts the steps of a task whose sidecars have no readiness probe.
func (a *attempt) StartSidecars(_ context.Context, sidecars []*supervisor.Step) []*supervisor.StepExit {
	out := make([]*supervisor.StepExit, len(sidecars))
	a.sidecars = make([]*running, len(sidecars))
	for i, s := range sidecars {
		r, failed := a.start(s, sidecarRole)
		if failed != nil {
			// As a container that cannot start shows in its events.
			a.l.log.write(fmt.Appendf(nil, "[%s/sidecar-%s] pod-runner: %v\n", s.Task, s.Name, failed.Err))
			out[i] = failed
			continue
		}
		select {
		case end := <-r.waited: // it ended at once
			ex := r.finish(end)
			out[i] = &ex
		default:
			a.sidecars[i] = r
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
