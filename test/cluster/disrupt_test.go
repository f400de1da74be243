package cluster

// The TestDisrupt tests stop parts of the cluster itself (local-k8s's API
// server, kubelet, the whole node), which would break every other test
// running against it at the same time: `make e2e` leaves them out and
// `make faults` runs them after it, one at a time.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// localK8s is local-k8s's directory (its up.sh), which the disruptive
// tests need to start again what they stopped.
func localK8s(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LOCAL_K8S")
	if dir == "" {
		testenv.Require(t, "local-k8s, to stop and start its parts", errors.New("LOCAL_K8S is not set (make faults sets it)"))
	}
	if _, err := os.Stat(filepath.Join(dir, "up.sh")); err != nil {
		testenv.Require(t, "local-k8s, to stop and start its parts", err)
	}
	return dir
}

// signalPart sends sig to one of local-k8s's processes (by its PID file)
// and waits until it has exited (an API server given SIGTERM drains its
// requests for up to a minute first, refusing new ones).
func signalPart(t *testing.T, name string, sig syscall.Signal) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kube.State(), "run", name+".pid"))
	if err != nil {
		t.Fatalf("%s's PID file: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s's PID file: %v", name, err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %s (%d): %v", name, pid, err)
	}
	kube.WaitFor(t, 2*time.Minute, name+" to exit", func() bool { return syscall.Kill(pid, 0) != nil })
}

// up starts whatever of local-k8s is not running (its up.sh is
// idempotent) and waits for the node to be Ready.
func up(t *testing.T) {
	t.Helper()
	cmd := exec.Command(filepath.Join(localK8s(t), "up.sh"))
	cmd.Env = append(os.Environ(), "K="+kube.State())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("up.sh: %v: %s", err, out)
	}
	// The tests after this one need new namespaces to get their default
	// ServiceAccount: the kube-controller-manager, which lived through
	// the disruption, takes up to a minute or so to notice the API server
	// is back.
	probe := fmt.Sprintf("settle-%x", time.Now().UnixNano()&0xffffff)
	kube.Kubectl(t, "", "create", "namespace", probe)
	defer kube.Kubectl(t, "", "delete", "namespace", probe, "--wait=false")
	kube.WaitFor(t, 3*time.Minute, "a new namespace's default ServiceAccount", func() bool {
		return exec.Command("kubectl", "-n", probe, "get", "serviceaccount", "default").Run() == nil
	})
}

// startChains creates n chain runs in a new namespace with a controller,
// and returns once every run's first TaskRun exists: the runs are going.
func startChains(t *testing.T, prefix string, n, tasks int, sleep string) (ns, want string, c *kube.Controller, bin string) {
	t.Helper()
	installCRDs(t)
	ns = kube.Namespace(t, "pr-"+prefix)
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	yaml, want := chainRuns(prefix, n, tasks, sleep)
	c = kube.StartControllerProcess(t, bin, ns)
	kube.Kubectl(t, yaml, "-n", ns, "create", "-f", "-")
	kube.WaitFor(t, 2*time.Minute, "every run's first TaskRun", func() bool {
		out := kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "name")
		return strings.Count(out, "-t0\n") == n
	})
	// Mid-run is once every container has started: a kubelet stopped while
	// it starts one makes that start fail ("failed to start containerd
	// task: context canceled", exit 128), which fails its task, as it would
	// fail Tekton's; with the supervisor a native sidecar, the first
	// TaskRun exists before the kubelet has started the steps' containers.
	kube.WaitFor(t, 2*time.Minute, "every Pod's containers to have started", func() bool {
		pods := &corev1.PodList{}
		if json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods) != nil || len(pods.Items) != n {
			return false
		}
		for _, p := range pods.Items {
			statuses := slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses)
			if len(statuses) != len(p.Spec.InitContainers)+len(p.Spec.Containers) {
				return false
			}
			for _, cs := range statuses {
				if cs.State.Waiting != nil {
					return false
				}
			}
		}
		return true
	})
	return ns, want, c, bin
}

// waitRuns waits until every PipelineRun in ns is done, retrying through
// an API server that is not back yet.
func waitRuns(t *testing.T, ns string, n int, timeout time.Duration) []v1.PipelineRun {
	t.Helper()
	var list v1.PipelineRunList
	kube.WaitFor(t, timeout, "every run to end", func() bool {
		out, err := exec.Command("kubectl", "-n", ns, "get", "pipelineruns", "-o", "json").Output()
		if err != nil || json.Unmarshal(out, &list) != nil || len(list.Items) != n {
			return false
		}
		for i := range list.Items {
			if !list.Items[i].IsDone() {
				return false
			}
		}
		return true
	})
	return list.Items
}

