package supervisor

import (
	"context"
	"fmt"
	"path"
	"sync"
	"time"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// outcome is what a fake step does: wait, write results, exit.
type outcome struct {
	exit int
	// reason and err are the exit's Reason (e.g. reasons.OOMKilled) and Err (the
	// step's container was lost).
	reason  string
	err     error
	sleep   time.Duration
	results map[string]string
	// stepArtifacts and taskArtifacts are what the step writes to
	// $(step.artifacts.path) and $(artifacts.path).
	stepArtifacts, taskArtifacts string
	// ignoreStop keeps the step running after its context ends (as a process
	// that traps SIGTERM would until SIGKILL), for this long.
	ignoreStop time.Duration
	// then runs when the step has ended normally, before RunStep returns.
	then func()
}

// fakeLauncher runs steps in memory. Outcomes are keyed "task/step" for
// every attempt, or "task/step#N" for attempt N.
type fakeLauncher struct {
	mu       sync.Mutex
	outcomes map[string]outcome
	ran      []string // "task/step#attempt", in start order
	commands map[string][]string
	scripts  map[string]string
	envs     map[string][]string
	closed   bool
}

func newFake(outcomes map[string]outcome) *fakeLauncher {
	return &fakeLauncher{outcomes: outcomes, commands: map[string][]string{}, scripts: map[string]string{}, envs: map[string][]string{}}
}

func (f *fakeLauncher) Prepare(context.Context, *planpb.Plan) error { return nil }
func (f *fakeLauncher) Close() error                                { f.closed = true; return nil }

func (f *fakeLauncher) StartAttempt(_ context.Context, t *planpb.Task, attempt int) (Attempt, error) {
	return &fakeAttempt{f: f, task: t.GetName(), attempt: attempt, results: map[string]string{}, artifacts: map[string]string{}}, nil
}

type fakeAttempt struct {
	f       *fakeLauncher
	task    string
	attempt int
	results map[string]string
	// artifacts are the artifacts files written, by step ("" the task's).
	artifacts map[string]string
}

func (a *fakeAttempt) ResultsDir() string         { return "/tekton/results" }
func (a *fakeAttempt) StepDir(step string) string { return path.Join("/tekton/steps", "step-"+step) }
func (a *fakeAttempt) ArtifactsDir() string       { return "/tekton/artifacts" }
func (a *fakeAttempt) Workspace(name string) (string, bool) {
	return path.Join("/workspace", name), true
}
func (a *fakeAttempt) ReadResult(name string) (string, bool, error) {
	v, ok := a.results[name]
	return v, ok, nil
}
func (a *fakeAttempt) ReadStepResult(string, string) (string, bool, error) { return "", false, nil }
func (a *fakeAttempt) Finish()                                             {}
func (a *fakeAttempt) ReadArtifacts(step string) ([]byte, bool, error) {
	v, ok := a.artifacts[step]
	return []byte(v), ok, nil
}

func (a *fakeAttempt) RunStep(ctx context.Context, s *Step) StepExit {
	key := a.task + "/" + s.Name
	a.f.mu.Lock()
	a.f.ran = append(a.f.ran, fmt.Sprintf("%s#%d", key, a.attempt))
	a.f.commands[key] = append(append([]string{}, s.Command...), s.Args...)
	a.f.scripts[key] = s.Script
	a.f.envs[key] = s.Env
	o, ok := a.f.outcomes[fmt.Sprintf("%s#%d", key, a.attempt)]
	if !ok {
		o = a.f.outcomes[key]
	}
	a.f.mu.Unlock()
	start := time.Now()
	select {
	case <-time.After(o.sleep):
	case <-ctx.Done():
		time.Sleep(o.ignoreStop)
		return StepExit{ExitCode: 143, Started: start, Finished: time.Now()}
	}
	for k, v := range o.results {
		a.results[k] = v
	}
	if o.stepArtifacts != "" {
		a.artifacts[s.Name] = o.stepArtifacts
	}
	if o.taskArtifacts != "" {
		a.artifacts[""] = o.taskArtifacts
	}
	if o.then != nil {
		o.then()
	}
	return StepExit{ExitCode: o.exit, Reason: o.reason, Err: o.err, Started: start, Finished: time.Now()}
}
