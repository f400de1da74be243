package podlaunch

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A sidecar's probes hold its task's steps back until they pass: an exec
// probe runs in the sidecar's container, a tcpSocket probe from the
// supervisor on the Pod's network; a startup probe that keeps failing ends
// the sidecar (the steps then start), and a readiness probe that never
// passes holds them until the task's timeout.
func TestSidecarProbesInPod(t *testing.T) {
	exec := func(command string, p *planpb.Probe) *planpb.Probe {
		p.Action = &planpb.Probe_Exec{Exec: &planpb.ExecAction{Command: []string{"sh", "-c", command}}}
		return p
	}
	for _, c := range []struct {
		name               string
		sidecar            string // its script; {dir} is a directory the test and the step share
		readiness, startup *planpb.Probe
		tcpAfter           time.Duration // when set, the test listens on {port} after this long
		timeout            time.Duration
		step               string
		stepAfter          time.Duration // the step starts no sooner than this after the sidecar
		wantTask           string
		wantSidecar        string // container reason exit-code
		wantStep           string
	}{
		{
			name:    "exec readiness passes after the sidecar got ready",
			sidecar: "sleep 0.6; touch {dir}/ready; exec sleep 60",
			readiness: exec("test -e {dir}/ready", &planpb.Probe{PeriodSeconds: 1, TimeoutSeconds: 1,
				SuccessThreshold: 1, FailureThreshold: 3}),
			step: "test -e {dir}/ready", stepAfter: 600 * time.Millisecond,
			wantTask: reasons.Succeeded, wantSidecar: "sidecar-server Completed 143", wantStep: "Completed",
		},
		{
			name:    "startup then readiness, as sidecar-ready.yaml",
			sidecar: "exec sleep 60",
			startup: exec("sleep 0.3 && touch {dir}/started", &planpb.Probe{TimeoutSeconds: 10, PeriodSeconds: 10}),
			readiness: exec("test -e {dir}/started && sleep 0.3 && touch {dir}/ready", &planpb.Probe{
				TimeoutSeconds: 10, PeriodSeconds: 10}),
			step: "cat {dir}/ready", stepAfter: 600 * time.Millisecond,
			wantTask: reasons.Succeeded, wantSidecar: "sidecar-server Completed 143", wantStep: "Completed",
		},
		{
			name:      "tcpSocket readiness, probed from the supervisor",
			sidecar:   "exec sleep 60",
			readiness: &planpb.Probe{PeriodSeconds: 1, Action: &planpb.Probe_TcpSocket{TcpSocket: &planpb.TCPSocketAction{}}},
			tcpAfter:  700 * time.Millisecond,
			step:      "true", stepAfter: 700 * time.Millisecond,
			wantTask: reasons.Succeeded, wantSidecar: "sidecar-server Completed 143", wantStep: "Completed",
		},
		{
			name:    "a failing startup probe ends the sidecar, then the steps start",
			sidecar: "exec sleep 60",
			startup: exec("exit 1", &planpb.Probe{PeriodSeconds: 1, FailureThreshold: 2}),
			step:    "true", stepAfter: time.Second,
			wantTask: reasons.Succeeded, wantSidecar: "sidecar-server Error 143", wantStep: "Completed",
		},
		{
			name:      "a readiness probe that never passes: the task times out",
			sidecar:   "exec sleep 60",
			readiness: exec("exit 1", &planpb.Probe{PeriodSeconds: 1}),
			timeout:   1500 * time.Millisecond,
			step:      "true",
			wantTask:  reasons.TaskTimeout, wantSidecar: "sidecar-server Completed 143", wantStep: "",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPod(t)
			dir := t.TempDir()
			port := 0
			if c.tcpAfter > 0 {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				port = ln.Addr().(*net.TCPAddr).Port
				ln.Close() // refused until it listens again
				c.readiness.GetTcpSocket().Port = int32(port)
				time.AfterFunc(c.tcpAfter, func() {
					ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
					if err != nil {
						t.Errorf("listen again: %v", err)
						return
					}
					t.Cleanup(func() { ln.Close() })
				})
			}
			subst := strings.NewReplacer("{dir}", dir).Replace
			for _, pr := range []*planpb.Probe{c.readiness, c.startup} {
				if cmd := pr.GetExec().GetCommand(); len(cmd) > 0 {
					cmd[2] = subst(cmd[2])
				}
			}
			tk := &planpb.Task{
				Name: "t", TaskRunName: "tr",
				Spec: &planpb.TaskSpec{
					Sidecars: []*planpb.Step{{Name: "server", Script: subst(c.sidecar), ReadinessProbe: c.readiness, StartupProbe: c.startup}},
					Steps:    []*planpb.Step{{Name: "s", Script: subst(c.step)}},
				},
			}
			if c.timeout > 0 {
				tk.Timeout = durationpb.New(c.timeout)
			}
			plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_TASK_RUN, Name: "tr", Tasks: []*planpb.Task{tk}}
			p.start(plan)
			st := p.run(context.Background(), plan)
			ts := taskStatus(st, "t")
			if got := ts.GetCondition().GetReason(); got != c.wantTask {
				t.Errorf("task reason %q, want %q: %v", got, c.wantTask, ts.GetCondition())
			}
			var sidecar string
			if scs := ts.GetSidecars(); len(scs) == 1 {
				sidecar = fmt.Sprintf("%s %s %d", scs[0].GetContainer(), scs[0].GetReason(), scs[0].GetExitCode())
			}
			if sidecar != c.wantSidecar {
				t.Errorf("sidecar %q, want %q", sidecar, c.wantSidecar)
			}
			step := stepState(st, "t", "s")
			if c.wantStep == "" {
				if step.GetStartedAt() != nil && step.GetReason() == "Completed" {
					t.Errorf("the step ran although the sidecar never got ready: %v", step)
				}
				return
			}
			if step.GetReason() != c.wantStep {
				t.Errorf("step %v, want reason %s", step, c.wantStep)
			}
			sc := ts.GetSidecars()[0]
			if gap := step.GetStartedAt().AsTime().Sub(sc.GetStartedAt().AsTime()); gap < c.stepAfter {
				t.Errorf("the step started %v after its sidecar, want at least %v", gap, c.stepAfter)
			}
		})
	}
}

