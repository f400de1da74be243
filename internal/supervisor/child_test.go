package supervisor

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// childTask is a pipeline task named name that runs a child pipeline of
// tasks and finally, whose plan names are already NAME.TASK.
func childTask(name string, after []string, tasks []*planpb.Task, finally ...*planpb.Task) *planpb.Task {
	return &planpb.Task{Name: name, TaskRunName: "run-" + name, RunAfter: after,
		Child: &planpb.ChildPipeline{Uid: "uid-" + name, PipelineName: name, Tasks: tasks, Finally: finally}}
}

// inChild names t as a task of the child pipeline child.
func inChild(child string, t *planpb.Task) *planpb.Task {
	t.PipelineTask = t.GetName()
	t.Name = child + "." + t.GetName()
	for i, a := range t.GetRunAfter() {
		t.RunAfter[i] = child + "." + a
	}
	return t
}

func skippedNames(sk []*planpb.SkippedTask) map[string]string {
	out := map[string]string{}
	for _, s := range sk {
		out[s.GetName()] = s.GetReason()
	}
	return out
}

func TestChildPipelineRunsItsFinallyThenFailsItsTask(t *testing.T) {
	a := task("a", nil, step("s"))
	child := childTask("child", []string{"a"},
		[]*planpb.Task{inChild("child", task("x", nil, step("s"))), inChild("child", task("y", []string{"x"}, step("s")))},
		inChild("child", task("f", nil, step("s"))))
	b := task("b", []string{"child"}, step("s"))
	pf := task("pf", nil, &planpb.Step{Name: "s", Image: "busybox", Command: []string{"echo", "$(params.p)"}})
	pf.Spec.Params = []*planpb.ParamSpec{{Name: "p"}}
	pf.Params = []*planpb.Param{{Name: "p", Value: &planpb.Value{StringValue: "$(tasks.child.status)"}}}
	f := newFake(map[string]outcome{"child.x/s": {exit: 1}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a, child, b}, pf), f)

	if got := st.GetCondition().GetReason(); got != reasons.Failed {
		t.Errorf("run reason = %q, want Failed", got)
	}
	cs := taskStatus(st, "child")
	if cs.GetChild() == nil {
		t.Fatalf("the child task's status has no child run: %v", cs)
	}
	if got := cs.GetCondition().GetReason(); got != reasons.Failed || cs.GetChild().GetCondition().GetReason() != reasons.Failed {
		t.Errorf("child task reason %q, child run reason %q: want Failed for both", got, cs.GetChild().GetCondition().GetReason())
	}
	if got := taskStatus(cs.GetChild(), "child.f").GetCondition().GetStatus(); got != "True" {
		t.Errorf("the child's finally task: %q, want it run and succeeded", got)
	}
	if got := skippedNames(cs.GetChild().GetSkipped()); got["y"] != reasons.SkipStopping {
		t.Errorf("the child's skipped tasks = %v, want y skipped as %q (by its own name)", got, reasons.SkipStopping)
	}
	if got := skippedNames(st.GetSkipped()); got["b"] != reasons.SkipStopping {
		t.Errorf("the run's skipped tasks = %v, want b skipped as %q", got, reasons.SkipStopping)
	}
	want := []string{"a/s#0", "child.x/s#0", "child.f/s#0", "pf/s#0"}
	if !slices.Equal(f.ran, want) {
		t.Errorf("ran %v, want %v: the child after a, its finally after its tasks, the run's finally last", f.ran, want)
	}
	if got := f.commands["pf/s"]; !slices.Equal(got, []string{"echo", "Failed"}) {
		t.Errorf("$(tasks.child.status) in finally = %v, want Failed", got)
	}
}

