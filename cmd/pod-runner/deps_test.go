package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestInPodDeps: the in-pod binary links none of Tekton's module (its
// dependencies would cost every Pod's start) but its credential writers,
// which need nothing else, and the step binary, which every step container
// runs, none of the supervisor, its CEL evaluator included.
// allowedTekton are the packages of Tekton's module the in-pod binaries
// link: the entrypoint's credential writers (internal/credsinit) and the
// constants they use.
var allowedTekton = map[string]bool{
	"github.com/tektoncd/pipeline/pkg/credentials/common":      true,
	"github.com/tektoncd/pipeline/pkg/credentials/dockercreds": true,
	"github.com/tektoncd/pipeline/pkg/credentials/gitcreds":    true,
	"github.com/tektoncd/pipeline/pkg/credentials/matcher":     true,
	"github.com/tektoncd/pipeline/pkg/credentials/writer":      true,
	"github.com/tektoncd/pipeline/pkg/apis/pipeline":           true,
}

func TestInPodDeps(t *testing.T) {
	for _, c := range []struct {
		tags   string
		banned []string
	}{
		{"inpod", []string{"github.com/tektoncd/"}},
		{"inpod,steponly", []string{"github.com/tektoncd/", "github.com/google/cel-go/",
			"github.com/e7763abc/pod-runner/internal/supervisor", "github.com/e7763abc/pod-runner/internal/facts"}},
	} {
		out, err := exec.Command("go", "list", "-deps", "-tags", c.tags, ".").Output()
		if err != nil {
			t.Fatalf("go list -tags %s: %v", c.tags, err)
		}
		if !strings.Contains(string(out), "github.com/e7763abc/pod-runner/internal/stepper") {
			t.Fatalf("-tags %s: the binary has no stepper: %s", c.tags, out)
		}
		for _, pkg := range strings.Fields(string(out)) {
			if allowedTekton[pkg] {
				continue
			}
			for _, b := range c.banned {
				if strings.HasPrefix(pkg, b) {
					t.Errorf("-tags %s links %s", c.tags, pkg)
				}
			}
		}
	}
}
