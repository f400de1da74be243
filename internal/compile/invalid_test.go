package compile

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/internal/load"
)

// compileYAML loads and compiles YAML documents as `pod-runner run -f` does.
func compileYAML(t *testing.T, in string, opts Options) (*Compiled, error) {
	t.Helper()
	docs, err := load.Read("in.yaml", strings.NewReader(in))
	if err != nil {
		return nil, err
	}
	return Compile(context.Background(), docs, opts)
}

const echoTask = `
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: echo
spec:
  params:
  - name: msg
  results:
  - name: out
  steps:
  - name: echo
    image: busybox
    script: echo $(params.msg) | tee $(results.out.path)
`

const prOfPipeline = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: run
spec:
  pipelineRef:
    name: p
`

// invalidInput is input Compile rejects, and the *load.Error it reports.
type invalidInput struct {
	name  string
	in    string
	opts  Options
	doc   string
	field string
	msg   string
	// reason is the reason Tekton's PipelineRun reconciler fails the run
	// with; empty is its generic FailedValidation.
	reason v1.PipelineRunReason
	// local: valid for a Pod, invalid for a local run (LocalError).
	local bool
}

// TestCompileInvalid checks that every class of invalid input is one
// *load.Error naming the document and the field at fault, with the reason
// Tekton gives the run (reconcilerChecks has more of those).
func TestCompileInvalid(t *testing.T) {
	tests := []invalidInput{
		{
			name: "unparseable YAML",
			in:   "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: [x\n",
			doc:  "in.yaml#1", msg: "invalid YAML",
		},
		{
			name: "unknown kind",
			in:   "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
			doc:  "in.yaml#1 (Pod/x)", field: "kind", msg: `unknown kind "Pod"`,
		},
		{
			name: "unknown field",
			in: prOfPipeline + `  serviceAcount: x
