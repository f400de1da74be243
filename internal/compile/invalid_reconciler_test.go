package compile

import (
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// pipelineP is a Pipeline named p with spec (indented under spec:), then
// echoTask: the documents prOfPipeline runs.
func pipelineP(spec string) string {
	return "---\napiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n" + spec + "---" + echoTask
}

const prOfSpec = "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: run}\nspec:\n"

// reconcilerChecks are runs failing one of the checks Tekton's PipelineRun
// reconciler marks with a reason of its own (pkg/reconciler/pipelinerun:
// reconcile, resolvePipelineState, createTaskRun), in the order it makes
// them; TestCompileInvalid has the others.
var reconcilerChecks = []invalidInput{
	{
		// The webhook rejects it; the reconciler's GetPipelineData would.
		name: "neither pipelineRef nor pipelineSpec",
		in:   prOfSpec + "  timeouts: {pipeline: 1h}\n",
		doc:  "in.yaml#1 (PipelineRun/run)", field: "spec.pipelineRef, spec.pipelineSpec", msg: "expected exactly one, got neither",
		reason: v1.PipelineRunReasonCouldntGetPipeline,
	},
	{
		name: "DAG cycle in an embedded pipelineSpec",
		in: prOfSpec + `  pipelineSpec:
    tasks:
    - {name: a, runAfter: [b], taskSpec: {steps: [{image: busybox, script: ls}]}}
    - {name: b, runAfter: [a], taskSpec: {steps: [{image: busybox, script: ls}]}}
`,
		doc: "in.yaml#1 (PipelineRun/run)", field: "spec.pipelineSpec.tasks", msg: "cycle detected",
		reason: v1.PipelineRunReasonInvalidGraph,
	},
	{
		name: "param enum",
		in: prOfPipeline + "  params: [{name: e, value: c}]\n" + pipelineP(`  params: [{name: e, enum: [a, b]}]
  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: $(params.e)}]}]
`),
		opts: Options{FeatureFlags: map[string]string{"enable-param-enum": "true"}},
		doc:  "in.yaml#1 (PipelineRun/run)", field: "spec.params", msg: "value: c is not in the enum list",
		reason: v1.PipelineRunReasonInvalidParamValue,
	},
	{
		name: "object param missing keys",
		in: prOfPipeline + "  params: [{name: o, value: {a: x}}]\n" + pipelineP(`  params: [{name: o, type: object, properties: {a: {}, b: {}}}]
  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: $(params.o.a)}]}]
`),
		doc: "in.yaml#1 (PipelineRun/run)", field: "spec.params", msg: "pipelineRun missing object keys for parameters: map[o:[b]]",
		reason: v1.PipelineRunReasonObjectParameterMissKeys,
	},
	{
		name: "array param index out of bounds",
		in: prOfPipeline + "  params: [{name: l, value: [x]}]\n" + pipelineP(`  params: [{name: l, type: array}]
  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: '$(params.l[3])'}]}]
`),
		doc: "in.yaml#1 (PipelineRun/run)", field: "spec.params", msg: "non-existent param references:[$(params.l[3])]",
		reason: v1.PipelineRunReasonParamArrayIndexingInvalid,
	},
	{
		name: "taskRunSpecs of a missing task",
		in: prOfPipeline + "  taskRunSpecs: [{pipelineTaskName: ghost, serviceAccountName: sa}]\n" + pipelineP(`  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: x}]}]
`),
		doc: "in.yaml#1 (PipelineRun/run)", field: "spec.taskRunSpecs", msg: `defined wrong taskName: "ghost"`,
		reason: v1.PipelineRunReasonInvalidTaskRunSpec,
	},
	{
		name: "task param from a missing result",
		in: prOfPipeline + pipelineP(`  tasks:
  - {name: a, taskRef: {name: echo}, params: [{name: msg, value: x}]}
  - {name: b, taskRef: {name: echo}, params: [{name: msg, value: $(tasks.a.results.nope)}]}
`),
		doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks", msg: `"nope" is not a named result returned by pipeline task "a"`,
		reason: v1.PipelineRunReasonInvalidTaskResultReference,
	},
	{
		name: "pipeline result from a missing result",
		in: prOfPipeline + pipelineP(`  results: [{name: r, value: $(tasks.a.results.nope)}]
  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: x}]}]
`),
		doc: "in.yaml#2 (Pipeline/p)", field: "spec.results", msg: `invalid pipeline result "r"`,
		reason: v1.PipelineRunReasonInvalidPipelineResultReference,
	},
	{
		name: "optional workspace a task requires",
		in: prOfPipeline + pipelineP(`  workspaces: [{name: ws, optional: true}]
  tasks: [{name: a, taskRef: {name: src}, workspaces: [{name: src, workspace: ws}]}]
`) + `---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: src}
spec:
  workspaces: [{name: src}]
  steps: [{image: busybox, script: ls}]
`,
		doc: "in.yaml#2 (Pipeline/p)", field: "spec.workspaces", msg: `pipeline workspace "ws" is marked optional but pipeline task "a" requires it`,
		reason: v1.PipelineRunReasonRequiredWorkspaceMarkedOptional,
	},
	{
		name: "matrix param of type string",
		in: prOfPipeline + "  params: [{name: s, value: x}]\n" + pipelineP(`  params: [{name: s}]
  tasks: [{name: a, taskRef: {name: echo}, matrix: {params: [{name: msg, value: $(params.s)}]}}]
`),
		doc: "in.yaml#2 (Pipeline/p)", field: "spec.tasks[0].matrix", msg: `param "msg" has type "string"`,
		reason: v1.PipelineRunReasonInvalidMatrixParameterTypes,
	},
	{
		// An embedded spec's workspace is propagated to the task, and the
		// run binds none.
		name: "propagated workspace not bound",
		in: prOfSpec + `  pipelineSpec:
    tasks: [{name: a, taskSpec: {steps: [{image: busybox, script: ls $(workspaces.foo.path)}]}}]
`,
		doc: "in.yaml#1 (PipelineRun/run)", field: "spec.pipelineSpec.tasks[0].workspaces[0]", msg: `expected workspace "foo" to be provided`,
		reason: v1.PipelineRunReasonCreateRunFailed,
	},
}

// TestCompileReconcilerChecks checks the errors and reasons of the
// reconciler's checks.
func TestCompileReconcilerChecks(t *testing.T) {
	runInvalid(t, reconcilerChecks)
}
