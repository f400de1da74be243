package supervisor

import (
	"context"
	"sync"
	"testing"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// hermeticRecorder is the fake launcher, noting which steps it was asked to
// run hermetically.
type hermeticRecorder struct {
	*fakeLauncher
	mu       sync.Mutex
	hermetic map[string]bool // "task/step" → Step.Hermetic
}

func (r *hermeticRecorder) StartAttempt(ctx context.Context, t *planpb.Task, attempt int) (Attempt, error) {
	att, err := r.fakeLauncher.StartAttempt(ctx, t, attempt)
	return &hermeticAttempt{Attempt: att, r: r}, err
}

type hermeticAttempt struct {
	Attempt
	r        *hermeticRecorder
	sidecars int
}

func (a *hermeticAttempt) RunStep(ctx context.Context, s *Step) StepExit {
	a.r.mu.Lock()
	a.r.hermetic[s.Task+"/"+s.Name] = s.Hermetic
	a.r.mu.Unlock()
	return a.Attempt.RunStep(ctx, s)
}

// StartSidecars notes the sidecars as running, StopSidecars stops them.
func (a *hermeticAttempt) StartSidecars(_ context.Context, sidecars []*Step) []*StepExit {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for _, s := range sidecars {
		a.r.hermetic[s.Task+"/sidecar-"+s.Name] = s.Hermetic
	}
	a.sidecars = len(sidecars)
	return make([]*StepExit, len(sidecars))
}

func (a *hermeticAttempt) StopSidecars() ([]StepExit, []bool) {
	stopped := make([]bool, a.sidecars)
	for i := range stopped {
		stopped[i] = true
	}
	return make([]StepExit, a.sidecars), stopped
}

// A hermetic task's steps, and only its, reach the launcher as hermetic;
// its finally tasks too when they are marked. Sidecars keep their network,
// as in Tekton (docs/hermetic.md).
func TestHermeticReachesTheLauncher(t *testing.T) {
	sealed := task("sealed", nil, step("build"), step("test"))
	sealed.Spec.Sidecars = []*planpb.Step{{Name: "db", Image: "busybox", Command: []string{"true"}}}
	sealed.Hermetic = true
	open := task("open", nil, step("fetch"))
	last := task("last", nil, step("report"))
	last.Hermetic = true
	r := &hermeticRecorder{fakeLauncher: newFake(nil), hermetic: map[string]bool{}}
	s := &Supervisor{Plan: plan([]*planpb.Task{sealed, open}, last), Launcher: r}
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"sealed/build": true, "sealed/test": true, "sealed/sidecar-db": false, "open/fetch": false, "last/report": true}
	for k, w := range want {
		got, ran := r.hermetic[k]
		if !ran {
			t.Errorf("%s did not run", k)
		} else if got != w {
			t.Errorf("%s: Step.Hermetic = %v, want %v", k, got, w)
		}
	}
}
