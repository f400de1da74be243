package tektonstatus

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestChildReferencesMatchTekton builds Tekton's own PipelineRunFacts from
// synthetic TaskRuns carrying the same outcomes as the engine's status, and
// compares GetChildReferences (when expressions with results applied,
// display names) with ours.
func TestChildReferencesMatchTekton(t *testing.T) {
	running := &planpb.TaskStatus{Name: "build", TaskRunName: "pr-1-build", StartTime: at(6), Condition: cond("Unknown", "Running", "", 6),
		Params: []*planpb.Param{{Name: "image", Value: str("abc123")}}}
	buildDone := &planpb.TaskStatus{Name: "build", TaskRunName: "pr-1-build", StartTime: at(6), CompletionTime: at(9),
		Condition: cond("False", "Failed", "boom", 9), Params: []*planpb.Param{{Name: "image", Value: str("abc123")}}}
	reportDone := succeededTask("report", 10, 11)
	reportDone.Finally = true
	tests := []struct {
		name  string
		env   string
		tasks []*planpb.TaskStatus
	}{
		{name: "all done", env: "prod", tasks: []*planpb.TaskStatus{fetchOK(commit("abc123"), filesResult, metaResult), buildDone, succeededTask("deploy", 9, 10), reportDone}},
		{name: "build still running", env: "prod", tasks: []*planpb.TaskStatus{fetchOK(commit("abc123")), running}},
		{name: "empty result", env: "staging", tasks: []*planpb.TaskStatus{fetchOK(commit("")), buildDone, reportDone}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fixture()
			c.PipelineRun.Spec.Params[0].Value = *v1.NewStructuredValues(tc.env)
			c.Plan.Tasks[2].When[0].Input = tc.env // the compiler applied the pipeline param
			st := &planpb.RunStatus{Name: "pr-1", Tasks: tc.tasks}

			ps, err := resources.ApplyParameters(c.PipelineSpec, c.PipelineRun)
			if err != nil {
				t.Fatal(err)
			}
			ran := map[string]*planpb.TaskStatus{}
			for _, ts := range tc.tasks {
				ran[ts.GetName()] = ts
			}
			var state resources.PipelineRunState
			for _, list := range [][]v1.PipelineTask{ps.Tasks, ps.Finally} {
				for i := range list {
					rpt := &resources.ResolvedPipelineTask{PipelineTask: &list[i], TaskRunNames: []string{"pr-1-" + list[i].Name}}
					if ts := ran[list[i].Name]; ts != nil {
						rpt.TaskRuns = []*v1.TaskRun{syntheticTaskRun(ts)}
					}
					state = append(state, rpt)
				}
			}
			g, err := dag.Build(v1.PipelineTaskList(ps.Tasks), v1.PipelineTaskList(ps.Tasks).Deps())
			if err != nil {
				t.Fatal(err)
			}
			fg, err := dag.Build(v1.PipelineTaskList(ps.Finally), map[string][]string{})
			if err != nil {
				t.Fatal(err)
			}
			facts := &resources.PipelineRunFacts{State: state, TasksGraph: g, FinalTasksGraph: fg,
				SkipCache: map[string]resources.TaskSkipStatus{}, TimeoutsState: resources.PipelineRunTimeoutsState{Clock: clock.RealClock{}}}
			want := facts.GetChildReferences()

			b := newBuilder(c, st, ListOptions{})
			got, _ := b.childrenAndSkipped()
			if len(want) == 0 {
				t.Fatal("Tekton listed no children")
			}
			if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("childReferences (-tekton +ours):\n%s", d)
			}
		})
	}
}

// syntheticTaskRun is a TaskRun with the outcome of an engine task status.
func syntheticTaskRun(ts *planpb.TaskStatus) *v1.TaskRun {
	c := ts.GetCondition()
	tr := &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: ts.GetTaskRunName()},
		Spec:       v1.TaskRunSpec{Params: params(ts.GetParams())},
		Status: v1.TaskRunStatus{
			Status:              duckv1.Status{Conditions: duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionStatus(c.GetStatus()), Reason: c.GetReason()}}},
			TaskRunStatusFields: v1.TaskRunStatusFields{Results: taskRunResults(ts.GetResults())},
		},
	}
	return tr
}
