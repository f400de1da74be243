// Package clusterbench runs the same PipelineRuns through Tekton's own
// controller and pod-runner's on the same local cluster, in one run, and
// prints how long each takes and how soon TaskRun status follows the tasks.
package clusterbench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// Image is the step image of both controllers' runs (make k8s-images).
const Image = "localhost/busybox:pod-runner"

// ManagedBy delegates a run to pod-runner.
const ManagedBy = "pod-runner.dev/controller"

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// stepScript echoes, and prints the host's uptime (10 ms resolution; the
// busybox date has no %N) at the step's real start and end, which the
// bench reads back from the step's log.
const stepScript = `read up _ < /proc/uptime; echo "bench-start $up"
echo hello
read up _ < /proc/uptime; echo "bench-end $up"
`

func task(name string, after ...string) v1.PipelineTask {
	return v1.PipelineTask{Name: name, RunAfter: after, TaskSpec: &v1.EmbeddedTask{TaskSpec: v1.TaskSpec{
		Steps: []v1.Step{{Name: "echo", Image: Image, Script: stepScript}},
	}}}
}

// scenario is one pipeline shape of the comparison.
type scenario struct {
	name  string
	tasks func() []v1.PipelineTask
}

var scenarios = []scenario{
	{"5-task chain", func() []v1.PipelineTask {
		ts := []v1.PipelineTask{task("t1")}
		for i := 2; i <= 5; i++ {
			ts = append(ts, task(fmt.Sprintf("t%d", i), fmt.Sprintf("t%d", i-1)))
		}
		return ts
	}},
	{"10+1 fan-out", func() []v1.PipelineTask {
		var ts []v1.PipelineTask
		var names []string
		for i := 1; i <= 10; i++ {
			n := fmt.Sprintf("p%d", i)
			ts, names = append(ts, task(n)), append(names, n)
		}
		return append(ts, task("join", names...))
	}},
	{"1 task", func() []v1.PipelineTask { return []v1.PipelineTask{task("only")} }},
}

// pipelineRun is the run, written fully (Tekton's controller runs here
// with no webhook to default it).
func pipelineRun(name string, sc scenario, ours bool) *v1.PipelineRun {
	pr := &v1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PipelineRunSpec{
			PipelineSpec:    &v1.PipelineSpec{Tasks: sc.tasks()},
			TaskRunTemplate: v1.PipelineTaskRunTemplate{ServiceAccountName: "default"},
			Timeouts:        &v1.TimeoutFields{Pipeline: &metav1.Duration{Duration: 10 * time.Minute}},
		},
	}
	if ours {
		m := ManagedBy
		pr.Spec.ManagedBy = &m
	}
	return pr
}

// runs is how many runs of each scenario and controller (POD_RUNNER_BENCH_RUNS, 3).
func runs(t *testing.T) int {
	n := 3
	if s := os.Getenv("POD_RUNNER_BENCH_RUNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("POD_RUNNER_BENCH_RUNS=%q: want a positive number", s)
		}
		n = v
	}
	return n
}

