package main

import (
	"fmt"
	"os"

	"github.com/e7763abc/pod-runner/internal/mountns"
)

func init() { commands[mountns.Command] = mountMain }

// mountMain runs a step in a mount namespace where it sees Tekton's paths;
// the process launcher starts it (process.Options.Self). The step-only
// binary has it too: it starts in a millisecond where the whole one, with
// Tekton's packages to initialise, takes tens.
func mountMain(args []string) int {
	err := mountns.Main(args)
	fmt.Fprintf(os.Stderr, "pod-runner: %v\n", err)
	return 126
}
