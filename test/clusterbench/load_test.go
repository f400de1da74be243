package clusterbench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// loadTasks is the length of each load run's chain.
const loadTasks = 5

// loadQPS and loadBurst are the API budget both controllers get: ours by
// default; Tekton's controller doubles what its flags say.
const loadQPS, loadBurst = 50, 100

// loadRow is what one controller did with the whole load.
type loadRow struct {
	ours           bool
	runs           int
	createSpread   time.Duration   // first create → last create returned
	span           time.Duration   // first create → last run seen Succeeded
	latencies      []time.Duration // each run's create → seen Succeeded
	cpu, nodeCPU   time.Duration   // the controller's, the whole machine's (non-idle) during span
	peakRSSKiB     int
	pods, taskRuns int
}

// TestLoad creates POD_RUNNER_LOAD_RUNS (100) PipelineRuns of a 5-task
// chain at once, through Tekton's controller and then through ours on the
// same cluster, and prints runs per minute, create → Succeeded p50 and
// p99, and each controller's CPU time and peak resident memory. Every run
// must succeed with its chained result and five final TaskRuns; nothing
// timed is asserted.
func TestLoad(t *testing.T) {
	if os.Getenv("POD_RUNNER_BENCH_LOAD") == "" || os.Getenv("KUBECONFIG") == "" {
		t.Skip("a load benchmark on a cluster: set POD_RUNNER_BENCH_LOAD and KUBECONFIG (make bench-load does)")
	}
	for _, img := range []string{Image, "localhost/pod-runner:dev"} {
		if !tektonlocal.HasImage(img) {
			t.Skipf("image %s not in the cluster's containerd: run make k8s-images", img)
		}
	}
	n := 100
	if s := os.Getenv("POD_RUNNER_LOAD_RUNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("POD_RUNNER_LOAD_RUNS=%q: want a positive number", s)
		}
		n = v
	}
	var rows []loadRow
	for _, ours := range []bool{false, true} {
		rows = append(rows, loadPhase(t, n, ours))
	}
	fmt.Print(loadTable(rows))
}

