package controller

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
)

// Documents for TestInvalidReason: a PipelineRun of spec, a Pipeline p of
// spec, a Task echo with a param msg and a result out.
func reasonRun(spec string) string {
	return "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: run}\nspec:\n" + spec
}

func reasonPipeline(spec string) string {
	return "---\napiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n" + spec
}

const reasonTask = `---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: echo}
spec:
  params: [{name: msg}]
  results: [{name: out}]
  steps: [{name: echo, image: busybox, script: echo $(params.msg)}]
`

// refP is a run of Pipeline p.
const refP = "  pipelineRef: {name: p}\n"

// TestInvalidReason compiles invalid runs and checks the reason a run
// fails with for each: the one compile gives the error, as Tekton's
// reconciler gives it for the same check.
func TestInvalidReason(t *testing.T) {
	echo := "  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: x}]}]\n"
	cases := []struct {
		name, in string
		want     v1.PipelineRunReason
	}{
		{"missing Pipeline", reasonRun(refP), v1.PipelineRunReasonCouldntGetPipeline},
		{"neither pipelineRef nor pipelineSpec", reasonRun("  timeouts: {pipeline: 1h}\n"), v1.PipelineRunReasonCouldntGetPipeline},
		{"missing Task", reasonRun(refP) + reasonPipeline(echo), v1.PipelineRunReasonCouldntGetTask},
		{"missing StepAction", reasonRun("  pipelineSpec:\n    tasks: [{name: a, taskSpec: {steps: [{name: s, ref: {name: nope}}]}}]\n"),
			v1.PipelineRunReasonCouldntGetTask},
		{"DAG cycle", reasonRun(refP) + reasonPipeline(`  tasks:
  - {name: a, runAfter: [b], taskRef: {name: echo}, params: [{name: msg, value: x}]}
  - {name: b, runAfter: [a], taskRef: {name: echo}, params: [{name: msg, value: x}]}
`) + reasonTask, v1.PipelineRunReasonInvalidGraph},
		{"missing object keys", reasonRun(refP+"  params: [{name: o, value: {a: x}}]\n") +
			reasonPipeline("  params: [{name: o, type: object, properties: {a: {}, b: {}}}]\n  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: $(params.o.a)}]}]\n") + reasonTask,
			v1.PipelineRunReasonObjectParameterMissKeys},
		{"missing param", reasonRun(refP) +
			reasonPipeline("  params: [{name: who}]\n  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: $(params.who)}]}]\n") + reasonTask,
			v1.PipelineRunReasonParameterMissing},
		{"inconsistent param types", reasonRun(refP+"  params: [{name: l, value: x}]\n") +
			reasonPipeline("  params: [{name: l, type: array}]\n  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: '$(params.l[0])'}]}]\n") + reasonTask,
			v1.PipelineRunReasonParameterTypeMismatch},
		{"array index out of bounds", reasonRun(refP+"  params: [{name: l, value: [x]}]\n") +
			reasonPipeline("  params: [{name: l, type: array}]\n  tasks: [{name: a, taskRef: {name: echo}, params: [{name: msg, value: '$(params.l[3])'}]}]\n") + reasonTask,
			v1.PipelineRunReasonParamArrayIndexingInvalid},
		{"unbound workspace", reasonRun(refP) + reasonPipeline("  workspaces: [{name: src}]\n"+echo) + reasonTask,
			v1.PipelineRunReasonInvalidWorkspaceBinding},
		{"taskRunSpecs of a missing task", reasonRun(refP+"  taskRunSpecs: [{pipelineTaskName: ghost, serviceAccountName: sa}]\n") + reasonPipeline(echo) + reasonTask,
			v1.PipelineRunReasonInvalidTaskRunSpec},
		{"task param from a missing result", reasonRun(refP) + reasonPipeline(`  tasks:
  - {name: a, taskRef: {name: echo}, params: [{name: msg, value: x}]}
  - {name: b, taskRef: {name: echo}, params: [{name: msg, value: $(tasks.a.results.nope)}]}
`) + reasonTask, v1.PipelineRunReasonInvalidTaskResultReference},
		{"pipeline result from a missing result", reasonRun(refP) + reasonPipeline("  results: [{name: r, value: $(tasks.a.results.nope)}]\n"+echo) + reasonTask,
			v1.PipelineRunReasonInvalidPipelineResultReference},
		{"Task param missing", reasonRun(refP) + reasonPipeline("  tasks: [{name: a, taskRef: {name: echo}}]\n") + reasonTask,
			v1.PipelineRunReasonFailedValidation},
		{"pipelines in pipelines", reasonRun("  pipelineSpec:\n    tasks: [{name: child, pipelineRef: {name: other}}]\n"),
			v1.PipelineRunReasonFailedValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := load.Read("in.yaml", strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			_, err = compile.Compile(context.Background(), docs, compile.Options{})
			le, ok := asInvalid(err)
			if !ok {
				t.Fatalf("Compile: %v (%T), want invalid input", err, err)
			}
			if got := invalidReason(le); got != tc.want.String() {
				t.Errorf("invalidReason(%v) = %q, want %q", le, got, tc.want)
			}
		})
	}
}
