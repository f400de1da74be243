//go:build !steponly

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/stepper"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

func init() { commands["control"] = controlMain }

// controlActions maps `pod-runner control`'s argument to its request.
var controlActions = map[string]steppb.Control_Action{
	"cancel-run-finally": steppb.Control_CANCEL_RUN_FINALLY,
	"stop-run-finally":   steppb.Control_STOP_RUN_FINALLY,
}

// controlMain is `pod-runner control ACTION`, run in the supervisor's
// container by the controller (pods/exec) when a PipelineRun's spec.status
// becomes CancelledRunFinally or StoppedRunFinally: it hands the request to
// the running supervisor over its socket. Exit 0: taken; 1: not; 2: usage.
func controlMain(args []string) int {
	fs := flag.NewFlagSet("control", flag.ContinueOnError)
	socket := fs.String("socket", podlayout.Socket, "the supervisor's socket")
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: pod-runner control [--socket PATH] cancel-run-finally|stop-run-finally\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	action, ok := controlActions[fs.Arg(0)]
	if fs.NArg() != 1 || !ok {
		fs.Usage()
		return 2
	}
	if err := stepper.Control(context.Background(), *socket, action); err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner control %s: %v\n", fs.Arg(0), err)
		return 1
	}
	return 0
}
