package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// sidecarLauncher is a fakeLauncher whose attempts run sidecars, logging
// sidecar starts and stops among the steps.
type sidecarLauncher struct {
	*fakeLauncher
	mu  sync.Mutex
	log []string
	// started: per sidecar name, what StartSidecars reports (nil: running).
	started map[string]*StepExit
	// ended: per sidecar name, how it ended on its own before the stop.
	ended map[string]StepExit
	// stuck: per sidecar name, how it ended when it did not stop in time
	// (the launcher gave up on it after the stop).
	stuck   map[string]StepExit
	scripts map[string]string
}

func (l *sidecarLauncher) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = append(l.log, s)
}

func (l *sidecarLauncher) StartAttempt(ctx context.Context, t *planpb.Task, attempt int) (Attempt, error) {
	a, err := l.fakeLauncher.StartAttempt(ctx, t, attempt)
	if err != nil {
		return nil, err
	}
	return &sidecarAttempt{fakeAttempt: a.(*fakeAttempt), l: l}, nil
}

type sidecarAttempt struct {
	*fakeAttempt
	l        *sidecarLauncher
	sidecars []*Step
	running  []bool
}

func (a *sidecarAttempt) RunStep(ctx context.Context, s *Step) StepExit {
	a.l.add(fmt.Sprintf("step %s/%s#%d", a.task, s.Name, a.attempt))
	return a.fakeAttempt.RunStep(ctx, s)
}

func (a *sidecarAttempt) StartSidecars(_ context.Context, sidecars []*Step) []*StepExit {
	a.sidecars = sidecars
	out := make([]*StepExit, len(sidecars))
	for i, s := range sidecars {
		a.l.add(fmt.Sprintf("start %s/%s#%d", a.task, s.Name, a.attempt))
		a.l.mu.Lock()
		a.l.scripts[s.Name] = s.Script
		out[i] = a.l.started[s.Name]
		a.l.mu.Unlock()
		a.running = append(a.running, out[i] == nil)
	}
	return out
}

func (a *sidecarAttempt) StopSidecars() ([]StepExit, []bool) {
	exits := make([]StepExit, len(a.sidecars))
	stopped := make([]bool, len(a.sidecars))
	for i, s := range a.sidecars {
		if !a.running[i] {
			continue
		}
		a.l.add(fmt.Sprintf("stop %s/%s#%d", a.task, s.Name, a.attempt))
		if ex, ok := a.l.ended[s.Name]; ok {
			exits[i] = ex
			continue
		}
		if ex, ok := a.l.stuck[s.Name]; ok {
			ex.Finished = time.Now()
			exits[i] = ex
			continue
		}
		exits[i], stopped[i] = StepExit{ExitCode: 143, Started: time.Now(), Finished: time.Now()}, true
	}
	return exits, stopped
}

func withSidecars(t *planpb.Task, names ...string) *planpb.Task {
	for _, n := range names {
		t.Spec.Sidecars = append(t.Spec.Sidecars, &planpb.Step{Name: n, Image: "busybox", Script: "echo $(params.p) > $(workspaces.ws.path)/" + n})
	}
	t.Spec.Params = []*planpb.ParamSpec{{Name: "p", Default: &planpb.Value{StringValue: "dflt"}}}
	t.Spec.Workspaces = []*planpb.WorkspaceDeclaration{{Name: "ws"}}
	return t
}

func runSidecars(t *testing.T, ctx context.Context, p *planpb.Plan, l Launcher) (*planpb.RunStatus, []*planpb.Event) {
	t.Helper()
	var mu sync.Mutex
	var events []*planpb.Event
	s := &Supervisor{Plan: p, Launcher: l, Reporter: ReporterFunc(func(e *planpb.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})}
	st, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st, events
}

