package process

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/syncbuf"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

func str(s string) *planpb.Value { return &planpb.Value{StringValue: s} }

// A real Supervisor runs a two-task pipeline with this launcher: a result
// passes from one task to the next, both share a workspace (through a
// subPath), and a step reads the exit code of an onError: continue step.
func TestSupervisorRunsPlan(t *testing.T) {
	produce := &planpb.Task{
		Name: "produce", TaskRunName: "run-produce",
		Workspaces: []*planpb.WorkspaceBinding{{Name: "src", Volume: "shared", SubPath: "data"}},
		Spec: &planpb.TaskSpec{
			Results:    []*planpb.ResultSpec{{Name: "msg"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "src"}},
			Steps: []*planpb.Step{{
				Name:   "write",
				Script: `printf 'hello' > $(results.msg.path); echo file-content > $(workspaces.src.path)/f; echo produced`,
			}},
		},
	}
	consume := &planpb.Task{
		Name: "consume", TaskRunName: "run-consume", RunAfter: []string{"produce"},
		Params:     []*planpb.Param{{Name: "msg", Value: str("$(tasks.produce.results.msg)")}},
		Workspaces: []*planpb.WorkspaceBinding{{Name: "in", Volume: "shared", SubPath: "data"}},
		Spec: &planpb.TaskSpec{
			Params:     []*planpb.ParamSpec{{Name: "msg"}},
			Results:    []*planpb.ResultSpec{{Name: "out"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "in"}},
			Steps: []*planpb.Step{
				{Name: "fail", Command: []string{"sh", "-c", "exit 3"}, OnError: planpb.OnError_CONTINUE},
				{
					Name:   "combine",
					Script: `printf '%s %s %s' "$(params.msg)" "$(cat $(workspaces.in.path)/f)" "$(cat $(steps.step-fail.exitCode.path))" > $(results.out.path)`,
				},
			},
		},
	}
	plan := &planpb.Plan{
		Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr",
		Tasks:   []*planpb.Task{produce, consume},
		Results: []*planpb.PipelineResult{{Name: "final", Value: str("$(tasks.consume.results.out)")}},
		Volumes: []*planpb.Volume{{Name: "shared", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}}},
	}
	log := &syncbuf.Buffer{}
	l := New(Options{Dir: t.TempDir(), Log: log, Grace: testGrace})
	sup := &supervisor.Supervisor{Plan: plan, Launcher: l}
	st, err := sup.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetCondition().GetStatus(); got != "True" {
		t.Fatalf("run condition = %v", st.GetCondition())
	}
	var final string
	for _, r := range st.GetResults() {
		if r.GetName() == "final" {
			final = r.GetValue().GetStringValue()
		}
	}
	if want := "hello file-content 3"; final != want {
		t.Errorf("pipeline result final = %q, want %q (status %v)", final, want, st)
	}
	for _, ts := range st.GetTasks() {
		for _, s := range ts.GetSteps() {
			if s.GetStartedAt() == nil || s.GetFinishedAt() == nil || s.GetFinishedAt().AsTime().Before(s.GetStartedAt().AsTime()) {
				t.Errorf("%s/%s times: %v .. %v", ts.GetName(), s.GetName(), s.GetStartedAt(), s.GetFinishedAt())
			}
		}
	}
	if fail := stepState(st, "consume", "fail"); fail.GetExitCode() != 3 || fail.GetReason() != "Continued" {
		t.Errorf("onError: continue step = %v", fail)
	}
	if !strings.Contains(log.String(), "[produce/write] produced\n") {
		t.Errorf("step output missing from log: %q", log.String())
	}
	if _, err := os.Stat(l.RunDir()); !os.IsNotExist(err) {
		t.Errorf("run dir not removed after the run: %v", err)
	}
}

func stepState(st *planpb.RunStatus, task, step string) *planpb.StepState {
	for _, ts := range st.GetTasks() {
		for _, s := range ts.GetSteps() {
			if ts.GetName() == task && s.GetName() == step {
				return s
			}
		}
	}
	return nil
}

// Cancelling the run stops a step that ignores SIGTERM: the run ends
// cancelled once the grace period has passed, without hanging.
func TestSupervisorCancelStopsSteps(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	task := &planpb.Task{
		Name: "slow", TaskRunName: "run-slow",
		Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{
			Name:   "wait",
			Script: "trap '' TERM; touch " + ready + "; sleep 60",
		}}},
	}
	plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr", Tasks: []*planpb.Task{task}}
	l := New(Options{Dir: t.TempDir(), Grace: testGrace})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	begin := time.Now()
	st, err := (&supervisor.Supervisor{Plan: plan, Launcher: l}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("run took %v to stop", took)
	}
	if c := st.GetCondition(); c.GetStatus() != "False" || c.GetReason() != "Cancelled" {
		t.Errorf("run condition = %v, want False/Cancelled", c)
	}
	if s := stepState(st, "slow", "wait"); s.GetExitCode() != 137 || s.GetReason() != "Cancelled" {
		t.Errorf("step = %v, want exit 137 (SIGKILL after grace), reason Cancelled", s)
	}
}
