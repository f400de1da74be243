package kube

import (
	"context"
	"encoding/json"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"sigs.k8s.io/yaml"
)

// TestWrapTaskRun: the PipelineRun a TaskRun is wrapped into is valid to
// Tekton and carries what the TaskRun says of its task and its Pod.
func TestWrapTaskRun(t *testing.T) {
	const tr = `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: wrapped}
spec:
  serviceAccountName: builder
  podTemplate:
    volumes: [{name: custom, emptyDir: {}}]
  timeout: 1m
  retries: 2
  stepSpecs: [{name: s, computeResources: {requests: {cpu: 100m}}}]
  params:
  - {name: str, value: a}
  - {name: arr, value: ["x", "z"]}
  - {name: obj, value: {key2: v2}}
  workspaces: [{name: ws, emptyDir: {}}]
  taskRef: {name: t, kind: task}
`
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(tr), &obj); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(WrapTaskRun(obj))
	if err != nil {
		t.Fatal(err)
	}
	pr := &v1.PipelineRun{}
	if err := json.Unmarshal(b, pr); err != nil {
		t.Fatal(err)
	}
	pr.SetDefaults(context.Background())
	if fe := pr.Validate(context.Background()); fe != nil {
		t.Fatalf("Tekton finds the wrapped run invalid: %v\n%s", fe, b)
	}
	task := pr.Spec.PipelineSpec.Tasks[0]
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"name", pr.Name, "wrapped"},
		{"taskRef kind", task.TaskRef.Kind, v1.NamespacedTaskKind},
		{"service account", pr.Spec.TaskRunTemplate.ServiceAccountName, "builder"},
		{"podTemplate volumes", len(pr.Spec.TaskRunTemplate.PodTemplate.Volumes), 1},
		{"timeout", task.Timeout.Duration.String(), "1m0s"},
		{"retries", task.Retries, 2},
		{"step overrides", pr.Spec.TaskRunSpecs[0].StepSpecs[0].Name, "s"},
		{"overridden task", pr.Spec.TaskRunSpecs[0].PipelineTaskName, "task"},
		{"object param keys", len(pr.Spec.PipelineSpec.Params[2].Properties), 1},
		{"array passed whole", task.Params[1].Value.ArrayVal[0], "$(params.arr[*])"},
		{"workspace bound", task.Workspaces[0].Workspace, "ws"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}
