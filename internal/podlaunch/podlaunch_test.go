package podlaunch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/stepper"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// A real Supervisor runs a two-task plan through step containers: a result
// passes from one task to the next through a shared workspace, the second
// task fails once and is retried in the same container, and every container
// exits 0 when the run ends.
func TestSupervisorRunsPlanInPod(t *testing.T) {
	p := newPod(t)
	shared := filepath.Join(p.dir, "shared") // the emptyDir's mount
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	produce := &planpb.Task{
		Name: "produce", TaskRunName: "pr-produce",
		Workspaces: []*planpb.WorkspaceBinding{{Name: "src", Volume: "shared"}},
		Spec: &planpb.TaskSpec{
			Results:    []*planpb.ResultSpec{{Name: "msg"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "src", MountPath: shared}},
			Steps: []*planpb.Step{{
				Name:   "write",
				Script: `printf hello > $(results.msg.path); echo file > $(workspaces.src.path)/f; echo produced`,
			}},
		},
	}
	consume := &planpb.Task{
		Name: "consume", TaskRunName: "pr-consume", RunAfter: []string{"produce"}, Retries: 1,
		Params:     []*planpb.Param{{Name: "msg", Value: str("$(tasks.produce.results.msg)")}},
		Workspaces: []*planpb.WorkspaceBinding{{Name: "in", Volume: "shared"}},
		Spec: &planpb.TaskSpec{
			Params:     []*planpb.ParamSpec{{Name: "msg"}},
			Results:    []*planpb.ResultSpec{{Name: "out"}},
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "in", MountPath: shared}},
			Steps: []*planpb.Step{
				{Name: "code", Command: []string{"sh", "-c", "exit 3"}, OnError: planpb.OnError_CONTINUE},
				{
					Name: "combine",
					// The first attempt leaves a partial result and fails;
					// the retry must not see it.
					Script: `if [ ! -e $(workspaces.in.path)/tried ]; then touch $(workspaces.in.path)/tried; echo partial > $(results.out.path); exit 1; fi
[ ! -e $(results.out.path) ] || { echo stale result; exit 9; }
printf '%s %s %s' "$(params.msg)" "$(cat $(workspaces.in.path)/f)" "$(cat $(steps.step-code.exitCode.path))" > $(results.out.path)`,
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
	p.start(plan)
	st := p.run(context.Background(), plan)
	if c := st.GetCondition(); c.GetStatus() != "True" {
		t.Fatalf("run condition = %v\n%v", c, st)
	}
	if got, want := result(st, "final"), "hello file 3"; got != want {
		t.Errorf("final = %q, want %q", got, want)
	}
	if n := len(taskStatus(st, "consume").GetRetries()); n != 1 {
		t.Errorf("consume has %d retries, want 1", n)
	}
	if s := stepState(st, "consume", "code"); s.GetExitCode() != 3 || s.GetReason() != "Continued" {
		t.Errorf("onError: continue step = %v", s)
	}
	if out := p.container("produce-write").out.String(); out != "produced\n" {
		t.Errorf("produce-write container output = %q", out)
	}
	for name, err := range p.exits(2 * time.Second) {
		if err != nil {
			t.Errorf("container %s: %v", name, err)
		}
	}
}

// killPlan is one task whose step records its pid and then sleeps; with a
// retry, the second attempt succeeds at once.
func killPlan(dir string, retries int32) *planpb.Plan {
	pid := filepath.Join(dir, "pid")
	return &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr", Tasks: []*planpb.Task{{
		Name: "slow", TaskRunName: "pr-slow", Retries: retries,
		Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{
			Name:   "sleep",
			Script: `if [ -e ` + pid + ` ]; then echo retried; exit 0; fi; echo $$ > ` + pid + `.tmp; mv ` + pid + `.tmp ` + pid + `; sleep 30`,
		}}},
	}}}
}

