// Package conformance runs Tekton's own examples (examples/v1 of the pinned
// Tekton module) through pod-runner and requires each to succeed, as Tekton's
// CI requires of its controller.
package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/test/exampleimages"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// The examples Tekton's CI runs: the top of examples/v1/{pipelineruns,
// taskruns} and their beta/ directories with its beta pass's feature flags,
// their alpha/ directories with its alpha pass's (test/e2e-tests-kind-
// {beta,alpha}.env), given to each run as a feature-flags ConfigMap
// document. no-ci/ is not run by Tekton either.
var dirs = []string{"pipelineruns", "pipelineruns/beta", "taskruns", "taskruns/beta", "pipelineruns/alpha", "taskruns/alpha"}

// alphaFlags is the feature-flags ConfigMap of Tekton's alpha pass, for the
// examples under an alpha/ directory.
const alphaFlags = `apiVersion: v1
kind: ConfigMap
metadata: {name: feature-flags, namespace: tekton-pipelines}
data:
  enable-api-fields: alpha
  results-from: sidecar-logs
  keep-pod-on-cancel: "true"
  enable-cel-in-whenexpression: "true"
  enable-param-enum: "true"
  enable-artifacts: "true"
  enable-concise-resolver-syntax: "true"
  enable-kubernetes-sidecar: "true"
  enable-termination-message-compression: "true"
`

// An example pod-runner does not pass locally is in the ledger with why:
// either it is never run here, because it needs the network or a cluster
// (running it would send traffic off this machine), and it is left out of
// the share that must pass; or it is an expected failure: it runs, and must
// fail with output saying want. An expected failure that passes, or fails
// some other way, fails the test, so the ledger only shrinks and stays true.
type entry struct {
	why  string
	want string // in the failure's output; empty: never run
	// racy: the example races with itself; it may pass too (and then
	// counts as passed).
	racy bool
}

const (
	sidecarRace = "a race in the example: its step reads what its sidecar writes, with nothing waiting (as on the cluster: test/cluster's ledger)"
	entrypoint  = "a step with neither command nor script runs its image's entrypoint, and exampleimages has no stand-in for this image's (Tekton's nop, Docker's daemon)"
)

func notRunnable(why string) entry { return entry{why: why} }
func fails(why, want string) entry { return entry{why: why, want: want} }
func racy(why, want string) entry  { return entry{why: why, want: want, racy: true} }
func (e entry) runnable() bool     { return e.want != "" }

var (
	noEntrypoint = fails(entrypoint, "is only known in pod mode")
)

// ledger lists the examples pod-runner does not pass locally, each with why.
var ledger = map[string]entry{
	"pipelineruns/beta/git-resolver.yaml":                       notRunnable("its resolver reads the network; run with its URLs pointed at this machine by test/e2e TestResolverExamples"),
	"pipelineruns/beta/http-resolver.yaml":                      notRunnable("its resolver reads the network; run with its URLs pointed at this machine by test/e2e TestResolverExamples"),
	"pipelineruns/beta/http-resolver-credentials.yaml":          notRunnable("its resolver reads the network; run with its URLs pointed at this machine by test/e2e TestResolverExamples"),
	"taskruns/beta/bundles-resolver.yaml":                       notRunnable("its resolver reads the network; run with its URLs pointed at this machine by test/e2e TestResolverExamples"),
	"taskruns/beta/git-resolver.yaml":                           notRunnable("its resolver reads the network; run with its URLs pointed at this machine by test/e2e TestResolverExamples"),
	"taskruns/beta/hub-resolver.yaml":                           notRunnable("its resolver reads the network; run with its URLs pointed at this machine by test/e2e TestResolverExamples"),
	"taskruns/beta/stepaction-git-resolver.yaml":                notRunnable("remote resolution (git resolver) needs the network"),
	"pipelineruns/pipelinerun.yaml":                             notRunnable("clones from GitHub and pushes an image to a registry"),
	"pipelineruns/pipelinerun-with-final-tasks.yaml":            notRunnable("clones from GitHub with the git-init image"),
	"taskruns/authenticating-git-commands.yaml":                 notRunnable("credentials from the ServiceAccount's secrets (creds-init) exist only in a cluster"),
	"taskruns/beta/authenticating-git-commands.yaml":            notRunnable("credentials from the ServiceAccount's secrets (creds-init) exist only in a cluster"),
	"taskruns/creds-init-only-mounts-provided-credentials.yaml": notRunnable("credentials from the ServiceAccount's secrets (creds-init) exist only in a cluster"),

	"taskruns/sidecar-ready-script.yaml": racy(sidecarRace, "/shared/message"),
	"taskruns/sidecar-interp.yaml":       racy(sidecarRace, "/shared/value"),
	"taskruns/dind-sidecar.yaml":         noEntrypoint,

	"taskruns/alpha/step-stream-results.yaml":   notRunnable("its crane step asks mirror.gcr.io for an image's digest"),
	"taskruns/alpha/step-stream-workspace.yaml": notRunnable("its crane steps ask mirror.gcr.io for an image's digest"),
}

// floor is the share of the runnable examples that passed when the ledger
// was last measured: a lower one fails the test.
const floor = 0.95