func TestChildPipelineSkippedByWhenLetsDependentsRun(t *testing.T) {
	child := childTask("child", nil, []*planpb.Task{inChild("child", task("x", nil, step("s")))})
	child.When = []*planpb.WhenExpression{{Input: "no", Operator: "in", Values: []string{"yes"}}}
	b := task("b", []string{"child"}, step("s"))
	f := newFake(nil)
	st := runPlan(t, context.Background(), plan([]*planpb.Task{child, b}), f)
	if got := st.GetCondition().GetReason(); got != reasons.Completed {
		t.Errorf("run reason = %q, want Completed (a task skipped)", got)
	}
	if got := skippedNames(st.GetSkipped()); got["child"] != reasons.SkipWhen {
		t.Errorf("skipped = %v, want the child pipeline task skipped by its when", got)
	}
	if !slices.Equal(f.ran, []string{"b/s#0"}) {
		t.Errorf("ran %v: none of the child's tasks may run, b must", f.ran)
	}
}

func TestChildPipelineResultsAreItsTasks(t *testing.T) {
	x := inChild("child", task("x", nil, step("s")))
	x.Spec.Results = []*planpb.ResultSpec{{Name: "out"}}
	child := childTask("child", nil, []*planpb.Task{x})
	child.Child.Results = []*planpb.PipelineResult{{Name: "word", Value: &planpb.Value{StringValue: "$(tasks.x.results.out)"}}}
	c := task("c", []string{"child"}, &planpb.Step{Name: "s", Image: "busybox", Command: []string{"echo", "$(params.w)"}})
	c.Spec.Params = []*planpb.ParamSpec{{Name: "w"}}
	c.Params = []*planpb.Param{{Name: "w", Value: &planpb.Value{StringValue: "$(tasks.child.results.word)"}}}
	f := newFake(map[string]outcome{"child.x/s": {results: map[string]string{"out": "hello"}}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{child, c}), f)
	if got := st.GetCondition().GetReason(); got != reasons.Succeeded {
		t.Fatalf("run reason = %q, want Succeeded: %v", got, st.GetCondition())
	}
	if got := taskStatus(st, "child").GetResults(); len(got) != 1 || got[0].GetValue().GetStringValue() != "hello" {
		t.Errorf("the child task's results = %v, want the child pipeline's word=hello", got)
	}
	if got := f.commands["c/s"]; !slices.Equal(got, []string{"echo", "hello"}) {
		t.Errorf("$(tasks.child.results.word) = %v, want hello", got)
	}
}

func TestChildPipelineTimeoutFailsItsTask(t *testing.T) {
	child := childTask("child", nil, []*planpb.Task{inChild("child", task("x", nil, step("s")))})
	child.Child.Timeouts = &planpb.Timeouts{Pipeline: durationpb.New(50 * time.Millisecond)}
	f := newFake(map[string]outcome{"child.x/s": {sleep: 10 * time.Second}})
	start := time.Now()
	st := runPlan(t, context.Background(), plan([]*planpb.Task{child}), f)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run took %s: the child's timeout did not stop it", d)
	}
	cs := taskStatus(st, "child")
	if got := cs.GetCondition().GetReason(); got != reasons.PipelineTimeout {
		t.Errorf("child task reason = %q, want %q", got, reasons.PipelineTimeout)
	}
	if got := st.GetCondition().GetStatus(); got != "False" {
		t.Errorf("run status = %q, want False", got)
	}
}

func TestChildPipelineCancelledWithItsRun(t *testing.T) {
	child := childTask("child", nil, []*planpb.Task{inChild("child", task("x", nil, step("s")))})
	f := newFake(map[string]outcome{"child.x/s": {sleep: 10 * time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	st := runPlan(t, ctx, plan([]*planpb.Task{child}), f)
	if got := st.GetCondition().GetReason(); got != reasons.Cancelled {
		t.Errorf("run reason = %q, want Cancelled", got)
	}
	if got := taskStatus(st, "child").GetChild().GetCondition().GetReason(); got != reasons.Cancelled {
		t.Errorf("child run reason = %q, want Cancelled", got)
	}
}
