package supervisor

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

func step(name string) *planpb.Step {
	return &planpb.Step{Name: name, Image: "busybox", Command: []string{"true"}}
}

func task(name string, after []string, steps ...*planpb.Step) *planpb.Task {
	return &planpb.Task{Name: name, TaskRunName: "run-" + name, RunAfter: after, Spec: &planpb.TaskSpec{Steps: steps}}
}

func plan(tasks []*planpb.Task, finally ...*planpb.Task) *planpb.Plan {
	return &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "run", Tasks: tasks, Finally: finally}
}

func runPlan(t *testing.T, ctx context.Context, p *planpb.Plan, f *fakeLauncher) *planpb.RunStatus {
	t.Helper()
	var events []*planpb.Event
	s := &Supervisor{Plan: p, Launcher: f, Reporter: ReporterFunc(func(e *planpb.Event) { events = append(events, e) })}
	st, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !f.closed {
		t.Error("launcher not closed")
	}
	if last := events[len(events)-1].GetRun(); last == nil || last.GetCondition().GetStatus() == "Unknown" {
		t.Errorf("last event is not the final run status: %v", events[len(events)-1])
	}
	return st
}

func taskStatus(st *planpb.RunStatus, name string) *planpb.TaskStatus {
	for _, ts := range st.GetTasks() {
		if ts.GetName() == name {
			return ts
		}
	}
	return nil
}