// TestDisruptAPIServerRestart: the API server stops mid-run for a few
// seconds (the controller's watches and log streams break, the
// supervisors go on) and starts again: every run finishes as if nothing
// happened.
func TestDisruptAPIServerRestart(t *testing.T) { restartMidRun(t, "kube-apiserver", "apiserver") }

// TestDisruptKubeletRestart: the kubelet stops mid-run and starts again;
// the containers go on meanwhile, but nothing reports them: every run
// finishes with all its results.
func TestDisruptKubeletRestart(t *testing.T) { restartMidRun(t, "kubelet", "kubelet") }

// restartMidRun stops one of local-k8s's parts with SIGTERM while chain
// runs go, starts it again 5 s after it exited, and checks every run
// finished with all its results.
func restartMidRun(t *testing.T, part, prefix string) {
	enabled(t)
	localK8s(t)
	const runs, tasks = 3, 4
	ns, want, _, _ := startChains(t, prefix, runs, tasks, "3")
	signalPart(t, part, syscall.SIGTERM)
	time.Sleep(5 * time.Second)
	up(t)
	waitRuns(t, ns, runs, 3*time.Minute)
	checkChains(t, ns, prefix, runs, tasks, want)
}

// TestDisruptNodeCrash: the whole node fails at once, as a power cut
// would: the kubelet, every container, containerd, the API server, etcd
// and the controller are SIGKILLed mid-run; then everything starts again.
// Each run must end, Failed with a reason or Succeeded, never hang; no
// TaskRun is left unfinished and no run gets a second Pod.
func TestDisruptNodeCrash(t *testing.T) {
	enabled(t)
	localK8s(t)
	const runs, tasks = 3, 4
	ns, _, c, bin := startChains(t, "crash", runs, tasks, "3")
	crash(t, c)
	up(t)
	kube.StartControllerProcess(t, bin, ns)
	ended := waitRuns(t, ns, runs, 5*time.Minute)

	for i := range ended {
		pr := &ended[i]
		cond := pr.Status.GetCondition(apis.ConditionSucceeded)
		t.Logf("%s: %s: %s", pr.Name, cond.Reason, cond.Message)
		if cond.IsFalse() && (cond.Reason == "" || cond.Message == "") {
			t.Errorf("%s failed without a reason and message: %+v", pr.Name, cond)
		}
		if strings.Contains(cond.Message, "event/v1") {
			t.Errorf("%s: the status stream leaked into the message: %s", pr.Name, cond.Message)
		}
		if pr.Status.CompletionTime == nil {
			t.Errorf("%s: no completionTime", pr.Name)
		}
		for task, tr := range taskRuns(t, ns, pr.Name) {
			if c := tr.Status.GetCondition(apis.ConditionSucceeded); c == nil || c.IsUnknown() || tr.Status.CompletionTime == nil {
				t.Errorf("%s/%s not final: %+v", pr.Name, task, c)
			}
		}
	}
	pods := &corev1.PodList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > runs {
		t.Errorf("%d pods for %d runs", len(pods.Items), runs)
	}
}

// crash kills the node's every part at once: the kubelet first (so that
// it reports nothing of what follows), every container, then the daemons
// and the controller, with SIGKILL.
func crash(t *testing.T, c *kube.Controller) {
	t.Helper()
	sock := filepath.Join(kube.State(), "containerd", "containerd.sock")
	signalPart(t, "kubelet", syscall.SIGKILL)
	c.Kill()
	out, err := exec.Command("ctr", "-a", sock, "-n", "k8s.io", "tasks", "ls", "-q").Output()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v", err)
	}
	for _, id := range strings.Fields(string(out)) {
		_ = exec.Command("ctr", "-a", sock, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id).Run()
	}
	// The shims, which would otherwise report the containers' ends to a
	// containerd that starts again.
	_ = exec.Command("pkill", "-KILL", "-f", fmt.Sprintf("containerd-shim.*-address %s", sock)).Run()
	for _, part := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "containerd"} {
		signalPart(t, part, syscall.SIGKILL)
	}
}
