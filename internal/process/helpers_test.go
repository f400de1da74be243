package process

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// newPrepared returns a prepared launcher whose run dir is under a test temp
// dir; it is closed when the test ends.
func newPrepared(t *testing.T, opts Options, volumes ...*planpb.Volume) *Launcher {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l := New(opts)
	if err := l.Prepare(context.Background(), &planpb.Plan{Name: "run", Volumes: volumes}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// startTask starts attempt 0 of a task with the given steps and bindings.
func startTask(t *testing.T, l *Launcher, name string, steps []string, ws ...*planpb.WorkspaceBinding) supervisor.Attempt {
	t.Helper()
	task := &planpb.Task{Name: name, Spec: &planpb.TaskSpec{}, Workspaces: ws}
	for _, s := range steps {
		task.Spec.Steps = append(task.Spec.Steps, &planpb.Step{Name: s})
	}
	att, err := l.StartAttempt(context.Background(), task, 0)
	if err != nil {
		t.Fatalf("StartAttempt: %v", err)
	}
	t.Cleanup(att.Finish)
	return att
}

// script is a step running an sh script.
func script(task, name, body string) *supervisor.Step {
	return &supervisor.Step{Task: task, Name: name, Script: "#!/bin/sh\n" + body}
}

// runStep runs a step with a timeout that fails the test rather than hang it.
func runStep(t *testing.T, att supervisor.Attempt, s *supervisor.Step) supervisor.StepExit {
	t.Helper()
	done := make(chan supervisor.StepExit, 1)
	go func() { done <- att.RunStep(context.Background(), s) }()
	select {
	case e := <-done:
		return e
	case <-time.After(30 * time.Second):
		t.Fatalf("step %s/%s did not end", s.Task, s.Name)
		return supervisor.StepExit{}
	}
}

// waitReady waits until a running step created a file, failing the test if
// the step ends first.
func waitReady(t *testing.T, path string, done <-chan supervisor.StepExit) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case e := <-done:
			t.Fatalf("step ended before it was ready: exit %d, %v", e.ExitCode, e.Err)
		case <-deadline:
			t.Fatalf("%s did not appear", path)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// realPath resolves symlinks, so that paths compare with `pwd -P`.
func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// logLines are the lines of a step log.
func logLines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
