// Command injector turns a Tekton PipelineRun or TaskRun into the one Pod
// that runs it (`injector compile`), and runs delegated PipelineRuns on a
// cluster (`injector controller`).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	switch os.Args[1] {
	case "compile":
		os.Exit(compileMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	case "controller":
		os.Exit(controllerMain(os.Args[2:], os.Stderr))
	default:
		fmt.Fprintf(os.Stderr, "injector: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: injector COMMAND [flags]\ncommands: compile, controller\nrun 'injector COMMAND --help' for its flags")
}
