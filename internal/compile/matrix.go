package compile

import (
	"fmt"
	"math"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// taskRunOf is one TaskRun of a PipelineTask: the name of its plan task,
// the TaskRun's name and, for a matrixed PipelineTask, its combination of
// matrix params and its place in the matrix.
type taskRunOf struct {
	name, taskRunName string
	combination       v1.Params
	matrix            *planpb.Matrix
}

// pipelineTaskRuns compiles a resolved PipelineTask into its plan tasks:
// one, or one per TaskRun of a matrixed PipelineTask, each with its
// combination of matrix params, as the reconciler creates them
// (createTaskRuns: rpt.TaskRunNames, Matrix.FanOut).
func (c *compiler) pipelineTaskRuns(pr *v1.PipelineRun, rpt *prresources.ResolvedPipelineTask, facts *prresources.PipelineRunFacts, ptAt where, compiled *Compiled) ([]*planpb.Task, error) {
	pt := rpt.PipelineTask
	if rpt.IsChildPipeline() {
		t, err := c.childPipeline(pr, rpt, ptAt, compiled)
		if err != nil {
			return nil, err
		}
		return []*planpb.Task{t}, nil
	}
	if !pt.IsMatrixed() {
		t, err := c.pipelineTask(pr, rpt, facts, ptAt, compiled, taskRunOf{name: pt.Name, taskRunName: rpt.TaskRunNames[0]})
		if err != nil {
			return nil, err
		}
		return []*planpb.Task{t}, nil
	}
	if err := prresources.ValidateParameterTypesInMatrix(prresources.PipelineRunState{rpt}); err != nil {
		return nil, ptAt.errorf("matrix", "%v", err).WithReason(v1.PipelineRunReasonInvalidMatrixParameterTypes)
	}
	length := int32(min(pt.Matrix.CountCombinations(), math.MaxInt32))
	if emptyMatrix(pt.Matrix) {
		t := emptyMatrixTask(pt, rpt.TaskRunNames[0])
		t.Matrix.Length = length
		return []*planpb.Task{t}, nil
	}
	if field, param := resultsIn(pt.Matrix); field != "" {
		// How many TaskRuns there are is known only when the task starts:
		// the supervisor fans it out then, in local mode.
		if compiled.podErr == nil {
			compiled.podErr = ptAt.errorf(field, "matrix param %q uses a task result: how many TaskRuns it fans out into is known only at run time, "+
				"and a Pod's containers are fixed when it is created; run it with pod-runner run, or give the matrix values as literals or pipeline params", param)
		}
		t, err := c.pipelineTask(pr, rpt, facts, ptAt, compiled, taskRunOf{
			name: pt.Name, taskRunName: rpt.TaskRunNames[0],
			matrix: &planpb.Matrix{PipelineTask: pt.Name, RunTime: runTimeMatrix(pt.Matrix), Length: length},
		})
		if err != nil {
			return nil, err
		}
		return []*planpb.Task{t}, nil
	}
	// As createTaskRuns, before the TaskRuns' contexts are applied:
	// $(context.pipelineTask.retries) stays as it is in matrix params.
	combinations := pt.Matrix.FanOut()
	names := rpt.TaskRunNames
	var out []*planpb.Task
	for i, trName := range names {
		run := taskRunOf{name: pt.Name, taskRunName: trName, matrix: &planpb.Matrix{PipelineTask: pt.Name, Index: int32(i), Length: length}}
		if len(names) > 1 {
			run.name = fmt.Sprintf("%s-%d", pt.Name, i)
		}
		// Tekton makes Matrix.CountCombinations TaskRuns and gives the i-th
		// the i-th combination of FanOut, when there is one.
		if i < len(combinations) {
			run.combination = combinations[i]
			run.matrix.Combination = int32(len(combinations[i]))
		}
		t, err := c.pipelineTask(pr, rpt, facts, ptAt, compiled, run)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// resultsIn is the field and name of the first matrix param that uses a
// task result, or "".
func resultsIn(m *v1.Matrix) (field, param string) {
	for j, p := range m.Params {
		if usesResults(p) {
			return fmt.Sprintf("matrix.params[%d]", j), p.Name
		}
	}
	for k, inc := range m.Include {
		for j, p := range inc.Params {
			if usesResults(p) {
				return fmt.Sprintf("matrix.include[%d].params[%d]", k, j), p.Name
			}
		}
	}
	return "", ""
}

// runTimeMatrix is a matrix for the supervisor to fan out.
func runTimeMatrix(m *v1.Matrix) *planpb.RunTimeMatrix {
	rt := &planpb.RunTimeMatrix{Params: params(m.Params)}
	for _, inc := range m.Include {
		rt.Include = append(rt.Include, &planpb.MatrixInclude{Name: inc.Name, Params: params(inc.Params)})
	}
	return rt
}

// PodError is why the run cannot be one Pod, or nil: a matrix fed by task
// results fans out into TaskRuns known only at run time, and a Pod's
// containers are fixed when it is created.
func (c *Compiled) PodError() error {
	if c.podErr == nil {
		return nil
	}
	return c.podErr
}

// usesResults tells whether a param refers to task results.
func usesResults(p v1.Param) bool {
	exprs, ok := p.GetVarSubstitutionExpressions()
	return ok && v1.LooksLikeContainsResultRefs(exprs)
}

// emptyMatrix is skipBecauseEmptyArrayInMatrixParams: a matrix param is an
// empty array.
func emptyMatrix(m *v1.Matrix) bool {
	for _, p := range m.Params {
		if p.Value.Type == v1.ParamTypeArray && len(p.Value.ArrayVal) == 0 {
			return true
		}
	}
	return false
}

// emptyMatrixTask stands for a matrixed PipelineTask that Tekton always
// skips: what its skipping depends on (dependencies, when), no steps.
func emptyMatrixTask(pt *v1.PipelineTask, taskRunName string) *planpb.Task {
	return &planpb.Task{
		Name:            pt.Name,
		TaskRunName:     taskRunName,
		DisplayName:     pt.DisplayName,
		RunAfter:        pt.Deps(),
		Params:          params(pt.Params),
		When:            when(pt.When),
		Retries:         int32(pt.Retries),
		OnErrorContinue: pt.OnError == v1.PipelineTaskContinue,
		Spec:            &planpb.TaskSpec{},
		Matrix:          &planpb.Matrix{PipelineTask: pt.Name, Empty: true},
	}
}

// matrixRunAfter replaces, in every task's run_after, a matrixed
// PipelineTask by its plan tasks, so that the plan's dependencies are
// between plan tasks. It refuses a plan task named like another: Tekton's
// TaskRun names would collide as well.
func matrixRunAfter(plan *planpb.Plan, spec *v1.PipelineSpec, specAt where) error {
	all := slices.Concat(plan.GetTasks(), plan.GetFinally())
	instances := map[string][]string{}
	seen := map[string]*planpb.Task{}
	for _, t := range all {
		if prev := seen[t.GetName()]; prev != nil {
			m := t
			if m.GetMatrix() == nil {
				m = prev
			}
			return specAt.errorf(matrixField(spec, m.GetMatrix().GetPipelineTask()),
				"matrixed task %q fans out into a TaskRun named like task %q (%q): rename one of them",
				m.GetMatrix().GetPipelineTask(), t.GetName(), t.GetTaskRunName())
		}
		seen[t.GetName()] = t
		if m := t.GetMatrix(); m != nil {
			instances[m.GetPipelineTask()] = append(instances[m.GetPipelineTask()], t.GetName())
		}
	}
	for _, t := range all {
		rt := t.GetMatrix().GetRunTime()
		if rt == nil {
			continue
		}
		// Its TaskRuns will be NAME-INDEX.
		prefix := t.GetMatrix().GetPipelineTask() + "-"
		for _, o := range all {
			if rest, ok := strings.CutPrefix(o.GetName(), prefix); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
				return specAt.errorf(matrixField(spec, t.GetMatrix().GetPipelineTask()),
					"matrixed task %q may fan out into a TaskRun named like task %q: rename one of them", t.GetMatrix().GetPipelineTask(), o.GetName())
			}
		}
	}
	for _, t := range all {
		var after []string
		for _, a := range t.GetRunAfter() {
			if names, ok := instances[a]; ok {
				after = append(after, names...)
			} else {
				after = append(after, a)
			}
		}
		t.RunAfter = after
	}
	return nil
}

// matrixField is the path of a PipelineTask's matrix in the spec.
func matrixField(spec *v1.PipelineSpec, name string) string {
	for i, list := range [][]v1.PipelineTask{spec.Tasks, spec.Finally} {
		for j := range list {
			if list[j].Name == name {
				return fmt.Sprintf("%s[%d].matrix", section(i), j)
			}
		}
	}
	return "tasks"
}