func TestRetriesRunUntilSuccess(t *testing.T) {
	a := task("a", nil, step("s"))
	a.Retries = 3
	f := newFake(map[string]outcome{"a/s#0": {exit: 1}, "a/s#1": {exit: 2}, "a/s#2": {exit: 0}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	if got := st.GetCondition().GetReason(); got != reasons.Succeeded {
		t.Fatalf("run reason = %q, want Succeeded (%v)", got, st.GetCondition())
	}
	ts := taskStatus(st, "a")
	if len(ts.GetRetries()) != 2 {
		t.Fatalf("retries = %d, want 2", len(ts.GetRetries()))
	}
	for i, want := range []int32{1, 2} {
		r := ts.GetRetries()[i]
		// Each attempt keeps its own reason (Tekton's for a step that failed).
		if r.GetCondition().GetReason() != reasons.StepFailed || r.GetSteps()[0].GetExitCode() != want {
			t.Errorf("retry %d = %v", i, r)
		}
	}
	if !slices.Equal(f.ran, []string{"a/s#0", "a/s#1", "a/s#2"}) {
		t.Errorf("ran %v", f.ran)
	}
}

func TestRetryCountInContext(t *testing.T) {
	s := &planpb.Step{Name: "s", Command: []string{"echo", "$(context.task.retry-count)", "$(context.taskRun.name)"}}
	a := task("a", nil, s)
	a.Retries = 1
	a.Context = map[string]string{"context.taskRun.name": "run-a"}
	f := newFake(map[string]outcome{"a/s#0": {exit: 1}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	if st.GetCondition().GetStatus() != "True" {
		t.Fatalf("condition %v", st.GetCondition())
	}
	if got := f.commands["a/s"]; !slices.Equal(got, []string{"echo", "1", "run-a"}) {
		t.Errorf("last attempt command = %v", got)
	}
}

// TestStepWhen: a step whose when expressions do not hold is skipped, as
// Tekton's entrypoint skips it: exit code 0, reason Skipped, the task goes
// on and succeeds; one that holds runs.
func TestStepWhen(t *testing.T) {
	skipped, runs := step("skipped"), step("runs")
	skipped.When = []*planpb.WhenExpression{{Input: "a", Operator: "in", Values: []string{"b"}}}
	runs.When = []*planpb.WhenExpression{{Cel: "'a' != 'b'"}}
	a := task("a", nil, skipped, runs, step("last"))
	f := newFake(nil)
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	if st.GetCondition().GetStatus() != "True" {
		t.Fatalf("condition %v", st.GetCondition())
	}
	if !slices.Equal(f.ran, []string{"a/runs#0", "a/last#0"}) {
		t.Errorf("ran %v", f.ran)
	}
	s := taskStatus(st, "a").GetSteps()[0]
	if s.GetReason() != reasons.StepSkipped || s.GetExitCode() != 0 || !s.GetTerminated() || s.GetSkipped() {
		t.Errorf("skipped step = %v", s)
	}
}

func TestStepFailureSkipsLaterSteps(t *testing.T) {
	a := task("a", nil, step("one"), step("two"), step("three"))
	f := newFake(map[string]outcome{"a/two": {exit: 3}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	ts := taskStatus(st, "a")
	if c := ts.GetCondition(); c.GetReason() != reasons.StepFailed || c.GetMessage() != `"step-two" exited with code 3: Error` {
		t.Errorf("condition = %v", c)
	}
	got := []string{}
	for _, s := range ts.GetSteps() {
		got = append(got, s.GetReason())
	}
	if !slices.Equal(got, []string{reasons.StepCompleted, reasons.StepError, "Skipped"}) {
		t.Errorf("step reasons = %v", got)
	}
	if st.GetCondition().GetReason() != reasons.Failed {
		t.Errorf("run = %v", st.GetCondition())
	}
}

func TestOnErrorContinue(t *testing.T) {
	one := step("one")
	one.OnError = planpb.OnError_CONTINUE
	a := task("a", nil, one, step("two"))
	f := newFake(map[string]outcome{"a/one": {exit: 7}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	ts := taskStatus(st, "a")
	if ts.GetCondition().GetStatus() != "True" {
		t.Fatalf("condition = %v", ts.GetCondition())
	}
	if s := ts.GetSteps()[0]; s.GetExitCode() != 7 || s.GetReason() != "Continued" {
		t.Errorf("step one = %v", s)
	}
}

func TestStepTimeout(t *testing.T) {
	s := step("slow")
	s.Timeout = durationpb.New(20 * time.Millisecond)
	a := task("a", nil, s, step("next"))
	f := newFake(map[string]outcome{"a/slow": {sleep: time.Hour}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	ts := taskStatus(st, "a")
	// Tekton's entrypoint exits non-zero when a step times out: StepFailed.
	if c := ts.GetCondition(); c.GetReason() != reasons.StepFailed || !strings.Contains(c.GetMessage(), "exceeded the specified timeout") {
		t.Errorf("condition = %v", c)
	}
	if ts.GetSteps()[0].GetReason() != reasons.StepTimeoutExceeded || ts.GetSteps()[1].GetReason() != "Skipped" {
		t.Errorf("steps = %v", ts.GetSteps())
	}
}

func TestTaskTimeoutIsRetried(t *testing.T) {
	a := task("a", nil, step("s"))
	a.Timeout = durationpb.New(20 * time.Millisecond)
	a.Retries = 1
	f := newFake(map[string]outcome{"a/s": {sleep: time.Hour}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	ts := taskStatus(st, "a")
	if c := ts.GetCondition(); c.GetReason() != reasons.TaskTimeout || c.GetMessage() != `TaskRun "run-a" failed to finish within "20ms"` {
		t.Errorf("condition = %v", c)
	}
	if len(ts.GetRetries()) != 1 || ts.GetRetries()[0].GetCondition().GetReason() != reasons.TaskTimeout {
		t.Errorf("retries = %v", ts.GetRetries())
	}
	if st.GetCondition().GetReason() != reasons.Failed {
		t.Errorf("run = %v", st.GetCondition())
	}
}

func TestCancel(t *testing.T) {
	a := task("a", nil, step("s"))
	b := task("b", []string{"a"}, step("s"))
	fin := task("fin", nil, step("s"))
	f := newFake(map[string]outcome{"a/s": {sleep: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	st := runPlan(t, ctx, plan([]*planpb.Task{a, b}, fin), f)
	if c := st.GetCondition(); c.GetReason() != reasons.Cancelled || c.GetMessage() != `PipelineRun "run" was cancelled` {
		t.Errorf("run = %v", c)
	}
	if c := taskStatus(st, "a").GetCondition(); c.GetReason() != reasons.TaskCancelled {
		t.Errorf("a = %v", c)
	}
	if taskStatus(st, "b") != nil || taskStatus(st, "fin") != nil {
		t.Errorf("tasks started after cancel: %v", f.ran)
	}
}

func TestPipelineTimeout(t *testing.T) {
	a := task("a", nil, step("s"))
	fin := task("fin", nil, step("s"))
	p := plan([]*planpb.Task{a}, fin)
	p.Timeouts = &planpb.Timeouts{Pipeline: durationpb.New(30 * time.Millisecond)}
	f := newFake(map[string]outcome{"a/s": {sleep: time.Hour}})
	st := runPlan(t, context.Background(), p, f)
	if c := st.GetCondition(); c.GetReason() != reasons.PipelineTimeout || c.GetMessage() != `PipelineRun "run" failed to finish within "30ms"` {
		t.Errorf("run = %v", c)
	}
	if c := taskStatus(st, "a").GetCondition(); c.GetReason() != reasons.TaskCancelled || !strings.Contains(c.GetMessage(), reasons.MsgCancelledByPipelineTimeout) {
		t.Errorf("a = %v", c)
	}
	// The run's status is final at the timeout, when a still ran: fin was
	// not skipped yet, and stays so once a ends (Tekton leaves a done
	// PipelineRun alone).
	if len(st.GetSkipped()) != 0 || taskStatus(st, "fin") != nil {
		t.Errorf("skipped = %v, fin = %v", st.GetSkipped(), taskStatus(st, "fin"))
	}
}

func TestTasksTimeoutRunsFinally(t *testing.T) {
	a := task("a", nil, step("s"))
	fin := task("fin", nil, step("s"))
	p := plan([]*planpb.Task{a}, fin)
	p.Timeouts = &planpb.Timeouts{Tasks: durationpb.New(30 * time.Millisecond)}
	f := newFake(map[string]outcome{"a/s": {sleep: time.Hour}})
	st := runPlan(t, context.Background(), p, f)
	if c := st.GetCondition(); c.GetReason() != reasons.PipelineTimeout || !strings.Contains(c.GetMessage(), "tasks failed to finish within") {
		t.Errorf("run = %v", c)
	}
	if c := taskStatus(st, "fin").GetCondition(); c.GetStatus() != "True" {
		t.Errorf("finally did not run: %v", c)
	}
}

func TestParallelTasksOverlap(t *testing.T) {
	a := task("a", nil, step("s"))
	b := task("b", nil, step("s"))
	c := task("c", []string{"a", "b"}, step("s"))
	f := newFake(map[string]outcome{"a/s": {sleep: 50 * time.Millisecond}, "b/s": {sleep: 50 * time.Millisecond}})
	start := time.Now()
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a, b, c}), f)
	if st.GetCondition().GetReason() != reasons.Succeeded {
		t.Fatalf("run = %v", st.GetCondition())
	}
	// a and b each take 50ms: they overlap when both start before either ends.
	ta, tb := taskStatus(st, "a"), taskStatus(st, "b")
	if !ta.GetStartTime().AsTime().Before(tb.GetCompletionTime().AsTime()) || !tb.GetStartTime().AsTime().Before(ta.GetCompletionTime().AsTime()) {
		t.Errorf("a and b did not run in parallel: a %v-%v b %v-%v", ta.GetStartTime(), ta.GetCompletionTime(), tb.GetStartTime(), tb.GetCompletionTime())
	}
	if tc := taskStatus(st, "c"); tc.GetStartTime().AsTime().Before(ta.GetCompletionTime().AsTime()) {
		t.Errorf("c started before a ended")
	}
	_ = start
}

func TestScriptGetsDefaultShebang(t *testing.T) {
	a := task("a", nil, &planpb.Step{Name: "s", Script: "echo hi"}, &planpb.Step{Name: "p", Script: "#!/usr/bin/env python3\nprint(1)"})
	f := newFake(nil)
	runPlan(t, context.Background(), plan([]*planpb.Task{a}), f)
	if got := f.scripts["a/s"]; got != "#!/bin/sh\nset -e\necho hi" {
		t.Errorf("script = %q", got)
	}
	if got := f.scripts["a/p"]; got != "#!/usr/bin/env python3\nprint(1)" {
		t.Errorf("script = %q", got)
	}
}

func TestRejectsUnknownPlanVersion(t *testing.T) {
	p := plan(nil)
	p.Version = 99
	if _, err := (&Supervisor{Plan: p, Launcher: newFake(nil)}).Run(context.Background()); err == nil {
		t.Fatal("want an error for plan version 99")
	}
}

// TestCancelBetweenSteps: a cancel that lands just as a step ends normally
// still stops the task: the steps after it do not run and it is not Succeeded.
func TestCancelBetweenSteps(t *testing.T) {
	a := task("a", nil, step("s1"), step("s2"))
	ctx, cancel := context.WithCancel(context.Background())
	f := newFake(map[string]outcome{"a/s1": {then: func() {
		cancel()
		time.Sleep(20 * time.Millisecond) // let the supervisor stop the task's context
	}}})
	st := runPlan(t, ctx, plan([]*planpb.Task{a}), f)
	if c := taskStatus(st, "a").GetCondition(); c.GetReason() != reasons.TaskCancelled {
		t.Errorf("a = %v", c)
	}
	for _, ran := range f.ran {
		if ran == "a/s2#0" {
			t.Errorf("s2 ran after the cancel: %v", f.ran)
		}
	}
}

// A failed task whose failure the pipeline ignores ends FailureIgnored, which
// $(tasks.X.reason) shows, and the run counts it as ignored.
func TestFailureIgnored(t *testing.T) {
	a := task("a", nil, step("s"))
	a.OnErrorContinue = true
	fin := task("fin", nil, &planpb.Step{Name: "s", Command: []string{"echo", "$(params.p)"}})
	fin.Spec.Params = []*planpb.ParamSpec{{Name: "p"}}
	fin.Params = []*planpb.Param{{Name: "p", Value: &planpb.Value{StringValue: "$(tasks.a.reason)/$(tasks.a.status)"}}}
	f := newFake(map[string]outcome{"a/s": {exit: 1}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a}, fin), f)
	if c := taskStatus(st, "a").GetCondition(); c.GetStatus() != "False" || c.GetReason() != reasons.FailureIgnored {
		t.Errorf("a = %v", c)
	}
	if got := f.commands["fin/s"]; !slices.Equal(got, []string{"echo", "FailureIgnored/Failed"}) {
		t.Errorf("fin ran %v", got)
	}
	if c := st.GetCondition(); c.GetStatus() != "True" || c.GetMessage() != "Tasks Completed: 2 (Failed: 1 (Ignored: 1), Cancelled 0), Skipped: 0" {
		t.Errorf("run = %v", c)
	}
}

// The control requests never block: before Run they apply from its start,
// after it they do nothing.
func TestControlsAnyTime(t *testing.T) {
	a := task("a", nil, step("s"))
	fin := task("fin", nil, step("s"))
	f := newFake(nil)
	s := &Supervisor{Plan: plan([]*planpb.Task{a}, fin), Launcher: f}
	for range 10 {
		s.StopRunFinally()
	}
	st, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.ran, []string{"fin/s#0"}) {
		t.Errorf("ran %v, want only finally", f.ran)
	}
	if sk := st.GetSkipped(); len(sk) != 1 || sk[0].GetName() != "a" || sk[0].GetReason() != reasons.SkipGracefullyStopped {
		t.Errorf("skipped = %v", sk)
	}
	if c := st.GetCondition(); c.GetReason() != reasons.Cancelled {
		t.Errorf("run = %v", c)
	}
	done := make(chan struct{})
	go func() {
		s.CancelRunFinally()
		s.StopRunFinally()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a request after Run blocks")
	}
}

// A request racing with the start of Run is applied.
func TestCancelRunFinallyRacesRun(t *testing.T) {
	a := task("a", nil, step("s"))
	fin := task("fin", nil, step("s"))
	f := newFake(map[string]outcome{"a/s": {sleep: time.Hour}})
	s := &Supervisor{Plan: plan([]*planpb.Task{a}, fin), Launcher: f}
	go s.CancelRunFinally()
	st, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c := st.GetCondition(); c.GetReason() != reasons.Cancelled {
		t.Errorf("run = %v", c)
	}
	if c := taskStatus(st, "fin").GetCondition(); c.GetStatus() != "True" {
		t.Errorf("finally did not run: %v", c)
	}
}
