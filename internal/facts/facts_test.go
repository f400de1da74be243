package facts

import (
	"slices"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// The cases here pin single rules of Facts; test/oracle compares whole runs
// with Tekton's own code.

func sval(s string) *planpb.Value { return &planpb.Value{StringValue: s} }
func aval(a ...string) *planpb.Value {
	return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: a}
}

func task(name string, after []string) *planpb.Task {
	return &planpb.Task{Name: name, TaskRunName: "run-" + name, RunAfter: after, Spec: &planpb.TaskSpec{}}
}

func plan(tasks []*planpb.Task, finally ...*planpb.Task) *planpb.Plan {
	return &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "run", Tasks: tasks, Finally: finally}
}

func param(name, value string) *planpb.Param { return &planpb.Param{Name: name, Value: sval(value)} }

func res(name string, v *planpb.Value) *planpb.ResultValue {
	return &planpb.ResultValue{Name: name, Value: v}
}

// factsRun drives Facts as the supervisor does: a decision round after
// every change.
type factsRun struct {
	t       *testing.T
	f       *Facts
	store   *results.Store
	started []string
}

func newFactsRun(t *testing.T, p *planpb.Plan) *factsRun {
	t.Helper()
	p.Namespace = "ns"
	store := &results.Store{}
	f, err := New(p, store)
	if err != nil {
		t.Fatal(err)
	}
	r := &factsRun{t: t, f: f, store: store}
	r.next()
	return r
}

func (r *factsRun) next() {
	for _, s := range r.f.Next().Start {
		r.started = append(r.started, s.Task.GetName())
	}
}

func (r *factsRun) finish(name string, ok bool, rs ...*planpb.ResultValue) {
	r.t.Helper()
	if !slices.Contains(r.started, name) {
		r.t.Fatalf("%s finishes but was not started (started: %v)", name, r.started)
	}
	r.store.Set(name, rs)
	reason := reasons.Succeeded
	if !ok {
		reason = reasons.StepFailed
	}
	r.f.Finished(name, ok, reason, false, false)
	r.next()
}

func (r *factsRun) wantCondition(status, reason, msgPart string) {
	r.t.Helper()
	c := r.f.Condition()
	if c.GetStatus() != status || c.GetReason() != reason || !strings.Contains(c.GetMessage(), msgPart) {
		r.t.Errorf("condition = %v, want %s/%s with %q", c, status, reason, msgPart)
	}
}

func TestMissingResultFailsValidation(t *testing.T) {
	tests := []struct {
		name    string
		aOK     bool
		aIgnore bool
		want    string
	}{
		{"succeeded parent", true, false,
			`task "a" completed successfully but did not emit the result "r", which is referenced by task "b"`},
		// The parent's failure is ignored, but not by b, which needs its result.
		{"failed parent with onError continue", false, true,
			"Invalid task result reference: Could not find result with name r for pipeline task a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := task("a", nil)
			a.OnErrorContinue = tt.aIgnore
			b := task("b", []string{"a"})
			b.Params = []*planpb.Param{param("p", "$(tasks.a.results.r)")}
			r := newFactsRun(t, plan([]*planpb.Task{a, b}))
			r.finish("a", tt.aOK)
			if slices.Contains(r.started, "b") {
				t.Fatal("b started without the result it reads")
			}
			r.wantCondition("False", reasons.FailedValidation, "Failed Validation: 1 ("+tt.want+")")
			if !r.f.Done() {
				t.Error("not done")
			}
		})
	}
}

// TestWhenAllowsCEL: CEL when expressions, their variables substituted,
// combine with in/notin ones (all must hold); one that does not evaluate
// to a boolean does not allow the task.
func TestWhenAllowsCEL(t *testing.T) {
	for _, c := range []struct {
		when []*planpb.WhenExpression
		want bool
	}{
		{[]*planpb.WhenExpression{{Cel: "'a' == 'a'"}}, true},
		{[]*planpb.WhenExpression{{Cel: "'a' != 'a'"}}, false},
		{[]*planpb.WhenExpression{{Cel: "'yes'.startsWith('y')"}, {Input: "yes", Operator: "in", Values: []string{"yes"}}}, true},
		{[]*planpb.WhenExpression{{Cel: "'yes'.startsWith('y')"}, {Input: "yes", Operator: "notin", Values: []string{"yes"}}}, false},
		{[]*planpb.WhenExpression{{Cel: "'abc'"}}, false},
		{[]*planpb.WhenExpression{{Cel: "1 +"}}, false},
	} {
		if got := WhenAllows(c.when); got != c.want {
			t.Errorf("WhenAllows(%v) = %v, want %v", c.when, got, c.want)
		}
	}
}

