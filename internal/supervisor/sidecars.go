package supervisor

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// SidecarAttempt is an Attempt that can run its task's sidecars beside the
// steps (pod mode: each sidecar has a container of its own). Launchers whose
// attempts do not implement it cannot run sidecars; the supervisor then
// fails a task that declares some.
type SidecarAttempt interface {
	Attempt
	// StartSidecars starts every sidecar, fully substituted, in the
	// background, and returns once each is Ready or ended: Tekton starts a
	// task's steps once its sidecars are ready or terminated. A sidecar
	// without probes is Ready once started; one with a StartupProbe or
	// ReadinessProbe once they passed (internal/probe), and one whose
	// startup probe fails is stopped, as the kubelet kills its container.
	// When ctx ends first (the task's timeout) it returns at once. For each
	// sidecar, in order, the result is nil while it runs, or how it ended.
	StartSidecars(ctx context.Context, sidecars []*Step) []*StepExit
	// StopSidecars stops the sidecars that still run (SIGTERM, then SIGKILL
	// after a grace period) and returns how each ended, in StartSidecars'
	// order, for those StartSidecars found running and those that ended
	// since. stopped tells which were still running when told to stop.
	StopSidecars() (exits []StepExit, stopped []bool)
}

// Sidecar states' reasons. A sidecar Tekton stops once the steps end is
// "Completed" (updateStoppedSidecarStatus); one that ended on its own has
// its container's reason: Completed or Error (or reasons.OOMKilled).
const (
	SidecarCompleted = "Completed"
	SidecarError     = "Error"
)

// taskSidecars substitutes the task's sidecars as the steps are: params,
// contexts, result paths, workspaces (Tekton applies the same replacements
// to sidecars and steps). Unnamed sidecars get "unnamed-i" names.
func taskSidecars(spec *planpb.TaskSpec, params []*planpb.Param, taskCtx map[string]string, att Attempt) ([]*planpb.Step, error) {
	if len(spec.GetSidecars()) == 0 {
		return nil, nil
	}
	asSteps := &planpb.TaskSpec{Params: spec.GetParams(), Results: spec.GetResults(), Workspaces: spec.GetWorkspaces(), Steps: spec.GetSidecars()}
	return results.TaskSteps(asSteps, params, taskCtx, att)
}

// startSidecars starts the attempt's sidecars, records them in st.Sidecars,
// and returns what stops them once the steps have ended (a no-op for a
// task without sidecars). stop may be called more than once; it stops them
// the first time and tells which sidecars had ended on their own before,
// by index in st.Sidecars: what Tekton's pod status shows when the last
// step ends.
func (s *Supervisor) startSidecars(ctx context.Context, att Attempt, t *planpb.Task, spec *planpb.TaskSpec, params []*planpb.Param, taskCtx map[string]string, st *planpb.TaskStatus) (stop func() (ended []bool), err error) {
	st.Sidecars = nil
	sidecars, err := taskSidecars(spec, params, taskCtx, att)
	if err != nil {
		return nil, fmt.Errorf("invalid task %q: sidecars: %w", t.GetName(), err)
	}
	if len(sidecars) == 0 {
		return func() []bool { return nil }, nil
	}
	sa, ok := att.(SidecarAttempt)
	if !ok {
		return nil, fmt.Errorf("task %q has %d sidecar(s), which this launcher cannot run", t.GetName(), len(sidecars))
	}
	runs := make([]*Step, len(sidecars))
	for i, sc := range sidecars {
		runs[i] = launchable(t, i, sc)
		st.Sidecars = append(st.Sidecars, &planpb.StepState{
			Name: sc.GetName(), Container: "sidecar-" + sc.GetName(), Image: sc.GetImage(),
			Running: true, StartedAt: timestamppb.New(s.now()),
		})
	}
	ended := make([]bool, len(sidecars))
	started := sa.StartSidecars(ctx, runs)
	for i, ex := range started {
		if ex != nil && i < len(st.Sidecars) {
			s.sidecarEnded(st.Sidecars[i], *ex, false)
			ended[i] = true
		}
	}
	s.reportTask(st)
	done := false
	return func() []bool {
		if done {
			return ended
		}
		done = true
		// Real time, as the exits' times are.
		stopAt := time.Now()
		exits, stopped := sa.StopSidecars()
		for i := range st.Sidecars {
			if i < len(exits) && st.Sidecars[i].GetRunning() {
				wasStopped := i < len(stopped) && stopped[i]
				s.sidecarEnded(st.Sidecars[i], exits[i], wasStopped)
				// A sidecar that did not stop when told is not one that
				// had ended: it ends after the stop began.
				ended[i] = !wasStopped && !exits[i].Finished.After(stopAt)
			}
		}
		return ended
	}, nil
}

// sidecarEnded records how a sidecar ended.
func (s *Supervisor) sidecarEnded(state *planpb.StepState, exit StepExit, stopped bool) {
	s.terminated(state, exit)
	switch {
	case stopped:
		state.Reason = SidecarCompleted
	case exit.Reason == reasons.OOMKilled:
		state.Reason = reasons.OOMKilled
	case exit.Err != nil:
		state.Reason = SidecarError
		if state.ExitCode == 0 {
			state.ExitCode = 1
		}
	case exit.ExitCode == 0:
		state.Reason = SidecarCompleted
	default:
		state.Reason = SidecarError
	}
}
