package tektonstatus

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/substitution"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/types"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// pipelineTaskName is the PipelineTask a plan task is a TaskRun of: a
// matrixed PipelineTask has a plan task per TaskRun.
func (b *builder) pipelineTaskName(planTask string) string {
	if m := b.tasks[planTask].GetMatrix(); m != nil {
		return m.GetPipelineTask()
	}
	if p := b.tasks[planTask].GetPipelineTask(); p != "" {
		return p
	}
	return planTask
}

// matrixResults gives the replacer the results of each matrixed task whose
// TaskRuns all ended, as Tekton resolves references to them: per result, an
// array of the TaskRuns' string values in TaskRun name order
// (findResultValuesForMatrix).
func (b *builder) matrixResults(r *replacer) {
	statuses := map[string]*planpb.TaskStatus{}
	for _, ts := range b.st.GetTasks() {
		statuses[ts.GetName()] = ts
	}
	groups := map[string][]*planpb.Task{}
	var order []string
	for _, t := range slices.Concat(b.plan.GetTasks(), b.plan.GetFinally()) {
		m := t.GetMatrix()
		if m == nil || m.GetEmpty() {
			continue
		}
		if _, ok := groups[m.GetPipelineTask()]; !ok {
			order = append(order, m.GetPipelineTask())
		}
		groups[m.GetPipelineTask()] = append(groups[m.GetPipelineTask()], t)
	}
	for _, name := range order {
		runs := slices.Clone(groups[name])
		slices.SortStableFunc(runs, func(a, b *planpb.Task) int { return strings.Compare(a.GetTaskRunName(), b.GetTaskRunName()) })
		aggregated := map[string]*planpb.Value{}
		done := true
		for _, t := range runs {
			ts := statuses[t.GetName()]
			if ts == nil || !taskDone(ts) {
				done = false
				break
			}
			for _, res := range ts.GetResults() {
				v := aggregated[res.GetName()]
				if v == nil {
					v = &planpb.Value{Type: planpb.ValueType_ARRAY}
					aggregated[res.GetName()] = v
				}
				v.ArrayValue = append(v.ArrayValue, res.GetValue().GetStringValue())
			}
		}
		if done {
			r.results[name] = aggregated
		}
	}
}

// matrixDisplayName is the rest of getDisplayName for a TaskRun of a
// matrixed task: the names of the matrix includes whose params the TaskRun
// has, with its string params applied, take the place of the displayName.
func (b *builder) matrixDisplayName(t *planpb.Task, name string, ps []*planpb.Param) string {
	if t.GetMatrix() == nil {
		return name
	}
	pt := b.pipelineTask(t.GetName())
	if pt == nil || pt.Matrix == nil {
		return name
	}
	repl := map[string]string{}
	for _, p := range ps {
		if p.GetValue().GetType() == planpb.ValueType_STRING {
			repl[fmt.Sprintf("%s.%s", v1.ParamsPrefix, p.GetName())] = p.GetValue().GetStringValue()
		}
	}
	var dn string
	for _, inc := range pt.Matrix.Include {
		if inc.Name == "" {
			continue
		}
		match := true
		for _, ip := range inc.Params {
			v, ok := repl[fmt.Sprintf("%s.%s", v1.ParamsPrefix, ip.Name)]
			if !ok || (ip.Value.Type == v1.ParamTypeString && ip.Value.StringVal != v) {
				match = false
				break
			}
		}
		if match {
			dn = fmt.Sprintf("%s %s", dn, substitution.ApplyReplacements(inc.Name, repl))
		}
	}
	if dn != "" {
		return strings.TrimSpace(dn)
	}
	return name
}

// runTimeTaskRuns puts the TaskRuns the supervisor fanned out at run time
// (a matrix fed by task results) in the builder's plan, in place of the plan
// task of their PipelineTask, each with what the compiler made for that
// plan task (TaskRun, spec) under its own name, uid and params.
func (b *builder) runTimeTaskRuns() {
	byTemplate := map[string][]*planpb.TaskStatus{}
	for _, ts := range b.st.GetTasks() {
		m := ts.GetMatrix()
		if m == nil || b.tasks[m.GetPipelineTask()].GetMatrix().GetRunTime() == nil {
			continue
		}
		byTemplate[m.GetPipelineTask()] = append(byTemplate[m.GetPipelineTask()], ts)
	}
	if len(byTemplate) == 0 {
		return
	}
	c := *b.c
	c.TaskRuns, c.TaskSpecs = maps.Clone(c.TaskRuns), maps.Clone(c.TaskSpecs)
	b.c = &c
	expand := func(list []*planpb.Task) []*planpb.Task {
		var out []*planpb.Task
		for _, t := range list {
			runs := byTemplate[t.GetName()]
			if t.GetMatrix().GetRunTime() == nil || len(runs) == 0 {
				out = append(out, t)
				continue
			}
			slices.SortFunc(runs, func(x, y *planpb.TaskStatus) int { return int(x.GetMatrix().GetIndex() - y.GetMatrix().GetIndex()) })
			for _, ts := range runs {
				out = append(out, b.runTimeTaskRun(t, ts))
			}
		}
		return out
	}
	plan := proto.Clone(b.plan).(*planpb.Plan)
	plan.Tasks, plan.Finally = expand(plan.GetTasks()), expand(plan.GetFinally())
	b.plan = plan
}

// runTimeTaskRun is the plan task and compiled TaskRun of a TaskRun fanned
// out from template.
func (b *builder) runTimeTaskRun(template *planpb.Task, ts *planpb.TaskStatus) *planpb.Task {
	t := proto.Clone(template).(*planpb.Task)
	t.Name, t.TaskRunName, t.Matrix = ts.GetName(), ts.GetTaskRunName(), ts.GetMatrix()
	combination := min(int(ts.GetMatrix().GetCombination()), len(ts.GetParams()))
	t.Params = append(slices.Clone(ts.GetParams()[:combination]), t.GetParams()...)
	if t.Context == nil {
		t.Context = map[string]string{}
	}
	t.Context["context.taskRun.name"] = ts.GetTaskRunName()
	t.Context["context.taskRun.uid"] = ts.GetTaskRunUid()
	b.tasks[t.GetName()] = t
	b.final[t.GetName()] = b.final[template.GetName()]
	if tr := b.c.TaskRuns[template.GetName()]; tr != nil {
		tr = tr.DeepCopy()
		tr.Name, tr.UID = ts.GetTaskRunName(), types.UID(ts.GetTaskRunUid())
		tr.Spec.Params = params(ts.GetParams())
		b.c.TaskRuns[t.GetName()] = tr
	}
	if spec := b.c.TaskSpecs[template.GetName()]; spec != nil {
		b.c.TaskSpecs[t.GetName()] = spec
	}
	return t
}
