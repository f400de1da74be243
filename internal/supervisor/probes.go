package supervisor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/e7763abc/pod-runner/internal/probe"
)

// ProbedSidecar is a started sidecar as AwaitSidecars probes it; each
// launcher says how its sidecars' exec probes run and how they are stopped.
type ProbedSidecar struct {
	Step *Step
	// Started is when its process started, from which initialDelaySeconds
	// counts.
	Started time.Time
	// Ended is closed once the sidecar has ended: its probes stop, and it
	// counts as terminated, which lets the steps start too.
	Ended <-chan struct{}
	// Exec runs an exec probe where the sidecar runs.
	Exec probe.Exec
	// Stop ends the sidecar (SIGTERM, SIGKILL after the grace period) when
	// its startup probe failed, as the kubelet kills the container; Ended
	// follows.
	Stop func()
	// Log receives the probes' failures, as the kubelet's events say them.
	Log func(format string, args ...any)
}

// AwaitSidecars returns once every sidecar is Ready (its startup probe,
// then its readiness probe, passed; at once without probes) or has ended,
// or ctx has ended: Tekton starts a task's steps once every sidecar is
// Ready or terminated, and a task whose sidecar never gets Ready times
// out. Their probes run side by side, as the kubelet's do. A sidecar whose
// startup probe fails is stopped, and awaited until it ended.
func AwaitSidecars(ctx context.Context, sidecars []ProbedSidecar) {
	var wg sync.WaitGroup
	for _, sc := range sidecars {
		if sc.Step.StartupProbe == nil && sc.Step.ReadinessProbe == nil {
			continue
		}
		wg.Go(func() { awaitSidecar(ctx, sc) })
	}
	wg.Wait()
}

func awaitSidecar(ctx context.Context, sc ProbedSidecar) {
	probeCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errEnded := errors.New("the sidecar ended")
	go func() {
		select {
		case <-sc.Ended:
			cancel(errEnded)
		case <-probeCtx.Done():
		}
	}()
	p := &probe.Prober{Exec: sc.Exec, Log: sc.Log}
	err := p.Await(probeCtx, sc.Step.StartupProbe, sc.Step.ReadinessProbe, sc.Started)
	if !errors.Is(err, probe.ErrStartupFailed) {
		return // Ready, ended, or out of time
	}
	if sc.Log != nil {
		sc.Log("%v: stopping the sidecar, as the kubelet kills its container", err)
	}
	sc.Stop()
	select {
	case <-sc.Ended:
	case <-ctx.Done():
	}
}