var binary string

// entrypointDir holds docker-entrypoint.sh (images/debian).
var entrypointDir, _ = filepath.Abs(filepath.Join("..", "..", "images", "debian"))

func TestMain(m *testing.M) {
	var err error
	if binary, err = testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// tektonExamples is the examples/v1 directory of the Tekton module in go.mod.
func tektonExamples(t *testing.T) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		t.Fatalf("locate the Tekton module: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "examples", "v1")
}

func TestTektonExamples(t *testing.T) {
	root := tektonExamples(t)
	var files []string
	for _, d := range dirs {
		matches, err := filepath.Glob(filepath.Join(root, d, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, matches...)
	}
	if len(files) < 50 {
		t.Fatalf("found %d examples under %s", len(files), root)
	}
	var mu sync.Mutex
	passed, excluded, racyRun, racyPassed := 0, 0, 0, 0
	t.Run("examples", func(t *testing.T) {
		for _, f := range files {
			name, _ := filepath.Rel(root, f)
			e, listed := ledger[name]
			if listed && !e.runnable() {
				excluded++
				continue
			}
			if e.racy {
				racyRun++
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				err := runExample(f)
				switch {
				case e.racy && err == nil:
					mu.Lock()
					passed++
					racyPassed++
					mu.Unlock()
				case listed && err == nil:
					t.Errorf("passes now: remove it from the ledger (it failed because %s)", e.why)
				case listed && !strings.Contains(err.Error(), e.want):
					t.Errorf("fails, but not because %s (output lacks %q): %v", e.why, e.want, err)
				case !listed && err != nil:
					t.Error(err)
				case !listed:
					mu.Lock()
					passed++
					mu.Unlock()
				}
			})
		}
	})
	runnable := len(files) - excluded
	share := float64(passed) / float64(runnable)
	t.Logf("Tekton examples: %d in all, %d runnable here (the others need the network or a cluster), %d pass, %d fail as the ledger expects: %.0f%% of the runnable, %.0f%% of all",
		len(files), runnable, passed, runnable-passed, 100*share, 100*float64(passed)/float64(len(files)))
	// The floor is for pod-runner, not for the examples' own races: it
	// leaves them out.
	if steady := float64(passed-racyPassed) / float64(runnable-racyRun); steady < floor {
		t.Errorf("only %.1f%% of the runnable Tekton examples that do not race with themselves pass, below the %.0f%% measured when the ledger was last updated", 100*steady, 100*floor)
	}
	for name := range ledger {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("the ledger names %s, which is not an example", name)
		}
	}
}

// runExample runs one example and requires it to succeed. pod-runner runs
// one PipelineRun or TaskRun per invocation; a file holding several is run
// once per run, with every other document of the file.
func runExample(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if strings.Contains(filepath.ToSlash(file), "/alpha/") {
		data = append([]byte(alphaFlags+"---\n"), data...)
	}
	flags, err := exampleimages.EntrypointFlags([]string{file})
	if err != nil {
		return err
	}
	inputs := splitRuns(string(data))
	for i, in := range inputs {
		if err := runInput(in, flags); err != nil {
			if len(inputs) > 1 {
				return fmt.Errorf("run %d of %d: %w", i+1, len(inputs), err)
			}
			return err
		}
	}
	return nil
}

// splitRuns returns one input per PipelineRun or TaskRun document: that run
// and all the documents that are not runs.
func splitRuns(yaml string) []string {
	docs := regexp.MustCompile(`(?m)^---\s*$`).Split(yaml, -1)
	isRun := regexp.MustCompile(`(?m)^kind:\s*(PipelineRun|TaskRun)\s*$`)
	var runs, others []string
	for _, d := range docs {
		if isRun.MatchString(d) {
			runs = append(runs, d)
		} else {
			others = append(others, d)
		}
	}
	if len(runs) <= 1 {
		return []string{yaml}
	}
	inputs := make([]string, len(runs))
	for i, r := range runs {
		inputs[i] = strings.Join(append(append([]string{}, others...), r), "\n---\n")
	}
	return inputs
}

// runInput runs one input; flags give the commands of the images its
// steps run with none (--entrypoint), which this machine has: the bash
// image's docker-entrypoint.sh from images/debian, put first in PATH.
func runInput(yaml string, flags []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"run", "-f", "-", "-o", "json"}, flags...)...)
	cmd.Env = append(os.Environ(), "PATH="+entrypointDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdin = strings.NewReader(yaml)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("exit %d:\n%s", exit.ExitCode(), tail(stderr.String(), 30))
	}
	return err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestSplitRuns(t *testing.T) {
	in := "kind: Task\n---\nkind: PipelineRun\nmetadata: {name: a}\n---\nkind: PipelineRun\nmetadata: {name: b}\n"
	got := splitRuns(in)
	if len(got) != 2 || !strings.Contains(got[0], "name: a") || strings.Contains(got[0], "name: b") ||
		!strings.Contains(got[1], "kind: Task") {
		t.Errorf("splitRuns = %q", got)
	}
	if one := splitRuns("kind: TaskRun\n"); len(one) != 1 {
		t.Errorf("one run split into %d", len(one))
	}
}
