package results_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestTaskStepsAgainstTekton substitutes the same TaskSpec and TaskRun with
// Tekton's taskrun/resources functions, in the reconciler's order, and with
// results.TaskSteps: every substituted step field must agree.
func TestTaskStepsAgainstTekton(t *testing.T) {
	tests := []struct {
		name    string
		spec    string // v1.TaskSpec YAML
		params  string // v1.Params YAML
		bound   []string
		retries int
	}{{
		name: "string params, defaults, bracket forms",
		spec: `
params:
- {name: a}
- {name: b, default: bee}
- {name: c.dotted, default: dot}
steps:
- name: s
  image: img:$(params.b)
  script: echo $(params.a) $(params["b"]) $(params['c.dotted']) $(inputs.params.a)
  workingDir: /w/$(params.a)
  env: [{name: E, value: "$(params.b)-x"}]
`,
		params: `[{name: a, value: given}]`,
	}, {
		name: "array params expand in args and command",
		spec: `
params:
- {name: list, type: array, default: [d1, d2]}
- {name: flags, type: array}
steps:
- name: s
  image: i
  command: [run, "$(params.flags[*])"]
  args: ["$(params.list[*])", "first=$(params.list[0])", "$(params.flags)", "x $(params.flags[1])"]
`,
		params: `[{name: flags, value: [-a, -b]}]`,
	}, {
		name: "object params with partial override",
		spec: `
params:
- name: o
  type: object
  properties: {url: {}, rev: {}}
  default: {url: u0, rev: r0}
steps:
- name: s
  image: i
  script: git clone $(params.o.url) --rev $(params.o.rev)
`,
		params: `[{name: o, value: {url: u1}}]`,
	}, {
		name: "default referring to another param",
		spec: `
params:
- {name: base, default: b}
- {name: full, default: "$(params.base)/x"}
steps:
- {name: s, image: i, script: "echo $(params.full)"}
`,
	}, {
		name: "contexts, retry count, and a param value substituted again by a later stage",
		spec: `
params:
- {name: p}
steps:
- name: s
  image: i
  script: |
    echo $(context.taskRun.name) $(context.task.name) $(context.taskRun.namespace) $(context.taskRun.uid)
    echo $(context.task.retry-count) $(params.p)
`,
		params:  `[{name: p, value: "$(context.taskRun.name)"}]`,
		retries: 2,
	}, {
		name: "result, step result and exit code paths",
		spec: `
results: [{name: r1}, {name: r2, type: array}]
steps:
- name: first
  image: i
  results: [{name: sr}]
  script: echo > $(results.r1.path) > $(results["r2"].path) > $(step.results.sr.path)
  onError: continue
- image: i
  script: cat $(steps.step-first.exitCode.path) $(steps.step-unnamed-1.exitCode.path)
  stdoutConfig: {path: $(results.r1.path)}
`,
	}, {
		name: "workspaces bound and optional unbound",
		spec: `
workspaces:
- {name: src}
- {name: cache, optional: true}
- {name: out, mountPath: /custom}
steps:
- name: s
  image: i
  workingDir: $(workspaces.src.path)
  script: |
    [ "$(workspaces.cache.bound)" = true ] && ls "$(workspaces.cache.path)"
    echo $(workspaces.src.bound) $(workspaces.out.path)
`,
		bound: []string{"src", "out"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var spec v1.TaskSpec
			if err := yaml.UnmarshalStrict([]byte(tt.spec), &spec); err != nil {
				t.Fatal(err)
			}
			var params v1.Params
			if err := yaml.UnmarshalStrict([]byte(tt.params), &params); err != nil {
				t.Fatal(err)
			}
			tr := &v1.TaskRun{
				ObjectMeta: metav1.ObjectMeta{Name: "run-t", Namespace: "ns", UID: "uid-1"},
				Spec:       v1.TaskRunSpec{Params: params},
			}
			tr.Status.RetriesStatus = make([]v1.TaskRunStatus, tt.retries)
			paths := tektonPaths{mount: map[string]string{}}
			for _, name := range tt.bound {
				tr.Spec.Workspaces = append(tr.Spec.Workspaces, v1.WorkspaceBinding{Name: name, EmptyDir: &corev1.EmptyDirVolumeSource{}})
				for _, d := range spec.Workspaces {
					if d.Name == name {
						paths.mount[name] = d.GetMountPath()
					}
				}
			}

			// Tekton, as applyParamsContextsResultsAndWorkspaces does.
			want := resources.ApplyParameters(spec.DeepCopy(), tr, spec.Params...)
			want = resources.ApplyContexts(want, "the-task", tr)
			want = resources.ApplyResults(want)
			want = resources.ApplyStepExitCodePath(want)
			want = resources.ApplyWorkspaces(context.Background(), want, want.Workspaces, tr.Spec.Workspaces, nil)

			ctx := map[string]string{
				"context.taskRun.name": "run-t", "context.task.name": "the-task",
				"context.taskRun.namespace": "ns", "context.taskRun.uid": "uid-1",
				"context.task.retry-count": itoa(tt.retries),
			}
			got, err := results.TaskSteps(toPlanSpec(&spec), toPlanParams(params), ctx, paths)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want.Steps) {
				t.Fatalf("%d steps, Tekton has %d", len(got), len(want.Steps))
			}
			for i, w := range want.Steps {
				compareStep(t, fmt.Sprintf("step %d", i), got[i], w)
			}
		})
	}
}

