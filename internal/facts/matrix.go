package facts

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// pipelineTask is the name of the pipeline task a plan task is a TaskRun of.
func pipelineTask(t *planpb.Task) string {
	if m := t.GetMatrix(); m != nil {
		return m.GetPipelineTask()
	}
	if p := t.GetPipelineTask(); p != "" {
		return p // a child pipeline's task, named CHILD.TASK in the plan
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
		case n.final != final || !n.matrixed || t.GetMatrix() == nil || n.empty || n.runTime ||
			t.GetMatrix().GetEmpty() || t.GetMatrix().GetRunTime() != nil:
			return nil, fmt.Errorf("task %q: pipeline task %q is declared twice", t.GetName(), name)
		}
		f.runNode[t.GetName()] = n
		if t.GetMatrix().GetEmpty() || t.GetMatrix().GetRunTime() != nil {
			// Stands for a task that never runs, or that fans out into
			// TaskRuns when it starts.
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

// matrixLengths sets the matrix context variables the reconciler
// substitutes in a TaskRun's params when it creates it
// (ApplyPipelineTaskContexts): the first $(tasks.X.matrix.length) or
// $(tasks.X.matrix.R.length) of each param sets X's length
// (Matrix.CountCombinations, for a DAG task) and, in the second form, how
// many of X's TaskRuns produced R; every param then gets all of them.
func (f *Facts) matrixLengths(params []*planpb.Param, vars *results.Vars) {
	for _, p := range params {
		task, result, ok := firstMatrixVar(p.GetValue())
		if !ok {
			continue
		}
		n := f.byName[task]
		if n == nil {
			continue
		}
		if !n.final {
			vars.SetString("tasks."+task+".matrix.length", strconv.Itoa(int(n.task.GetMatrix().GetLength())))
		}
		if result == "" {
			continue
		}
		count := 0
		for _, r := range n.runs {
			if _, ok := f.results.Get(r.task.GetName(), result); ok {
				count++
			}
		}
		vars.SetString("tasks."+task+".matrix."+result+".length", strconv.Itoa(count))
	}
}

// firstMatrixVar is Param.ParseTaskandResultName: the task and result of
// the first $(tasks.X.matrix.length) or $(tasks.X.matrix.R.length) in v.
func firstMatrixVar(v *planpb.Value) (task, result string, ok bool) {
	for _, s := range valueTexts(v) {
		for _, expr := range results.Expressions(s) {
			parts := strings.Split(expr, ".")
			switch {
			case len(parts) == 4 && parts[0] == "tasks" && parts[2] == "matrix" && parts[3] == "length":
				return parts[1], "", true
			case len(parts) == 5 && parts[0] == "tasks" && parts[2] == "matrix" && parts[4] == "length":
				return parts[1], parts[3], true
			}
		}
	}
	return "", "", false
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

// matrixParams are the params of a matrix known only at run time, then
// those of its includes.
func matrixParams(m *planpb.RunTimeMatrix) []*planpb.Param {
	ps := slices.Clone(m.GetParams())
	for _, inc := range m.GetInclude() {
		ps = append(ps, inc.GetParams()...)
	}
	return ps
}

// runTimeMatrix is n's matrix with the results applied, as the reconciler
// has it once n's references resolve (ApplyTaskResults: matrix params take
// string and array results, include params string ones), and whether they
// resolve.
func (f *Facts) runTimeMatrix(n *node) ([]*planpb.Param, []*planpb.MatrixInclude, bool) {
	m := n.task.GetMatrix().GetRunTime()
	if f.unresolvable(n) != "" {
		return m.GetParams(), m.GetInclude(), false
	}
	vars := f.vars(n, nil)
	params := make([]*planpb.Param, len(m.GetParams()))
	for i, p := range m.GetParams() {
		params[i] = &planpb.Param{Name: p.GetName(), Value: vars.ApplyValue(p.GetValue())}
	}
	include := make([]*planpb.MatrixInclude, len(m.GetInclude()))
	for i, inc := range m.GetInclude() {
		include[i] = &planpb.MatrixInclude{Name: inc.GetName()}
		for _, p := range inc.GetParams() {
			v := proto.Clone(p.GetValue()).(*planpb.Value)
			if v.GetType() == planpb.ValueType_STRING {
				v.StringValue = vars.Apply(v.GetStringValue())
			}
			include[i].Params = append(include[i].Params, &planpb.Param{Name: p.GetName(), Value: v})
		}
	}
	return params, include, true
}

// emptyMatrix is skipBecauseEmptyArrayInMatrixParams: a matrix param is an
// empty array, once known.
func (f *Facts) emptyMatrix(n *node) bool {
	if n.empty {
		return true
	}
	if !n.runTime || len(n.runs) > 0 {
		return false
	}
	params, _, _ := f.runTimeMatrix(n)
	for _, p := range params {
		if p.GetValue().GetType() == planpb.ValueType_ARRAY && len(p.GetValue().GetArrayValue()) == 0 {
			return true
		}
	}
	return false
}

// fanOutRunTime makes the TaskRuns of n, whose matrix is known now, as the
// reconciler does when it creates them (createTaskRuns), and tells whether
// it could. Params of the wrong type fail the run as Tekton does
// (ValidateParameterTypesInMatrix before the TaskRuns are created).
func (f *Facts) fanOutRunTime(n *node) bool {
	params, include, _ := f.runTimeMatrix(n)
	if err := matrixTypes(n.name, params, include); err != "" {
		// The reconciler's MarkFailed format has one argument for two verbs.
		f.freeze(&planpb.Condition{Status: "False", Reason: reasons.InvalidMatrixTypes,
			Message: fmt.Sprintf("[User error] Failed to validate matrix %q with error %%!v(MISSING)", err)}, f.lastSkipped, nil)
		return false
	}
	combinations := fanOut(params, include)
	names := runNames(n.name, f.plan.GetName(), countCombinations(params, include))
	for i, trName := range names {
		t := proto.Clone(n.task).(*planpb.Task)
		var combination []*planpb.Param
		if i < len(combinations) {
			combination = combinations[i]
		}
		t.Name = n.name
		if len(names) > 1 {
			t.Name = fmt.Sprintf("%s-%d", n.name, i)
		}
		t.TaskRunName = trName
		t.Params = append(combination, t.GetParams()...)
		t.Matrix = &planpb.Matrix{PipelineTask: n.name, Index: int32(i), Combination: int32(len(combination)), Length: n.task.GetMatrix().GetLength()}
		if t.Context == nil {
			t.Context = map[string]string{}
		}
		t.Context["context.taskRun.name"] = trName
		t.Context["context.taskRun.uid"] = newUID()
		r := &taskRun{task: t}
		n.runs = append(n.runs, r)
		f.runs[t.GetName()] = r
		f.runNode[t.GetName()] = n
	}
	return true
}

// matrixTypes is ValidateParameterTypesInMatrix for one task: include
// params are strings, matrix params arrays unless they still use results.
func matrixTypes(task string, params []*planpb.Param, include []*planpb.MatrixInclude) string {
	for _, inc := range include {
		for _, p := range inc.GetParams() {
			if t := p.GetValue().GetType(); t != planpb.ValueType_STRING {
				return fmt.Sprintf("parameters of type string only are allowed, but param \"%s\" has type \"%s\" in pipelineTask \"%s\"", p.GetName(), results.TypeName(t), task)
			}
		}
	}
	for _, p := range params {
		if t := p.GetValue().GetType(); t != planpb.ValueType_ARRAY {
			usesResults := false
			for _, s := range valueTexts(p.GetValue()) {
				usesResults = usesResults || len(results.Refs(s)) > 0
			}
			if usesResults {
				continue
			}
			return fmt.Sprintf("parameters of type array only are allowed, but param \"%s\" has type \"%s\" in pipelineTask \"%s\"", p.GetName(), results.TypeName(t), task)
		}
	}
	return ""
}

// newUID is a random (version 4) UUID, as the API server gives a TaskRun.
func newUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// PlanTasks are the plan's tasks in order, the TaskRuns a matrix known only
// at run time fanned out into in the place of its plan task.
func (f *Facts) PlanTasks() []*planpb.Task {
	var out []*planpb.Task
	for _, t := range slices.Concat(f.plan.GetTasks(), f.plan.GetFinally()) {
		n := f.runNode[t.GetName()]
		if n == nil || !n.runTime || n.task != t {
			out = append(out, t)
			continue
		}
		if len(n.runs) == 0 {
			out = append(out, t)
		}
		for _, r := range n.runs {
			out = append(out, r.task)
		}
	}
	return out
}
