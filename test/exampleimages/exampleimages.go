// Package exampleimages says what the images Tekton's examples name would
// run when a step gives no command — each image's own ENTRYPOINT and CMD,
// as Tekton reads them from its registry — for the tests that run the
// examples where there is no registry: through the controller on the
// cluster, and locally (`pod-runner run --entrypoint`).
package exampleimages

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Commands are the images' commands, by repository (the Debian image the
// cluster runs them in, and this machine, have the bash image's
// docker-entrypoint.sh).
var Commands = map[string][]string{
	"mirror.gcr.io/busybox":      {"sh"},
	"cgr.dev/chainguard/busybox": {"/bin/sh"},
	"mirror.gcr.io/alpine":       {"/bin/sh"},
	"mirror.gcr.io/ubuntu":       {"/bin/bash"},
	"mirror.gcr.io/bash":         {"docker-entrypoint.sh"},
	"mirror.gcr.io/python":       {"python3"},
	"mirror.gcr.io/node":         {"node"},
	"mirror.gcr.io/perl":         {"perl"},
	// Tekton's own nop image (cmd/nop), which is not built here: a shell
	// doing what its binary does (log "Exiting...", exit 0; with
	// tekton_run_indefinitely, wait for SIGINT or SIGTERM first).
	"ghcr.io/tektoncd/pipeline/nop-8eac7c133edad5df719dc37b36b62482": {"sh", "-c",
		`if [ "$1" = tekton_run_indefinitely ]; then echo "Waiting indefinitely..." >&2; trap 'exit 0' INT TERM; while :; do sleep 1; done; fi; echo "Exiting..." >&2`, "nop"},
}

// Repo is image without its tag or digest.
func Repo(image string) string {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo
}

var imageRE = regexp.MustCompile(`(?m)(?:image|default):\s*["']?([a-z0-9][^\s"']*)`)

// EntrypointFlags are --entrypoint=IMAGE=CMD for every image the files
// name whose command Commands knows, sorted.
func EntrypointFlags(files []string) ([]string, error) {
	seen := map[string]bool{}
	var flags []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, m := range imageRE.FindAllStringSubmatch(string(b), -1) {
			cmd, ok := Commands[Repo(m[1])]
			if !ok || seen[m[1]] {
				continue
			}
			seen[m[1]] = true
			js, _ := json.Marshal(cmd)
			flags = append(flags, fmt.Sprintf("--entrypoint=%s=%s", m[1], js))
		}
	}
	sort.Strings(flags)
	return flags, nil
}
