package e2e

import (
	"strings"
	"testing"
)

// TestStepResultsInEnvAndArgs: a step reads earlier steps' string, array
// and object results through $(steps.S.results.R) in env, command and
// args, substituted when it starts as Tekton's entrypoint does; a result
// that was never written fails that step before it runs.
func TestStepResultsInEnvAndArgs(t *testing.T) {
	r := run(t, `apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: stepres}
spec:
  taskSpec:
    results: [{name: out}]
    steps:
    - name: produce
      image: busybox
      results: [{name: word}, {name: list, type: array}, {name: obj, type: object, properties: {k: {type: string}}}]
      script: |
        printf hello > $(step.results.word.path)
        printf '["a","b"]' > $(step.results.list.path)
        printf '{"k":"v"}' > $(step.results.obj.path)
    - name: consume
      image: busybox
      env: [{name: W, value: "$(steps.produce.results.word)-$(steps.produce.results.obj.k)"}]
      command: [sh, -c]
      args: ['printf "%s|" "$W" "$@" > $(results.out.path)', sh, "$(steps.produce.results.list[*])", "$(steps.produce.results.list[1])"]
`)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if got := r.tr.Status.Results[0].Value.StringVal; got != "hello-v|a|b|b|" {
		t.Errorf("out = %q, want %q", got, "hello-v|a|b|b|")
	}

	r = run(t, `apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: missing}
spec:
  taskSpec:
    steps:
    - {name: produce, image: busybox, results: [{name: word}], script: "true"}
    - {name: consume, image: busybox, env: [{name: W, value: "$(steps.produce.results.word)"}], script: "echo never"}
`)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	steps := r.tr.Status.Steps
	if len(steps) != 2 || steps[1].Terminated == nil || steps[1].Terminated.ExitCode != 1 || strings.Contains(r.stderr, "never") {
		t.Errorf("steps = %+v, want consume failed before it ran", steps)
	}
	if c := r.tr.Status.GetCondition("Succeeded"); c == nil || !strings.Contains(c.Message, `no result "word"`) {
		t.Errorf("condition = %+v, want the missing result named", c)
	}
}
