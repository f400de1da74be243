package tektonstatus

import (
	"fmt"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/substitution"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// pipelineTaskName is the PipelineTask a plan task is a TaskRun of: a
// matrixed PipelineTask has a plan task per TaskRun.
func (b *builder) pipelineTaskName(planTask string) string {
	if m := b.tasks[planTask].GetMatrix(); m != nil {
		return m.GetPipelineTask()
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
