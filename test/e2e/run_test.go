package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

// TestResultsParamsWhen passes string, array and object results into params,
// when expressions and pipeline results, and straight into an embedded
// taskSpec's step (Tekton's PropagateResults).
func TestResultsParamsWhen(t *testing.T) {
	r := run(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: results}
spec:
  params:
  - {name: greeting, value: hello}
  pipelineSpec:
    params:
    - {name: greeting}
    - {name: colors, type: array, default: [red, green]}
    results:
    - {name: joined, value: "$(tasks.use.results.out)"}
    - {name: list, type: array, value: "$(tasks.produce.results.list[*])"}
    - {name: url, value: "$(tasks.produce.results.obj.url)"}
    tasks:
    - name: produce
      taskSpec:
        results:
        - {name: word}
        - {name: list, type: array}
        - name: obj
          type: object
          properties: {url: {}, rev: {}}
        steps:
        - image: busybox
          script: |
            printf '%s' "$(params.greeting)-word" > $(results.word.path)
            printf '["a","b","c"]' > $(results.list.path)
            printf '{"url":"https://x","rev":"r1"}' > $(results.obj.path)
    - name: use
      params:
      - {name: w, value: "$(tasks.produce.results.word)"}
      - {name: items, value: ["$(tasks.produce.results.list[*])", "$(params.colors[*])"]}
      - {name: second, value: "$(tasks.produce.results.list[1])"}
      - {name: rev, value: "$(tasks.produce.results.obj.rev)"}
      when:
      - {input: "$(tasks.produce.results.obj.url)", operator: in, values: ["https://x"]}
      taskSpec:
        params:
        - {name: w}
        - {name: items, type: array}
        - {name: second}
        - {name: rev}
        results: [{name: out}]
        steps:
        - image: busybox
          command: [sh, -c]
          args: ['printf "%s " "$@" > $(results.out.path)', sh, "$(params.w)", "$(params.items[*])", "$(params.second)", "$(params.rev)"]
    - name: direct
      taskSpec:
        results: [{name: out}]
        steps:
        - image: busybox
          command: [sh, -c]
          args: ['printf "%s " "$@" > $(results.out.path)', sh, "$(tasks.produce.results.list[*])", "$(tasks.produce.results.obj.url)", "$(tasks.produce.results.word)"]
    - name: guarded
      runAfter: [produce]
      when:
      - {input: "$(params.greeting)", operator: notin, values: [hello]}
      taskSpec:
        steps: [{image: busybox, script: exit 1}]
`)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if c := r.prCondition(t); c.Reason != "Completed" || c.Message != "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 1" {
		t.Errorf("condition = %s: %s", c.Reason, c.Message)
	}
	if got := r.taskResult(t, "use", "out").StringVal; got != "hello-word a b c red green b r1 " {
		t.Errorf("use.out = %q", got)
	}
	if got := r.taskResult(t, "direct", "out").StringVal; got != "a b c https://x hello-word " {
		t.Errorf("direct.out = %q", got)
	}
	if got := r.pipelineResult(t, "list").ArrayVal; !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("pipeline result list = %v", got)
	}
	if got := r.pipelineResult(t, "url").StringVal; got != "https://x" {
		t.Errorf("pipeline result url = %q", got)
	}
	if got := r.skipped()["guarded"]; got != string(v1.WhenExpressionsSkip) {
		t.Errorf("guarded skipped with %q", got)
	}
	if _, ok := r.taskRuns["guarded"]; ok {
		t.Error("a skipped task has a TaskRun")
	}
	if obj := r.taskResult(t, "produce", "obj"); obj.Type != v1.ParamTypeObject || obj.ObjectVal["rev"] != "r1" {
		t.Errorf("produce.obj = %+v", obj)
	}
}

// TestFailureRunsFinally: a failed task stops new tasks, lets running ones
// finish, and finally sees the statuses.
func TestFailureRunsFinally(t *testing.T) {
	r := run(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: failing}
spec:
  pipelineSpec:
    tasks:
    - name: fails
      taskSpec:
        steps:
        - {name: boom, image: busybox, script: "echo going down; exit 3"}
        - {name: after, image: busybox, script: "echo never"}
    - name: slow
      taskSpec:
        steps: [{image: busybox, script: "sleep 0.5"}]
    - name: next
      runAfter: [fails]
      taskSpec:
        steps: [{image: busybox, script: "echo never"}]
    finally:
    - name: report
      params:
      - {name: fails, value: "$(tasks.fails.status)"}
      - {name: slow, value: "$(tasks.slow.status)"}
      - {name: all, value: "$(tasks.status)"}
      - {name: reason, value: "$(tasks.fails.reason)"}
      taskSpec:
        params: [{name: fails}, {name: slow}, {name: all}, {name: reason}]
        results: [{name: seen}]
        steps:
        - image: busybox
          script: printf '%s' "$(params.fails) $(params.slow) $(params.all) $(params.reason)" > $(results.seen.path)
`)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if c := r.prCondition(t); c.Reason != "Failed" || c.Message != "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 1" {
		t.Errorf("condition = %s: %s", c.Reason, c.Message)
	}
	// Tekton's reason for a task whose step exited non-zero.
	if got := r.taskReason(t, "fails"); got != "StepFailed" {
		t.Errorf("fails reason %q, want StepFailed", got)
	}
	if got := r.taskReason(t, "slow"); got != "Succeeded" {
		t.Errorf("slow reason %q (a running task must finish)", got)
	}
	if got := r.skipped()["next"]; got != string(v1.StoppingSkip) {
		t.Errorf("next skipped with %q", got)
	}
	if got := r.taskResult(t, "report", "seen").StringVal; got != "Failed Succeeded Failed StepFailed" {
		t.Errorf("finally saw %q", got)
	}
	steps := r.taskRuns["fails"].Status.Steps
	if len(steps) != 2 || steps[0].Terminated == nil || steps[0].Terminated.ExitCode != 3 {
		t.Fatalf("steps = %+v", steps)
	}
	if msg := r.taskRuns["fails"].Status.GetCondition("Succeeded").Message; msg != `"step-boom" exited with code 3` {
		t.Logf("fails message = %q", msg)
	}
	if !strings.Contains(r.stderr, "[fails/boom] going down") {
		t.Errorf("step output not prefixed on stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "StepFailed fails (") {
		t.Errorf("the progress lacks the task's end with its reason:\n%s", r.stderr)
	}
}

// TestFailureTextSummary: -o text names a failed step's task with its
// reason and message, and the run still exits 1.
func TestFailureTextSummary(t *testing.T) {
	cmd := exec.Command(binary, "run", "-f", "-", "-o", "text", "-q")
	cmd.Stdin = strings.NewReader(`
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: text}
spec:
  pipelineSpec:
    tasks:
    - name: fails
      taskSpec:
        steps: [{name: boom, image: busybox, script: "exit 3"}]
`)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("run: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		"PipelineRun text: Failed (Succeeded=False)",
		"fails  StepFailed",
		`fails: "step-boom" exited with code 3: Error`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestRetries: a task that fails twice then succeeds has two retriesStatus
// entries and sees $(context.task.retry-count).
func TestRetries(t *testing.T) {
	dir := t.TempDir()
	r := run(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: retries}
spec:
  workspaces: [{name: state, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: state}]
    tasks:
    - name: flaky
      retries: 3
      workspaces: [{name: state}]
      # context.pipelineTask.retries is a PipelineTask variable: it reaches
      # the steps through a param, as in Tekton's docs/variables.md.
      params: [{name: retries, value: "$(context.pipelineTask.retries)"}]
      taskSpec:
        params: [{name: retries}]
        workspaces: [{name: state}]
        results: [{name: tries}, {name: retries}]
        steps:
        - image: busybox
          script: |
            echo x >> $(workspaces.state.path)/count
            printf '%s' "$(context.task.retry-count)" > $(results.tries.path)
            printf '%s' "$(params.retries)" > $(results.retries.path)
            [ "$(context.task.retry-count)" -ge 2 ]
`, "--workspace", "state="+dir)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	tr := r.taskRuns["flaky"]
	if tr == nil || len(tr.Status.RetriesStatus) != 2 {
		t.Fatalf("retriesStatus = %+v", tr)
	}
	if got := r.taskResult(t, "flaky", "tries").StringVal; got != "2" {
		t.Errorf("retry-count on the last attempt = %q", got)
	}
	if got := r.taskResult(t, "flaky", "retries").StringVal; got != "3" {
		t.Errorf("context.pipelineTask.retries = %q", got)
	}
	data, err := os.ReadFile(filepath.Join(dir, "count"))
	if err != nil || strings.Count(string(data), "x") != 3 {
		t.Errorf("host workspace count = %q, %v", data, err)
	}
}

// TestTimeouts: a task timeout fails the task with TaskRunTimeout; a
// pipeline timeout ends the run with PipelineRunTimeout.
func TestTimeouts(t *testing.T) {
	t.Run("task", func(t *testing.T) {
		r := run(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: task-timeout}
spec:
  pipelineSpec:
    tasks:
    - name: slow
      timeout: 300ms
      taskSpec:
        steps: [{image: busybox, script: "sleep 30"}]
`)
		if r.code != 1 {
			t.Fatalf("exit %d", r.code)
		}
		if got := r.taskReason(t, "slow"); got != "TaskRunTimeout" {
			t.Errorf("slow reason %q", got)
		}
	})
	t.Run("pipeline", func(t *testing.T) {
		r := run(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pipeline-timeout}
spec:
  timeouts: {pipeline: 500ms}
  pipelineSpec:
    tasks:
    - name: slow
      taskSpec:
        steps: [{image: busybox, script: "sleep 30"}]
    - name: later
      runAfter: [slow]
      taskSpec:
        steps: [{image: busybox, script: "true"}]
`)
		if r.code != 1 {
			t.Fatalf("exit %d", r.code)
		}
		if c := r.prCondition(t); c.Reason != "PipelineRunTimeout" {
			t.Errorf("condition = %s: %s", c.Reason, c.Message)
		}
		if got := r.taskReason(t, "slow"); got != "TaskRunCancelled" {
			t.Errorf("slow reason %q", got)
		}
	})
	t.Run("step", func(t *testing.T) {
		r := run(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: step-timeout}
spec:
  taskSpec:
    steps:
    - {name: slow, image: busybox, timeout: 200ms, script: "sleep 30"}
`)
		if r.code != 1 {
			t.Fatalf("exit %d", r.code)
		}
		if r.tr == nil || len(r.tr.Status.Steps) != 1 {
			t.Fatalf("taskrun = %+v", r.tr)
		}
		if got := r.tr.Status.Steps[0].TerminationReason; got != "TimeoutExceeded" {
			t.Errorf("step terminationReason %q", got)
		}
		// Tekton's entrypoint exits non-zero on a step timeout: StepFailed.
		if c := r.tr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "StepFailed" || !strings.Contains(c.Message, "exceeded the specified timeout limit") {
			t.Errorf("TaskRun condition %+v, want StepFailed", c)
		}
	})
}

