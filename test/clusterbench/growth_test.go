package clusterbench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/test/kube"
)

// TestStatusGrowth runs a 50-task and a 200-task chain through pod-runner's
// controller, each with a controller of its own, and prints the
// supervisor's status stream and the controller's peak resident memory of
// each, with their ratios: linear in the tasks is ×4. Nothing is asserted
// but that both runs succeed.
func TestStatusGrowth(t *testing.T) {
	if os.Getenv("POD_RUNNER_BENCH_CLUSTER") == "" || os.Getenv("KUBECONFIG") == "" {
		t.Skip("a benchmark on a cluster: set POD_RUNNER_BENCH_CLUSTER and KUBECONFIG (make bench-cluster does)")
	}
	type row struct {
		tasks, events int
		logBytes      int
		total         time.Duration
		rssKiB        int
	}
	var rows []row
	for _, n := range []int{50, 200} {
		ns := kube.Namespace(t, "pr-growth")
		startOurs(t, ns)
		pid := controllerPID(t, ns)
		sc := scenario{fmt.Sprintf("%d-task chain", n), func() []v1.PipelineTask {
			ts := []v1.PipelineTask{task("t1")}
			for i := 2; i <= n; i++ {
				ts = append(ts, task(fmt.Sprintf("t%d", i), fmt.Sprintf("t%d", i-1)))
			}
			return ts
		}}
		run := pipelineRun("chain", sc, true)
		run.APIVersion, run.Kind = "tekton.dev/v1", "PipelineRun"
		y, err := yaml.Marshal(run)
		if err != nil {
			t.Fatal(err)
		}
		created := time.Now()
		kube.Kubectl(t, string(y), "-n", ns, "create", "-f", "-")
		var pr v1.PipelineRun
		kube.WaitFor(t, 10*time.Minute, fmt.Sprintf("the %d-task run to end", n), func() bool {
			if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pipelinerun", "chain", "-o", "json")), &pr); err != nil {
				t.Fatal(err)
			}
			return pr.IsDone()
		})
		if !pr.IsSuccessful() {
			t.Fatalf("%d tasks: %+v", n, pr.Status.GetCondition("Succeeded"))
		}
		log := kube.Kubectl(t, "", "-n", ns, "logs", "chain", "-c", podlayout.SupervisorContainer)
		s, err := sidecar.Read(strings.NewReader(log))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{tasks: n, events: s.Events, logBytes: len(log), rssKiB: peakRSS(t, pid), total: time.Since(created)})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "\nstatus growth (pod-runner's controller, one run of a chain per controller)\n")
	fmt.Fprintf(&b, "%-8s %8s %14s %18s %12s\n", "tasks", "events", "supervisor log", "controller peak RSS", "create → done")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-8d %8d %12.2f MB %15.1f MiB %11.1fs\n", r.tasks, r.events, float64(r.logBytes)/1e6, float64(r.rssKiB)/1024, r.total.Seconds())
	}
	fmt.Fprintf(&b, "200 / 50: supervisor log ×%.1f, controller peak RSS ×%.1f (linear: ×4)\n",
		float64(rows[1].logBytes)/float64(rows[0].logBytes), float64(rows[1].rssKiB)/float64(rows[0].rssKiB))
	fmt.Print(b.String())
}

// controllerPID is the host controller started for ns.
func controllerPID(t *testing.T, ns string) int {
	t.Helper()
	var pid int
	kube.WaitFor(t, 30*time.Second, "the controller's process", func() bool {
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, d := range dirs {
			b, err := os.ReadFile(d)
			if err != nil {
				continue
			}
			args := strings.Split(string(b), "\x00")
			if len(args) > 2 && args[1] == "controller" && strings.Contains(string(b), "--namespace\x00"+ns+"\x00") {
				pid, _ = strconv.Atoi(filepath.Base(filepath.Dir(d)))
				return true
			}
		}
		return false
	})
	return pid
}

// peakRSS is the process's peak resident memory (VmHWM) in KiB.
func peakRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
