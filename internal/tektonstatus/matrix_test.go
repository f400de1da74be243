package tektonstatus

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"k8s.io/utils/clock"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

const matrixRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: mx
spec:
  params:
  - {name: node, value: big}
  taskRunSpecs:
  - pipelineTaskName: build
    serviceAccountName: builder
  pipelineSpec:
    params:
    - name: node
    tasks:
    - name: build
      displayName: "Build $(params.platform)"
      matrix:
        params:
        - name: platform
          value: [linux, mac]
        include:
        - name: "Linux on $(params.node)"
          params: [{name: platform, value: linux}, {name: node, value: $(params.node)}]
      taskSpec:
        params: [{name: platform}, {name: node, default: any}]
        results: [{name: out}]
        steps: [{image: busybox, script: "echo $(params.platform)"}]
    - name: check
      when: [{input: linux-out, operator: in, values: ["$(tasks.build.results.out[*])"]}]
      params: [{name: all, value: "$(tasks.build.results.out[*])"}]
      taskSpec:
        params: [{name: all, type: array}]
        steps: [{image: busybox, script: "true"}]
`

// A matrixed task's TaskRuns are listed one by one with Tekton's names and
// labels, and childReferences are what Tekton's GetChildReferences gives
// for the same TaskRuns.
func TestMatrixTaskRuns(t *testing.T) {
	docs, err := load.Read("in.yaml", strings.NewReader(matrixRun))
	if err != nil {
		t.Fatal(err)
	}
	c, err := compile.Compile(context.Background(), docs, compile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := &planpb.RunStatus{Name: "mx", Condition: cond("True", "Succeeded", "", 9)}
	for i, pt := range c.Plan.GetTasks() {
		ts := succeededTask(pt.GetName(), i, i+1)
		ts.TaskRunName = pt.GetTaskRunName()
		ts.Params = pt.GetParams()
		if pt.GetMatrix() != nil {
			ts.Results = []*planpb.ResultValue{{Name: "out", Value: str(pt.GetParams()[0].GetValue().GetStringValue() + "-out")}}
		} else {
			ts.Params = []*planpb.Param{{Name: "all", Value: &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{"linux-out", "mac-out"}}}}
		}
		st.Tasks = append(st.Tasks, ts)
	}
	list := ListWith(c, st, ListOptions{})
	var got []string
	for _, it := range list.Items[1:] {
		tr := it.Object.(*v1.TaskRun)
		got = append(got, tr.Name+" "+tr.Labels[pipeline.PipelineTaskLabelKey]+" "+tr.Spec.ServiceAccountName)
	}
	want := []string{"mx-build-0 build builder", "mx-build-1 build builder", "mx-check check default"}
	if !slices.Equal(got, want) {
		t.Errorf("TaskRuns (name, pipelineTask, serviceAccountName):\n got %q\nwant %q", got, want)
	}

	// Tekton's view of the same TaskRuns.
	ps, err := resources.ApplyParameters(c.PipelineSpec, c.PipelineRun)
	if err != nil {
		t.Fatal(err)
	}
	byTask := map[string][]*v1.TaskRun{}
	for _, ts := range st.Tasks {
		name := ts.GetName()
		if m := c.Plan.GetTasks()[slices.IndexFunc(c.Plan.GetTasks(), func(p *planpb.Task) bool { return p.GetName() == name })].GetMatrix(); m != nil {
			name = m.GetPipelineTask()
		}
		byTask[name] = append(byTask[name], syntheticTaskRun(ts))
	}
	var state resources.PipelineRunState
	for i := range ps.Tasks {
		state = append(state, &resources.ResolvedPipelineTask{PipelineTask: &ps.Tasks[i], TaskRuns: byTask[ps.Tasks[i].Name]})
	}
	g, err := dag.Build(v1.PipelineTaskList(ps.Tasks), v1.PipelineTaskList(ps.Tasks).Deps())
	if err != nil {
		t.Fatal(err)
	}
	facts := &resources.PipelineRunFacts{State: state, TasksGraph: g, FinalTasksGraph: &dag.Graph{},
		SkipCache: map[string]resources.TaskSkipStatus{}, TimeoutsState: resources.PipelineRunTimeoutsState{Clock: clock.RealClock{}}}
	wantRefs := facts.GetChildReferences()
	pr := list.Items[0].Object.(*v1.PipelineRun)
	if d := cmp.Diff(wantRefs, pr.Status.ChildReferences, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("childReferences (-tekton +ours):\n%s", d)
	}
	if dn := pr.Status.ChildReferences[0].DisplayName; dn != "Linux on big" {
		t.Errorf("first TaskRun's displayName %q, want the include's name", dn)
	}
}

// The TaskRuns the supervisor fanned out at run time (a matrix fed by task
// results) are listed like the others: the compiled TaskRun of their plan
// task under their own names, uids and params, in the plan's place.
func TestRunTimeMatrixTaskRuns(t *testing.T) {
	docs, err := load.Read("in.yaml", strings.NewReader(`
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: mx
spec:
  pipelineSpec:
    tasks:
    - name: a
      taskSpec:
        results: [{name: list, type: array}]
        steps: [{image: busybox, script: "true"}]
    - name: m
      params: [{name: p, value: fixed}]
      matrix:
        params: [{name: x, value: "$(tasks.a.results.list[*])"}]
      taskSpec:
        params: [{name: x}, {name: p}]
        steps: [{image: busybox, script: echo $(params.x) $(context.taskRun.name) $(context.taskRun.uid)}]