// TestOnErrorContinue: a failing step with onError: continue lets the next
// steps run and records its exit code.
func TestOnErrorContinue(t *testing.T) {
	r := run(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: onerror}
spec:
  taskSpec:
    results: [{name: code}]
    steps:
    - {name: fails, image: busybox, onError: continue, script: "exit 7"}
    - name: reads
      image: busybox
      script: cp $(steps.step-fails.exitCode.path) $(results.code.path)
`)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if r.tr == nil {
		t.Fatal("no TaskRun")
	}
	var code string
	for _, res := range r.tr.Status.Results {
		if res.Name == "code" {
			code = res.Value.StringVal
		}
	}
	if code != "7" {
		t.Errorf("exit code file = %q", code)
	}
	if s := r.tr.Status.Steps[0]; s.Terminated == nil || s.Terminated.ExitCode != 7 || s.TerminationReason != "Continued" {
		t.Errorf("step 0 = %+v", s)
	}
}

// TestSharedEmptyDir: parallel tasks see the same emptyDir workspace, with
// subPath and a ConfigMap workspace from the input documents.
func TestSharedEmptyDir(t *testing.T) {
	r := run(t, `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: write}
spec:
  params: [{name: name}]
  workspaces: [{name: out}]
  steps:
  - image: busybox
    script: printf '%s' "$(params.name)" > $(workspaces.out.path)/$(params.name)
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: shared}
spec:
  workspaces:
  - {name: data, emptyDir: {}}
  - {name: config, configMap: {name: settings}}
  pipelineSpec:
    workspaces: [{name: data}, {name: config}]
    tasks:
    - {name: w1, taskRef: {name: write}, params: [{name: name, value: one}], workspaces: [{name: out, workspace: data, subPath: sub}]}
    - {name: w2, taskRef: {name: write}, params: [{name: name, value: two}], workspaces: [{name: out, workspace: data, subPath: sub}]}
    - name: read
      runAfter: [w1, w2]
      workspaces: [{name: in, workspace: data}, {name: cfg, workspace: config}]
      taskSpec:
        workspaces: [{name: in}, {name: cfg}, {name: extra, optional: true}]
        results: [{name: seen}]
        steps:
        - image: busybox
          script: |
            printf '%s %s %s %s' "$(cat $(workspaces.in.path)/sub/one)" "$(cat $(workspaces.in.path)/sub/two)" \
              "$(cat $(workspaces.cfg.path)/mode)" "$(workspaces.extra.bound)" > $(results.seen.path)
            printf ' %s claim=%s' "$(workspaces.in.volume)" "$(workspaces.in.claim)" >> $(results.seen.path)
`)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if got, want := r.taskResult(t, "read", "seen").StringVal, "one two fast false "+podlayout.WorkspaceVolume("data", string(r.pr.UID))+" claim="; got != want {
		t.Errorf("read saw %q", got)
	}
	if len(r.pr.Status.ChildReferences) != 3 {
		t.Errorf("childReferences = %+v", r.pr.Status.ChildReferences)
	}
}