// TestCompare: every scenario N times through each controller, one run at
// a time, interleaved so that drift in the machine's load hits both alike;
// prints the table. Nothing timed is asserted: every run must succeed.
func TestCompare(t *testing.T) {
	// Minutes of runs: not part of make e2e (which sets POD_RUNNER_CLUSTER).
	if os.Getenv("POD_RUNNER_BENCH_CLUSTER") == "" || os.Getenv("KUBECONFIG") == "" {
		t.Skip("a benchmark on a cluster: set POD_RUNNER_BENCH_CLUSTER and KUBECONFIG (make bench-cluster does)")
	}
	for _, img := range []string{Image, "localhost/pod-runner:dev"} {
		if !tektonlocal.HasImage(img) {
			t.Skipf("image %s not in the cluster's containerd: run make k8s-images", img)
		}
	}
	n := runs(t)
	ctx := context.Background()
	ns := kube.Namespace(t, "pr-bench")
	tektonlocal.Start(t, tektonlocal.Options{Namespace: ns})
	startOurs(t, ns)
	w := newWatcher(t, ns)

	type key struct {
		sc   int
		ours bool
	}
	results := map[key][]*record{}
	for i := 0; i < n; i++ {
		for si, sc := range scenarios {
			for _, ours := range []bool{false, true} {
				name := fmt.Sprintf("%s-%d", strings.NewReplacer(" ", "", "+", "x", "-", "").Replace(sc.name), i)
				if ours {
					name = "pr-" + name
				} else {
					name = "tk-" + name
				}
				rec := w.run(ctx, t, pipelineRun(name, sc, ours), ours)
				results[key{si, ours}] = append(results[key{si, ours}], rec)
				t.Logf("%-10s %-13s run %d: %.2fs (steps started %.2f–%.2fs after create)", controllerName(ours), sc.name, i+1,
					rec.total().Seconds(), rec.firstStart().Seconds(), rec.lastStart().Seconds())
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\ncreate → Succeeded, median of %d (one run at a time; trivial echo steps, %s)\n", n, Image)
	fmt.Fprintf(&b, "%-16s %10s %12s %12s\n", "PipelineRun", "Tekton", "pod-runner", "ours/Tekton")
	totals := map[key]time.Duration{}
	for si, sc := range scenarios {
		for _, ours := range []bool{false, true} {
			totals[key{si, ours}] = median(durations(results[key{si, ours}], (*record).total))
		}
		tk, pr := totals[key{si, false}], totals[key{si, true}]
		fmt.Fprintf(&b, "%-16s %9.2fs %11.2fs %12.2f\n", sc.name, tk.Seconds(), pr.Seconds(), pr.Seconds()/tk.Seconds())
	}
	single := len(scenarios) - 1
	fmt.Fprintf(&b, "\none pod start = a single task's create → its step's real start (median)\n")
	for _, ours := range []bool{false, true} {
		podStart := median(durations(results[key{single, ours}], (*record).firstStart))
		fmt.Fprintf(&b, "%-10s pod start %.2fs;", controllerName(ours), podStart.Seconds())
		for si := 0; si < single; si++ {
			extra := totals[key{si, ours}] - totals[key{single, ours}]
			fmt.Fprintf(&b, " %s = single task %+.2f pod starts;", scenarios[si].name, extra.Seconds()/podStart.Seconds())
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "goal: pod-runner's chain and fan-out within one pod start of its single task\n")
	fmt.Fprintf(&b, "\nstatus lag, medians (this machine's clock; the step's real start and end from its log)\n")
	fmt.Fprintf(&b, "%-10s %-7s %14s %14s %14s %6s\n", "", "tasks", "TaskRun seen", "Running seen", "Succeeded seen", "n")
	fmt.Fprintf(&b, "%-10s %-7s %14s %14s %14s\n", "", "", "− step start", "− step start", "− step end")
	for _, ours := range []bool{false, true} {
		for _, later := range []bool{false, true} {
			var seen, running, done []time.Duration
			for si := range scenarios {
				for _, rec := range results[key{si, ours}] {
					for _, tr := range rec.tasks {
						if tr.later != later {
							continue
						}
						seen = append(seen, tr.seen.Sub(tr.stepStart))
						running = append(running, tr.running.Sub(tr.stepStart))
						done = append(done, tr.done.Sub(tr.stepEnd))
					}
				}
			}
			group := "first"
			if later {
				group = "later"
			}
			fmt.Fprintf(&b, "%-10s %-7s %13.2fs %13.2fs %13.2fs %6d\n", controllerName(ours), group,
				median(seen).Seconds(), median(running).Seconds(), median(done).Seconds(), len(seen))
		}
	}
	b.WriteString(`first: tasks that start with the run; later: tasks that wait for another (chain links, the join).
Tekton creates a TaskRun when it schedules the task and marks it Running when its pod runs, before
the step's entrypoint is released: its start lags can be negative. pod-runner creates the TaskRun,
Running, when the supervisor's log says the task started.
`)
	fmt.Print(b.String())
}

func controllerName(ours bool) string {
	if ours {
		return "pod-runner"
	}
	return "Tekton"
}

// startOurs runs `injector controller` on the host for the namespace until
// the test ends: this module's, or the binary POD_RUNNER_BENCH_INJECTOR
// names (to compare two builds).
func startOurs(t *testing.T, ns string) {
	t.Helper()
	if bin := os.Getenv("POD_RUNNER_BENCH_INJECTOR"); bin != "" {
		kube.StartControllerBinary(t, bin, ns)
		return
	}
	kube.StartController(t, ns)
}
