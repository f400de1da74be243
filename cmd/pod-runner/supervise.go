//go:build !steponly

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
	nativeSidecar := fs.Bool("native-sidecar", false, "this container is a native sidecar (restartPolicy Always): once the run ended, wait for the kubelet's SIGTERM; a restart finds the run over")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	opts := podlaunch.Options{Socket: *socket, StateDir: *stateDir}
	if *hostPaths {
		opts.StepView = func(task string) podlaunch.StepView {
			dir := filepath.Join(*stateDir, podlayout.TaskDir(task))
			return podlaunch.StepView{Results: filepath.Join(dir, "results"), Steps: filepath.Join(dir, "steps"), Run: filepath.Join(dir, "run")}
		}
	}
	// Pod deletion sends SIGTERM: the run is cancelled and its status
	// published before the kubelet's grace period ends. A step container
	// that hears it first says so (TERMINATE): a native sidecar hears the
	// kubelet only after the step containers ended.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	terminated := make(chan struct{})
	go func() {
		<-sigs
		close(terminated)
		cancel()
	}()
	// `pod-runner control` (the controller, through pods/exec) reaches the
	// supervisor over the same socket; the socket listens only once Run
	// has begun, after sup is set.
	var sup atomic.Pointer[supervisor.Supervisor]
	opts.Control = func(a steppb.Control_Action) error {
		if a == steppb.Control_TERMINATE {
			cancel()
			return nil
		}
		s := sup.Load()
		if s == nil {
			return errors.New("the run has not started")
		}
		return podlaunch.ControlSupervisor(s)(a)
	}
	launcher := podlaunch.New(opts)
	// A native sidecar that exits is restarted by the kubelet: it stays
	// until the kubelet stops it, once the step containers ended.
	linger := func(code int) int {
		if *nativeSidecar {
			<-terminated
		}
		return code
	}
	fail := func(msg string) int {
		fmt.Fprintf(os.Stderr, "pod-runner supervise: %s\n", msg)
		if err := sidecar.WriteFailure(*termLog, msg); err != nil {
			fmt.Fprintf(os.Stderr, "pod-runner supervise: %v\n", err)
		}
		// Step containers waiting for work must hear that none comes.
		_ = launcher.Close()
		return linger(2)
	}
	defer func() {
		if r := recover(); r != nil {
			code = fail(fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
		}
	}()

	if *nativeSidecar {
		if err := markStarted(*stateDir); err != nil {
			return fail(err.Error())
		}
	}
	plan, err := decodePlan(os.Getenv(podlayout.EnvPlan))
	if err != nil {
		return fail(err.Error())
	}
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
		return linger(0)
	}
	return linger(1)
}

// startedFile, in the state volume (which outlives a container's restart),
// marks that a supervisor ran in this Pod.
const startedFile = "supervisor-started"

// markStarted creates startedFile; if it exists, this container is a
// restart (the first supervisor died): the run's steps went with it, and
// running the Plan again would run them twice.
func markStarted(stateDir string) error {
	f, err := os.OpenFile(filepath.Join(stateDir, startedFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return errors.New("the supervisor restarted after its first run in this Pod ended unexpectedly: the run cannot go on")
	}
	if err != nil {
		return fmt.Errorf("mark the supervisor started: %w", err)
	}
	return f.Close()
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
