package oracle

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"google.golang.org/protobuf/types/known/durationpb"
	"knative.dev/pkg/kmeta"

	"github.com/e7763abc/pod-runner/internal/facts"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// What the two engines are compared on, in plain values.
type (
	value struct {
		Type string
		Str  string
		Arr  []string
		Obj  map[string]string
	}
	param struct {
		Name  string
		Value value
	}
	// start is a TaskRun that was started, its pipeline task, the params
	// it got and its steps' scripts once the results of finished tasks
	// were propagated into its embedded taskSpec.
	start struct {
		Task, TaskRun string
		Params        []param
		Scripts       []string
	}
	whenExpr struct {
		Input, Operator string
		Values          []string
		CEL             string
	}
	skip struct {
		Task, Reason string
		When         []whenExpr
	}
	cond struct{ Status, Reason, Message string }
	// status is what the run reports: its condition and skipped tasks.
	status struct {
		Cond    cond
		Skipped []skip
	}
	result struct {
		Name  string
		Value value
	}
)

func valueFromTekton(v v1.ParamValue) value {
	out := value{Type: string(v.Type)}
	switch v.Type {
	case v1.ParamTypeArray:
		out.Arr = slices.Clone(v.ArrayVal)
	case v1.ParamTypeObject:
		out.Obj = maps.Clone(v.ObjectVal)
	default:
		out.Type, out.Str = "string", v.StringVal
	}
	return out
}

func valueFromPlan(v *planpb.Value) value {
	switch v.GetType() {
	case planpb.ValueType_ARRAY:
		return value{Type: "array", Arr: slices.Clone(v.GetArrayValue())}
	case planpb.ValueType_OBJECT:
		return value{Type: "object", Obj: maps.Clone(v.GetObjectValue())}
	}
	return value{Type: "string", Str: v.GetStringValue()}
}

func paramsFromTekton(ps v1.Params) []param {
	var out []param
	for _, p := range ps {
		out = append(out, param{Name: p.Name, Value: valueFromTekton(p.Value)})
	}
	return out
}

func paramsFromPlan(ps []*planpb.Param) []param {
	var out []param
	for _, p := range ps {
		out = append(out, param{Name: p.GetName(), Value: valueFromPlan(p.GetValue())})
	}
	return out
}

func whenFromTekton(ws v1.WhenExpressions) []whenExpr {
	var out []whenExpr
	for _, w := range ws {
		out = append(out, whenExpr{Input: w.Input, Operator: string(w.Operator), Values: slices.Clone(w.Values), CEL: w.CEL})
	}
	return out
}

func whenFromPlan(ws []*planpb.WhenExpression) []whenExpr {
	var out []whenExpr
	for _, w := range ws {
		out = append(out, whenExpr{Input: w.GetInput(), Operator: w.GetOperator(), Values: slices.Clone(w.GetValues()), CEL: w.GetCel()})
	}
	return out
}

func resultsFromTekton(rs []v1.PipelineRunResult) []result {
	var out []result
	for _, r := range rs {
		out = append(out, result{Name: r.Name, Value: valueFromTekton(r.Value)})
	}
	return out
}

func resultsFromPlan(rs []*planpb.ResultValue) []result {
	var out []result
	for _, r := range rs {
		out = append(out, result{Name: r.GetName(), Value: valueFromPlan(r.GetValue())})
	}
	return out
}

// --- the Plan, from the same v1 objects ---

// toPlan is a minimal stand-in for internal/compile: what Facts and the
// supervisor read of the Tekton run's pipeline (names, dependencies, params,
// when, finally, onError, retries, results, timeouts).
func toPlan(tr *tektonRun) *planpb.Plan {
	spec, pr := tr.spec, tr.pr
	p := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: pr.Name, Namespace: pr.Namespace, PipelineName: pr.Name}
	for _, pt := range spec.Tasks {
		ts := toTasks(tr, pt)
		for _, t := range ts {
			t.RunAfter = pt.Deps()
		}
		p.Tasks = append(p.Tasks, ts...)
	}
	for _, pt := range spec.Finally {
		p.Finally = append(p.Finally, toTasks(tr, pt)...)
	}
	matrixRunAfter(p)
	for _, r := range spec.Results {
		p.Results = append(p.Results, &planpb.PipelineResult{Name: r.Name, Type: toType(v1.ParamType(r.Type)), Value: toValue(r.Value)})
	}
	// The limits Tekton applies (pr.PipelineTimeout, TasksTimeout, FinallyTimeout).
	if pr.Spec.Timeouts != nil {
		p.Timeouts = &planpb.Timeouts{}
		if d := pr.PipelineTimeout(tr.ctx); d > 0 {
			p.Timeouts.Pipeline = durationpb.New(d)
		}
		if d := pr.TasksTimeout(); d != nil {
			p.Timeouts.Tasks = durationpb.New(d.Duration)
		}
		if d := pr.FinallyTimeout(); d != nil {
			p.Timeouts.Finally = durationpb.New(d.Duration)
		}
	}
	return p
}

