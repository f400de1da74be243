package supervisor

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// AwaitSidecars returns when each sidecar is Ready or ended, or ctx ends;
// a failed startup probe stops its sidecar and waits for its end.
func TestAwaitSidecars(t *testing.T) {
	probe := func(threshold int32) *planpb.Probe {
		return &planpb.Probe{PeriodSeconds: 1, FailureThreshold: threshold,
			Action: &planpb.Probe_Exec{Exec: &planpb.ExecAction{Command: []string{"x"}}}}
	}
	for _, c := range []struct {
		name         string
		step         *Step
		readyAfter   int // exec probes that fail before one passes; -1 never
		endAfter     time.Duration
		ctxAfter     time.Duration
		wantStopped  bool
		wantAtLeast  time.Duration
		wantLessThan time.Duration
	}{
		{name: "no probe: at once", step: &Step{}, readyAfter: -1, wantLessThan: time.Second},
		{name: "ready after two failures, a second apart", step: &Step{ReadinessProbe: probe(3)}, readyAfter: 2,
			wantAtLeast: 2 * time.Second, wantLessThan: 3 * time.Second},
		{name: "the sidecar ends: no more waiting", step: &Step{ReadinessProbe: probe(3)}, readyAfter: -1,
			endAfter: 300 * time.Millisecond, wantAtLeast: 300 * time.Millisecond, wantLessThan: time.Second},
		{name: "startup fails: stopped, then awaited", step: &Step{StartupProbe: probe(1), ReadinessProbe: probe(3)}, readyAfter: -1,
			wantStopped: true, wantLessThan: time.Second},
		{name: "ctx ends: the task's timeout", step: &Step{ReadinessProbe: probe(1)}, readyAfter: -1,
			ctxAfter: 500 * time.Millisecond, wantAtLeast: 500 * time.Millisecond, wantLessThan: 1500 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Before the timers start: a lower bound is then never early.
			begin := time.Now()
			ended := make(chan struct{})
			var probes atomic.Int32
			var stopped atomic.Bool
			if c.endAfter > 0 {
				time.AfterFunc(c.endAfter, func() { close(ended) })
			}
			ctx := context.Background()
			if c.ctxAfter > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.ctxAfter)
				defer cancel()
			}
			sc := ProbedSidecar{Step: c.step, Started: time.Now(), Ended: ended,
				Exec: func(context.Context, []string, time.Duration) error {
					if n := probes.Add(1); c.readyAfter >= 0 && int(n) > c.readyAfter {
						return nil
					}
					return errors.New("not ready")
				},
				Stop: func() {
					stopped.Store(true)
					close(ended)
				},
			}
			AwaitSidecars(ctx, []ProbedSidecar{sc})
			took := time.Since(begin)
			if took < c.wantAtLeast || took >= c.wantLessThan {
				t.Errorf("AwaitSidecars took %v, want [%v, %v)", took, c.wantAtLeast, c.wantLessThan)
			}
			if stopped.Load() != c.wantStopped {
				t.Errorf("stopped %v, want %v", stopped.Load(), c.wantStopped)
			}
		})
	}
}
