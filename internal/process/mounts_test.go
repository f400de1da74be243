package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestMain lets the test binary serve as Options.Self, and as the helper
// of TestHermeticStepRefused.
func TestMain(m *testing.M) {
	if os.Getenv(deniedHelper) == "1" {
		os.Exit(runDeniedHelper())
	}
	if len(os.Args) > 1 && os.Args[1] == mountns.Command {
		err := mountns.Main(os.Args[2:])
		fmt.Fprintln(os.Stderr, err)
		os.Exit(126)
	}
	os.Exit(m.Run())
}

// TestReadOnlyWorkspace: a workspace the Task declares readOnly cannot be
// written by its steps, while the same volume stays writable elsewhere.
func TestReadOnlyWorkspace(t *testing.T) {
	testenv.Require(t, "root", testenv.Root("read-only workspaces need a private mount namespace, which needs root"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l := newPrepared(t, Options{Self: self}, &planpb.Volume{Name: "data", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}})
	task := &planpb.Task{
		Name: "t",
		Spec: &planpb.TaskSpec{
			Steps:      []*planpb.Step{{Name: "s"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "ro", ReadOnly: true}, {Name: "rw"}},
		},
		Workspaces: []*planpb.WorkspaceBinding{{Name: "ro", Volume: "data"}, {Name: "rw", Volume: "data", SubPath: "sub"}},
	}
	att, err := l.StartAttempt(context.Background(), task, 0)
	if err != nil {
		t.Fatal(err)
	}
	ro, _ := att.Workspace("ro")
	rw, _ := att.Workspace("rw")
	steps := []struct {
		script string
		fails  bool
	}{
		{"echo x > " + rw + "/file", false},          // the read-write binding of the same volume
		{"cat " + ro + "/sub/file", false},           // ... is seen through the read-only one
		{"echo x > " + ro + "/other", true},          // which cannot be written
		{"cd " + ro + " && touch here", true},        // not even from inside it
		{"touch " + filepath.Dir(ro) + "/ok", false}, // and nothing else changed
	}
	if ro == rw || filepath.Dir(ro) != filepath.Dir(rw) {
		t.Errorf("workspaces at %s and %s, want their own mount points side by side", ro, rw)
	}
	for i, s := range steps {
		e := runStep(t, att, &supervisor.Step{Task: "t", Name: fmt.Sprintf("s%d", i), Script: "#!/bin/sh\n" + s.script})
		if e.Err != nil || (e.ExitCode != 0) != s.fails {
			t.Errorf("%q: exit %d, %v; want it to fail: %v", s.script, e.ExitCode, e.Err, s.fails)
		}
	}
	if _, err := os.Stat(filepath.Join(ro, "other")); err == nil {
		t.Error("a step wrote into the read-only workspace")
	}
}

// TestTektonPaths: a task whose steps name Tekton's paths, or that has
// volumes, runs in mount namespaces: its steps see /workspace, their
// results and step directories, /tekton/home and /tekton/scripts, its
// workspaces at their mountPath (an isolated one only in the step naming
// it), and its Task volumes at their volumeMounts (a ConfigMap laid out
// from the documents, read-only; an emptyDir kept across attempts), while
// the run's other directories are hidden.
func TestTektonPaths(t *testing.T) {
	testenv.Require(t, "root", testenv.Root("mount namespaces need root"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mounts := map[string]*TaskMounts{"t": {
		Volumes: []*planpb.Volume{
			{Name: "conf", ReadOnly: true, Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{Name: "settings"}}},
			{Name: "cache", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}},
		},
		Steps: [][]Mount{{{Name: "conf", MountPath: "/etc/settings"}, {Name: "cache", MountPath: "/cache"}}, {{Name: "cache", MountPath: "/var/cache/x"}}},
	}}
	l := newPrepared(t, Options{Self: self, TaskMounts: mounts, Objects: objects{"ConfigMap/settings": {"mode": []byte("fast")}}},
		&planpb.Volume{Name: "src", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}},
		&planpb.Volume{Name: "keys", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}})
	task := &planpb.Task{
		Name: "t",
		Spec: &planpb.TaskSpec{
			Steps:      []*planpb.Step{{Name: "a", Workspaces: []*planpb.StepWorkspace{{Name: "keys", MountPath: "/keys"}}}, {Name: "b"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "src", MountPath: "/src"}, {Name: "keys"}},
			Volumes:    []string{"cache", "conf"},
		},
		Workspaces: []*planpb.WorkspaceBinding{{Name: "src", Volume: "src"}, {Name: "keys", Volume: "keys"}},
	}
	att, err := l.StartAttempt(context.Background(), task, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := att.Workspace("src"); p != "/src" {
		t.Errorf("$(workspaces.src.path) is %q, want its mountPath /src", p)
	}
	if p := att.ResultsDir(); p != "/tekton/results" {
		t.Errorf("$(results.*.path) is under %q, want /tekton/results", p)
	}
	for _, c := range []struct {
		step   string
		script string
		fails  bool
	}{
		{"a", "echo -n v > /tekton/results/r && echo s > /src/f && echo k > /keys/k && echo c > /cache/c && test \"$(pwd)\" = /workspace", false},
		{"a", "test \"$(cat /etc/settings/mode)\" = fast && echo -n 0 > /tekton/steps/step-a/results/x", false},
		{"a", "echo x > /etc/settings/other", true},
		{"b", "cat /src/f && test ! -e /keys && test ! -e /workspace/keys", false},
		{"b", "test \"$(cat /var/cache/x/c)\" = c", false},
		{"b", "echo 1 > /tekton/steps/step-a/exitCode", true},
		{"b", "ls " + l.RunDir() + "/volumes | grep .", true},
	} {
		e := runStep(t, att, &supervisor.Step{Task: "t", Name: c.step, Index: map[string]int{"a": 0, "b": 1}[c.step], Script: "#!/bin/sh\n" + c.script,
			Workspaces: task.Spec.Steps[map[string]int{"a": 0, "b": 1}[c.step]].Workspaces})
		if e.Err != nil || (e.ExitCode != 0) != c.fails {
			t.Errorf("step %s, %q: exit %d, %v; want it to fail: %v", c.step, c.script, e.ExitCode, e.Err, c.fails)
		}
	}
	if v, _, err := att.ReadResult("r"); err != nil || v != "v" {
		t.Errorf("result r: %q, %v", v, err)
	}
	if v, _, err := att.ReadStepResult("a", "x"); err != nil || v != "0" {
		t.Errorf("step result a.x: %q, %v", v, err)
	}
	// A retry sees the emptyDir the first attempt wrote.
	att2, err := l.StartAttempt(context.Background(), task, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e := runStep(t, att2, &supervisor.Step{Task: "t", Name: "b", Index: 1, Script: "#!/bin/sh\ntest \"$(cat /var/cache/x/c)\" = c"}); e.Err != nil || e.ExitCode != 0 {
		t.Errorf("the retry does not see the emptyDir's file: exit %d, %v", e.ExitCode, e.Err)
	}
}
