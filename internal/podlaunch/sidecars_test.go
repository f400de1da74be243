package podlaunch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A task's sidecars run in their own containers from before its steps
// until after them: the step reads what the sidecar serves through a
// shared workspace, the sidecar is then stopped (SIGTERM, or SIGKILL after
// the grace period when it ignores SIGTERM), and every container exits 0
// at the run's end.
func TestSidecarsInPod(t *testing.T) {
	p := newPod(t)
	shared := filepath.Join(p.dir, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	serve := &planpb.Task{
		Name: "serve", TaskRunName: "pr-serve",
		Params:     []*planpb.Param{{Name: "word", Value: str("hello")}},
		Workspaces: []*planpb.WorkspaceBinding{{Name: "ws", Volume: "shared"}},
		Spec: &planpb.TaskSpec{
			Params:     []*planpb.ParamSpec{{Name: "word"}},
			Results:    []*planpb.ResultSpec{{Name: "got"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "ws", MountPath: shared}},
			Sidecars: []*planpb.Step{
				{Name: "server", Script: "echo serving; echo $(params.word) > $(workspaces.ws.path)/served; exec sleep 60"},
				{Name: "stubborn", Script: "trap '' TERM; touch $(workspaces.ws.path)/stubborn; while :; do sleep 0.05; done"},
				{Name: "missing", Command: []string{"/no/such/command"}},
			},
			Steps: []*planpb.Step{{
				Name: "read",
				Script: `while [ ! -e $(workspaces.ws.path)/served ] || [ ! -e $(workspaces.ws.path)/stubborn ]; do sleep 0.01; done
printf %s "$(cat $(workspaces.ws.path)/served)" > $(results.got.path)`,
			}},
		},
	}
	plan := &planpb.Plan{
		Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr",
		Tasks:   []*planpb.Task{serve},
		Results: []*planpb.PipelineResult{{Name: "got", Value: str("$(tasks.serve.results.got)")}},
		Volumes: []*planpb.Volume{{Name: "shared", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}}},
	}
	p.start(plan)
	st := p.run(context.Background(), plan)
	if c := st.GetCondition(); c.GetStatus() != "True" {
		t.Fatalf("run condition = %v\n%v", c, st)
	}
	if got := result(st, "got"); got != "hello" {
		t.Errorf("result got = %q, want hello", got)
	}
	var states []string
	for _, sc := range taskStatus(st, "serve").GetSidecars() {
		states = append(states, fmt.Sprintf("%s %s %d %v", sc.GetContainer(), sc.GetReason(), sc.GetExitCode(), sc.GetTerminated()))
	}
	// SIGTERM ends sleep (128+15); the stubborn one is killed (128+9).
	want := []string{"sidecar-server Completed 143 true", "sidecar-stubborn Completed 137 true", "sidecar-missing Error 1 true"}
	if strings.Join(states, "\n") != strings.Join(want, "\n") {
		t.Errorf("sidecars:\n%s\nwant:\n%s", strings.Join(states, "\n"), strings.Join(want, "\n"))
	}
	for name, err := range p.exits(5 * time.Second) {
		if err != nil {
			t.Errorf("container %s: %v", name, err)
		}
	}
	if out := p.container(podlayout.SidecarContainer("serve", "server")).out.String(); !strings.Contains(out, "serving") {
		t.Errorf("the sidecar's output is not its container's: %q", out)
	}
}

// A sidecar whose container never connects holds the steps back, as a
// sidecar that never gets ready does in Tekton, until the task times out.
func TestSidecarNeverConnects(t *testing.T) {
	p := newPod(t)
	tk := &planpb.Task{
		Name: "wait", TaskRunName: "pr-wait", Timeout: durationpb.New(200 * time.Millisecond),
		Spec: &planpb.TaskSpec{
			Sidecars: []*planpb.Step{{Name: "absent", Command: []string{"true"}}},
			Steps:    []*planpb.Step{{Name: "s", Command: []string{"true"}}},
		},
	}
	plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_TASK_RUN, Name: "pr", Tasks: []*planpb.Task{tk}}
	p.startContainer(podlayout.StepContainer("wait", "s"))
	st := p.run(context.Background(), plan)
	ts := taskStatus(st, "wait")
	if ts.GetCondition().GetReason() != reasons.TaskTimeout {
		t.Errorf("task condition %v", ts.GetCondition())
	}
	if s := stepState(st, "wait", "s"); s == nil || !s.GetSkipped() && s.GetReason() == "Completed" {
		t.Errorf("the step ran without its sidecar: %v", s)
	}
	if sc := ts.GetSidecars(); len(sc) != 1 || sc[0].GetReason() != supervisor.SidecarError || !sc[0].GetTerminated() {
		t.Errorf("sidecars %v", sc)
	}
}
