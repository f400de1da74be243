package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

func sval(s string) *planpb.Value { return &planpb.Value{StringValue: s} }

func param(name, value string) *planpb.Param { return &planpb.Param{Name: name, Value: sval(value)} }

// matrixTask is TaskRun index of matrixed pipeline task name, with its
// combination x=value first in its params.
func matrixTask(name string, index int, value string, after []string, steps ...*planpb.Step) *planpb.Task {
	t := task(fmt.Sprintf("%s-%d", name, index), after, steps...)
	t.TaskRunName = fmt.Sprintf("run-%s-%d", name, index)
	t.Matrix = &planpb.Matrix{PipelineTask: name, Index: int32(index), Combination: 1}
	t.Params = []*planpb.Param{param("x", value), param("y", "$(tasks.a.results.r)")}
	t.Spec.Params = []*planpb.ParamSpec{{Name: "x"}, {Name: "y"}}
	return t
}

// The TaskRuns of a matrixed task run in parallel, each with its own
// combination and the pipeline task's resolved params; a retry is per
// TaskRun; the task after it waits for all of them and reads their results
// as one array, in TaskRun name order.
func TestMatrixRunsEachCombination(t *testing.T) {
	a := task("a", nil, step("s"))
	a.Spec.Results = []*planpb.ResultSpec{{Name: "r"}}
	var ms []*planpb.Task
	var mu sync.Mutex
	running, peak := 0, 0
	outcomes := map[string]outcome{"a/s": {results: map[string]string{"r": "A"}}}
	for i := range 3 {
		m := matrixTask("m", i, fmt.Sprint("v", i), []string{"a"}, &planpb.Step{Name: "s", Script: "echo $(params.x) $(params.y)"})
		m.Retries = 1
		m.Spec.Results = []*planpb.ResultSpec{{Name: "out"}}
		ms = append(ms, m)
		name := m.GetName()
		outcomes[name+"/s"] = outcome{sleep: 50 * time.Millisecond, results: map[string]string{"out": "o" + name}, then: func() {
			mu.Lock()
			running--
			mu.Unlock()
		}}
	}
	// m-1 fails its first attempt and succeeds on its retry.
	outcomes["m-1/s#0"] = outcome{exit: 1}
	after := task("after", []string{"m-0", "m-1", "m-2"}, step("s"))
	after.Params = []*planpb.Param{{Name: "all", Value: sval("$(tasks.m.results.out[*])")}, param("n", "$(tasks.m.matrix.out.length)")}
	after.Spec.Params = []*planpb.ParamSpec{{Name: "all", Type: planpb.ValueType_ARRAY}, {Name: "n"}}
	f := newFake(outcomes)
	count := func(e *planpb.Event) {
		if ts := e.GetTask(); ts != nil && strings.HasPrefix(ts.GetName(), "m-") && ts.GetCondition().GetReason() == reasons.Running && len(ts.GetSteps()) == 0 && len(ts.GetRetries()) == 0 {
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
		}
	}
	s := &Supervisor{Plan: plan(slices.Concat([]*planpb.Task{a}, ms, []*planpb.Task{after})), Launcher: f, Reporter: ReporterFunc(count)}
	st, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.GetCondition().GetReason() != reasons.Succeeded || !strings.Contains(st.GetCondition().GetMessage(), "Tasks Completed: 3 ") {
		t.Fatalf("condition %v: want Succeeded with 3 pipeline tasks", st.GetCondition())
	}
	if peak < 2 {
		t.Errorf("at most %d TaskRuns of m ran at once", peak)
	}
	for i := range 3 {
		name := fmt.Sprintf("m-%d", i)
		if got, want := f.scripts[name+"/s"], fmt.Sprintf("#!/bin/sh\nset -e\necho v%d A", i); got != want {
			t.Errorf("%s ran %q, want %q", name, got, want)
		}
	}
	if ts := taskStatus(st, "m-1"); len(ts.GetRetries()) != 1 {
		t.Errorf("m-1 retries %v, want one", ts.GetRetries())
	}
	got := paramsText(taskStatus(st, "after").GetParams())
	if want := "all=[om-0 om-1 om-2] n=3"; got != want {
		t.Errorf("after ran with %s, want %s", got, want)
	}
}

func paramsText(ps []*planpb.Param) string {
	var out []string
	for _, p := range ps {
		v := p.GetValue().GetStringValue()
		if p.GetValue().GetType() == planpb.ValueType_ARRAY {
			v = fmt.Sprint(p.GetValue().GetArrayValue())
		}
		out = append(out, p.GetName()+"="+v)
	}
	return strings.Join(out, " ")
}

// A matrix fed by results fans out when it starts: each TaskRun gets
// Tekton's name, its own uid and its combination, and the run's status
// lists them where the plan has their task.
func TestRunTimeMatrixFansOut(t *testing.T) {
	a := task("a", nil, step("s"))
	a.Spec.Results = []*planpb.ResultSpec{{Name: "list", Type: planpb.ValueType_ARRAY}}
	m := task("m", []string{"a"}, &planpb.Step{Name: "s", Script: "echo $(params.x) $(context.taskRun.name) $(context.taskRun.uid)"})
	m.Matrix = &planpb.Matrix{PipelineTask: "m", RunTime: &planpb.RunTimeMatrix{
		Params: []*planpb.Param{{Name: "x", Value: sval("$(tasks.a.results.list[*])")}},
	}}
	m.Spec.Params = []*planpb.ParamSpec{{Name: "x"}}
	m.Context = map[string]string{"context.taskRun.name": "run-m", "context.taskRun.uid": "compiled"}
	after := task("after", []string{"m"}, step("s"))
	f := newFake(map[string]outcome{"a/s": {results: map[string]string{"list": `["p","q","r"]`}}})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a, m, after}), f)
	if st.GetCondition().GetReason() != reasons.Succeeded {
		t.Fatalf("condition %v", st.GetCondition())
	}
	var names []string
	uids := map[string]bool{}
	for _, ts := range st.GetTasks() {
		names = append(names, ts.GetName()+"="+ts.GetTaskRunName())
		if ts.GetMatrix() != nil {
			uids[ts.GetTaskRunUid()] = true
			script := f.scripts[ts.GetName()+"/s"]
			want := fmt.Sprintf("echo %s %s %s", ts.GetParams()[0].GetValue().GetStringValue(), ts.GetTaskRunName(), ts.GetTaskRunUid())
			if !strings.HasSuffix(script, want) || ts.GetMatrix().GetPipelineTask() != "m" || ts.GetMatrix().GetCombination() != 1 {
				t.Errorf("%s: ran %q with matrix %v, want it to end in %q", ts.GetName(), script, ts.GetMatrix(), want)
			}
		}
	}
	if want := []string{"a=run-a", "m-0=run-m-0", "m-1=run-m-1", "m-2=run-m-2", "after=run-after"}; !slices.Equal(names, want) {
		t.Errorf("tasks %v, want %v", names, want)
	}
	if len(uids) != 3 || uids["compiled"] || uids[""] {
		t.Errorf("uids %v: want three new ones", uids)
	}
}
