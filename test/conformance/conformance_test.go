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
)

// The examples Tekton's CI runs with its default feature flags (beta): the
// top of examples/v1/{pipelineruns,taskruns} and their beta/ directories.
// alpha/ needs alpha features and no-ci/ is not run by Tekton either.
var dirs = []string{"pipelineruns", "pipelineruns/beta", "taskruns", "taskruns/beta"}

// skip lists the examples pod-runner does not run locally, each with why.
var skip = map[string]string{}

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pod-runner-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pod-runner")
	build := exec.Command("go", "build", "-o", binary, "github.com/e7763abc/pod-runner/cmd/pod-runner")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pod-runner:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
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
	passed, skipped := 0, 0
	t.Run("examples", func(t *testing.T) {
		for _, f := range files {
			name, _ := filepath.Rel(root, f)
			t.Run(name, func(t *testing.T) {
				if reason, ok := skip[name]; ok {
					mu.Lock()
					skipped++
					mu.Unlock()
					t.Skip(reason)
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
	share := float64(passed) / float64(len(files))
	t.Logf("Tekton examples: %d run, %d passed, %d skipped (%.0f%% of all pass)", len(files), passed, skipped, 100*share)
	if share < 0.6 {
		t.Errorf("only %.0f%% of Tekton's examples pass; the goal is at least 60%%", 100*share)
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