// toTasks are the plan tasks of a PipelineTask: one, or one per TaskRun of
// a matrixed one (Tekton's TaskRun names, FanOut's combinations first in
// the params), or one that stands for a matrix with an empty array param.
// Matrix context variables are left for the supervisor, as the compiler
// leaves them.
func toTasks(tr *tektonRun, pt v1.PipelineTask) []*planpb.Task {
	pt = *resources.ApplyPipelineTaskContexts(&pt, v1.PipelineRunStatus{}, &resources.PipelineRunFacts{})
	length := int32(pt.Matrix.CountCombinations())
	if !pt.IsMatrixed() {
		return []*planpb.Task{toTask(pt, kmeta.ChildName(runName, "-"+pt.Name))}
	}
	names := resources.GetNamesOfTaskRuns(nil, pt.Name, runName, pt.Matrix.CountCombinations())
	for _, p := range pt.Matrix.Params {
		if p.Value.Type == v1.ParamTypeArray && len(p.Value.ArrayVal) == 0 {
			t := toTask(pt, names[0])
			t.Matrix = &planpb.Matrix{PipelineTask: pt.Name, Empty: true, Length: length}
			return []*planpb.Task{t}
		}
	}
	if usesResults(pt.Matrix) {
		t := toTask(pt, names[0])
		rt := &planpb.RunTimeMatrix{}
		for _, p := range pt.Matrix.Params {
			rt.Params = append(rt.Params, &planpb.Param{Name: p.Name, Value: toValue(p.Value)})
		}
		for _, inc := range pt.Matrix.Include {
			mi := &planpb.MatrixInclude{Name: inc.Name}
			for _, p := range inc.Params {
				mi.Params = append(mi.Params, &planpb.Param{Name: p.Name, Value: toValue(p.Value)})
			}
			rt.Include = append(rt.Include, mi)
		}
		t.Matrix = &planpb.Matrix{PipelineTask: pt.Name, RunTime: rt, Length: length}
		return []*planpb.Task{t}
	}
	combinations := pt.Matrix.FanOut()
	var out []*planpb.Task
	for i, name := range names {
		withCombination := pt
		var combination v1.Params
		if i < len(combinations) {
			combination = combinations[i]
		}
		withCombination.Params = append(slices.Clone(combination), pt.Params...)
		t := toTask(withCombination, name)
		t.Matrix = &planpb.Matrix{PipelineTask: pt.Name, Index: int32(i), Combination: int32(len(combination)), Length: length}
		if len(names) > 1 {
			t.Name = fmt.Sprintf("%s-%d", pt.Name, i)
		}
		out = append(out, t)
	}
	return out
}

// usesResults tells whether a matrix param uses task results: the
// supervisor fans such a matrix out when it starts.
func usesResults(m *v1.Matrix) bool {
	for _, p := range m.GetAllParams() {
		if exprs, ok := p.GetVarSubstitutionExpressions(); ok && v1.LooksLikeContainsResultRefs(exprs) {
			return true
		}
	}
	return false
}

// matrixRunAfter puts a matrixed task's plan tasks in the run_after that
// name it.
func matrixRunAfter(p *planpb.Plan) {
	instances := map[string][]string{}
	for _, t := range slices.Concat(p.Tasks, p.Finally) {
		if m := t.GetMatrix(); m != nil {
			instances[m.GetPipelineTask()] = append(instances[m.GetPipelineTask()], t.GetName())
		}
	}
	for _, t := range p.Tasks {
		var after []string
		for _, a := range t.RunAfter {
			if names, ok := instances[a]; ok {
				after = append(after, names...)
			} else {
				after = append(after, a)
			}
		}
		t.RunAfter = after
	}
}

