package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/stepper"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"github.com/e7763abc/pod-runner/proto/steppb"
	"github.com/e7763abc/pod-runner/test/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// inpod is the in-pod binary (-tags inpod, static), built once per test run.
func inpod(t *testing.T) string {
	t.Helper()
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner", "inpod")
	if err != nil {
		t.Fatalf("build in-pod binary: %v", err)
	}
	return bin
}

// `pod-runner step` waits for the socket, says hello, runs a step, and exits
// when told. (Its idle memory is measured by make bench.)
func TestStepServesAndExits(t *testing.T) {
	bin := inpod(t)
	dir := t.TempDir()
	socket := filepath.Join(dir, "s.sock")
	cmd := exec.Command(bin, "step", "--socket", socket)
	cmd.Env = []string{"POD_RUNNER_CONTAINER=t-s", "PATH=/usr/bin:/bin"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
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
	planEnv    string
	exited     chan struct{} // closed when the supervisor exited
}

func startPod(t *testing.T, plan *planpb.Plan, planEnv string, containers ...string) *podRun {
	t.Helper()
	p := newPod(t, plan, planEnv, containers...)
	p.startSupervisor()
	return p
}

// newPod starts the step containers; startSupervisor, the supervisor.
func newPod(t *testing.T, plan *planpb.Plan, planEnv string, containers ...string) *podRun {
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
	p.planEnv = planEnv
	return p
}

// startSupervisor starts `pod-runner supervise` in the pod, with args.
func (p *podRun) startSupervisor(args ...string) {
	p.t.Helper()
	p.supervise = exec.Command(inpod(p.t), append([]string{"supervise", "--socket", filepath.Join(p.dir, "run", "supervisor.sock"),
		"--state-dir", filepath.Join(p.dir, "state"), "--termination-log", filepath.Join(p.dir, "termination-log"), "--steps-see-state-dir"}, args...)...)
	p.supervise.Env = []string{"POD_RUNNER_PLAN=" + p.planEnv}
	p.supervise.Stdout = p.stdout
	p.supervise.Stderr = os.Stderr
	if err := p.supervise.Start(); err != nil {
		p.t.Fatal(err)
	}
	cmd, exited := p.supervise, make(chan struct{})
	p.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	p.t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
}

// stepsEnded waits for every step container to exit.
func (p *podRun) stepsEnded() {
	p.t.Helper()
	done := make(chan struct{})
	go func() {
		for _, c := range p.steps {
			_ = c.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("the step containers did not end in 30s")
	}
}

// wait waits for the supervisor and every step container; it returns the
// supervisor's exit code and termination message.
func (p *podRun) wait() (int, string) {
	p.t.Helper()
	done := make(chan struct{})
	go func() {
		for _, c := range p.steps {
			_ = c.Wait()
		}
		<-p.exited
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
		Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr",
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
	waitForFile(t, ready, "step a never started")
	if err := p.supervise.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, msg := p.wait()
	summary, err := sidecar.ParseTermination(msg)
	if code != 1 || err != nil || summary.GetCondition().GetReason() != "Cancelled" {
		t.Errorf("exit %d, termination message %s (%v)", code, msg, err)
	}
}

// As a native sidecar the supervisor outlives the step containers it
// released, until the kubelet's SIGTERM, which then is no cancel; a
// restart (the kubelet restarts a native sidecar that exits) refuses to
// run the Plan again; a step container's SIGTERM (the Pod's deletion, which
// the kubelet tells a sidecar last) cancels the run.
func TestSuperviseNativeSidecar(t *testing.T) {
	t.Run("outlives its steps", func(t *testing.T) {
		p := newPod(t, twoTasks("true"), "", "a-s", "b-s", "skipped-s")
		p.startSupervisor("--native-sidecar")
		p.stepsEnded()
		select {
		case <-p.exited:
			t.Fatal("the supervisor exited before the kubelet stopped it")
		case <-time.After(300 * time.Millisecond):
		}
		if err := p.supervise.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		code, msg := p.wait()
		summary, err := sidecar.ParseTermination(msg)
		if code != 0 || err != nil || summary.GetCondition().GetReason() != "Completed" {
			t.Errorf("exit %d, termination message %s (%v)", code, msg, err)
		}

		p.startSupervisor("--native-sidecar")
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(filepath.Join(p.dir, "termination-log"))
			if strings.Contains(string(b), "restarted") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("restarted supervisor's termination message %q", b)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := p.supervise.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code, _ := p.wait(); code != 2 {
			t.Errorf("restarted supervisor exited %d, want 2", code)
		}
	})
	t.Run("a step container's SIGTERM cancels", func(t *testing.T) {
		ready := filepath.Join(t.TempDir(), "ready")
		p := newPod(t, twoTasks("touch "+ready+"; sleep 30"), "", "a-s", "b-s", "skipped-s")
		p.startSupervisor("--native-sidecar")
		waitForFile(t, ready, "step a never started")
		if err := p.steps["a-s"].Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.stepsEnded()
		if err := p.supervise.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		code, msg := p.wait()
		summary, err := sidecar.ParseTermination(msg)
		if code != 1 || err != nil || summary.GetCondition().GetReason() != "Cancelled" {
			t.Errorf("exit %d, termination message %s (%v)", code, msg, err)
		}
	})
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

// TestInitInstallsStepBinary: beside the image's binary, its step binary
// (pod-runner-step) is what init installs for the step containers.
func TestInitInstallsStepBinary(t *testing.T) {
	full := inpod(t)
	img := t.TempDir()
	self := filepath.Join(img, "pod-runner")
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	step := append([]byte("step binary:"), data[:64]...)
	if err := os.WriteFile(self, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self+"-step", step, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if out, err := exec.Command(self, "init", dir).CombinedOutput(); err != nil {
		t.Fatalf("init: %v: %s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "pod-runner")); err != nil || string(got) != string(step) {
		t.Errorf("installed %d bytes (%v), want the step binary's %d", len(got), err, len(step))
	}
}

// waitForFile waits up to 10 s for a step to create path.
func waitForFile(t *testing.T, path, failure string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