`,
			doc: "in.yaml#1 (PipelineRun/run)", field: "spec.serviceAcount", msg: "unknown field",
		},
		{
			name: "no run",
			in:   echoTask,
			msg:  "no PipelineRun or TaskRun",
		},
		{
			name: "two runs",
			in:   prOfPipeline + "---" + strings.Replace(prOfPipeline, "name: run", "name: run2", 1),
			doc:  "in.yaml#2 (PipelineRun/run2)", msg: "give exactly one",
		},
		{
			name: "missing Pipeline",
			in:   prOfPipeline,
			doc:  "in.yaml#1 (PipelineRun/run)", field: "spec.pipelineRef.name", msg: `Pipeline "p" not found`,
			reason: v1.PipelineRunReasonCouldntGetPipeline,
		},
		{
			name: "missing Task",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  tasks:
  - name: a
    taskRef:
      name: nope
`,
			doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks[0].taskRef.name", msg: `Task "nope" not found`,
			reason: v1.PipelineRunReasonCouldntGetTask,
		},
		{
			name: "missing Task in an embedded pipelineSpec",
			in: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: run
spec:
  pipelineSpec:
    finally:
    - name: f
      taskRef:
        name: nope
    tasks:
    - name: a
      taskSpec:
        steps:
        - image: busybox
          script: "true"
`,
			doc: "in.yaml#1 (PipelineRun/run)", field: "spec.pipelineSpec.finally[0].taskRef.name", msg: `Task "nope" not found`,
			reason: v1.PipelineRunReasonCouldntGetTask,
		},
		{
			name: "DAG cycle",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  tasks:
  - name: a
    runAfter: [b]
    taskRef: {name: echo}
    params: [{name: msg, value: x}]
  - name: b
    runAfter: [a]
    taskRef: {name: echo}
    params: [{name: msg, value: x}]
---` + echoTask,
			doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks", msg: "cycle detected",
			reason: v1.PipelineRunReasonInvalidGraph,
		},
		{
			name: "result reference to a missing task",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  tasks:
  - name: a
    taskRef: {name: echo}
    params: [{name: msg, value: $(tasks.ghost.results.out)}]
---` + echoTask,
			// The reconciler builds the graph, which has the result's task
			// as a dependency, before it checks result references.
			doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks", msg: "ghost",
			reason: v1.PipelineRunReasonInvalidGraph,
		},
		{
			name: "missing required Pipeline param",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  params:
  - name: who
  tasks:
  - name: a
    taskRef: {name: echo}
    params: [{name: msg, value: $(params.who)}]
---` + echoTask,
			doc: "in.yaml#1 (PipelineRun/run)", field: "spec.params", msg: "pipelineRun missing parameters: [who]",
			reason: v1.PipelineRunReasonParameterMissing,
		},
		{
			name: "missing required Task param",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  tasks:
  - name: a
    taskRef: {name: echo}
---` + echoTask,
			doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks[0].params", msg: "missing values for these params which have no default values: [msg]",
		},
		{
			name: "wrong param type",
			in: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: run
spec:
  params:
  - name: ok
    value: fine
  - name: list
    value: not-an-array
  pipelineRef:
    name: p
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  params:
  - name: ok
  - name: list
    type: array
  tasks:
  - name: a
    taskRef: {name: echo}
    params: [{name: msg, value: "$(params.ok) $(params.list[0])"}]
---` + echoTask,
			doc: "in.yaml#1 (PipelineRun/run)", field: "spec.params[1].value", msg: "parameters have inconsistent types : [list]",
			reason: v1.PipelineRunReasonParameterTypeMismatch,
		},
		{
			name: "wrong param type on the command line",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  params:
  - name: list
    type: array
    default: []
  tasks:
  - name: a
    taskRef: {name: echo}
    params: [{name: msg, value: "$(params.list[*])"}]
---` + echoTask,
			opts:  Options{Params: map[string]string{"list": "a,b"}},
			field: "--param list", msg: "give a JSON array of strings",
		},
		{
			name: "missing workspace binding",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  workspaces:
  - name: src
  tasks:
  - name: a
    taskRef: {name: echo}
    params: [{name: msg, value: x}]
---` + echoTask,
			doc: "in.yaml#1 (PipelineRun/run)", field: "spec.workspaces", msg: `pipeline requires workspace with name "src" be provided by pipelinerun`,
			reason: v1.PipelineRunReasonInvalidWorkspaceBinding,
		},
		{
			name: "Task workspace not given by the PipelineTask",
			in: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: run
spec:
  pipelineRef:
    name: p
  workspaces:
  - name: src
    emptyDir: {}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  workspaces:
  - name: src
  tasks:
  - name: a
    taskRef: {name: build}
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: build
spec:
  workspaces:
  - name: source
  steps:
  - image: busybox
    script: ls $(workspaces.source.path)
`,
			doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks[0].workspaces", msg: `declared workspace "source" is required but has not been bound`,
		},
		{
			name: "unknown workspace on the command line",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  params: [{name: msg, value: x}]
  taskRef: {name: echo}
---` + echoTask,
			opts:  Options{Workspaces: map[string]string{"cache": "/tmp"}},
			field: "--workspace cache", msg: `Task echo declares no workspace "cache"`,
		},
		{
			name: "Tekton validation of a Task",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  taskRef: {name: bad}
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: bad
spec:
  steps:
  - name: s
    script: echo
`,
			doc: "in.yaml#2 (Task/bad)", field: "spec.steps[0].Image", msg: "missing field", // Tekton's own path
		},
		{
			name: "missing StepAction",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  taskSpec:
    steps:
    - name: s
      ref: {name: nope}
`,
			doc: "in.yaml#1 (TaskRun/tr)", field: "spec.taskSpec.steps[0].ref.name", msg: `StepAction "nope" not found`,
			reason: v1.PipelineRunReasonCouldntGetTask,
		},
		{
			name: "StepAction param missing",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  taskRef: {name: t}
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: t
spec:
  steps:
  - name: first
    image: busybox
    script: "true"
  - name: s
    ref: {name: greet}
---
apiVersion: tekton.dev/v1beta1
kind: StepAction
metadata:
  name: greet
spec:
  params:
  - name: who
  image: busybox
  command: [echo]
  args: ["$(params.who)"]
`,
			doc: "in.yaml#2 (Task/t)", field: "spec.steps[1].params", msg: "non-existent params in Step: [who]",
		},
		{
			name: "TaskRun missing a param",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  taskRef: {name: echo}
---` + echoTask,
			doc: "in.yaml#1 (TaskRun/tr)", field: "spec.params", msg: "missing values for these params which have no default values: [msg]",
		},
		{
			name: "missing ConfigMap for env",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  taskSpec:
    steps:
    - name: s
      image: busybox
      env:
      - name: A
        value: a
      - name: B
        valueFrom:
          configMapKeyRef: {name: cfg, key: b}
      script: echo $B
`,
			doc: "in.yaml#1 (TaskRun/tr)", field: "spec.taskSpec.steps[0].env[1].valueFrom.configMapKeyRef.name", msg: `ConfigMap "cfg" not found`, local: true,
		},
		{
			name: "missing Secret key for env",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  taskSpec:
    steps:
    - name: s
      image: busybox
      env:
      - name: B
        valueFrom:
          secretKeyRef: {name: creds, key: token}
      script: echo $B
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  user: me
`,
			doc: "in.yaml#1 (TaskRun/tr)", field: "spec.taskSpec.steps[0].env[0].valueFrom.secretKeyRef.key", msg: `Secret "creds" has no key "token"`, local: true,
		},
		{
			name: "missing ConfigMap for a workspace",
			in: `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  workspaces:
  - name: cfg
    configMap: {name: settings}
  taskSpec:
    workspaces:
    - name: cfg
    steps:
    - image: busybox
      script: cat $(workspaces.cfg.path)/x
`,
			doc: "in.yaml#1 (TaskRun/tr)", field: "spec.workspaces[0].configMap", msg: `ConfigMap "settings" not found`, local: true,
		},
		{
			name: "remote resolution",
			in: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: run
spec:
  pipelineRef:
    resolver: git
    params:
    - {name: url, value: https://example.com/repo.git}
`,
			doc: "in.yaml#1 (PipelineRun/run)", field: "spec.pipelineRef.resolver", msg: `remote resolution (resolver "git") is not supported locally`,
			reason: v1.PipelineRunReasonCouldntGetPipeline,
		},
		{
			name: "custom task",
			in: prOfPipeline + `---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  tasks:
  - name: wait
    taskRef:
      apiVersion: wait.testing.tekton.dev/v1beta1
      kind: Wait
`,
			doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks[0].taskRef", msg: "custom tasks is not supported yet",
		},
		{
			name: "pipelines in pipelines are alpha",
			in: `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: run
spec:
  pipelineSpec:
    tasks:
    - name: child
      pipelineRef: {name: other}
`,
			doc: "in.yaml#1 (PipelineRun/run)", field: "", msg: `pipelineRef requires "enable-api-fields" feature gate to be "alpha" but it is "beta"`,
		},
		{
			name: "Task defined twice",
			in:   prOfPipeline + "---" + echoTask + "---" + echoTask,
			doc:  "in.yaml#3 (Task/echo)", field: "metadata.name", msg: `Task "echo" is defined twice (also in in.yaml#2 (Task/echo))`,
		},
	}
	runInvalid(t, tests)
}

// runInvalid compiles each input and checks the error it is rejected with.
func runInvalid(t *testing.T, tests []invalidInput) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := compileYAML(t, tt.in, tt.opts)
			if tt.local {
				// Valid input for a Pod, which reads the cluster's objects;
				// a local run cannot run it.
				if err != nil {
					t.Fatalf("Compile: %v; want it compiled, with a LocalError", err)
				}
				err = c.LocalError()
			}
			var le *load.Error
			if !errors.As(err, &le) {
				t.Fatalf("error = %v (%T), want a *load.Error", err, err)
			}
			if le.Doc != tt.doc || le.Field != tt.field || !strings.Contains(le.Msg, tt.msg) {
				t.Errorf("error = {Doc: %q, Field: %q, Msg: %q}\nwant    {Doc: %q, Field: %q, Msg containing %q}", le.Doc, le.Field, le.Msg, tt.doc, tt.field, tt.msg)
			}
			if le.Reason != tt.reason.String() {
				t.Errorf("reason = %q, want %q", le.Reason, tt.reason)
			}
		})
	}
}
