package oracle

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestRunAgainstTekton replays scenarios through Supervisor.Run, whose final
// status holds what Facts alone cannot give: the pipeline results, the params
// each task ran with and the reasons the task runner sets. A scripted
// launcher ends each task when the scenario says, and waits until the
// supervisor has taken the end in before the next event, so the order of
// events is the scenario's.
// Scenarios it cannot replay are checked by TestFactsAgainstTekton alone.
func TestRunAgainstTekton(t *testing.T) {
	notReplayed := map[string]int{}
	t.Cleanup(func() {
		t.Logf("not replayed through Supervisor.Run (TestFactsAgainstTekton checks them): %v", notReplayed)
	})
	for _, sc := range scenarios {
		if why := notReplayable(sc); why != "" {
			notReplayed[why]++
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			if sc.refused != "" {
				s := &supervisor.Supervisor{Plan: refusedPlan(t, sc), Launcher: newScriptedLauncher()}
				if _, err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), sc.refused) {
					t.Errorf("Supervisor.Run: error %v, want one saying %q", err, sc.refused)
				}
				return
			}
			replay(t, sc)
		})
	}
}

// notReplayable says why a scenario cannot go through Supervisor.Run: its
// events need timers, or an event the supervisor has no API for.
func notReplayable(sc scenario) string {
	if sc.disagreement != "" {
		return "known disagreement: " + sc.disagreement
	}
	runCancelled := false
	for _, e := range sc.events {
		switch e.kind {
		case evPipelineTimeout, evTasksTimeout, evFinallyTimeout:
			return "pipeline timeouts need real timers"
		case evCancel, evCancelRunFinally:
			runCancelled = true
		case evFinish:
			switch {
			case e.end.kind == cancelledByTimeout:
				return "pipeline timeouts need real timers"
			case e.end.kind == cancelledByRun && !runCancelled:
				return "the supervisor has no API to cancel one task"
			case e.end.why != "" && e.end.why != v1.TaskRunReasonFailureIgnored.String():
				return "reason " + e.end.why + " needs a task timeout"
			}
		}
	}
	return ""
}

func replay(t *testing.T, sc scenario) {
	h := runScenario(t, sc) // Tekton's final status, and Facts checked on the way
	want := h.tekton.snapshot()
	l := newScriptedLauncher()
	events := make(chan *planpb.Event, 1000)
	s := &supervisor.Supervisor{Plan: h.ours.plan, Launcher: l,
		Reporter: supervisor.ReporterFunc(func(e *planpb.Event) { events <- e })}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		st  *planpb.RunStatus
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		st, err := s.Run(ctx)
		done <- outcome{st, err}
	}()

	// The control methods need a started Run.
	for _, name := range h.initial {
		l.waitStarted(t, name)
	}
	for i, e := range sc.events {
		switch e.kind {
		case evFinish:
			if e.end.kind == cancelledByRun {
				continue // the supervisor stops it itself
			}
			l.waitStarted(t, e.task)
			l.release(e.task, e.end)
			l.waitTakenIn(t, e.task)
		case evCancel:
			cancel()
		case evCancelRunFinally:
			s.CancelRunFinally()
			waitReason(t, events, reasons.CancelledRunningFinally)
		case evStopRunFinally:
			s.StopRunFinally()
			waitReason(t, events, reasons.StoppedRunningFinally)
		default:
			t.Fatalf("event %d (%s) cannot be replayed", i+1, e)
		}
	}
	var got outcome
	select {
	case got = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Supervisor.Run did not end")
	}
	if got.err != nil {
		t.Fatalf("Supervisor.Run: %v", got.err)
	}
	compareFinal(t, h, want, got.st)
}

// compareFinal compares the supervisor's final status with Tekton's.
func compareFinal(t *testing.T, h *harness, want status, st *planpb.RunStatus) {
	c := st.GetCondition()
	if gotCond := (cond{c.GetStatus(), c.GetReason(), c.GetMessage()}); !reflect.DeepEqual(want.Cond, gotCond) {
		t.Errorf("final condition:\n tekton: %+v\n ours:   %+v", want.Cond, gotCond)
	}
	var skipped []skip
	for _, s := range st.GetSkipped() {
		skipped = append(skipped, skip{Task: s.GetName(), Reason: s.GetReason(), When: whenFromPlan(s.GetWhen())})
	}
	if !reflect.DeepEqual(want.Skipped, skipped) {
		t.Errorf("final skipped tasks:\n tekton: %+v\n ours:   %+v", want.Skipped, skipped)
	}

	// The tasks that ran and their params.
	ran := map[string][]param{}
	for _, ts := range st.GetTasks() {
		ran[ts.GetTaskRunName()] = paramsFromPlan(ts.GetParams())
	}
	tkRan := map[string][]param{}
	for name, tr := range h.tekton.taskRuns {
		tkRan[name] = paramsFromTekton(tr.Spec.Params)
	}
	if !reflect.DeepEqual(tkRan, ran) {
		t.Errorf("tasks run with params:\n tekton: %+v\n ours:   %+v", tkRan, ran)
	}

	// Tekton computes pipeline results only in the reconcile that ends the
	// run, and a cancelled run never gets there.
	wantRes := resultsFromTekton(h.tekton.results)
	if gotRes := resultsFromPlan(st.GetResults()); !reflect.DeepEqual(wantRes, gotRes) {
		t.Errorf("pipeline results:\n tekton: %+v\n ours:   %+v", wantRes, gotRes)
	}
}