func TestSidecarLifecycle(t *testing.T) {
	slow := &planpb.Task{Name: "slow", TaskRunName: "run-slow", Timeout: durationpb.New(50 * time.Millisecond), Spec: &planpb.TaskSpec{Steps: []*planpb.Step{step("s")}}}
	cases := []struct {
		name    string
		task    *planpb.Task
		out     map[string]outcome
		started map[string]*StepExit
		ended   map[string]StepExit
		stuck   map[string]StepExit
		// want: the launcher's log; reason of the task; per sidecar
		// "reason exitCode".
		want       []string
		taskReason string
		// taskMsg, when set, is the task's condition message.
		taskMsg string
		states  []string
	}{{
		name: "started before the steps, stopped after them",
		task: withSidecars(task("a", nil, step("one"), step("two")), "db", "web"),
		want: []string{"start a/db#0", "start a/web#0", "step a/one#0", "step a/two#0", "stop a/db#0", "stop a/web#0"},
		// Tekton marks a sidecar it stopped Completed (updateStoppedSidecarStatus).
		taskReason: reasons.Succeeded, states: []string{"db Completed 143", "web Completed 143"},
	}, {
		name: "stopped after a failed step too",
		task: withSidecars(task("a", nil, step("one"), step("two")), "db"),
		out:  map[string]outcome{"a/one": {exit: 3}},
		want: []string{"start a/db#0", "step a/one#0", "stop a/db#0"},
		// A sidecar stopped after the steps does not decide the task's end.
		taskReason: reasons.StepFailed, taskMsg: `"step-one" exited with code 3: Error`, states: []string{"db Completed 143"},
	}, {
		// Tekton names a sidecar that had ended non-zero before a failed
		// step (getFailureInfo), with the sidecar's message.
		name:       "a step failed after a sidecar had ended non-zero",
		task:       withSidecars(task("a", nil, step("one")), "db"),
		out:        map[string]outcome{"a/one": {exit: 3}},
		ended:      map[string]StepExit{"db": {ExitCode: 2}},
		want:       []string{"start a/db#0", "step a/one#0", "stop a/db#0"},
		taskReason: reasons.SidecarFailed, taskMsg: `"sidecar-db" exited with code 2: Error`, states: []string{"db Error 2"},
	}, {
		name:       "a step failed after a sidecar had been OOM-killed",
		task:       withSidecars(task("a", nil, step("one")), "db", "web"),
		out:        map[string]outcome{"a/one": {exit: 1}},
		ended:      map[string]StepExit{"web": {ExitCode: 137, Reason: reasons.OOMKilled}},
		want:       []string{"start a/db#0", "start a/web#0", "step a/one#0", "stop a/db#0", "stop a/web#0"},
		taskReason: reasons.SidecarOOM, taskMsg: `"sidecar-web" exited with code 137: OOMKilled`, states: []string{"db Completed 143", "web OOMKilled 137"},
	}, {
		// The pipeline ignores the failure: FailureIgnored, with the
		// message of the container that failed.
		name: "a failure the pipeline ignores",
		task: func() *planpb.Task {
			tk := withSidecars(task("a", nil, step("one")), "db")
			tk.OnErrorContinue = true
			return tk
		}(),
		out:        map[string]outcome{"a/one": {exit: 3}},
		ended:      map[string]StepExit{"db": {ExitCode: 2}},
		want:       []string{"start a/db#0", "step a/one#0", "stop a/db#0"},
		taskReason: reasons.FailureIgnored, taskMsg: `"sidecar-db" exited with code 2: Error`, states: []string{"db Error 2"},
	}, {
		name:    "a sidecar that could not start: the steps run, the task succeeds",
		task:    withSidecars(task("a", nil, step("one")), "db", "web"),
		started: map[string]*StepExit{"db": {Err: errors.New("exec: no such file")}},
		want:    []string{"start a/db#0", "start a/web#0", "step a/one#0", "stop a/web#0"},
		// Tekton counts a terminated sidecar as ready (SidecarsReady).
		taskReason: reasons.Succeeded, states: []string{"db Error 1", "web Completed 143"},
	}, {
		// Tekton decides when the last step ends, while the kubelet still
		// reports the Pod Running (attemptFailure): the steps decide.
		name:       "the only sidecar ended non-zero before the steps did",
		task:       withSidecars(task("a", nil, step("one")), "db"),
		ended:      map[string]StepExit{"db": {ExitCode: 2}},
		want:       []string{"start a/db#0", "step a/one#0", "stop a/db#0"},
		taskReason: reasons.Succeeded, states: []string{"db Error 2"},
	}, {
		// Another sidecar still ran: the Pod was still Running.
		name:       "a sidecar ended non-zero while another ran",
		task:       withSidecars(task("a", nil, step("one")), "db", "web"),
		ended:      map[string]StepExit{"db": {ExitCode: 2}},
		want:       []string{"start a/db#0", "start a/web#0", "step a/one#0", "stop a/db#0", "stop a/web#0"},
		taskReason: reasons.Succeeded, states: []string{"db Error 2", "web Completed 143"},
	}, {
		name:       "the only sidecar ended 0 before the steps did",
		task:       withSidecars(task("a", nil, step("one")), "db"),
		ended:      map[string]StepExit{"db": {ExitCode: 0}},
		want:       []string{"start a/db#0", "step a/one#0", "stop a/db#0"},
		taskReason: reasons.Succeeded, states: []string{"db Completed 0"},
	}, {
		// It ran when the steps ended; that it would not stop is no
		// failure of the task.
		name:       "a sidecar that did not stop when told",
		task:       withSidecars(task("a", nil, step("one")), "db"),
		stuck:      map[string]StepExit{"db": {ExitCode: 1, Err: errors.New("did not stop")}},
		want:       []string{"start a/db#0", "step a/one#0", "stop a/db#0"},
		taskReason: reasons.Succeeded, states: []string{"db Error 1"},
	}, {
		name: "each attempt starts and stops its sidecars",
		task: func() *planpb.Task {
			tk := withSidecars(task("a", nil, step("one")), "db")
			tk.Retries = 1
			return tk
		}(),
		out:        map[string]outcome{"a/one#0": {exit: 1}},
		want:       []string{"start a/db#0", "step a/one#0", "stop a/db#0", "start a/db#1", "step a/one#1", "stop a/db#1"},
		taskReason: reasons.Succeeded, states: []string{"db Completed 143"},
	}, {
		name:       "stopped when the task times out",
		task:       withSidecars(slow, "db"),
		out:        map[string]outcome{"slow/s": {sleep: time.Minute}},
		want:       []string{"start slow/db#0", "step slow/s#0", "stop slow/db#0"},
		taskReason: reasons.TaskTimeout, states: []string{"db Completed 143"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.task.Workspaces = []*planpb.WorkspaceBinding{{Name: "ws", Volume: "v"}}
			l := &sidecarLauncher{fakeLauncher: newFake(c.out), started: c.started, ended: c.ended, stuck: c.stuck, scripts: map[string]string{}}
			st, events := runSidecars(t, context.Background(), plan([]*planpb.Task{c.task}), l)
			if !slices.Equal(l.log, c.want) {
				t.Errorf("launcher log:\n got %q\nwant %q", l.log, c.want)
			}
			ts := taskStatus(st, c.task.GetName())
			if got := ts.GetCondition().GetReason(); got != c.taskReason {
				t.Errorf("task reason %q, want %q (%v)", got, c.taskReason, ts.GetCondition())
			}
			if got := ts.GetCondition().GetMessage(); c.taskMsg != "" && got != c.taskMsg {
				t.Errorf("task message %q, want %q", got, c.taskMsg)
			}
			var states []string
			for _, sc := range ts.GetSidecars() {
				states = append(states, fmt.Sprintf("%s %s %d", sc.GetName(), sc.GetReason(), sc.GetExitCode()))
				if !sc.GetTerminated() || sc.GetRunning() || sc.GetContainer() != "sidecar-"+sc.GetName() || sc.GetImage() != "busybox" ||
					sc.GetStartedAt() == nil || sc.GetFinishedAt() == nil {
					t.Errorf("sidecar state %v", sc)
				}
			}
			if !slices.Equal(states, c.states) {
				t.Errorf("sidecars %q, want %q", states, c.states)
			}
			// Substituted as steps are: params, workspaces.
			if got := l.scripts["db"]; !strings.Contains(got, "echo dflt > /workspace/ws/db") {
				t.Errorf("db's script %q is not substituted", got)
			}
			// While the steps run, the published status shows the sidecars running.
			sawRunning := false
			for _, e := range events {
				if tk := e.GetTask(); tk != nil && len(tk.GetSidecars()) > 0 && tk.GetCondition().GetStatus() == "Unknown" {
					for _, sc := range tk.GetSidecars() {
						sawRunning = sawRunning || sc.GetRunning()
					}
				}
			}
			if wantRunning := len(c.started) < len(c.task.GetSpec().GetSidecars()); sawRunning != wantRunning {
				t.Errorf("a running sidecar in the events: %v, want %v", sawRunning, wantRunning)
			}
		})
	}
}

// A launcher whose attempts cannot run sidecars (the local one) fails the
// task rather than run its steps without them.
func TestSidecarsNeedALauncherThatRunsThem(t *testing.T) {
	f := newFake(nil)
	a := withSidecars(task("a", nil, step("one")), "db")
	a.Workspaces = []*planpb.WorkspaceBinding{{Name: "ws", Volume: "v"}}
	st, _ := runSidecars(t, context.Background(), plan([]*planpb.Task{a}), f)
	ts := taskStatus(st, "a")
	if ts.GetCondition().GetReason() != reasons.Failed || !strings.Contains(ts.GetCondition().GetMessage(), "cannot run") {
		t.Errorf("condition %v", ts.GetCondition())
	}
	if len(f.ran) != 0 {
		t.Errorf("steps ran without their sidecars: %v", f.ran)
	}
}
