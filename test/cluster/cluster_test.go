// Package cluster runs `injector controller` on the host against a real
// Kubernetes API server and kubelet (../shared/tools/local-k8s, through
// `make cluster-e2e`) with Tekton's CRDs installed and no Tekton controller,
// and checks what it does with delegated PipelineRuns.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// enabled: these tests need a running cluster with the images imported,
// which `make cluster-e2e` provides; `make test` does not run them.
func enabled(t *testing.T) {
	t.Helper()
	if os.Getenv("POD_RUNNER_CLUSTER") == "" || os.Getenv("KUBECONFIG") == "" {
		testenv.Require(t, "a cluster", errors.New("POD_RUNNER_CLUSTER and KUBECONFIG are not set (make e2e and make cluster-e2e set them)"))
	}
}

func installCRDs(t *testing.T) { kube.InstallTektonCRDs(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

const definitions = `
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: echo}
spec:
  params: [{name: msg, type: string}]
  results: [{name: said}]
  steps:
  - name: say
    image: localhost/busybox:pod-runner
    script: |
      echo "$(params.msg)"
      printf '%s' "$(params.msg)" > $(results.said.path)
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: fan}
spec:
  tasks:
  - name: a
    taskRef: {name: echo}
    params: [{name: msg, value: from-a}]
  - name: b
    taskRef: {name: echo}
    params: [{name: msg, value: from-b}]
  - name: join
    taskRef: {name: echo}
    params: [{name: msg, value: "$(tasks.a.results.said)+$(tasks.b.results.said)"}]
`

func pipelineRun(name string, managed bool) string {
	s := fmt.Sprintf(`apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s}
spec:
  pipelineRef: {name: fan}
  taskRunTemplate: {serviceAccountName: default}
  timeouts: {pipeline: 10m}
`, name)
	if managed {
		s += "  managedBy: pod-runner.dev/controller\n"
	}
	return s
}

func getPipelineRun(t *testing.T, ns, name string) *v1.PipelineRun {
	t.Helper()
	pr := &v1.PipelineRun{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pipelinerun", name, "-o", "json")), pr); err != nil {
		t.Fatal(err)
	}
	return pr
}

// TestDelegatedRun: a PipelineRun with managedBy runs as one Pod, its
// TaskRuns and status written by the controller; one without is left alone.
// The supervisor is a native sidecar by default, the Pod's first container
// with --native-sidecar=false (Kubernetes before 1.29).
func TestDelegatedRun(t *testing.T) {
	enabled(t)
	installCRDs(t)
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		flags  []string
		native bool
	}{
		{"native sidecar", nil, true},
		{"first container", []string{"--native-sidecar=false"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := kube.Namespace(t, "pr-e2e")
			kube.StartControllerProcess(t, bin, ns, tc.flags...)
			delegatedRun(t, ns, tc.native)
		})
	}
}

func delegatedRun(t *testing.T, ns string, native bool) {
	kube.Kubectl(t, definitions, "-n", ns, "apply", "-f", "-")
	kube.Kubectl(t, pipelineRun("mine", true)+"---\n"+pipelineRun("theirs", false), "-n", ns, "create", "-f", "-")

	created := time.Now()
	var pr *v1.PipelineRun
	for deadline := time.Now().Add(3 * time.Minute); ; {
		pr = getPipelineRun(t, ns, "mine")
		if pr.IsDone() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not done after 3m: %+v", pr.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("create → done: %.1fs", time.Since(created).Seconds())
	if !pr.IsSuccessful() {
		t.Fatalf("run failed: %+v", pr.Status.Conditions)
	}

	pods := &corev1.PodList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Name != "mine" {
		t.Fatalf("%d pods, want exactly the run's", len(pods.Items))
	}
	spec := pods.Items[0].Spec
	inits := slices.IndexFunc(spec.InitContainers, func(c corev1.Container) bool { return c.Name == podlayout.SupervisorContainer })
	regular := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == podlayout.SupervisorContainer })
	if native && (inits < 0 || spec.InitContainers[inits].RestartPolicy == nil || *spec.InitContainers[inits].RestartPolicy != corev1.ContainerRestartPolicyAlways || regular >= 0) {
		t.Errorf("the supervisor is not a native sidecar: init containers %v, containers %v", spec.InitContainers, spec.Containers)
	}
	if !native && regular != 0 {
		t.Errorf("the supervisor is not the Pod's first container: containers %v", spec.Containers)
	}
	trs := &v1.TaskRunList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-l", "tekton.dev/pipelineRun=mine", "-o", "json")), trs); err != nil {
		t.Fatal(err)
	}
	if len(trs.Items) != 3 || len(pr.Status.ChildReferences) != 3 {
		t.Fatalf("%d TaskRuns, %d childReferences: want 3", len(trs.Items), len(pr.Status.ChildReferences))
	}
	for _, tr := range trs.Items {
		if !tr.IsSuccessful() || tr.Status.PodName != "mine" || tr.Spec.ManagedBy == nil || len(tr.Status.Steps) != 1 {
			t.Errorf("TaskRun %s: succeeded %v podName %q managedBy %v steps %d", tr.Name, tr.IsSuccessful(), tr.Status.PodName, tr.Spec.ManagedBy, len(tr.Status.Steps))
		}
		if tr.Labels["tekton.dev/pipelineTask"] == "join" {
			if len(tr.Status.Results) != 1 || tr.Status.Results[0].Value.StringVal != "from-a+from-b" {
				t.Errorf("join results %+v", tr.Status.Results)
			}
		}
	}
	// A step's log is its container's, readable with kubectl logs, under
	// the name its TaskRun's steps[].container gives (as tkn reads it).
	for _, tr := range trs.Items {
		c := tr.Status.Steps[0].Container
		if want := podlayout.StepContainer(tr.Labels["tekton.dev/pipelineTask"], "say"); c != want {
			t.Errorf("TaskRun %s steps[0].container %q, the Pod's container is %q", tr.Name, c, want)
		}
		if out := kube.Kubectl(t, "", "-n", ns, "logs", tr.Status.PodName, "-c", c); !strings.Contains(out, "from-") {
			t.Errorf("log of %s: %q", c, out)
		}
	}

	// Left alone: no Pod or TaskRun of ours. (Its status is not checked:
	// Tekton's own controller, when another test runs it, takes the run.)
	if out := kube.Kubectl(t, "", "-n", ns, "get", "pods", "-l", "tekton.dev/pipelineRun=theirs,app.kubernetes.io/managed-by=pod-runner", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("a run without managedBy got a pod-runner Pod: %s", out)
	}
	theirTRs := &v1.TaskRunList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-l", "tekton.dev/pipelineRun=theirs", "-o", "json")), theirTRs); err != nil {
		t.Fatal(err)
	}
	for _, tr := range theirTRs.Items {
		if tr.Spec.ManagedBy != nil && *tr.Spec.ManagedBy == "pod-runner.dev/controller" {
			t.Errorf("a run without managedBy got our TaskRun %s", tr.Name)
		}
	}
}

