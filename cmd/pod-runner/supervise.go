package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/podlaunch"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

func init() { commands["supervise"] = superviseMain }

// exitWait bounds how long the supervisor waits, once the run ended, for
// connected step containers to take their exit.
const exitWait = 10 * time.Second

// superviseMain is `pod-runner supervise`, the pod's first container: it runs
// the Plan from $POD_RUNNER_PLAN through the step containers, prints every
// status event on stdout (sidecar.LinePrefix lines) and leaves the final
// status as its termination message. Exit 0: the run succeeded; 1: it ran
// and failed; 2: it could not run (bad plan, setup error, panic), with the
// reason as the termination message.
func superviseMain(args []string) (code int) {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	socket := fs.String("socket", podlayout.Socket, "the Unix socket step containers connect to")
	stateDir := fs.String("state-dir", podlayout.StateDir, "the supervisor's mount of the state volume")
	termLog := fs.String("termination-log", podlayout.TerminationLog, "where the final status goes")
	hostPaths := fs.Bool("steps-see-state-dir", false, "the steps see the state directory at --state-dir, not at Tekton's paths (steps outside containers, as in tests)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	opts := podlaunch.Options{Socket: *socket, StateDir: *stateDir}
	if *hostPaths {
		opts.StepView = func(task string) (string, string) {
			dir := filepath.Join(*stateDir, podlayout.TaskDir(task))
			return filepath.Join(dir, "results"), filepath.Join(dir, "steps")
		}
	}
	// `pod-runner control` (the controller, through pods/exec) reaches the
	// supervisor over the same socket; the socket listens only once Run
	// has begun, after sup is set.
	var sup atomic.Pointer[supervisor.Supervisor]
	opts.Control = func(a steppb.Control_Action) error {
		s := sup.Load()
		if s == nil {
			return errors.New("the run has not started")
		}
		return podlaunch.ControlSupervisor(s)(a)
	}
	launcher := podlaunch.New(opts)
	fail := func(msg string) int {
		fmt.Fprintf(os.Stderr, "pod-runner supervise: %s\n", msg)
		if err := sidecar.WriteFailure(*termLog, msg); err != nil {
			fmt.Fprintf(os.Stderr, "pod-runner supervise: %v\n", err)
		}
		// Step containers waiting for work must hear that none comes.
		_ = launcher.Close()
		return 2
	}
	defer func() {
		if r := recover(); r != nil {
			code = fail(fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
		}
	}()

	plan, err := decodePlan(os.Getenv(podlayout.EnvPlan))
	if err != nil {
		return fail(err.Error())
	}
	// Pod deletion sends SIGTERM: the run is cancelled and its status
	// published before the kubelet's grace period ends.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	pub := sidecar.NewPublisher(os.Stdout)
	s := &supervisor.Supervisor{Plan: plan, Launcher: launcher, Reporter: pub}
	sup.Store(s)
	status, err := s.Run(ctx)
	if err != nil {
		return fail(err.Error())
	}
	if err := pub.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner supervise: %v\n", err)
	}
	if err := sidecar.WriteTermination(*termLog, status); err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner supervise: %v\n", err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), exitWait)
	defer cancel()
	if err := launcher.Wait(wctx); err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner supervise: %v\n", err)
	}
	if status.GetCondition().GetStatus() == "True" {
		return 0
	}
	return 1
}

// decodePlan reads the Plan (podlayout.EncodePlan).
func decodePlan(env string) (*planpb.Plan, error) {
	if env == "" {
		return nil, fmt.Errorf("no plan: $%s is empty", podlayout.EnvPlan)
	}
	b, err := podlayout.DecodePlan(env)
	if err != nil {
		return nil, fmt.Errorf("plan in $%w", err)
	}
	plan := &planpb.Plan{}
	if err := proto.Unmarshal(b, plan); err != nil {
		return nil, fmt.Errorf("plan in $%s: %w", podlayout.EnvPlan, err)
	}
	return plan, nil
}
