package tektonstatus

import (
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestRunSpec: status.taskSpec is the spec the attempt ran, substituted as
// the TaskRun reconciler substitutes it: the params the task ran with
// (defaults for the rest), the context with the attempt's retry count,
// result, step exit code and workspace paths, the run Pod's volume, and a
// declaration for a workspace the TaskRun binds and the Task does not
// declare.
func TestRunSpec(t *testing.T) {
	spec := &v1.TaskSpec{
		Params:     v1.ParamSpecs{{Name: "who", Type: v1.ParamTypeString}, {Name: "greeting", Type: v1.ParamTypeString, Default: v1.NewStructuredValues("hi")}},
		Results:    []v1.TaskResult{{Name: "said"}},
		Workspaces: []v1.WorkspaceDeclaration{{Name: "src"}},
		Steps: []v1.Step{{Name: "a", Image: "busybox",
			Script: `echo "$(params.greeting) $(params.who)" > $(results.said.path)
echo $(context.task.retry-count) $(context.taskRun.name) $(context.task.name) $(context.taskRun.uid)
cat $(steps.step-a.exitCode.path) $(workspaces.src.path) $(workspaces.src.volume)`}},
	}
	tr := &v1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "pr-1-say", Namespace: "ci", UID: "uid-say"},
		Spec: v1.TaskRunSpec{Workspaces: []v1.WorkspaceBinding{
			{Name: "src", EmptyDir: &corev1.EmptyDirVolumeSource{}},
			{Name: "extra", EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}
	c := &compile.Compiled{
		Plan: &planpb.Plan{Tasks: []*planpb.Task{{Name: "say", TaskRunName: "pr-1-say", Context: map[string]string{
			"context.taskRun.name": "pr-1-say", "context.task.name": "greeter", "context.taskRun.uid": "uid-say",
			"workspaces.src.volume": "ws-shared-abc"}}}},
		TaskSpecs: map[string]*v1.TaskSpec{"say": spec},
		TaskRuns:  map[string]*v1.TaskRun{"say": tr},
	}
	b := newBuilder(c, &planpb.RunStatus{}, ListOptions{})
	ran := []*planpb.Param{{Name: "who", Value: str("world")}}

	got := b.runSpec("say", spec, ran, 2)
	want := `echo "hi world" > /tekton/results/said
echo 2 pr-1-say greeter uid-say
cat /tekton/steps/step-a/exitCode /workspace/src ws-shared-abc`
	if got.Steps[0].Script != want {
		t.Errorf("script:\n%s\nwant:\n%s", got.Steps[0].Script, want)
	}
	if n := len(got.Workspaces); n != 2 || got.Workspaces[1].Name != "extra" {
		t.Errorf("workspaces %+v: want src, then the TaskRun's extra declared", got.Workspaces)
	}
	if first := b.runSpec("say", spec, ran, 0); first.Steps[0].Script == got.Steps[0].Script {
		t.Errorf("the first attempt's spec has the third's retry count")
	}
	if spec.Steps[0].Script == got.Steps[0].Script || len(spec.Workspaces) != 1 {
		t.Errorf("the compiled spec was changed")
	}
	if b.runSpec("say", nil, ran, 0) != nil {
		t.Errorf("no spec known: want none")
	}
}