// compareStep checks every field Tekton substitutes in a step: ours, got,
// against Tekton's, want.
func compareStep(t *testing.T, which string, got *planpb.Step, want v1.Step) {
	t.Helper()
	check := func(field string, gv, wv any) {
		t.Helper()
		if !reflect.DeepEqual(gv, wv) {
			t.Errorf("%s %s = %#v, Tekton: %#v", which, field, gv, wv)
		}
	}
	check("image", got.GetImage(), want.Image)
	check("command", got.GetCommand(), want.Command)
	check("args", got.GetArgs(), want.Args)
	check("script", got.GetScript(), want.Script)
	check("workingDir", got.GetWorkingDir(), want.WorkingDir)
	if want.StdoutConfig != nil {
		check("stdoutConfig.path", got.GetStdoutPath(), want.StdoutConfig.Path)
	}
	for j, e := range want.Env {
		check("env "+e.Name, got.GetEnv()[j].GetValue(), e.Value)
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

// tektonPaths are the paths of a Tekton pod.
type tektonPaths struct{ mount map[string]string }

func (tektonPaths) ResultsDir() string         { return "/tekton/results" }
func (tektonPaths) StepDir(step string) string { return "/tekton/steps/step-" + step }
func (tektonPaths) ArtifactsDir() string       { return "/tekton/artifacts" }
func (p tektonPaths) Workspace(name string) (string, bool) {
	m, ok := p.mount[name]
	return m, ok
}

func toPlanValue(v *v1.ParamValue) *planpb.Value {
	if v == nil {
		return nil
	}
	switch v.Type {
	case v1.ParamTypeArray:
		return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: v.ArrayVal}
	case v1.ParamTypeObject:
		return &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: v.ObjectVal}
	}
	return &planpb.Value{StringValue: v.StringVal}
}

func toPlanParams(ps v1.Params) []*planpb.Param {
	var out []*planpb.Param
	for _, p := range ps {
		out = append(out, &planpb.Param{Name: p.Name, Value: toPlanValue(&p.Value)})
	}
	return out
}

// toPlanSpec is a minimal TaskSpec conversion, enough for the fields above.
func toPlanSpec(s *v1.TaskSpec) *planpb.TaskSpec {
	out := &planpb.TaskSpec{}
	for _, p := range s.Params {
		ps := &planpb.ParamSpec{Name: p.Name, Default: toPlanValue(p.Default)}
		switch p.Type {
		case v1.ParamTypeArray:
			ps.Type = planpb.ValueType_ARRAY
		case v1.ParamTypeObject:
			ps.Type = planpb.ValueType_OBJECT
		}
		out.Params = append(out.Params, ps)
	}
	for _, r := range s.Results {
		out.Results = append(out.Results, &planpb.ResultSpec{Name: r.Name})
	}
	for _, w := range s.Workspaces {
		out.Workspaces = append(out.Workspaces, &planpb.WorkspaceDeclaration{Name: w.Name, MountPath: w.GetMountPath(), Optional: w.Optional})
	}
	for _, st := range s.Steps {
		ps := &planpb.Step{Name: st.Name, Image: st.Image, Command: st.Command, Args: st.Args, Script: st.Script, WorkingDir: st.WorkingDir}
		for _, e := range st.Env {
			ps.Env = append(ps.Env, &planpb.EnvVar{Name: e.Name, Value: e.Value})
		}
		for _, r := range st.Results {
			ps.Results = append(ps.Results, &planpb.ResultSpec{Name: r.Name})
		}
		if st.StdoutConfig != nil {
			ps.StdoutPath = st.StdoutConfig.Path
		}
		out.Steps = append(out.Steps, ps)
	}
	for _, sc := range s.Sidecars {
		out.Sidecars = append(out.Sidecars, &planpb.Step{Name: sc.Name, Image: sc.Image, Command: sc.Command, Args: sc.Args, Script: sc.Script, WorkingDir: sc.WorkingDir})
	}
	return out
}