// An array result read out of its range ends the run at once, even for a
// task that would be skipped; running tasks end on their own and change
// nothing.
func TestArrayIndexOutOfRangeEndsRun(t *testing.T) {
	a := task("a", nil)
	b := task("b", []string{"a"})
	b.Params = []*planpb.Param{param("p", "$(tasks.a.results.list[5])")}
	b.When = []*planpb.WhenExpression{{Input: "x", Operator: "in", Values: []string{"y"}}}
	c := task("c", nil)
	r := newFactsRun(t, plan([]*planpb.Task{a, b, c}))
	r.finish("a", true, res("list", aval("x", "y")))
	const msg = "[User error] PipelineRun ns/run can't be Run; couldn't resolve all references: " +
		"array Result Index 5 for Task a Result list is out of bound of size 2"
	r.wantCondition("False", reasons.FailedValidation, msg)
	if r.f.Done() {
		t.Error("done while c runs")
	}
	r.finish("c", true)
	r.wantCondition("False", reasons.FailedValidation, msg)
	if len(r.f.Skipped()) != 0 || !r.f.Done() || slices.Contains(r.started, "b") {
		t.Errorf("skipped %v, done %v, started %v", r.f.Skipped(), r.f.Done(), r.started)
	}
}

func TestSkippedWhenIsSubstituted(t *testing.T) {
	a := task("a", nil)
	b := task("b", []string{"a"})
	b.When = []*planpb.WhenExpression{{Input: "$(tasks.a.results.r)", Operator: "in", Values: []string{"yes"}}}
	f := task("f", nil)
	f.When = []*planpb.WhenExpression{{Input: "$(tasks.status)/$(tasks.a.results.r)", Operator: "in", Values: []string{"Failed/no"}}}
	r := newFactsRun(t, plan([]*planpb.Task{a, b}, f))
	r.finish("a", true, res("r", sval("no")))
	got := map[string]string{}
	for _, s := range r.f.Skipped() {
		got[s.GetName()] = s.GetReason() + ": " + s.GetWhen()[0].GetInput()
	}
	want := map[string]string{"b": reasons.SkipWhen + ": no", "f": reasons.SkipWhen + ": Completed/no"}
	if len(got) != 2 || got["b"] != want["b"] || got["f"] != want["f"] {
		t.Errorf("skipped = %v, want %v", got, want)
	}
}

// Once cancelled, the status is the one the run had then: later ends change
// neither the skipped list nor the condition, and there are no results.
func TestCancelFreezesStatus(t *testing.T) {
	a := task("a", nil)
	b := task("b", []string{"a"})
	s := task("s", nil)
	s.When = []*planpb.WhenExpression{{Input: "x", Operator: "in", Values: []string{"y"}}}
	p := plan([]*planpb.Task{a, b, s})
	p.Results = []*planpb.PipelineResult{{Name: "out", Value: sval("$(tasks.a.results.r)")}}
	r := newFactsRun(t, p)
	r.f.Cancel()
	r.store.Set("a", []*planpb.ResultValue{res("r", sval("v"))})
	r.f.Finished("a", false, reasons.TaskCancelled, true, false)
	r.next()
	r.wantCondition("False", reasons.Cancelled, `PipelineRun "run" was cancelled`)
	if sk := r.f.Skipped(); len(sk) != 1 || sk[0].GetName() != "s" {
		t.Errorf("skipped = %v, want only s", sk)
	}
	if r.f.Results() != nil || !r.f.Done() {
		t.Errorf("results = %v, done %v", r.f.Results(), r.f.Done())
	}
}

func TestPipelineResults(t *testing.T) {
	tests := []struct {
		name    string
		results map[string]string // pipeline result name: value
		want    map[string]string // result: value as text
		wantErr string            // part of a CouldntGetPipelineResult message
	}{
		{name: "from tasks and finally",
			results: map[string]string{"s": "$(tasks.a.results.s)-$(finally.f.results.r)", "item": "$(tasks.a.results.list[1])"},
			want:    map[string]string{"s": "S-F", "item": "y"}},
		{name: "a result a succeeded task did not produce",
			results: map[string]string{"gone": "$(tasks.a.results.nope)", "s": "$(tasks.a.results.s)"},
			want:    map[string]string{"s": "S"}, wantErr: "invalid pipelineresults [gone], the referenced results don't exist"},
		{name: "index out of range",
			results: map[string]string{"item": "$(tasks.a.results.list[2])"},
			wantErr: "invalid pipelineresults [item]"},
		{name: "a result of a failed task is left out silently",
			results: map[string]string{"from-failed": "$(tasks.bad.results.r)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, bad, f := task("a", nil), task("bad", nil), task("f", nil)
			bad.OnErrorContinue = true
			p := plan([]*planpb.Task{a, bad}, f)
			for _, name := range sortedKeys(tt.results) {
				p.Results = append(p.Results, &planpb.PipelineResult{Name: name, Value: sval(tt.results[name])})
			}
			r := newFactsRun(t, p)
			r.finish("a", true, res("s", sval("S")), res("list", aval("x", "y")))
			r.finish("bad", false)
			if r.f.Results() != nil {
				t.Fatal("results before the run ended")
			}
			r.finish("f", true, res("r", sval("F")))
			got := map[string]string{}
			for _, rv := range r.f.Results() {
				got[rv.GetName()] = rv.GetValue().GetStringValue()
			}
			if len(got) != len(tt.want) {
				t.Errorf("results = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("result %s = %q, want %q", k, got[k], v)
				}
			}
			if tt.wantErr == "" {
				r.wantCondition("True", reasons.Succeeded, "Failed: 1 (Ignored: 1)")
			} else {
				r.wantCondition("False", reasons.CouldntGetPipelineResult, "Failed to get PipelineResult from TaskRun Results for PipelineRun run: "+tt.wantErr)
			}
		})
	}
}
