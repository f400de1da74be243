package supervisor

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestArtifacts: what steps write to their and the task's artifacts files
// is each step's inputs and outputs and the task's, merged; a later step
// reads an earlier one's through $(steps.S.outputs.NAME), a later task a
// finished one's through $(tasks.T.outputs.NAME); a file that is not JSON
// fails its step, as it fails Tekton's entrypoint.
func TestArtifacts(t *testing.T) {
	// A field with a reference the entrypoint cannot answer is left as
	// it is, all of it.
	use := &planpb.Step{Name: "use", Script: "echo $(steps.make.outputs.image)",
		Args: []string{"$(steps.make.outputs.image) $(steps.make.inputs.none)"},
		Env:  []*planpb.EnvVar{{Name: "IN", Value: "$(steps.make.inputs.src)"}}}
	a := task("a", nil, step("make"), use)
	b := task("b", []string{"a"}, &planpb.Step{Name: "s", Command: []string{"echo", "$(tasks.a.outputs.image)", "$(tasks.a.inputs)"}})
	f := newFake(map[string]outcome{
		"a/make": {
			stepArtifacts: `{"inputs":[{"name":"src","values":[{"uri":"git://s"}]}],"outputs":[{"name":"image","buildOutput":true,"values":[{"uri":"oci://i","digest":{"sha256":"d"}}]}]}`,
			taskArtifacts: `{"outputs":[{"name":"image","values":[{"uri":"oci://t"}]}]}`,
		},
	})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a, b}), f)

	made := taskStatus(st, "a").GetSteps()[0]
	if len(made.GetInputs()) != 1 || made.GetOutputs()[0].GetValues()[0].GetDigest()["sha256"] != "d" || !made.GetOutputs()[0].GetBuildOutput() {
		t.Errorf("step make: inputs %v, outputs %v", made.GetInputs(), made.GetOutputs())
	}
	if got := f.scripts["a/use"]; !strings.HasSuffix(got, `echo [{"digest":{"sha256":"d"},"uri":"oci://i"}]`) {
		t.Errorf("step use ran %q", got)
	}
	if got := f.commands["a/use"]; !slices.Equal(got, use.Args) {
		t.Errorf("step use args %q, want them as they were", got)
	}
	if !slices.Contains(f.envs["a/use"], `IN=[{"uri":"git://s"}]`) {
		t.Errorf("step use env %q", f.envs["a/use"])
	}
	ta := taskStatus(st, "a")
	if outs := ta.GetArtifactOutputs(); len(outs) != 1 || len(outs[0].GetValues()) != 2 || !outs[0].GetBuildOutput() {
		t.Errorf("task a outputs %v: want image with the task's and the step's values, buildOutput", outs)
	}
	want := []string{"echo", `[{"uri":"oci://t"},{"digest":{"sha256":"d"},"uri":"oci://i"}]`, `[{"uri":"git://s"}]`}
	if got := f.commands["b/s"]; !slices.Equal(got, want) {
		t.Errorf("task b ran %q, want %q", got, want)
	}

	c := task("c", nil, step("bad"), step("after"))
	f = newFake(map[string]outcome{"c/bad": {stepArtifacts: `{"inputs": [`}})
	st = runPlan(t, context.Background(), plan([]*planpb.Task{c}), f)
	tc := taskStatus(st, "c")
	if tc.GetCondition().GetReason() != reasons.StepFailed || !strings.Contains(tc.GetCondition().GetMessage(), "the step's artifacts file") ||
		tc.GetSteps()[1].GetReason() != reasons.StepSkipped {
		t.Errorf("task c: %v, steps %v", tc.GetCondition(), tc.GetSteps())
	}
}

// TestMatrixArtifacts: $(tasks.T.outputs.NAME) of a matrixed task is its
// TaskRuns' artifacts merged, in their names' order (GetTaskRunsArtifacts).
func TestMatrixArtifacts(t *testing.T) {
	a := task("a", nil, step("s"))
	a.Spec.Results = []*planpb.ResultSpec{{Name: "r"}}
	m0 := matrixTask("m", 0, "x0", []string{"a"}, step("s"))
	m1 := matrixTask("m", 1, "x1", []string{"a"}, step("s"))
	use := task("use", []string{"m-0", "m-1"}, &planpb.Step{Name: "s", Command: []string{"echo", "$(tasks.m.outputs.image)"}})
	f := newFake(map[string]outcome{
		"a/s": {results: map[string]string{"r": "v"}},
		// The later TaskRun ends first; the merge still goes by name.
		"m-0/s": {sleep: 50 * time.Millisecond, stepArtifacts: `{"outputs":[{"name":"image","values":[{"uri":"oci://0"}]}]}`},
		"m-1/s": {stepArtifacts: `{"outputs":[{"name":"image","values":[{"uri":"oci://1"},{"uri":"oci://0"}]}]}`},
	})
	st := runPlan(t, context.Background(), plan([]*planpb.Task{a, m0, m1, use}), f)
	if st.GetCondition().GetStatus() != "True" {
		t.Fatalf("condition %v", st.GetCondition())
	}
	want := []string{"echo", `[{"uri":"oci://0"},{"uri":"oci://1"}]`}
	if got := f.commands["use/s"]; !slices.Equal(got, want) {
		t.Errorf("use ran %q, want %q", got, want)
	}
}
