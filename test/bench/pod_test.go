package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/process"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// BenchmarkStepIdleRSS: `pod-runner step` lives in every step container for
// the whole run; its resident memory while it waits (goal: at most 8 MiB),
// against the smallest Go program that waits.
func BenchmarkStepIdleRSS(b *testing.B) {
	var step, base []int
	for b.Loop() {
		socket := filepath.Join(b.TempDir(), "supervisor.sock")
		s := exec.Command(stepBin, "step", "--socket", socket)
		s.Env = []string{podlayout.EnvContainer + "=t-s", "PATH=/usr/bin:/bin"}
		m := exec.Command(minimal)
		for _, c := range []*exec.Cmd{s, m} {
			if err := c.Start(); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(300 * time.Millisecond) // both settled and waiting
		step = append(step, vmRSS(b, s.Process.Pid))
		base = append(base, vmRSS(b, m.Process.Pid))
		for _, c := range []*exec.Cmd{s, m} {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	ms, mb := medianInt(step), medianInt(base)
	b.ReportMetric(float64(ms), "step-KiB")
	b.ReportMetric(float64(mb), "minimal-go-KiB")
	b.ReportMetric(float64(ms)/float64(mb), "ratio")
	fmt.Printf("pod-runner step idle RSS: %.1f MiB (goal ≤ 8 MiB), the smallest waiting Go program %.1f MiB: ratio %.2fx (medians of %d)\n",
		float64(ms)/1024, float64(mb)/1024, float64(ms)/float64(mb), len(step))
}

// BenchmarkPodHandoff: in a Pod, the time from one task's step ending to the
// next task's step process starting, along a 30-task chain run by the
// in-pod binaries (supervise and one step process per container, sharing a
// socket), against the same chain run by the local launcher. Tekton's entrypoint polls
// its wait files once a second.
func BenchmarkPodHandoff(b *testing.B) {
	const n = 30
	plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "chain", Uid: "u"}
	for i := range n {
		t := &planpb.Task{Name: "t" + strconv.Itoa(i), TaskRunName: "chain-t" + strconv.Itoa(i),
			Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s", Command: []string{"true"}}}}}
		if i > 0 {
			t.RunAfter = []string{"t" + strconv.Itoa(i-1)}
		}
		plan.Tasks = append(plan.Tasks, t)
	}
	raw, err := proto.Marshal(plan)
	if err != nil {
		b.Fatal(err)
	}
	var pod, host []time.Duration
	for b.Loop() {
		pod = append(pod, handoffs(b, runPod(b, plan, podlayout.EncodePlan(raw)))...)
		host = append(host, handoffs(b, runLocal(b, plan))...)
	}
	slices.Sort(pod)
	slices.Sort(host)
	mp, pp := pod[len(pod)/2], pod[len(pod)*99/100]
	mh := host[len(host)/2]
	b.ReportMetric(ms(mp), "pod-median-ms")
	b.ReportMetric(ms(pp), "pod-p99-ms")
	b.ReportMetric(ms(mh), "local-median-ms")
	b.ReportMetric(ms(mp)/ms(mh), "ratio")
	fmt.Printf("in-pod hand-off (dependency done → next step's process started), %d hand-offs: median %.2f ms, p99 %.2f ms (goal < 5 ms; Tekton polls once a second); local mode median %.2f ms: ratio %.2fx\n",
		len(pod), ms(mp), ms(pp), ms(mh), ms(mp)/ms(mh))
}

// runPod runs the plan as the Pod's processes would and returns the
// supervisor's published final status.
func runPod(b *testing.B, plan *planpb.Plan, planEnv string) *planpb.RunStatus {
	dir := b.TempDir()
	socket := filepath.Join(dir, "run", "supervisor.sock")
	for _, d := range []string{"run", "state"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	var steps []*exec.Cmd
	for _, t := range plan.GetTasks() {
		c := exec.Command(stepBin, "step", "--socket", socket)
		c.Env = []string{podlayout.EnvContainer + "=" + podlayout.StepContainer(t.GetName(), "s"), "PATH=" + os.Getenv("PATH")}
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		steps = append(steps, c)
	}
	sup := exec.Command(inpod, "supervise", "--socket", socket, "--state-dir", filepath.Join(dir, "state"),
		"--termination-log", filepath.Join(dir, "termination-log"), "--steps-see-state-dir")
	sup.Env = []string{podlayout.EnvPlan + "=" + planEnv}
	out, err := sup.Output()
	for _, c := range steps {
		_ = c.Wait()
	}
	if err != nil {
		b.Fatalf("supervise: %v", err)
	}
	s, err := sidecar.Read(strings.NewReader(string(out)))
	if err != nil || s.Final == nil {
		b.Fatalf("read status: %v", err)
	}
	return s.Final
}

// handoffs are the gaps between a task's step end and the next one's start.
func handoffs(b *testing.B, st *planpb.RunStatus) []time.Duration {
	tasks := st.GetTasks()
	var d []time.Duration
	for i := 1; i < len(tasks); i++ {
		prev, next := tasks[i-1].GetSteps(), tasks[i].GetSteps()
		if len(prev) != 1 || len(next) != 1 {
			b.Fatalf("task %d: steps %v %v", i, prev, next)
		}
		d = append(d, next[0].GetStartedAt().AsTime().Sub(prev[0].GetFinishedAt().AsTime()))
	}
	return d
}

// runLocal runs the plan with the local launcher, in process.
func runLocal(b *testing.B, plan *planpb.Plan) *planpb.RunStatus {
	sup := &supervisor.Supervisor{Plan: plan, Launcher: process.New(process.Options{Dir: b.TempDir()})}
	st, err := sup.Run(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func vmRSS(b *testing.B, pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func medianInt(v []int) int {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
