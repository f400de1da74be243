package compile

import (
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

func mustCompile(t *testing.T, in string, opts Options) *Compiled {
	t.Helper()
	c, err := compileYAML(t, in, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func planTask(t *testing.T, p *planpb.Plan, name string) *planpb.Task {
	t.Helper()
	for _, tk := range append(slices.Clip(p.GetTasks()), p.GetFinally()...) {
		if tk.GetName() == name {
			return tk
		}
	}
	t.Fatalf("plan has no task %q", name)
	return nil
}

func str(s string) *planpb.Value { return &planpb.Value{StringValue: s} }

func arr(s ...string) *planpb.Value {
	return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: s}
}

func obj(kv ...string) *planpb.Value {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: m}
}

func diff(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

const paramsPipeline = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  generateName: params-
  namespace: ci
spec:
  params:
  - name: s
    value: from-run
  - name: extra
    value: not-declared
  pipelineRef:
    name: params
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: params
spec:
  params:
  - name: s
    default: s-default
  - name: d
    default: d-default
  - name: a
    type: array
    default: [a1, a2]
  - name: o
    type: object
    properties:
      k1: {}
      k2: {}
    default:
      k1: v1
      k2: v2
  tasks:
  - name: typed
    taskRef: {name: typed}
    params:
    - name: s
      value: $(params.s)-$(params.d)
    - name: a
      value: ["$(params.a[*])", last]
    - name: o
      value: $(params.o[*])
    - name: k
      value: $(params.o.k2)
  - name: propagated
    taskSpec:
      steps:
      - image: busybox
        script: echo "$(params.s) $(params.o.k1)"
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: typed
spec:
  params:
  - name: s
  - name: a
    type: array
  - name: o
    type: object
    properties:
      k1: {}
      k2: {}
  - name: k
  - name: opt
    default: task-default
  steps:
  - image: busybox
    args: ["$(params.a[*])"]
`

// TestParams checks run params over Pipeline defaults, --param overrides of
// each type, and params propagated into an embedded spec
// (docs/pipelines.md "Specifying Parameters", docs/pipelineruns.md
// "Propagated Parameters").
func TestParams(t *testing.T) {
	c := mustCompile(t, paramsPipeline, Options{Params: map[string]string{
		"a": `["x", "y"]`,
		"o": `{"k1": "o1", "k2": "o2"}`,
		"d": "from-flag",
		"n": "new",
	}})
	p := c.Plan
	if !regexp.MustCompile(`^params-[a-z0-9]{5}$`).MatchString(p.GetName()) {
		t.Errorf("name = %q, want generateName + 5 characters", p.GetName())
	}
	if p.GetNamespace() != "ci" || p.GetUid() == "" || p.GetVersion() != planpb.Version || p.GetKind() != planpb.RunKind_PIPELINE_RUN {
		t.Errorf("plan identity = %q %q %q v%d %v", p.GetNamespace(), p.GetName(), p.GetUid(), p.GetVersion(), p.GetKind())
	}
	typed := planTask(t, p, "typed")
	diff(t, "typed params", typed.GetParams(), []*planpb.Param{
		{Name: "s", Value: str("from-run-from-flag")},
		{Name: "a", Value: arr("x", "y", "last")},
		{Name: "o", Value: obj("k1", "o1", "k2", "o2")},
		{Name: "k", Value: str("o2")},
	})
	diff(t, "typed param specs", typed.GetSpec().GetParams(), []*planpb.ParamSpec{
		{Name: "s"},
		{Name: "a", Type: planpb.ValueType_ARRAY},
		{Name: "o", Type: planpb.ValueType_OBJECT, Properties: []string{"k1", "k2"}},
		{Name: "k"},
		{Name: "opt", Default: str("task-default")},
	})
	// Task-level references stay for the supervisor.
	diff(t, "typed args", typed.GetSpec().GetSteps()[0].GetArgs(), []string{"$(params.a[*])"})

	prop := planTask(t, p, "propagated")
	if got, want := prop.GetSpec().GetSteps()[0].GetScript(), `echo "from-run o1"`; got != want {
		t.Errorf("propagated script = %q, want %q", got, want)
	}
	// The run as compiled holds the overrides, the new param included.
	got := map[string]string{}
	for _, prm := range c.PipelineRun.Spec.Params {
		got[prm.Name] = string(prm.Value.Type)
	}
	diff(t, "run param types", got, map[string]string{"s": "string", "extra": "string", "a": "array", "o": "object", "d": "string", "n": "string"})
}

// TestContexts checks $(context.*) in PipelineTasks and the values each task
// gets for its own (docs/variables.md).
func TestContexts(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: ctx
  uid: 11111111-2222-3333-4444-555555555555
spec:
  pipelineSpec:
    tasks:
    - name: show
      displayName: "$(context.pipelineRun.name) try $(context.pipelineTask.retries)"
      retries: 2
      params:
      - name: all
        value: "$(context.pipelineRun.name) $(context.pipelineRun.namespace) $(context.pipelineRun.uid) $(context.pipeline.name) $(context.pipelineTask.retries)"
      taskSpec:
        params:
        - name: all
        steps:
        - image: busybox
          script: echo $(params.all) $(context.taskRun.name) $(context.task.name)
    - name: named
      runAfter: [show]
      taskRef: {name: t}
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: t
spec:
  steps:
  - image: busybox
    script: echo $(context.task.name)
`, Options{Namespace: "team"})
	show := planTask(t, c.Plan, "show")
	diff(t, "show params", show.GetParams(), []*planpb.Param{
		{Name: "all", Value: str("ctx team 11111111-2222-3333-4444-555555555555 ctx 2")},
	})
	if show.GetDisplayName() != "ctx try 2" || show.GetRetries() != 2 {
		t.Errorf("display name, retries = %q, %d", show.GetDisplayName(), show.GetRetries())
	}
	uid := show.GetContext()["context.taskRun.uid"]
	if uid == "" || uid == c.Plan.GetUid() {
		t.Errorf("task uid = %q, want its own", uid)
	}
	diff(t, "show context", show.GetContext(), map[string]string{
		"credentials.path":          "/tekton/creds",
		"context.taskRun.name":      "ctx-show",
		"context.taskRun.namespace": "team",
		"context.taskRun.uid":       uid,
		// An embedded spec's task name is its TaskRun's (GetTaskData).
		"context.task.name": "ctx-show",
	})
	named := planTask(t, c.Plan, "named")
	if got := named.GetContext()["context.task.name"]; got != "t" {
		t.Errorf("named task context.task.name = %q, want t", got)
	}
	if string(c.TaskRuns["named"].UID) != named.GetContext()["context.taskRun.uid"] {
		t.Errorf("TaskRun uid %q differs from context %q", c.TaskRuns["named"].UID, named.GetContext()["context.taskRun.uid"])
	}
}

