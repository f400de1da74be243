// Package bench measures the engine's own cost: pod-runner running a
// PipelineRun against a shell script that runs the same commands in the same
// order, in the same benchmark run.
package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/test/testbin"
)

// shape is a DAG: deps[i] lists the tasks task i runs after (all < i).
type shape struct {
	name string
	deps [][]int
}

func chain(n int) shape {
	s := shape{name: fmt.Sprintf("chain-%d", n), deps: make([][]int, n)}
	for i := 1; i < n; i++ {
		s.deps[i] = []int{i - 1}
	}
	return s
}

// fan is one task, n-2 parallel tasks after it, and one task after them all.
func fan(n int) shape {
	s := shape{name: fmt.Sprintf("fan-%d", n), deps: make([][]int, n)}
	for i := 1; i < n-1; i++ {
		s.deps[i] = []int{0}
	}
	for i := 1; i < n-1; i++ {
		s.deps[n-1] = append(s.deps[n-1], i)
	}
	return s
}

// random is a seeded random DAG: each task runs after up to 3 earlier ones.
func random(n int, seed uint64) shape {
	r := rand.New(rand.NewPCG(seed, seed))
	s := shape{name: fmt.Sprintf("random-%d", n), deps: make([][]int, n)}
	for i := 1; i < n; i++ {
		for k := r.IntN(4); k > 0; k-- {
			d := r.IntN(i)
			if !slices.Contains(s.deps[i], d) {
				s.deps[i] = append(s.deps[i], d)
			}
		}
	}
	return s
}

// command is what every task runs: a small script, as a Tekton step would.
const command = "echo step > /dev/null"

// pipelineRun is the shape as a PipelineRun with one one-step task per node.
func (s shape) pipelineRun() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: %s}\nspec:\n  timeouts: {pipeline: 1h}\n  pipelineSpec:\n    tasks:\n", s.name)
	for i, deps := range s.deps {
		fmt.Fprintf(&b, "    - name: t%d\n", i)
		if len(deps) > 0 {
			names := make([]string, len(deps))
			for j, d := range deps {
				names[j] = fmt.Sprintf("t%d", d)
			}
			fmt.Fprintf(&b, "      runAfter: [%s]\n", strings.Join(names, ", "))
		}
		fmt.Fprintf(&b, "      taskSpec: {steps: [{name: s, image: busybox, script: %q}]}\n", command)
	}
	return b.String()
}

// shellScript runs the same commands in the same order: each task as its own
// sh process, in waves of tasks whose dependencies are done, a wave's tasks in
// parallel — the best a hand-written script does without a scheduler.
func (s shape) shellScript() string {
	level := make([]int, len(s.deps))
	maxLevel := 0
	for i, deps := range s.deps {
		for _, d := range deps {
			level[i] = max(level[i], level[d]+1)
		}
		maxLevel = max(maxLevel, level[i])
	}
	var b strings.Builder
	b.WriteString("#!/bin/sh\nset -e\n")
	for l := 0; l <= maxLevel; l++ {
		n := 0
		for i := range s.deps {
			if level[i] == l {
				fmt.Fprintf(&b, "sh -c %q &\n", "set -e\n"+command)
				n++
			}
		}
		b.WriteString("wait\n")
	}
	return b.String()
}

// binary is pod-runner as `pod-runner run` uses it; inpod is the static
// in-pod build that runs in the supervisor's container, stepBin its
// step-only build that the step containers run; minimal is the smallest Go
// program that waits, the baseline of the step's memory.
var binary, inpod, stepBin, minimal string

func TestMain(m *testing.M) {
	src := filepath.Join(os.TempDir(), fmt.Sprintf("pod-runner-bench-minimal-%d.go", os.Getpid()))
	err := os.WriteFile(src, []byte("package main\n\nimport \"time\"\n\nfunc main() { time.Sleep(time.Hour) }\n"), 0o644)
	if err == nil {
		binary, err = testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner")
	}
	if err == nil {
		inpod, err = testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner", "inpod")
	}
	if err == nil {
		stepBin, err = testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner", "inpod", "steponly")
	}
	if err == nil {
		minimal, err = testbin.Build(src)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testbin.Cleanup()
	os.Remove(src)
	os.Exit(code)
}

func BenchmarkChain50(b *testing.B)   { benchShape(b, chain(50)) }
func BenchmarkFan100(b *testing.B)    { benchShape(b, fan(100)) }
func BenchmarkRandom200(b *testing.B) { benchShape(b, random(200, 42)) }

// benchShape runs the shell baseline and pod-runner alternately, b.N times
// each, and reports the medians, the engine's overhead per task and the ratio.
func benchShape(b *testing.B, s shape) {
	dir := b.TempDir()
	yamlPath := filepath.Join(dir, "run.yaml")
	shPath := filepath.Join(dir, "run.sh")
	if err := os.WriteFile(yamlPath, []byte(s.pipelineRun()), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(shPath, []byte(s.shellScript()), 0o755); err != nil {
		b.Fatal(err)
	}
	var shell, runner []time.Duration
	b.ResetTimer()
	for b.Loop() {
		shell = append(shell, timeCmd(b, exec.Command("/bin/sh", shPath)))
		runner = append(runner, timeCmd(b, exec.Command(binary, "run", "-q", "-f", yamlPath)))
	}
	b.StopTimer()
	ms, mr := median(shell), median(runner)
	n := float64(len(s.deps))
	overhead := float64(mr-ms) / n / float64(time.Millisecond)
	b.ReportMetric(float64(ms)/float64(time.Millisecond), "shell-ms")
	b.ReportMetric(float64(mr)/float64(time.Millisecond), "pod-runner-ms")
	b.ReportMetric(overhead, "overhead-ms/task")
	b.ReportMetric(float64(mr)/float64(ms), "ratio")
	fmt.Printf("%-11s %3d tasks: shell %8s  pod-runner %8s  overhead %.2f ms/task  ratio %.2fx  (medians of %d)\n",
		s.name, len(s.deps), ms.Round(time.Millisecond), mr.Round(time.Millisecond), overhead, float64(mr)/float64(ms), len(shell))
}

func timeCmd(b *testing.B, cmd *exec.Cmd) time.Duration {
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestShapes checks the generated DAGs: every dependency points backwards,
// and the sizes are the ones the issue names.
func TestShapes(t *testing.T) {
	for _, s := range []shape{chain(50), fan(100), random(200, 42)} {
		for i, deps := range s.deps {
			for _, d := range deps {
				if d >= i {
					t.Errorf("%s: task %d depends on later task %d", s.name, i, d)
				}
			}
		}
		if !strings.Contains(s.shellScript(), "wait") || strings.Count(s.pipelineRun(), "- name: t") != len(s.deps) {
			t.Errorf("%s: generated files are wrong", s.name)
		}
	}
	if f := fan(100); len(f.deps[99]) != 98 {
		t.Errorf("fan-in waits for %d tasks", len(f.deps[99]))
	}
}
