// Package e2e runs PipelineRuns and TaskRuns through the built pod-runner
// binary and checks the Tekton status it prints.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/test/testbin"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"
)

// binary is the pod-runner built for this test run.
var binary string

func TestMain(m *testing.M) {
	var err error
	if binary, err = testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// result is one pod-runner run.
type result struct {
	code           int
	stdout, stderr string
	pr             *v1.PipelineRun
	tr             *v1.TaskRun            // the TaskRun of a TaskRun input
	taskRuns       map[string]*v1.TaskRun // by pipeline task name
}

// run runs pod-runner with the YAML on stdin and -o json, plus args.
func run(t *testing.T, yaml string, args ...string) *result {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"run", "-f", "-", "-o", "json"}, args...)...)
	cmd.Stdin = strings.NewReader(yaml)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := &result{stdout: stdout.String(), stderr: stderr.String(), taskRuns: map[string]*v1.TaskRun{}}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run pod-runner: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exit %d\nstderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
		}
	})
	if r.code != 2 {
		r.decode(t)
	}
	return r
}

// decode reads the v1 List printed on stdout.
func (r *result) decode(t *testing.T) {
	t.Helper()
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("stdout is not JSON: %v", err)
	}
	if list.APIVersion != "v1" || list.Kind != "List" {
		t.Fatalf("stdout is %s/%s, want v1/List", list.APIVersion, list.Kind)
	}
	for _, raw := range list.Items {
		var meta struct{ APIVersion, Kind string }
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		if meta.APIVersion != "tekton.dev/v1" {
			t.Fatalf("item apiVersion %q", meta.APIVersion)
		}
		switch meta.Kind {
		case "PipelineRun":
			r.pr = &v1.PipelineRun{}
			mustUnmarshal(t, raw, r.pr)
		case "TaskRun":
			tr := &v1.TaskRun{}
			mustUnmarshal(t, raw, tr)
			if name := tr.Labels["tekton.dev/pipelineTask"]; name != "" {
				r.taskRuns[name] = tr
			} else {
				r.tr = tr
			}
		default:
			t.Fatalf("unexpected item kind %q", meta.Kind)
		}
	}
}

func mustUnmarshal(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// prCondition is the PipelineRun's Succeeded condition.
func (r *result) prCondition(t *testing.T) *apis.Condition {
	t.Helper()
	if r.pr == nil {
		t.Fatal("no PipelineRun in the output")
	}
	c := r.pr.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil {
		t.Fatal("PipelineRun has no Succeeded condition")
	}
	return c
}

// taskReason is the reason of a pipeline task's TaskRun.
func (r *result) taskReason(t *testing.T, name string) string {
	t.Helper()
	tr := r.taskRuns[name]
	if tr == nil {
		t.Fatalf("no TaskRun for pipeline task %q (have %v)", name, keys(r.taskRuns))
	}
	c := tr.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil {
		t.Fatalf("TaskRun %q has no condition", tr.Name)
	}
	return c.Reason
}

// skipped maps skipped task names to their reasons.
func (r *result) skipped() map[string]string {
	m := map[string]string{}
	if r.pr != nil {
		for _, s := range r.pr.Status.SkippedTasks {
			m[s.Name] = string(s.Reason)
		}
	}
	return m
}

// taskResult is a result of a pipeline task's TaskRun.
func (r *result) taskResult(t *testing.T, task, name string) v1.ResultValue {
	t.Helper()
	tr := r.taskRuns[task]
	if tr == nil {
		t.Fatalf("no TaskRun for %q", task)
	}
	for _, res := range tr.Status.Results {
		if res.Name == name {
			return res.Value
		}
	}
	t.Fatalf("TaskRun %q has no result %q (has %v)", tr.Name, name, tr.Status.Results)
	return v1.ResultValue{}
}

// pipelineResult is a result of the PipelineRun.
func (r *result) pipelineResult(t *testing.T, name string) v1.ResultValue {
	t.Helper()
	for _, res := range r.pr.Status.Results {
		if res.Name == name {
			return res.Value
		}
	}
	t.Fatalf("PipelineRun has no result %q (has %v)", name, r.pr.Status.Results)
	return v1.ResultValue{}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