`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := compile.Compile(context.Background(), docs, compile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := succeededTask("a", 1, 2)
	a.TaskRunName = "mx-a"
	st := &planpb.RunStatus{Name: "mx", Condition: cond("True", "Succeeded", "", 9), Tasks: []*planpb.TaskStatus{a}}
	for i, x := range []string{"p", "q"} {
		ts := succeededTask(fmt.Sprintf("m-%d", i), 3, 4)
		ts.TaskRunName = fmt.Sprintf("mx-m-%d", i)
		ts.Matrix = &planpb.Matrix{PipelineTask: "m", Index: int32(i), Combination: 1}
		ts.TaskRunUid = fmt.Sprintf("uid-%d", i)
		ts.Params = []*planpb.Param{{Name: "x", Value: str(x)}, {Name: "p", Value: str("fixed")}}
		st.Tasks = append(st.Tasks, ts)
	}
	// The second TaskRun's status comes first: childReferences follow the plan.
	st.Tasks[1], st.Tasks[2] = st.Tasks[2], st.Tasks[1]
	list := ListWith(c, st, ListOptions{})
	var got []string
	for _, it := range list.Items[1:] {
		tr := it.Object.(*v1.TaskRun)
		var ps []string
		for _, p := range tr.Spec.Params {
			ps = append(ps, p.Name+"="+p.Value.StringVal)
		}
		got = append(got, fmt.Sprintf("%s %s %s %v %s", tr.Name, tr.Labels[pipeline.PipelineTaskLabelKey], tr.Labels[pipeline.PipelineRunLabelKey], ps,
			strings.TrimSpace(tr.Status.TaskSpec.Steps[0].Script)))
	}
	slices.Sort(got)
	want := []string{
		"mx-a a mx [] true",
		"mx-m-0 m mx [x=p p=fixed] echo p mx-m-0 uid-0",
		"mx-m-1 m mx [x=q p=fixed] echo q mx-m-1 uid-1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("TaskRuns (name, pipelineTask, pipelineRun, params, status.taskSpec script):\n got %q\nwant %q", got, want)
	}
	var refs []string
	for _, r := range list.Items[0].Object.(*v1.PipelineRun).Status.ChildReferences {
		refs = append(refs, r.Name+"/"+r.PipelineTaskName)
	}
	if want := []string{"mx-a/a", "mx-m-0/m", "mx-m-1/m"}; !slices.Equal(refs, want) {
		t.Errorf("childReferences %q, want %q", refs, want)
	}
}
