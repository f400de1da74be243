package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/stepper"
)

func init() { commands["step"] = stepMain }

// stepMain is `pod-runner step`, the entrypoint of every step container: it
// runs what the supervisor sends until told to exit (exit 0). Exit 1: the
// supervisor went away, or this container could not serve.
func stepMain(args []string) int {
	fs := flag.NewFlagSet("step", flag.ContinueOnError)
	socket := fs.String("socket", podlayout.Socket, "the supervisor's socket")
	var creds []string
	fs.Func("creds", "a credential of the step's ServiceAccount, as Tekton's entrypoint flag without its dash (basic-git=SECRET=URL, ssh-git=..., basic-docker=..., docker-config=SECRET, docker-cfg=SECRET; repeatable)", func(v string) error {
		creds = append(creds, v)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: pod-runner step [--socket PATH] [--creds CREDENTIAL]... (the container is named by $%s)\n", podlayout.EnvContainer)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	err := stepper.Run(context.Background(), stepper.Options{Socket: *socket, Signals: signals, Creds: creds})
	switch {
	case err == nil:
		return 0
	case errors.Is(err, stepper.ErrSupervisorDone):
		fmt.Fprintf(os.Stderr, "pod-runner step: %v\n", err)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "pod-runner step: %v\n", err)
		return 1
	}
}