// The probes' failures reach the supervisor's log, once per message, as
// the kubelet's events would say them.
func TestSidecarProbeFailuresLogged(t *testing.T) {
	p := newPod(t)
	dir := t.TempDir()
	tk := &planpb.Task{
		Name: "t", TaskRunName: "tr",
		Spec: &planpb.TaskSpec{
			Sidecars: []*planpb.Step{{Name: "server", Script: "exec sleep 60",
				StartupProbe: &planpb.Probe{PeriodSeconds: 1, FailureThreshold: 5, Action: &planpb.Probe_Exec{Exec: &planpb.ExecAction{
					Command: []string{"sh", "-c", "test -e " + filepath.Join(dir, "x") + " || { echo not yet; touch " + filepath.Join(dir, "x") + "; exit 1; }"}}}}}},
			Steps: []*planpb.Step{{Name: "s", Command: []string{"true"}}},
		},
	}
	plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_TASK_RUN, Name: "tr", Tasks: []*planpb.Task{tk}}
	p.start(plan)
	if st := p.run(context.Background(), plan); st.GetCondition().GetStatus() != "True" {
		t.Fatalf("run %v", st.GetCondition())
	}
	log := p.l.opts.Log.(interface{ String() string }).String()
	want := fmt.Sprintf("pod-runner: sidecar container %q: Startup probe failed: exec", podlayout.SidecarContainer("t", "server"))
	if strings.Count(log, want) != 1 || !strings.Contains(log, "exited with code 1: not yet") {
		t.Errorf("log:\n%s\nwant one line with %q and the probe's output", log, want)
	}
}
