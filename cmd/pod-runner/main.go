// Command pod-runner runs a Tekton PipelineRun or TaskRun: on this machine
// (`pod-runner run`), or inside the one Pod the injector compiled it into.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// commands maps a subcommand to its entry point, which returns the exit code.
// Each lives in its own file; build tags keep Tekton-linked ones out of the
// in-pod binary.
var commands = map[string]func(args []string) int{}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "pod-runner: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(cmd(os.Args[2:]))
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: pod-runner COMMAND [flags]\ncommands: %s\nrun 'pod-runner COMMAND --help' for its flags\n", strings.Join(names, ", "))
}