const sleeper = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: slow}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
  pipelineSpec:
    tasks:
    - name: wait
      taskSpec:
        steps:
        - name: sleep
          image: localhost/busybox:pod-runner
          script: sleep 300
    finally:
    - name: cleanup
      taskSpec:
        steps:
        - name: echo
          image: localhost/busybox:pod-runner
          script: echo cleanup
`

// TestRestartThenCancel: a controller restarted mid-run picks the run up
// without a second Pod; spec.status Cancelled then stops it now, finally
// does not run, and the run ends Cancelled.
func TestRestartThenCancel(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	stop := kube.StartController(t, ns)
	kube.Kubectl(t, sleeper, "-n", ns, "create", "-f", "-")
	kube.WaitFor(t, time.Minute, "the task's TaskRun", func() bool {
		return strings.TrimSpace(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "name")) == "taskrun.tekton.dev/slow-wait"
	})
	stop()
	kube.StartController(t, ns)
	kube.Kubectl(t, "", "-n", ns, "patch", "pipelinerun", "slow", "--type=merge", "-p", `{"spec":{"status":"Cancelled"}}`)
	cancelled := time.Now()
	var pr *v1.PipelineRun
	kube.WaitFor(t, 2*time.Minute, "the run to end", func() bool {
		pr = getPipelineRun(t, ns, "slow")
		return pr.IsDone()
	})
	t.Logf("cancel → done: %.1fs", time.Since(cancelled).Seconds())
	if c := pr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "Cancelled" {
		t.Errorf("condition %+v, want Cancelled", c)
	}
	if pods := strings.Fields(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "name")); len(pods) != 1 {
		t.Errorf("pods %v, want the one", pods)
	}
	// The kubelet stops every container at once; a step container leaves
	// its SIGTERM to the supervisor (stepper), so the supervisor hears the
	// cancel before any step ends and starts no finally, as Tekton.
	if trs := strings.Fields(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "name")); len(trs) != 1 {
		t.Errorf("TaskRuns %v: finally ran after Cancelled", trs)
	}
}
