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

	"github.com/e7763abc/pod-runner/test/testbin"
)

// The examples Tekton's CI runs with its default feature flags (beta): the
// top of examples/v1/{pipelineruns,taskruns} and their beta/ directories.
// alpha/ needs alpha features and no-ci/ is not run by Tekton either.
var dirs = []string{"pipelineruns", "pipelineruns/beta", "taskruns", "taskruns/beta"}

// A skipped example is either not runnable on this machine at all (it needs
// the network or a cluster) and left out of the share that must pass, or a
// feature a later issue brings, and counted as not passing.
type skipReason struct {
	why         string
	notRunnable bool
}

const (
	podMode    = "pod mode (issue 3): "
	entrypoint = podMode + "a step with neither command nor script runs its image's entrypoint, known only from the image"
	taskVolume = podMode + "Task volumes and volumeMounts are mounted at container paths (local mode refuses them, exit 2)"
	probe      = "a sidecar readinessProbe/startupProbe, refused in both modes (steps would start before it passes)"
)

func notRunnable(why string) skipReason { return skipReason{why: why, notRunnable: true} }
func later(why string) skipReason       { return skipReason{why: why} }

// skip lists the examples pod-runner does not run locally, each with why.
var skip = map[string]skipReason{
	"pipelineruns/beta/git-resolver.yaml":                       notRunnable("remote resolution (git resolver) needs the network"),
	"pipelineruns/beta/http-resolver.yaml":                      notRunnable("remote resolution (http resolver) needs the network"),
	"pipelineruns/beta/http-resolver-credentials.yaml":          notRunnable("remote resolution (http resolver) needs the network"),
	"taskruns/beta/bundles-resolver.yaml":                       notRunnable("remote resolution (bundles resolver) needs a registry"),
	"taskruns/beta/git-resolver.yaml":                           notRunnable("remote resolution (git resolver) needs the network"),
	"taskruns/beta/hub-resolver.yaml":                           notRunnable("remote resolution (hub resolver) needs the network"),
	"taskruns/beta/stepaction-git-resolver.yaml":                notRunnable("remote resolution (git resolver) needs the network"),
	"pipelineruns/pipelinerun.yaml":                             notRunnable("clones from GitHub and pushes an image to a registry"),
	"pipelineruns/pipelinerun-with-final-tasks.yaml":            notRunnable("clones from GitHub with the git-init image"),
	"taskruns/authenticating-git-commands.yaml":                 notRunnable("credentials from the ServiceAccount's secrets (creds-init) exist only in a cluster"),
	"taskruns/beta/authenticating-git-commands.yaml":            notRunnable("credentials from the ServiceAccount's secrets (creds-init) exist only in a cluster"),
	"taskruns/creds-init-only-mounts-provided-credentials.yaml": notRunnable("credentials from the ServiceAccount's secrets (creds-init) exist only in a cluster"),

	"taskruns/array-default.yaml":                             later(entrypoint),
	"taskruns/beta/param_array_indexing.yaml":                 later(entrypoint),
	"taskruns/beta/propagated-object-parameters.yaml":         later(entrypoint),
	"pipelineruns/beta/propagated-pipeline-object-param.yaml": later(entrypoint),
	"pipelineruns/stepaction-params.yaml":                     later(entrypoint),
	"taskruns/steps-run-in-order.yaml":                        later(entrypoint),
	"taskruns/step-by-digest.yaml":                            later(entrypoint),
	"taskruns/entrypoint-resolution.yaml":                     later(entrypoint),
	"taskruns/configmap.yaml":                                 later(taskVolume),
	"taskruns/custom-volume.yaml":                             later(taskVolume),
	"taskruns/home-volume.yaml":                               later(taskVolume),
	"taskruns/secret-volume.yaml":                             later(taskVolume),
	"taskruns/secret-volume-params.yaml":                      later(taskVolume),
	"taskruns/task-volume-args.yaml":                          later(taskVolume),
	"taskruns/template-volume.yaml":                           later(taskVolume),
	"taskruns/workspace-volume.yaml":                          later(taskVolume),
	"taskruns/dind-sidecar.yaml":                              later(taskVolume + "; a sidecar; " + probe),
	"taskruns/sidecar-interp.yaml":                            later(taskVolume + "; a sidecar"),
	"taskruns/sidecar-ready.yaml":                             later(taskVolume + "; a sidecar; " + probe),
	"taskruns/sidecar-ready-script.yaml":                      later(taskVolume + "; a sidecar"),
	"taskruns/workspace-in-sidecar.yaml":                      later(taskVolume + "; a sidecar"),
	"taskruns/beta/workspace-in-sidecar.yaml":                 later(podMode + "sidecars"),
	"taskruns/ignore-step-error.yaml":                         later(podMode + "reads /tekton/steps/... by its container path"),
	"taskruns/stepaction-passing-results.yaml":                later(podMode + "reads /tekton/scripts by its container path"),
	"taskruns/beta/workspace-isolation.yaml":                  later(podMode + "isolated (step-level) workspaces are per-container mounts"),
	"pipelineruns/beta/isolated-workspaces.yaml":              later("misspells workspaces[].mountpath, which strict decoding rejects (Tekton's CRD drops unknown fields); isolated workspaces need pod mode"),
	"pipelineruns/workspaces-projected.yaml":                  later(podMode + "projected workspaces are built by the kubelet (local mode refuses them, exit 2)"),
}

var binary string

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
	passed, excluded := 0, 0
	t.Run("examples", func(t *testing.T) {
		for _, f := range files {
			name, _ := filepath.Rel(root, f)
			t.Run(name, func(t *testing.T) {
				if reason, ok := skip[name]; ok {
					if reason.notRunnable {
						mu.Lock()
						excluded++
						mu.Unlock()
					}
					t.Skip(reason.why)
				}
				t.Parallel()
				if err := runExample(f); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				passed++
				mu.Unlock()
			})
		}
	})
	runnable := len(files) - excluded
	share := float64(passed) / float64(runnable)
	t.Logf("Tekton examples: %d in all, %d runnable here (the others need the network or a cluster), %d pass: %.0f%% of the runnable, %.0f%% of all",
		len(files), runnable, passed, 100*share, 100*float64(passed)/float64(len(files)))
	if share < 0.6 {
		t.Errorf("only %.0f%% of the runnable Tekton examples pass; the goal is at least 60%%", 100*share)
	}
	for name := range skip {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("skip list names %s, which is not an example", name)
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
	inputs := splitRuns(string(data))
	for i, in := range inputs {
		if err := runInput(in); err != nil {
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

func runInput(yaml string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "run", "-f", "-", "-o", "json")
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
