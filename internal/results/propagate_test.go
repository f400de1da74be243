package results_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// propagateSpec is an embedded taskSpec that reads task results in every
// form: dot and bracket, whole arrays, elements, object keys, in steps and
// a sidecar.
const propagateSpec = `
steps:
- name: s
  image: img:$(tasks.a.results.s)
  command: [run, "$(tasks.a.results.list[*])"]
  args: ["$(tasks.a.results.list)", "$(tasks.a.results.list[1])", "x-$(tasks.a.results.o.k)", "$(tasks.a.results.o)"]
  script: echo $(tasks.a.results.s) $(tasks.a.results["s"]) $(tasks.b.results.r) $(tasks.gone.results.r)
  workingDir: /w/$(tasks.b.results.r)
  env: [{name: E, value: "$(tasks.a.results.s)-$(tasks.a.results.o.k)"}]
sidecars:
- name: side
  image: i
  script: echo $(tasks.b.results.r)
`

// TestPropagateAgainstTekton: Tekton's PropagateResults and
// results.Propagate give an embedded taskSpec the same steps and sidecars
// for the results of a succeeded and a failed task; SpecRefs finds the
// references Tekton's PipelineTaskResultRefs does.
func TestPropagateAgainstTekton(t *testing.T) {
	var spec v1.TaskSpec
	if err := yaml.UnmarshalStrict([]byte(propagateSpec), &spec); err != nil {
		t.Fatal(err)
	}
	done := map[string][]v1.TaskRunResult{
		"a": {
			{Name: "s", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("S")},
			{Name: "list", Type: v1.ResultsTypeArray, Value: *v1.NewStructuredValues("x", "y")},
			{Name: "o", Type: v1.ResultsTypeObject, Value: *v1.NewObject(map[string]string{"k": "K"})},
		},
		"b": {{Name: "r", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("R")}},
	}
	state := prresources.PipelineRunState{
		finished("a", corev1.ConditionTrue, done["a"]),
		finished("b", corev1.ConditionFalse, done["b"]),
	}
	rpt := &prresources.ResolvedPipelineTask{ResolvedTask: &resources.ResolvedTask{TaskSpec: spec.DeepCopy()}}
	prresources.PropagateResults(rpt, state)
	want := rpt.ResolvedTask.TaskSpec

	vars := results.NewVars()
	for task, rs := range done {
		for _, r := range rs {
			vars.SetPropagatedResult(task, r.Name, toPlanValue(&r.Value))
		}
	}
	plan := toPlanSpec(&spec)
	got := results.Propagate(plan, vars)
	for i, w := range append(slices.Clone(want.Steps), v1.Step{Name: want.Sidecars[0].Name, Image: want.Sidecars[0].Image, Script: want.Sidecars[0].Script}) {
		compareStep(t, fmt.Sprintf("container %d", i), slices.Concat(got.GetSteps(), got.GetSidecars())[i], w)
	}
	if plan.GetSteps()[0].GetScript() != spec.Steps[0].Script {
		t.Error("Propagate changed the spec it was given")
	}
	if results.Propagate(plan, nil) != plan || results.Propagate(plan, results.NewVars()) != plan {
		t.Error("Propagate without results copied the spec")
	}

	var wantRefs []results.Ref
	for _, r := range v1.PipelineTaskResultRefs(&v1.PipelineTask{TaskSpec: &v1.EmbeddedTask{TaskSpec: spec}}) {
		if ref := (results.Ref{Task: r.PipelineTask, Result: r.Result}); !slices.Contains(wantRefs, ref) {
			wantRefs = append(wantRefs, ref)
		}
	}
	if gotRefs := results.SpecRefs(plan); !reflect.DeepEqual(gotRefs, wantRefs) {
		t.Errorf("SpecRefs = %v, Tekton's PipelineTaskResultRefs: %v", gotRefs, wantRefs)
	}
}

// finished is a pipeline task whose one TaskRun ended with status and results.
func finished(name string, status corev1.ConditionStatus, rs []v1.TaskRunResult) *prresources.ResolvedPipelineTask {
	tr := &v1.TaskRun{}
	tr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: status})
	tr.Status.Results = rs
	return &prresources.ResolvedPipelineTask{PipelineTask: &v1.PipelineTask{Name: name}, TaskRunNames: []string{name}, TaskRuns: []*v1.TaskRun{tr}}
}

// TestStepResults: the step results a step reads in env, command and args
// (not its script, which Tekton's validation refuses them in), and their
// substitution: strings, elements, whole arrays, object keys.
func TestStepResults(t *testing.T) {
	step := &planpb.Step{
		Command: []string{"run", "$(steps.a.results.list[*])"},
		Args:    []string{"$(steps.a.results.list[1])", "x-$(steps.b.results.o.k)", "$(steps.a.results.s)"},
		Env:     []*planpb.EnvVar{{Name: "E", Value: "$(steps.a.results.s)/$(steps.gone.results.r)"}},
		Script:  "$(steps.c.results.r)",
	}
	want := []results.Ref{{Task: "a", Result: "list"}, {Task: "b", Result: "o"}, {Task: "a", Result: "s"}, {Task: "gone", Result: "r"}}
	if got := results.StepResultRefs(step); !reflect.DeepEqual(got, want) {
		t.Errorf("StepResultRefs = %v, want %v", got, want)
	}
	v := results.NewVars()
	v.SetStepResult("a", "s", &planpb.Value{StringValue: "S"})
	v.SetStepResult("a", "list", &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{"x", "y"}})
	v.SetStepResult("b", "o", &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: map[string]string{"k": "K"}})
	got := results.ApplyStepResults(step, v)
	if !slices.Equal(got.GetCommand(), []string{"run", "x", "y"}) || !slices.Equal(got.GetArgs(), []string{"y", "x-K", "S"}) ||
		got.GetEnv()[0].GetValue() != "S/$(steps.gone.results.r)" || got.GetScript() != step.GetScript() {
		t.Errorf("ApplyStepResults = %v", got)
	}
	if step.GetArgs()[0] != "$(steps.a.results.list[1])" {
		t.Error("ApplyStepResults changed the step it was given")
	}
}
