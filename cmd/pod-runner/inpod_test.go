package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/stepper"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

var (
	inpodOnce sync.Once
	inpodBin  string
	inpodErr  error
)

// inpod builds the in-pod binary (-tags inpod, static) once per test run.
func inpod(t *testing.T) string {
	t.Helper()
	inpodOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pod-runner-inpod-")
		if err != nil {
			inpodErr = err
			return
		}
		inpodBin = filepath.Join(dir, "pod-runner")
		cmd := exec.Command("go", "build", "-tags", "inpod", "-o", inpodBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			inpodErr = err
			t.Logf("%s", out)
		}
	})
	if inpodErr != nil {
		t.Fatalf("build in-pod binary: %v", inpodErr)
	}
	return inpodBin
}

func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// `pod-runner step` lives in every step container for the whole run: its
// idle resident memory, waiting for the socket and connected, stays within
// 8 MiB.
func TestStepIdleRSS(t *testing.T) {
	bin := inpod(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "s.sock")
	cmd := exec.Command(bin, "step", "--socket", socket)
	cmd.Env = []string{"POD_RUNNER_CONTAINER=t-s", "PATH=/usr/bin:/bin"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(500 * time.Millisecond)
	waiting := vmRSS(t, cmd.Process.Pid)

	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	m := &steppb.StepMessage{}
	if err := stepper.ReadMsg(r, m); err != nil || m.GetHello().GetContainer() != "t-s" {
		t.Fatalf("hello %v, %v", m, err)
	}
	// One step run, then idle again.
	if err := stepper.WriteMsg(conn, &steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: &steppb.Run{Seq: 1, Command: []string{"true"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := stepper.ReadMsg(r, m); err != nil || m.GetExited().GetSeq() != 1 {
		t.Fatalf("exited %v, %v", m, err)
	}
	time.Sleep(200 * time.Millisecond)
	connected := vmRSS(t, cmd.Process.Pid)
	t.Logf("pod-runner step idle RSS: %d KiB waiting for the socket, %d KiB connected after one step", waiting, connected)
	for _, kb := range []int{waiting, connected} {
		if kb > 8*1024 {
			t.Errorf("idle RSS %d KiB > 8 MiB", kb)
		}
	}
	if err := stepper.WriteMsg(conn, &steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Exit{Exit: &steppb.Exit{}}}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("step after Exit: %v", err)
	}
}

// podRun is `pod-runner supervise` and a `pod-runner step` per step
// container, as processes, sharing a socket and state directory.
type podRun struct {
	t          *testing.T
	dir        string
	supervise  *exec.Cmd
	stdout     *strings.Builder
	steps      map[string]*exec.Cmd
	stepOutput map[string]*strings.Builder
}

func startPod(t *testing.T, plan *planpb.Plan, planEnv string, containers ...string) *podRun {
	t.Helper()
	bin := inpod(t)
	p := &podRun{t: t, dir: t.TempDir(), stdout: &strings.Builder{}, steps: map[string]*exec.Cmd{}, stepOutput: map[string]*strings.Builder{}}
	socket := filepath.Join(p.dir, "run", "supervisor.sock")
	for _, d := range []string{"run", "state"} {
		if err := os.Mkdir(filepath.Join(p.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if plan != nil {
		b, err := proto.Marshal(plan)
		if err != nil {
			t.Fatal(err)
		}
		planEnv = podlayout.EncodePlan(b)
	}
	for _, c := range containers {
		cmd := exec.Command(bin, "step", "--socket", socket)
		cmd.Env = []string{"POD_RUNNER_CONTAINER=" + c, "PATH=" + os.Getenv("PATH")}
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p.steps[c], p.stepOutput[c] = cmd, out
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	p.supervise = exec.Command(bin, "supervise", "--socket", socket, "--state-dir", filepath.Join(p.dir, "state"),
		"--termination-log", filepath.Join(p.dir, "termination-log"), "--steps-see-state-dir")
	p.supervise.Env = []string{"POD_RUNNER_PLAN=" + planEnv}
	p.supervise.Stdout = p.stdout
	p.supervise.Stderr = os.Stderr
	if err := p.supervise.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.supervise.Process.Kill(); _ = p.supervise.Wait() })
	return p
}

// wait waits for the supervisor and every step container; it returns the
// supervisor's exit code and termination message.
func (p *podRun) wait() (int, string) {
	p.t.Helper()
	done := make(chan struct{})
	go func() {
		_ = p.supervise.Wait()
		for _, c := range p.steps {
			_ = c.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("the pod did not end in 30s")
	}
	msg, _ := os.ReadFile(filepath.Join(p.dir, "termination-log"))
	return p.supervise.ProcessState.ExitCode(), string(msg)
}

func twoTasks(dir string) *planpb.Plan {
	return &planpb.Plan{
		Version: supervisor.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr",
		Tasks: []*planpb.Task{
			{Name: "a", TaskRunName: "pr-a", Spec: &planpb.TaskSpec{Results: []*planpb.ResultSpec{{Name: "r"}},
				Steps: []*planpb.Step{{Name: "s", Script: "echo from-a; printf hi > $(results.r.path); " + dir}}}},
			{Name: "b", TaskRunName: "pr-b", RunAfter: []string{"a"}, Params: []*planpb.Param{{Name: "p", Value: &planpb.Value{StringValue: "$(tasks.a.results.r)"}}},
				Spec: &planpb.TaskSpec{Params: []*planpb.ParamSpec{{Name: "p"}}, Results: []*planpb.ResultSpec{{Name: "out"}},
					Steps: []*planpb.Step{{Name: "s", Command: []string{"sh", "-c", `printf "$0 there" > $1`, "$(params.p)", "$(results.out.path)"}}}}},
			{Name: "skipped", TaskRunName: "pr-skipped", When: []*planpb.WhenExpression{{Input: "x", Operator: "in", Values: []string{"y"}}},
				Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s", Command: []string{"false"}}}}},
		},
		Results: []*planpb.PipelineResult{{Name: "final", Value: &planpb.Value{StringValue: "$(tasks.b.results.out)"}}},
	}
}

// The in-pod binary runs a plan end to end: results pass between tasks, the
// log carries every event and the final status with its results, the
// termination message a summary, and every step container exits 0.
func TestSuperviseRunsPlan(t *testing.T) {
	p := startPod(t, twoTasks("true"), "", "a-s", "b-s", "skipped-s")
	code, msg := p.wait()
	if code != 0 {
		t.Errorf("supervise exit code %d, termination message %s", code, msg)
	}
	summary, err := sidecar.ParseTermination(msg)
	if err != nil || summary.GetCondition().GetReason() != "Completed" || len(summary.GetTasks()) != 2 || len(summary.GetSkipped()) != 1 {
		t.Errorf("termination message %s (%v)", msg, err)
	}
	s, err := sidecar.Read(strings.NewReader(p.stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Final.GetResults(); len(got) != 1 || got[0].GetValue().GetStringValue() != "hi there" {
		t.Errorf("final results %v\nlog:\n%s", got, p.stdout.String())
	}
	for name, c := range p.steps {
		if c.ProcessState.ExitCode() != 0 {
			t.Errorf("step container %s exited %d: %s", name, c.ProcessState.ExitCode(), p.stepOutput[name])
		}
	}
	if out := p.stepOutput["a-s"].String(); out != "from-a\n" {
		t.Errorf("a-s output %q", out)
	}
}

// A plan that cannot be read ends the supervisor with exit 2 and the reason
// as its termination message; waiting step containers exit too.
func TestSuperviseBadPlan(t *testing.T) {
	p := startPod(t, nil, "not base64!", "a-s")
	code, msg := p.wait()
	if code != 2 || !strings.HasPrefix(msg, sidecar.FailurePrefix+"plan in $POD_RUNNER_PLAN") {
		t.Errorf("exit %d, termination message %q", code, msg)
	}
	if c := p.steps["a-s"].ProcessState.ExitCode(); c != 0 {
		t.Errorf("waiting step container exited %d: %s", c, p.stepOutput["a-s"])
	}
}

// SIGTERM to the supervisor (pod deletion) cancels the run and publishes it.
func TestSuperviseSIGTERM(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	p := startPod(t, twoTasks("touch "+ready+"; sleep 30"), "", "a-s", "b-s", "skipped-s")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("step a never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.supervise.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, msg := p.wait()
	summary, err := sidecar.ParseTermination(msg)
	if code != 1 || err != nil || summary.GetCondition().GetReason() != "Cancelled" {
		t.Errorf("exit %d, termination message %s (%v)", code, msg, err)
	}
}

func TestInit(t *testing.T) {
	bin := inpod(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	state := filepath.Join(t.TempDir(), "state")
	made := []string{filepath.Join(state, "a", "results"), filepath.Join(state, "a", "steps", "step-s")}
	if out, err := exec.CommandContext(ctx, bin, "init", "--mkdir", made[0], "--mkdir", made[1], dir).CombinedOutput(); err != nil {
		t.Fatalf("init: %v: %s", err, out)
	}
	want, _ := os.ReadFile(bin)
	got, err := os.ReadFile(filepath.Join(dir, "pod-runner"))
	if err != nil || string(got) != string(want) {
		t.Fatalf("installed binary differs (%v)", err)
	}
	info, _ := os.Stat(filepath.Join(dir, "pod-runner"))
	if info.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", info.Mode())
	}
	for _, d := range made {
		if info, err := os.Stat(d); err != nil || info.Mode().Perm() != 0o777 || !info.IsDir() {
			t.Errorf("--mkdir %s: %v %v", d, info.Mode(), err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if err := exec.Command(bin, "init", filepath.Join(dir, "missing")).Run(); err == nil {
		t.Error("init into a missing dir succeeded")
	}
}

// Hand-off latency with the real binaries: one task's step process ended →
// the next task's step process started, along a 30-task chain. The goal is
// under 5 ms; the test only catches gross regressions (a loaded CI machine).
func TestHandoffLatency(t *testing.T) {
	plan := &planpb.Plan{Version: supervisor.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "chain"}
	var containers []string
	for i := range 30 {
		task := &planpb.Task{Name: "t" + strconv.Itoa(i), TaskRunName: "chain-t" + strconv.Itoa(i),
			Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s", Command: []string{"true"}}}}}
		if i > 0 {
			task.RunAfter = []string{"t" + strconv.Itoa(i-1)}
		}
		plan.Tasks = append(plan.Tasks, task)
		containers = append(containers, task.Name+"-s")
	}
	p := startPod(t, plan, "", containers...)
	if code, msg := p.wait(); code != 0 {
		t.Fatalf("exit %d: %s", code, msg)
	}
	s, err := sidecar.Read(strings.NewReader(p.stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	var d []time.Duration
	tasks := s.Final.GetTasks()
	for i := 1; i < len(tasks); i++ {
		d = append(d, tasks[i].GetSteps()[0].GetStartedAt().AsTime().Sub(tasks[i-1].GetSteps()[0].GetFinishedAt().AsTime()))
	}
	slices.Sort(d)
	median, p99 := d[len(d)/2], d[len(d)*99/100]
	t.Logf("hand-off over %d dependencies: median %v, p99 %v", len(d), median, p99)
	if median > 50*time.Millisecond {
		t.Errorf("median hand-off %v", median)
	}
}
