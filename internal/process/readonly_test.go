package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

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
	if len(os.Args) > 1 && os.Args[1] == ReadOnlyCommand {
		err := ReadOnlyExec(os.Args[2:])
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
