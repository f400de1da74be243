package podlaunch

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/stepper"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// A Control request over the real socket reaches Options.Control, and its
// answer (taken or refused, and why) reaches the sender.
func TestControlRequest(t *testing.T) {
	tests := []struct {
		name    string
		control func(steppb.Control_Action) error
		action  steppb.Control_Action
		wantErr string
		want    []steppb.Control_Action
	}{
		{name: "cancel taken", control: func(steppb.Control_Action) error { return nil },
			action: steppb.Control_CANCEL_RUN_FINALLY, want: []steppb.Control_Action{steppb.Control_CANCEL_RUN_FINALLY}},
		{name: "stop taken", control: func(steppb.Control_Action) error { return nil },
			action: steppb.Control_STOP_RUN_FINALLY, want: []steppb.Control_Action{steppb.Control_STOP_RUN_FINALLY}},
		{name: "refused by the handler", control: func(steppb.Control_Action) error { return errors.New("no such run") },
			action: steppb.Control_STOP_RUN_FINALLY, wantErr: "no such run", want: []steppb.Control_Action{steppb.Control_STOP_RUN_FINALLY}},
		{name: "no handler", action: steppb.Control_CANCEL_RUN_FINALLY, wantErr: "takes no control requests"},
		{name: "no action", control: func(steppb.Control_Action) error { return nil }, wantErr: "names no action"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(t)
			var mu sync.Mutex
			var got []steppb.Control_Action
			if tc.control != nil {
				p.l.opts.Control = func(a steppb.Control_Action) error {
					mu.Lock()
					got = append(got, a)
					mu.Unlock()
					return tc.control(a)
				}
			}
			if err := p.l.Prepare(context.Background(), &planpb.Plan{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = p.l.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = p.l.Wait(ctx)
			})
			err := stepper.Control(context.Background(), p.l.opts.Socket, tc.action)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Control: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Control error = %v, want %q", err, tc.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
				t.Errorf("handler got %v, want %v", got, tc.want)
			}
		})
	}
}

// Control with no supervisor listening fails at once rather than hanging.
func TestControlNoSupervisor(t *testing.T) {
	err := stepper.Control(context.Background(), filepath.Join(t.TempDir(), "none.sock"), steppb.Control_CANCEL_RUN_FINALLY)
	if err == nil || !strings.Contains(err.Error(), "connect to the supervisor") {
		t.Errorf("Control = %v, want a connect error", err)
	}
}

// CancelRunFinally sent over the socket while a step runs, wired as
// `pod-runner supervise` wires it: the running step is stopped and finally
// runs; the run ends Cancelled.
func TestControlCancelRunFinallyRunsFinally(t *testing.T) {
	p := newPod(t)
	plan := killPlan(p.dir, 0)
	plan.Finally = []*planpb.Task{{Name: "fin", TaskRunName: "pr-fin", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{
		Name: "cleanup", Command: []string{"sh", "-c", "echo cleaned"},
	}}}}}
	sup := &supervisor.Supervisor{Plan: plan, Launcher: p.l}
	p.l.opts.Control = ControlSupervisor(sup)
	p.start(plan)
	errs := make(chan error, 1)
	go func() {
		waitFile(t, filepath.Join(p.dir, "pid"))
		errs <- stepper.Control(context.Background(), p.l.opts.Socket, steppb.Control_CANCEL_RUN_FINALLY)
	}()
	st, err := sup.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.l.Wait(wctx); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if err := <-errs; err != nil {
		t.Errorf("Control: %v", err)
	}
	if c := st.GetCondition(); c.GetStatus() != "False" || c.GetReason() != reasons.Cancelled {
		t.Errorf("run condition = %v, want Cancelled", c)
	}
	if c := taskStatus(st, "slow").GetCondition(); c.GetStatus() != "False" {
		t.Errorf("slow = %v, want stopped", c)
	}
	if c := taskStatus(st, "fin").GetCondition(); c.GetStatus() != "True" {
		t.Errorf("finally = %v, want it ran and succeeded", c)
	}
}
