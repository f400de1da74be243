package supervisor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// pipelineTask is the name of the pipeline task a plan task is a TaskRun of.
func pipelineTask(t *planpb.Task) string {
	if m := t.GetMatrix(); m != nil {
		return m.GetPipelineTask()
	}
	return t.GetName()
}

// group makes the nodes of a list of plan tasks: one per pipeline task, in
// the order of their first plan task, the plan tasks of a matrixed one as
// its TaskRuns.
func (f *Facts) group(tasks []*planpb.Task, final bool) ([]*node, error) {
	var nodes []*node
	for _, t := range tasks {
		if _, dup := f.runs[t.GetName()]; dup {
			return nil, fmt.Errorf("task %q is declared twice", t.GetName())
		}
		name := pipelineTask(t)
		n := f.byName[name]
		switch {
		case n == nil:
			index := -1
			if !final {
				index = len(nodes)
			}
			n = f.newNode(t, final, index)
			f.byName[name] = n
			nodes = append(nodes, n)
		case n.final != final || !n.matrixed || t.GetMatrix() == nil || n.empty || t.GetMatrix().GetEmpty():
			return nil, fmt.Errorf("task %q: pipeline task %q is declared twice", t.GetName(), name)
		}
		f.runNode[t.GetName()] = n
		if t.GetMatrix().GetEmpty() {
			// Stands for a task that never runs.
			continue
		}
		r := &taskRun{task: t}
		n.runs = append(n.runs, r)
		f.runs[t.GetName()] = r
	}
	return nodes, nil
}

// pipelineTasks maps plan task names (run_after) to their pipeline tasks,
// each once, in order; names of no plan task are kept for dag.New to refuse.
func (f *Facts) pipelineTasks(names []string) []string {
	var out []string
	for _, name := range names {
		if n := f.runNode[name]; n != nil {
			name = n.name
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// ended tells whether every TaskRun of n ended, and then sets n's outcome as
// Tekton reads a matrixed task's: succeeded when all TaskRuns did, else
// failed; cancelled when one was cancelled (isCancelled,
// isCancelledForTimeOut); the reason of the first TaskRun that did not
// succeed, else of the first (getReason).
func (n *node) ended() bool {
	for _, r := range n.runs {
		if r.phase != succeeded && r.phase != failed {
			return false
		}
	}
	n.phase, n.reason = succeeded, ""
	n.cancelled, n.byTimeout = false, false
	for _, r := range n.runs {
		n.cancelled = n.cancelled || r.cancelled
		n.byTimeout = n.byTimeout || (r.cancelled && r.byTimeout)
		if r.phase == failed && n.phase == succeeded {
			n.phase, n.reason = failed, r.reason
		}
	}
	if n.phase == succeeded && len(n.runs) > 0 {
		n.reason = n.runs[0].reason
	}
	return true
}

// result is a result of a pipeline task as result references read it. A
// matrixed task's result is the array of its TaskRuns' string values, in
// TaskRun name order, of those that produced it; it exists when one did
// (createResultsCacheMatrixedTaskRuns, findResultValuesForMatrix).
func (f *Facts) result(n *node, name string) (*planpb.Value, bool) {
	if n == nil || len(n.runs) == 0 {
		return nil, false
	}
	if !n.matrixed {
		return f.results.Get(n.runs[0].task.GetName(), name)
	}
	var values []string
	found := false
	for _, r := range byTaskRunName(n.runs) {
		if v, ok := f.results.Get(r.task.GetName(), name); ok {
			values = append(values, v.GetStringValue())
			found = true
		}
	}
	if !found {
		return nil, false
	}
	return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: values}, true
}

func byTaskRunName(runs []*taskRun) []*taskRun {
	out := slices.Clone(runs)
	slices.SortStableFunc(out, func(a, b *taskRun) int {
		return strings.Compare(a.task.GetTaskRunName(), b.task.GetTaskRunName())
	})
	return out
}

// matrixLengths sets $(tasks.X.matrix.R.length), the number of X's TaskRuns
// that produced result R, for the params that use it: the reconciler
// substitutes it in a TaskRun's params when it creates the TaskRun
// (ApplyPipelineTaskContexts). $(tasks.X.matrix.length) is known before the
// run and the compiler substituted it.
func (f *Facts) matrixLengths(params []*planpb.Param, vars *results.Vars) {
	for _, p := range params {
		for _, s := range valueTexts(p.GetValue()) {
			for _, expr := range results.Expressions(s) {
				parts := strings.Split(expr, ".")
				if len(parts) != 5 || parts[0] != "tasks" || parts[2] != "matrix" || parts[4] != "length" {
					continue
				}
				count := 0
				if n := f.byName[parts[1]]; n != nil {
					for _, r := range n.runs {
						if _, ok := f.results.Get(r.task.GetName(), parts[3]); ok {
							count++
						}
					}
				}
				vars.SetString(expr, strconv.Itoa(count))
			}
		}
	}
}

// resultsRead tells whether Tekton's reconcile that ends the run has the
// aggregated results of matrixed task m, which the pipeline results then
// see: GetTaskRunsResults reads the ResultsCache that resolving a result
// reference to m fills. That happens when a task refers to a result of m
// and every result reference it makes before that one resolves
// (convertToResultRefs stops at the first that does not).
func (f *Facts) resultsRead(m *node) bool {
	for _, n := range append(slices.Clip(f.dagN), f.finalN...) {
		for _, r := range n.refs {
			ref := f.byName[r.Task]
			if ref == m {
				return true
			}
			if ref == nil || (ref.phase != succeeded && ref.phase != failed) {
				break
			}
			if _, ok := f.result(ref, r.Result); !ok {
				break
			}
		}
	}
	return false
}
