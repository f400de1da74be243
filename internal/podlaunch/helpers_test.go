package podlaunch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/stepper"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/syncbuf"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

func str(s string) *planpb.Value { return &planpb.Value{StringValue: s} }

// pod is a run's socket and state directory, with a `pod-runner step`
// goroutine per "step container".
type pod struct {
	t        testing.TB
	dir      string
	l        *Launcher
	mu       sync.Mutex
	steps    map[string]*stepContainer
	stateDir string
}

type stepContainer struct {
	out    *syncbuf.Buffer
	kill   context.CancelFunc // the container dies
	result chan error
}

func newPod(t testing.TB) *pod {
	t.Helper()
	dir := t.TempDir()
	p := &pod{t: t, dir: dir, steps: map[string]*stepContainer{}, stateDir: filepath.Join(dir, "state")}
	for _, d := range []string{"run", "state", "tmp", "workspace"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.l = New(Options{Socket: filepath.Join(dir, "run", "supervisor.sock"), StateDir: p.stateDir, Grace: 300 * time.Millisecond,
		Log: &syncbuf.Buffer{}, StepView: p.stepView})
	return p
}

// stepView: outside containers, the steps see the supervisor's own paths.
func (p *pod) stepView(task string) StepView {
	d := filepath.Join(p.stateDir, podlayout.TaskDir(task))
	return StepView{Results: filepath.Join(d, "results"), Steps: filepath.Join(d, "steps"), Run: filepath.Join(d, "run")}
}

// start starts the container of every step and sidecar of plan.
func (p *pod) start(plan *planpb.Plan) {
	for _, task := range slices.Concat(plan.GetTasks(), plan.GetFinally()) {
		for i, s := range task.GetSpec().GetSteps() {
			p.startContainer(podlayout.StepContainer(task.GetName(), results.StepName(s.GetName(), i)))
		}
		for i, s := range task.GetSpec().GetSidecars() {
			p.startContainer(podlayout.SidecarContainer(task.GetName(), results.StepName(s.GetName(), i)))
		}
	}
}

func (p *pod) startContainer(name string) *stepContainer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &stepContainer{out: &syncbuf.Buffer{}, kill: cancel, result: make(chan error, 1)}
	p.mu.Lock()
	p.steps[name] = c
	p.mu.Unlock()
	opts := stepper.Options{Socket: p.l.opts.Socket, Container: name, Stdout: c.out, Stderr: c.out, Log: c.out,
		ScriptDir: filepath.Join(p.dir, "tmp"), WorkspaceDir: filepath.Join(p.dir, "workspace"), Cgroup: filepath.Join(p.dir, "no-cgroup"),
		Env: []string{"PATH=" + os.Getenv("PATH")}}
	go func() { c.result <- stepper.Run(ctx, opts) }()
	p.t.Cleanup(func() {
		cancel()
		select {
		case <-c.result:
		case <-time.After(10 * time.Second):
			p.t.Errorf("step container %s did not end", name)
		}
	})
	return c
}

func (p *pod) container(name string) *stepContainer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.steps[name]
}

// run runs plan with a real Supervisor and waits for the launcher.
func (p *pod) run(ctx context.Context, plan *planpb.Plan) *planpb.RunStatus {
	p.t.Helper()
	st, err := (&supervisor.Supervisor{Plan: plan, Launcher: p.l}).Run(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.l.Wait(wctx); err != nil {
		p.t.Errorf("Wait: %v", err)
	}
	return st
}

// exits waits for every step container to end and returns how each did.
func (p *pod) exits(within time.Duration) map[string]error {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]error{}
	deadline := time.After(within)
	for name, c := range p.steps {
		select {
		case err := <-c.result:
			c.result <- err
			out[name] = err
		case <-deadline:
			p.t.Fatalf("step container %s still runs %v after the run", name, within)
		}
	}
	return out
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

func taskStatus(st *planpb.RunStatus, task string) *planpb.TaskStatus {
	for _, ts := range st.GetTasks() {
		if ts.GetName() == task {
			return ts
		}
	}
	return nil
}

func result(st *planpb.RunStatus, name string) string {
	for _, r := range st.GetResults() {
		if r.GetName() == name {
			return r.GetValue().GetStringValue()
		}
	}
	return ""
}

func waitFile(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written in 10s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connected waits until the named containers have said hello.
func (p *pod) connected(names ...string) {
	p.t.Helper()
	deadline := time.After(5 * time.Second)
	for _, name := range names {
		for {
			p.l.mu.Lock()
			c := p.l.containers[name]
			ok := c != nil && c.peer != nil
			p.l.mu.Unlock()
			if ok {
				break
			}
			select {
			case <-deadline:
				p.t.Fatalf("container %s did not connect", name)
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
}

// preparedLauncher is a Launcher whose Prepare already ran.
type preparedLauncher struct{ *Launcher }

func (preparedLauncher) Prepare(context.Context, *planpb.Plan) error { return nil }