// TestStepTemplateAndStepAction checks stepTemplate merging
// (docs/tasks.md "Specifying a Step template") and StepAction resolution
// with params known now and params fed by results (docs/stepactions.md
// "Passing Params to StepActions").
func TestStepTemplateAndStepAction(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: sa
spec:
  pipelineRef: {name: p}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  tasks:
  - name: first
    taskSpec:
      results: [{name: id}]
      steps:
      - image: busybox
        script: echo -n 42 > $(results.id.path)
  - name: use
    taskRef: {name: use}
    params:
    - {name: static, value: hello}
    - {name: dynamic, value: $(tasks.first.results.id)}
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: use
spec:
  params:
  - name: static
  - name: dynamic
  stepTemplate:
    image: alpine
    workingDir: /src
    env:
    - {name: FROM_TEMPLATE, value: t}
    - {name: OVERRIDDEN, value: template}
  steps:
  - name: plain
    env:
    - {name: OVERRIDDEN, value: step}
    script: echo $FROM_TEMPLATE $OVERRIDDEN
  - name: action
    ref: {name: greet}
    params:
    - {name: greeting, value: $(params.static)}
    - {name: id, value: $(params.dynamic)}
---
apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata:
  name: greet
spec:
  params:
  - name: greeting
  - name: id
  - name: punct
    default: "!"
  image: busybox
  command: [echo]
  args: ["$(params.greeting)", "$(params.id)$(params.punct)"]
`, Options{})
	use := planTask(t, c.Plan, "use")
	steps := use.GetSpec().GetSteps()
	diff(t, "steps", steps, []*planpb.Step{
		{Name: "plain", Image: "alpine", WorkingDir: "/src", Script: "echo $FROM_TEMPLATE $OVERRIDDEN",
			Env: []*planpb.EnvVar{{Name: "FROM_TEMPLATE", Value: "t"}, {Name: "OVERRIDDEN", Value: "step"}}},
		{Name: "action", Image: "busybox", WorkingDir: "/src", Command: []string{"echo"},
			// The static param is applied now; the one fed by a result stays
			// a task param reference for the supervisor.
			Args: []string{"hello", "$(params.dynamic)!"},
			Env:  []*planpb.EnvVar{{Name: "FROM_TEMPLATE", Value: "t"}, {Name: "OVERRIDDEN", Value: "template"}}},
	})
	diff(t, "run after", use.GetRunAfter(), []string{"first"})
	diff(t, "use params", use.GetParams(), []*planpb.Param{
		{Name: "static", Value: str("hello")},
		{Name: "dynamic", Value: str("$(tasks.first.results.id)")},
	})
	// status.taskSpec keeps the steps with StepActions resolved, before the template.
	if ts := c.TaskSpecs["use"]; ts == nil || ts.Steps[1].Ref != nil || ts.Steps[1].Image != "busybox" || ts.StepTemplate == nil {
		t.Errorf("TaskSpecs[use] = %+v", ts)
	}
}

// TestFinallyResultsTimeoutsLabels checks the shape of a pipeline with
// finally tasks, results, when expressions, onError and timeouts
// (docs/pipelines.md, docs/pipelineruns.md "Configuring a failure timeout").
func TestFinallyResultsTimeoutsLabels(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: fin
  labels: {team: a}
  annotations: {note: hi, chains.tekton.dev/signed: "true"}
spec:
  timeouts:
    pipeline: 3h
    tasks: 2h
  pipelineRef: {name: p}
---
apiVersion: tekton.dev/v1beta1
kind: Pipeline
metadata:
  name: p
  labels: {pipeline-label: "x"}
spec:
  results:
  - name: sum
    value: $(tasks.a.results.out)
  - name: all
    type: array
    value: [$(tasks.a.results.out), $(tasks.b.results.out)]
  tasks:
  - name: a
    taskRef: {name: echo}
    timeout: 10m
    params: [{name: msg, value: a}]
  - name: b
    taskRef: {name: echo}
    onError: continue
    when:
    - input: $(tasks.a.results.out)
      operator: notin
      values: [skip]
    params: [{name: msg, value: b}]
  finally:
  - name: report
    taskRef: {name: echo}
    params: [{name: msg, value: "$(tasks.a.status) $(tasks.status) $(tasks.b.results.out)"}]
---
apiVersion: tekton.dev/v1beta1
kind: Task
metadata:
  name: echo
  labels: {task-label: "y"}
spec:
  params: [{name: msg}]
  results: [{name: out}]
  steps:
  - image: busybox
    script: echo $(params.msg) | tee $(results.out.path)
`, Options{})
	p := c.Plan
	diff(t, "timeouts", p.GetTimeouts(), &planpb.Timeouts{
		Pipeline: durationOf(3 * time.Hour), Tasks: durationOf(2 * time.Hour), Finally: durationOf(time.Hour),
	})
	if len(p.GetTasks()) != 2 || len(p.GetFinally()) != 1 || p.GetFinally()[0].GetName() != "report" {
		t.Fatalf("tasks, finally = %d, %d", len(p.GetTasks()), len(p.GetFinally()))
	}
	a, b, report := planTask(t, p, "a"), planTask(t, p, "b"), planTask(t, p, "report")
	// A task's own timeout wins; without one it gets the tasks timeout,
	// which is above Tekton's default (pipelineRunTimeout); finally gets
	// the 60m default as its timeout (1h) is not above it.
	for _, tc := range []struct {
		task *planpb.Task
		want time.Duration
	}{{a, 10 * time.Minute}, {b, 2 * time.Hour}, {report, time.Hour}} {
		if got := tc.task.GetTimeout().AsDuration(); got != tc.want {
			t.Errorf("%s timeout = %v, want %v", tc.task.GetName(), got, tc.want)
		}
	}
	diff(t, "b when", b.GetWhen(), []*planpb.WhenExpression{{Input: "$(tasks.a.results.out)", Operator: "notin", Values: []string{"skip"}}})
	diff(t, "b run after", b.GetRunAfter(), []string{"a"})
	if !b.GetOnErrorContinue() || a.GetOnErrorContinue() {
		t.Errorf("onErrorContinue a, b = %v, %v", a.GetOnErrorContinue(), b.GetOnErrorContinue())
	}
	diff(t, "report params", report.GetParams(), []*planpb.Param{{Name: "msg", Value: str("$(tasks.a.status) $(tasks.status) $(tasks.b.results.out)")}})
	diff(t, "results", p.GetResults(), []*planpb.PipelineResult{
		{Name: "sum", Value: str("$(tasks.a.results.out)")},
		{Name: "all", Type: planpb.ValueType_ARRAY, Value: arr("$(tasks.a.results.out)", "$(tasks.b.results.out)")},
	})
	if b.GetTaskRunName() != "fin-b" || b.GetTaskRefName() != "echo" {
		t.Errorf("b TaskRun, Task = %q, %q", b.GetTaskRunName(), b.GetTaskRefName())
	}
	diff(t, "report labels", report.GetLabels(), map[string]string{
		"team":                         "a",
		"pipeline-label":               "x",
		"task-label":                   "y",
		"app.kubernetes.io/managed-by": "tekton-pipelines",
		"tekton.dev/pipeline":          "p",
		"tekton.dev/pipelineRun":       "fin",
		"tekton.dev/pipelineRunUID":    p.GetUid(),
		"tekton.dev/pipelineTask":      "report",
		"tekton.dev/memberOf":          "finally",
		"tekton.dev/task":              "echo",
	})
	diff(t, "b annotations", b.GetAnnotations(), map[string]string{
		"note": "hi",
		"pipeline.tekton.dev/pipeline-task-on-error": "continue",
	})
	if c.PipelineSpec == nil || len(c.PipelineSpec.Finally) != 1 || c.PipelineRun.Status.PipelineSpec != c.PipelineSpec {
		t.Errorf("PipelineSpec not carried")
	}
}