func toTask(pt v1.PipelineTask, taskRunName string) *planpb.Task {
	t := &planpb.Task{
		Name:            pt.Name,
		TaskRunName:     taskRunName,
		Retries:         int32(pt.Retries),
		OnErrorContinue: pt.OnError == v1.PipelineTaskContinue,
		Spec:            &planpb.TaskSpec{},
	}
	for _, p := range pt.Params {
		t.Params = append(t.Params, &planpb.Param{Name: p.Name, Value: toValue(p.Value)})
	}
	for _, w := range pt.When {
		t.When = append(t.When, &planpb.WhenExpression{Input: w.Input, Operator: string(w.Operator), Values: slices.Clone(w.Values), Cel: w.CEL})
	}
	if pt.TaskSpec != nil {
		for _, ps := range pt.TaskSpec.Params {
			spec := &planpb.ParamSpec{Name: ps.Name, Type: toType(ps.Type), Properties: slices.Sorted(maps.Keys(ps.Properties))}
			if ps.Default != nil {
				spec.Default = toValue(*ps.Default)
			}
			t.Spec.Params = append(t.Spec.Params, spec)
		}
		for _, r := range pt.TaskSpec.Results {
			t.Spec.Results = append(t.Spec.Results, &planpb.ResultSpec{Name: r.Name, Type: toType(v1.ParamType(r.Type)), Properties: slices.Sorted(maps.Keys(r.Properties))})
		}
		for _, s := range pt.TaskSpec.Steps {
			step := &planpb.Step{Name: s.Name, Image: s.Image, Script: s.Script, Command: s.Command, Args: s.Args, WorkingDir: s.WorkingDir}
			for _, e := range s.Env {
				step.Env = append(step.Env, &planpb.EnvVar{Name: e.Name, Value: e.Value})
			}
			t.Spec.Steps = append(t.Spec.Steps, step)
		}
	}
	return t
}

func toType(t v1.ParamType) planpb.ValueType {
	switch t {
	case v1.ParamTypeArray:
		return planpb.ValueType_ARRAY
	case v1.ParamTypeObject:
		return planpb.ValueType_OBJECT
	}
	return planpb.ValueType_STRING
}

func toValue(v v1.ParamValue) *planpb.Value {
	return &planpb.Value{Type: toType(v.Type), StringValue: v.StringVal, ArrayValue: slices.Clone(v.ArrayVal), ObjectValue: maps.Clone(v.ObjectVal)}
}

// --- our engine ---

// oursRun drives facts.Facts with the same events.
type oursRun struct {
	t     *testing.T
	plan  *planpb.Plan
	facts *facts.Facts
	store *results.Store
	// announced are the tasks Next reported skipped so far.
	announced []string
}

func newOursRun(t *testing.T, plan *planpb.Plan) *oursRun {
	t.Helper()
	store := &results.Store{}
	f, err := facts.New(plan, store)
	if err != nil {
		t.Fatalf("ours: NewFacts: %v", err)
	}
	return &oursRun{t: t, plan: plan, facts: f, store: store}
}

// next is one decision round.
func (o *oursRun) next() []start {
	d := o.facts.Next()
	var started []start
	for _, r := range d.Start {
		task := r.Task.GetName()
		if m := r.Task.GetMatrix(); m != nil {
			task = m.GetPipelineTask()
		}
		var scripts []string
		for _, st := range results.Propagate(r.Task.GetSpec(), r.Results).GetSteps() {
			scripts = append(scripts, st.GetScript())
		}
		started = append(started, start{Task: task, TaskRun: r.Task.GetTaskRunName(), Params: paramsFromPlan(r.Params), Scripts: scripts})
	}
	for _, s := range d.Skipped {
		o.announced = append(o.announced, s.GetName())
	}
	return started
}

func (o *oursRun) finish(task string, e end) {
	var rs []*planpb.ResultValue
	for _, r := range e.results {
		rs = append(rs, &planpb.ResultValue{Name: r.name, Value: toValue(r.val)})
	}
	o.store.Set(task, rs)
	o.facts.Finished(task, e.kind == succeeded, e.reason(), e.kind == cancelledByRun || e.kind == cancelledByTimeout, e.kind == cancelledByTimeout)
}

func (o *oursRun) snapshot() status {
	c := o.facts.Condition()
	st := status{Cond: cond{Status: c.GetStatus(), Reason: c.GetReason(), Message: c.GetMessage()}}
	for _, s := range o.facts.Skipped() {
		st.Skipped = append(st.Skipped, skip{Task: s.GetName(), Reason: s.GetReason(), When: whenFromPlan(s.GetWhen())})
	}
	return st
}