// waitReason waits for a run status with the given condition reason.
func waitReason(t *testing.T, events <-chan *planpb.Event, reason string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			if e.GetRun().GetCondition().GetReason() == reason {
				return
			}
		case <-timeout:
			t.Fatalf("no run status with reason %s", reason)
		}
	}
}

// scriptedLauncher runs no process: a task's steps wait until the test
// releases the task with its end, then write its results and exit.
type scriptedLauncher struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	started  map[string]context.Context
	released map[string]chan end
}

func newScriptedLauncher() *scriptedLauncher {
	return &scriptedLauncher{changed: make(chan struct{}), started: map[string]context.Context{}, released: map[string]chan end{}}
}

func (l *scriptedLauncher) Prepare(context.Context, *planpb.Plan) error { return nil }
func (l *scriptedLauncher) Close() error                                { return nil }

func (l *scriptedLauncher) StartAttempt(ctx context.Context, t *planpb.Task, attempt int) (supervisor.Attempt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if attempt == 0 {
		l.started[t.GetName()] = ctx
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return &scriptedAttempt{l: l, task: t, results: map[string]string{}}, nil
}

func (l *scriptedLauncher) endOf(task string) chan end {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.released[task]
	if !ok {
		c = make(chan end, 1)
		l.released[task] = c
	}
	return c
}

func (l *scriptedLauncher) release(task string, e end) { l.endOf(task) <- e }

// waitStarted waits until the supervisor started the task.
func (l *scriptedLauncher) waitStarted(t *testing.T, task string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		_, ok := l.started[task]
		changed := l.changed
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("the supervisor did not start %q", task)
		}
	}
}

// waitTakenIn waits until the supervisor's loop has taken the task's end in:
// it then cancels the task's context.
func (l *scriptedLauncher) waitTakenIn(t *testing.T, task string) {
	t.Helper()
	l.mu.Lock()
	ctx := l.started[task]
	l.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the supervisor did not take the end of %q in", task)
	}
}

type scriptedAttempt struct {
	l       *scriptedLauncher
	task    *planpb.Task
	results map[string]string
}

func (a *scriptedAttempt) ResultsDir() string                               { return "/tekton/results" }
func (a *scriptedAttempt) StepDir(step string) string                       { return "/tekton/steps/step-" + step }
func (a *scriptedAttempt) Workspace(name string) (string, bool)             { return "/workspace/" + name, true }
func (a *scriptedAttempt) ReadStepResult(_, _ string) (string, bool, error) { return "", false, nil }
func (a *scriptedAttempt) Finish()                                          {}
func (a *scriptedAttempt) ArtifactsDir() string                             { return "/tekton/artifacts" }
func (a *scriptedAttempt) ReadArtifacts(string) ([]byte, bool, error)       { return nil, false, nil }

func (a *scriptedAttempt) ReadResult(name string) (string, bool, error) {
	v, ok := a.results[name]
	return v, ok, nil
}

// RunStep ends as the released end says; every attempt of a task ends the
// same way, so a failing task with retries fails them all.
func (a *scriptedAttempt) RunStep(ctx context.Context, _ *supervisor.Step) supervisor.StepExit {
	c := a.l.endOf(a.task.GetName())
	var e end
	select {
	case e = <-c:
		c <- e // for the next attempt
	case <-ctx.Done():
		return supervisor.StepExit{ExitCode: 143, Started: time.Now(), Finished: time.Now()}
	}
	for _, r := range e.results {
		a.results[r.name] = rawResult(r.val)
	}
	exit := 0
	if e.kind != succeeded {
		exit = 1
	}
	return supervisor.StepExit{ExitCode: exit, Started: time.Now(), Finished: time.Now()}
}

// rawResult is what a step writes to its result file.
func rawResult(v v1.ParamValue) string {
	switch v.Type {
	case v1.ParamTypeArray:
		b, _ := json.Marshal(append([]string{}, v.ArrayVal...)) // [], not null, for no elements
		return string(b)
	case v1.ParamTypeObject:
		b, _ := json.Marshal(v.ObjectVal)
		return string(b)
	}
	return v.StringVal
}