// loadPhase runs the load through one controller in a namespace of its
// own, which it deletes (and waits for) before the next phase.
func loadPhase(t *testing.T, n int, ours bool) loadRow {
	t.Helper()
	ctx := context.Background()
	ns := kube.Namespace(t, "pr-load")
	var pid int
	var stop func()
	if ours {
		bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
		if err != nil {
			t.Fatal(err)
		}
		c := kube.StartControllerProcess(t, bin, ns)
		pid, stop = c.Pid(), c.Stop
	} else {
		c := tektonlocal.Start(t, tektonlocal.Options{Namespace: ns, Args: []string{
			"-kube-api-qps", strconv.Itoa(loadQPS / 2), "-kube-api-burst", strconv.Itoa(loadBurst / 2)}})
		pid, stop = c.Pid(), c.Stop
	}
	w := newWatcher(t, ns)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("load-%03d", i)
	}

	cpu0, node0 := cpuTime(t, pid), nodeCPUTime(t)
	created := make([]time.Time, n)
	first := time.Now()
	var g errgroup.Group
	g.SetLimit(20)
	for i, name := range names {
		g.Go(func() error {
			created[i] = time.Now()
			_, err := w.tekton.TektonV1().PipelineRuns(ns).Create(ctx, loadRun(name, ours), metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("create: %v", err)
	}
	row := loadRow{ours: ours, runs: n, createSpread: time.Since(first)}
	done := w.waitAll(t, names, 30*time.Minute)
	row.cpu, row.nodeCPU = cpuTime(t, pid)-cpu0, nodeCPUTime(t)-node0
	row.peakRSSKiB = peakRSS(t, pid)
	last := first
	for i, name := range names {
		row.latencies = append(row.latencies, done[name].Sub(created[i]))
		if done[name].After(last) {
			last = done[name]
		}
	}
	row.span = last.Sub(first)
	row.taskRuns, row.pods = checkLoad(ctx, t, w, names)
	if ours && row.pods != n {
		t.Errorf("pod-runner: %d Pods for %d runs, want one each", row.pods, n)
	}
	t.Logf("%s: %d runs Succeeded in %.1fs", controllerName(ours), n, row.span.Seconds())

	// The next phase starts on a node without this one's Pods; the
	// controller stays until then, for any finalizer of its own.
	kube.Kubectl(t, "", "delete", "namespace", ns, "--wait=false")
	kube.WaitFor(t, 10*time.Minute, "namespace "+ns+" to be gone", func() bool {
		_, err := w.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return err != nil
	})
	stop()
	return row
}

// loadRun is a 5-task chain passing a counter along through params: the
// run's result "count" is 5 only if every link ran and handed on its result.
func loadRun(name string, ours bool) *v1.PipelineRun {
	var tasks []v1.PipelineTask
	for i := 1; i <= loadTasks; i++ {
		pt := v1.PipelineTask{Name: fmt.Sprintf("t%d", i), Params: v1.Params{{Name: "prev", Value: *v1.NewStructuredValues("0")}},
			TaskSpec: &v1.EmbeddedTask{TaskSpec: v1.TaskSpec{
				Params:  v1.ParamSpecs{{Name: "prev", Type: v1.ParamTypeString}},
				Results: []v1.TaskResult{{Name: "count", Type: v1.ResultsTypeString}},
				Steps:   []v1.Step{{Name: "count", Image: Image, Script: `printf %s $(( $(params.prev) + 1 )) > $(results.count.path)`}},
			}}}
		if i > 1 {
			pt.Params[0].Value = *v1.NewStructuredValues(fmt.Sprintf("$(tasks.t%d.results.count)", i-1))
		}
		tasks = append(tasks, pt)
	}
	pr := pipelineRun(name, scenario{tasks: func() []v1.PipelineTask { return tasks }}, ours)
	// Under load a run waits far longer than alone.
	pr.Spec.Timeouts.Pipeline.Duration = time.Hour
	pr.Spec.PipelineSpec.Results = []v1.PipelineResult{{Name: "count",
		Value: *v1.NewStructuredValues(fmt.Sprintf("$(tasks.t%d.results.count)", loadTasks))}}
	return pr
}

// waitAll waits until a watch has shown every named run done, logging
// progress every 30 s, and returns when each was first seen done.
func (w *watcher) waitAll(t *testing.T, names []string, timeout time.Duration) map[string]time.Time {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		w.mu.Lock()
		done := map[string]time.Time{}
		for _, n := range names {
			if at, ok := w.prs[n]; ok {
				done[n] = at
			}
		}
		w.mu.Unlock()
		if len(done) == len(names) {
			return done
		}
		select {
		case <-w.wake:
		case <-tick.C:
			t.Logf("%d of %d runs done", len(done), len(names))
		case <-deadline:
			t.Fatalf("%d of %d runs done after %s", len(done), len(names), timeout)
		}
	}
}

// checkLoad asserts that every run Succeeded with count 5 and five
// Succeeded TaskRuns, and counts the namespace's TaskRuns and Pods.
func checkLoad(ctx context.Context, t *testing.T, w *watcher, names []string) (taskRuns, pods int) {
	t.Helper()
	prs, err := w.tekton.TektonV1().PipelineRuns(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(loadTasks)
	for _, pr := range prs.Items {
		if !pr.IsSuccessful() {
			t.Errorf("%s: %+v", pr.Name, pr.Status.Conditions)
			continue
		}
		got := ""
		for _, r := range pr.Status.Results {
			if r.Name == "count" {
				got = r.Value.StringVal
			}
		}
		if got != want || len(pr.Status.ChildReferences) != loadTasks {
			t.Errorf("%s: result count %q (want %q), %d child references (want %d)", pr.Name, got, want, len(pr.Status.ChildReferences), loadTasks)
		}
	}
	if len(prs.Items) != len(names) {
		t.Errorf("%d PipelineRuns, want %d", len(prs.Items), len(names))
	}
	trs, err := w.tekton.TektonV1().TaskRuns(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trs.Items {
		if !tr.IsSuccessful() {
			t.Errorf("TaskRun %s: %+v", tr.Name, tr.Status.Conditions)
		}
	}
	if len(trs.Items) != loadTasks*len(names) {
		t.Errorf("%d TaskRuns, want %d", len(trs.Items), loadTasks*len(names))
	}
	ps, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(trs.Items), len(ps.Items)
}

func loadTable(rows []loadRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nload: %d PipelineRuns of a %d-task chain (results passed along) created at once; both controllers at %d QPS, burst %d\n",
		rows[0].runs, loadTasks, loadQPS, loadBurst)
	fmt.Fprintf(&b, "%-11s %9s %9s %9s %9s %10s %10s %9s %8s %6s\n", "controller", "runs/min", "p50", "p99", "all done",
		"ctrl CPU", "node CPU", "peak RSS", "created", "pods")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-11s %9.1f %8.1fs %8.1fs %8.1fs %9.1fs %9.1fs %5.0f MiB %7.1fs %6d\n", controllerName(r.ours),
			float64(r.runs)/r.span.Minutes(), percentile(r.latencies, 50).Seconds(), percentile(r.latencies, 99).Seconds(),
			r.span.Seconds(), r.cpu.Seconds(), r.nodeCPU.Seconds(), float64(r.peakRSSKiB)/1024, r.createSpread.Seconds(), r.pods)
	}
	if len(rows) == 2 {
		tk, pr := rows[0], rows[1]
		fmt.Fprintf(&b, "pod-runner / Tekton: runs/min ×%.1f, p50 ×%.2f, p99 ×%.2f, controller CPU ×%.2f, node CPU ×%.2f, peak RSS ×%.2f\n",
			(float64(pr.runs)/pr.span.Minutes())/(float64(tk.runs)/tk.span.Minutes()),
			ratio(percentile(pr.latencies, 50), percentile(tk.latencies, 50)), ratio(percentile(pr.latencies, 99), percentile(tk.latencies, 99)),
			ratio(pr.cpu, tk.cpu), ratio(pr.nodeCPU, tk.nodeCPU), float64(pr.peakRSSKiB)/float64(tk.peakRSSKiB))
	}
	b.WriteString("p50/p99: create → a watch saw the run Succeeded; ctrl CPU: the controller's user+system time from the first create\n" +
		"to the last run done; node CPU: the whole machine's (kubelet, containerd, API server, steps); peak RSS: the controller's VmHWM.\n")
	return b.String()
}

func ratio(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }

// percentile is the nearest-rank p-th percentile.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}

// clockTick is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime is the process's user+system CPU time (/proc/PID/stat).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	u, err1 := strconv.Atoi(f[11])
	s, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(u+s) * clockTick
}

// nodeCPUTime is the machine's non-idle CPU time, all cores (/proc/stat).
func nodeCPUTime(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		t.Fatalf("/proc/stat: %q", line)
	}
	var busy int
	for i, v := range f[1:] {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("/proc/stat: %q", line)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// not idle or iowait, nor guest time (already in user).
		if i < 8 && i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * clockTick
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(101-i)*time.Second)
	}
	for _, c := range []struct {
		ds   []time.Duration
		p    int
		want time.Duration
	}{
		{ds, 50, 50 * time.Second},
		{ds, 99, 99 * time.Second},
		{ds, 100, 100 * time.Second},
		{ds[:1], 99, 100 * time.Second},
		{ds[:3], 50, 99 * time.Second},
		{nil, 50, 0},
	} {
		if got := percentile(c.ds, c.p); got != c.want {
			t.Errorf("percentile(%d values, %d) = %v, want %v", len(c.ds), c.p, got, c.want)
		}
	}
}