// TestTaskRun checks a TaskRun compiles to one task named after it.
func TestTaskRun(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1beta1
kind: TaskRun
metadata:
  generateName: one-
spec:
  params:
  - {name: msg, value: hi}
  taskRef: {name: echo}
  workspaces:
  - name: out
    emptyDir: {}
    subPath: sub
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: echo
spec:
  params: [{name: msg}, {name: "n", default: "1"}]
  workspaces: [{name: out}]
  steps:
  - image: busybox
    timeout: 5s
    onError: continue
    computeResources:
      requests: {cpu: 100m}
      limits: {memory: 64Mi}
    script: echo $(params.msg)
  sidecars:
  - name: db
    image: postgres
    env: [{name: PGDATA, value: /tmp/pg}]
`, Options{Params: map[string]string{"n": "2"}})
	p := c.Plan
	if p.GetKind() != planpb.RunKind_TASK_RUN || len(p.GetTasks()) != 1 || c.TaskRun == nil || c.PipelineRun != nil {
		t.Fatalf("plan = %v", p)
	}
	if p.GetNamespace() != "default" {
		t.Errorf("namespace = %q, want default", p.GetNamespace())
	}
	task := p.GetTasks()[0]
	diff(t, "sidecars", task.GetSpec().GetSidecars(), []*planpb.Step{
		{Name: "db", Image: "postgres", Env: []*planpb.EnvVar{{Name: "PGDATA", Value: "/tmp/pg"}}},
	})
	if task.GetName() != p.GetName() || task.GetTaskRunName() != p.GetName() || task.GetTaskRefName() != "echo" {
		t.Errorf("task names = %q %q %q, run %q", task.GetName(), task.GetTaskRunName(), task.GetTaskRefName(), p.GetName())
	}
	diff(t, "params", task.GetParams(), []*planpb.Param{{Name: "msg", Value: str("hi")}, {Name: "n", Value: str("2")}})
	if got := task.GetTimeout().AsDuration(); got != time.Hour {
		t.Errorf("timeout = %v, want the 1h default", got)
	}
	diff(t, "step", task.GetSpec().GetSteps()[0], &planpb.Step{
		Image: "busybox", Script: "echo $(params.msg)", Timeout: durationOf(5 * time.Second),
		OnError:  planpb.OnError_CONTINUE,
		Requests: map[string]string{"cpu": "100m"}, Limits: map[string]string{"memory": "64Mi"},
	})
	diff(t, "bindings", task.GetWorkspaces(), []*planpb.WorkspaceBinding{{Name: "out", Volume: "out", SubPath: "sub"}})
	diff(t, "volumes", p.GetVolumes(), []*planpb.Volume{{Name: "out", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}}})
	if task.GetLabels()["tekton.dev/task"] != "echo" || task.GetContext()["context.taskRun.uid"] != p.GetUid() {
		t.Errorf("labels, context = %v, %v", task.GetLabels(), task.GetContext())
	}
	if c.TaskSpecs[task.GetName()] == nil || c.TaskRun.Status.TaskSpec == nil {
		t.Errorf("TaskSpec not carried")
	}
}

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
