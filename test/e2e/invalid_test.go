package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/syncbuf"
)

// TestInvalidInput: bad input exits 2 with one line naming the document and
// field, and runs nothing.
func TestInvalidInput(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	// Each case would create the marker file if any step ran.
	touch := "touch " + marker
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the message
	}{{
		name: "unparseable YAML",
		yaml: "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: x\n",
		want: []string{"#1"},
	}, {
		name: "unknown kind",
		yaml: "apiVersion: tekton.dev/v1\nkind: Pipelin\nmetadata: {name: x}\n",
		want: []string{"Pipelin"},
	}, {
		name: "unknown field",
		yaml: `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: x}
spec:
  taskSpec:
    steps: [{image: busybox, scirpt: "` + touch + `"}]
`,
		want: []string{"TaskRun/x", "scirpt"},
	}, {
		name: "missing Task",
		yaml: `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: x}
spec:
  pipelineSpec:
    tasks:
    - {name: a, taskSpec: {steps: [{image: busybox, script: "` + touch + `"}]}}
    - {name: b, taskRef: {name: nowhere}}
`,
		want: []string{"PipelineRun/x", "nowhere"},
	}, {
		name: "DAG cycle",
		yaml: `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: x}
spec:
  pipelineSpec:
    tasks:
    - {name: a, runAfter: [b], taskSpec: {steps: [{image: busybox, script: "` + touch + `"}]}}
    - {name: b, runAfter: [a], taskSpec: {steps: [{image: busybox, script: "` + touch + `"}]}}
`,
		want: []string{"PipelineRun/x", "cycle"},
	}, {
		name: "result reference to a missing task",
		yaml: `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: x}
spec:
  pipelineSpec:
    tasks:
    - name: a
      params: [{name: p, value: "$(tasks.ghost.results.r)"}]
      taskSpec:
        params: [{name: p}]
        steps: [{image: busybox, script: "` + touch + `"}]
`,
		want: []string{"PipelineRun/x", "ghost"},
	}, {
		name: "missing required param",
		yaml: `
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  params: [{name: needed}]
  tasks:
  - {name: a, taskSpec: {steps: [{image: busybox, script: "` + touch + ` $(params.needed)"}]}}
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: x}
spec:
  pipelineRef: {name: p}
`,
		want: []string{"needed"},
	}, {
		name: "no run",
		yaml: `
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: t}
spec:
  steps: [{image: busybox, script: "` + touch + `"}]
`,
		want: []string{"PipelineRun", "TaskRun"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.yaml)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2", r.code)
			}
			msg := strings.TrimSpace(r.stderr)
			if strings.Count(msg, "\n") != 0 {
				t.Errorf("want one line, got:\n%s", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not mention %q", msg, w)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a step ran")
			}
		})
	}
}

// TestInterrupt: Ctrl-C stops running steps and the run ends Cancelled.
func TestInterrupt(t *testing.T) {
	cmd := exec.Command(binary, "run", "-f", "-", "-o", "json")
	cmd.Stdin = strings.NewReader(`
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: interrupted}
spec:
  pipelineSpec:
    tasks:
    - name: long
      taskSpec:
        steps: [{name: wait, image: busybox, script: "echo waiting; sleep 60"}]
    finally:
    - name: fin
      taskSpec:
        steps: [{image: busybox, script: "true"}]
`)
	var stdout bytes.Buffer
	var stderr syncbuf.Buffer // read while the command writes it
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the step has started.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "waiting") {
		if time.Now().After(deadline) {
			t.Fatalf("step never started; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit = %v, want code 1; stderr:\n%s", err, stderr.String())
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %s to stop", d)
	}
	res := &result{stdout: stdout.String(), taskRuns: map[string]*v1.TaskRun{}}
	res.decode(t)
	if c := res.pr.Status.GetCondition(apis.ConditionSucceeded); c == nil || c.Reason != "Cancelled" {
		t.Errorf("condition = %+v", c)
	}
	if got := res.taskReason(t, "long"); got != "TaskRunCancelled" {
		t.Errorf("long reason %q", got)
	}
	if _, ok := res.taskRuns["fin"]; ok {
		t.Error("finally ran after a cancel")
	}
}