// A step whose process is killed mid-run fails its task at once with the
// signal as reason; the retry runs in the same container.
func TestStepProcessKilledIsRetriedInSameContainer(t *testing.T) {
	p := newPod(t)
	plan := killPlan(p.dir, 1)
	p.start(plan)
	go func() {
		waitFile(t, filepath.Join(p.dir, "pid"))
		b, _ := os.ReadFile(filepath.Join(p.dir, "pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}()
	st := p.run(context.Background(), plan)
	ts := taskStatus(st, "slow")
	if c := st.GetCondition(); c.GetStatus() != "True" || len(ts.GetRetries()) != 1 {
		t.Fatalf("run %v, %d retries; want success after one retry\n%v", c, len(ts.GetRetries()), st)
	}
	if msg := ts.GetRetries()[0].GetCondition().GetMessage(); !strings.Contains(msg, "exited with code 137: SIGKILL") {
		t.Errorf("first attempt's message = %q", msg)
	}
	if out := p.container("slow-sleep").out.String(); !strings.Contains(out, "retried") {
		t.Errorf("retry did not run in the same container: %q", out)
	}
}

// A step container that dies mid-run fails its task within a second with a
// reason; its retry fails too (the container is gone), without waiting.
func TestStepContainerDiesMidRun(t *testing.T) {
	p := newPod(t)
	plan := killPlan(p.dir, 1)
	p.start(plan)
	killed := make(chan time.Time, 1)
	go func() {
		waitFile(t, filepath.Join(p.dir, "pid"))
		killed <- time.Now()
		p.container("slow-sleep").kill()
	}()
	st := p.run(context.Background(), plan)
	took := time.Since(<-killed)
	if took > time.Second {
		t.Errorf("the run ended %v after the container died, want < 1s", took)
	}
	ts := taskStatus(st, "slow")
	if c := st.GetCondition(); c.GetStatus() != "False" || len(ts.GetRetries()) != 1 {
		t.Fatalf("run %v, %d retries; want failure after one retry", c, len(ts.GetRetries()))
	}
	for _, c := range []*planpb.Condition{ts.GetRetries()[0].GetCondition(), ts.GetCondition()} {
		if !strings.Contains(c.GetMessage(), `container "slow-sleep" ended unexpectedly`) {
			t.Errorf("message = %q", c.GetMessage())
		}
	}
	if err := p.exits(time.Second)["slow-sleep"]; !errors.Is(err, context.Canceled) {
		t.Errorf("killed container ended with %v", err)
	}
}

// The step containers of tasks that never run (skipped after a failure)
// exit 0 as soon as the run ends, and so do containers that connect later
// or start after the supervisor is gone.
func TestUnusedContainersExitAtClose(t *testing.T) {
	p := newPod(t)
	plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr", Tasks: []*planpb.Task{
		{Name: "fails", TaskRunName: "pr-fails", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s", Command: []string{"false"}}}}},
		{Name: "skipped", TaskRunName: "pr-skipped", RunAfter: []string{"fails"}, Spec: &planpb.TaskSpec{Steps: []*planpb.Step{
			{Name: "a", Command: []string{"true"}}, {Command: []string{"true"}}}}},
		{Name: "late", TaskRunName: "pr-late", RunAfter: []string{"fails"}, Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s", Command: []string{"true"}}}}},
	}}
	p.startContainer("fails-s")
	p.startContainer("skipped-a")
	p.startContainer("skipped-unnamed-1")
	// The skipped task's containers wait connected, as in a pod whose
	// images were all pulled before the failure.
	if err := p.l.Prepare(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	p.connected("fails-s", "skipped-a", "skipped-unnamed-1")
	st, err := (&supervisor.Supervisor{Plan: plan, Launcher: preparedLauncher{p.l}}).Run(context.Background())
	if err != nil || st.GetCondition().GetStatus() != "False" {
		t.Fatalf("run %v, %v", st.GetCondition(), err)
	}
	closed := time.Now()
	// "late" starts after Close: it sees the run is done.
	p.startContainer("late-s")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.l.Wait(ctx); err != nil {
		t.Errorf("Wait: %v", err)
	}
	for name, err := range p.exits(time.Second) {
		if err != nil && (name != "late-s" || !errors.Is(err, stepper.ErrSupervisorDone)) {
			t.Errorf("container %s: %v", name, err)
		}
	}
	if d := time.Since(closed); d > time.Second {
		t.Errorf("containers took %v to exit", d)
	}
	if _, err := os.Stat(p.l.opts.Socket); !os.IsNotExist(err) {
		t.Errorf("socket still there after Wait: %v", err)
	}
	// A container that starts after the supervisor is gone exits at once.
	c := p.startContainer("after-the-end")
	select {
	case err := <-c.result:
		c.result <- err
		if !errors.Is(err, stepper.ErrSupervisorDone) {
			t.Errorf("late container: %v", err)
		}
	case <-time.After(time.Second):
		t.Error("a container starting after the end still waits")
	}
}

// A container that connects after Close (it looked for the done mark just
// before Close made it) is told to exit.
func TestConnectAfterClose(t *testing.T) {
	p := newPod(t)
	plan := &planpb.Plan{Version: planpb.Version, Tasks: []*planpb.Task{{Name: "t", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s"}}}}}}
	if err := p.l.Prepare(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	if err := p.l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.l.doneFile()); err != nil {
		t.Fatalf("Close made no done mark: %v", err)
	}
	p.startContainer("t-s")
	if err := p.exits(2 * time.Second)["t-s"]; err != nil {
		t.Errorf("container connecting after Close: %v", err)
	}
	if err := p.l.Wait(context.Background()); err != nil {
		t.Errorf("Wait: %v", err)
	}
}

// Cancelling the run stops the running step through its container.
func TestCancelStopsStep(t *testing.T) {
	p := newPod(t)
	plan := killPlan(p.dir, 0)
	p.start(plan)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		waitFile(t, filepath.Join(p.dir, "pid"))
		cancel()
	}()
	begin := time.Now()
	st := p.run(ctx, plan)
	if c := st.GetCondition(); c.GetStatus() != "False" || c.GetReason() != "Cancelled" {
		t.Errorf("run condition = %v, want Cancelled", c)
	}
	if s := stepState(st, "slow", "sleep"); s.GetExitCode() != 143 {
		t.Errorf("step = %v, want exit 143 (SIGTERM)", s)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

// Attempt paths: what the steps see, and what the supervisor reads.
func TestAttemptPaths(t *testing.T) {
	l := New(Options{Socket: filepath.Join(t.TempDir(), "s.sock"), StateDir: t.TempDir()})
	task := &planpb.Task{Name: "Build_Image", Workspaces: []*planpb.WorkspaceBinding{{Name: "src", Volume: "v"}, {Name: "cache", Volume: "v"}},
		Spec: &planpb.TaskSpec{
			Workspaces: []*planpb.WorkspaceDeclaration{{Name: "src", MountPath: "/src"}, {Name: "cache"}, {Name: "unbound", Optional: true}},
			Steps:      []*planpb.Step{{Name: "a"}, {}}}}
	plan := &planpb.Plan{Version: planpb.Version, Tasks: []*planpb.Task{task}}
	if err := l.Prepare(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close(); _ = l.Wait(context.Background()) }()
	a, err := l.StartAttempt(context.Background(), task, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{a.ResultsDir(), "/tekton/results"},
		{a.StepDir("a"), "/tekton/steps/step-a"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for name, want := range map[string]string{"src": "/src", "cache": "/workspace/cache", "unbound": ""} {
		if got, ok := a.Workspace(name); got != want || ok != (want != "") {
			t.Errorf("Workspace(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
	// Each step's own directory is run/INDEX/status, on a volume of its
	// own; steps/step-NAME and steps/INDEX link to it as the containers
	// see it, as Tekton's step-init links them.
	taskDir := filepath.Join(l.opts.StateDir, podlayout.TaskDir(task.GetName()))
	dirs, _ := filepath.Glob(filepath.Join(taskDir, "run", "*", "status", "results"))
	if len(dirs) != 2 || !strings.HasSuffix(dirs[1], "run/1/status/results") {
		t.Errorf("step result dirs = %v", dirs)
	}
	for i, name := range []string{"step-a", "step-unnamed-1"} {
		// Writable by whatever user the step's container runs as.
		for _, sub := range []string{"", "results", "artifacts"} {
			if fi, err := os.Stat(filepath.Join(taskDir, "run", strconv.Itoa(i), "status", sub)); err != nil || fi.Mode().Perm() != 0o777 {
				t.Errorf("run/%d/status/%s: %v, %v; want mode 0777", i, sub, fi.Mode(), err)
			}
		}
		for _, link := range []string{name, strconv.Itoa(i)} {
			want := fmt.Sprintf("/tekton/run/%d/status", i)
			if got, err := os.Readlink(filepath.Join(taskDir, "steps", link)); got != want || err != nil {
				t.Errorf("steps/%s links to %q (%v), want %q", link, got, err, want)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(taskDir, "run", "0", "status", "results", "sr"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := a.ReadStepResult("a", "sr"); v != "w" || !ok || err != nil {
		t.Errorf("ReadStepResult = %q, %v, %v", v, ok, err)
	}
	res := filepath.Join(taskDir, "results", "r")
	if err := os.WriteFile(res, []byte("v"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := a.ReadResult("r"); v != "v" || !ok || err != nil {
		t.Errorf("ReadResult = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := a.ReadStepResult("a", "missing"); ok || err != nil {
		t.Errorf("ReadStepResult(missing) = %v, %v", ok, err)
	}
	if _, _, err := a.ReadResult("../x"); err == nil {
		t.Error("ReadResult(../x) accepted")
	}
	// A retry empties the results directory.
	if _, err := l.StartAttempt(context.Background(), task, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.ReadResult("r"); ok {
		t.Error("the retry still sees the first attempt's result")
	}
}

// A container whose connection is accepted as the run ends (it checked for
// the done mark just before Close made it) is told to exit and waited
// for; one that dials once Wait began finds no socket and exits 0. A
// listener closed under a queued connection would reset it instead, and
// the container would exit 1, failing the Pod.
func TestConnectionAsWaitBegins(t *testing.T) {
	p := newPod(t)
	plan := &planpb.Plan{Version: planpb.Version, Tasks: []*planpb.Task{{Name: "t", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s"}}}}}}
	if err := p.l.Prepare(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	late, err := net.Dial("unix", p.l.opts.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if err := p.l.Close(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- p.l.Wait(context.Background()) }()
	// Wait keeps the queued connection and waits for it to say who it is.
	time.Sleep(2 * drainQueued)
	select {
	case err := <-waited:
		t.Fatalf("Wait returned (%v) before the queued container had gone", err)
	default:
	}
	hello := &steppb.StepMessage{Kind: &steppb.StepMessage_Hello{Hello: &steppb.Hello{Container: "t-s"}}}
	if err := stepper.WriteMsg(late, hello); err != nil {
		t.Fatalf("the queued connection was reset: %v", err)
	}
	m := &steppb.SupervisorMessage{}
	if err := stepper.ReadMsg(bufio.NewReader(late), m); err != nil || m.GetExit() == nil {
		t.Fatalf("the queued container was not told to exit: %v %v", m, err)
	}
	// A container dialing now finds the done mark and exits 0.
	p.startContainer("other")
	if err := p.exits(2 * time.Second)["other"]; err != nil && !errors.Is(err, stepper.ErrSupervisorDone) {
		t.Errorf("container dialing as Wait runs: %v", err)
	}
	select {
	case err := <-waited:
		t.Fatalf("Wait returned (%v) while the told container was still connected", err)
	case <-time.After(50 * time.Millisecond):
	}
	late.Close()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return once the container had gone")
	}
}
