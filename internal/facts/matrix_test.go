package facts

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// matrixTask is TaskRun index of matrixed pipeline task name, with its
// combination x=value first in its params.
func matrixTask(name string, index int, value string, after []string) *planpb.Task {
	t := task(fmt.Sprintf("%s-%d", name, index), after)
	t.TaskRunName = fmt.Sprintf("run-%s-%d", name, index)
	t.Matrix = &planpb.Matrix{PipelineTask: name, Index: int32(index), Combination: 1}
	t.Params = []*planpb.Param{param("x", value), param("y", "$(tasks.a.results.r)")}
	t.Spec.Params = []*planpb.ParamSpec{{Name: "x"}, {Name: "y"}}
	return t
}

// A TaskRun of a matrixed task that fails leaves the task running until its
// other TaskRuns end: other tasks still start meanwhile.
func TestMatrixFailsOnceAllEnded(t *testing.T) {
	a := task("a", nil)
	b := task("b", nil)
	late := task("late", []string{"b"})
	m0, m1 := matrixTask("m", 0, "p", nil), matrixTask("m", 1, "q", nil)
	for _, m := range []*planpb.Task{m0, m1} {
		m.Params = m.Params[:1]
		m.Spec.Params = m.Spec.Params[:1]
	}
	final := task("f", nil)
	final.Params = []*planpb.Param{param("s", "$(tasks.m.status)/$(tasks.m.reason)")}
	r := newFactsRun(t, plan([]*planpb.Task{a, b, late, m0, m1}, final))
	r.finish("m-1", false)
	r.finish("b", true)
	if !slices.Contains(r.started, "late") {
		t.Fatalf("late did not start while m-0 runs: started %v", r.started)
	}
	r.wantCondition("Unknown", reasons.Running, "Tasks Completed: 1 (Failed: 0, Cancelled 0), Incomplete: 4")
	r.finish("m-0", true)
	r.wantCondition("Unknown", reasons.Running, "Tasks Completed: 2 (Failed: 1, Cancelled 0), Incomplete: 3")
	r.finish("a", true)
	r.finish("late", true)
	if !slices.Contains(r.started, "f") {
		t.Fatalf("finally did not start: %v", r.started)
	}
}

func TestNewFactsRefusesBadMatrix(t *testing.T) {
	tests := []struct {
		name string
		plan *planpb.Plan
		want string
	}{
		{"a plain task named like a matrixed one", plan([]*planpb.Task{task("m", nil), matrixTask("m", 0, "a", nil)}),
			`pipeline task "m" is declared twice`},
		{"a matrix split between tasks and finally", plan([]*planpb.Task{matrixTask("m", 0, "a", nil)}, matrixTask("m", 1, "b", nil)),
			`pipeline task "m" is declared twice`},
		{"a plan task declared twice", plan([]*planpb.Task{matrixTask("m", 0, "a", nil), matrixTask("m", 0, "b", nil)}),
			`task "m-0" is declared twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.plan, &results.Store{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
