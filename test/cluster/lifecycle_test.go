package cluster

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/test/kube"
)

// TestGracefulCancelRunsFinally: spec.status CancelledRunFinally reaches
// the running supervisor through pods/exec (`pod-runner control`); the
// running task is stopped, finally runs in the same Pod, the run ends
// Cancelled.
func TestGracefulCancelRunsFinally(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	kube.Kubectl(t, sleeper, "-n", ns, "create", "-f", "-")
	kube.WaitFor(t, time.Minute, "the task's TaskRun", func() bool {
		return strings.TrimSpace(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "name")) == "taskrun.tekton.dev/slow-wait"
	})
	kube.Kubectl(t, "", "-n", ns, "patch", "pipelinerun", "slow", "--type=merge", "-p", `{"spec":{"status":"CancelledRunFinally"}}`)
	cancelled := time.Now()
	var pr *v1.PipelineRun
	kube.WaitFor(t, 2*time.Minute, "the run to end", func() bool {
		pr = getPipelineRun(t, ns, "slow")
		return pr.IsDone()
	})
	t.Logf("graceful cancel → done: %.1fs", time.Since(cancelled).Seconds())
	if c := pr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "Cancelled" {
		t.Errorf("condition %+v, want Cancelled", c)
	}
	trs := &v1.TaskRunList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "json")), trs); err != nil {
		t.Fatal(err)
	}
	got := map[string]*v1.TaskRun{}
	for i := range trs.Items {
		got[trs.Items[i].Name] = &trs.Items[i]
	}
	if c := got["slow-cleanup"]; c == nil || !c.IsSuccessful() || c.Status.PodName != "slow" {
		t.Errorf("finally TaskRun %+v, want it run in the same Pod and succeeded", c)
	}
	if w := got["slow-wait"]; w == nil || w.IsSuccessful() || !w.IsDone() {
		t.Errorf("the running task's TaskRun %+v, want it stopped", w)
	}
	pods := &corev1.PodList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Annotations["pod-runner.dev/control"] != "cancel-run-finally" {
		t.Errorf("%d pods; want one, annotated as told cancel-run-finally", len(pods.Items))
	}
}

const badImage = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: bad}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
  pipelineSpec:
    tasks:
    - name: pull
      taskSpec:
        steps:
        - name: nope
          image: localhost/no-such-image:missing
          script: echo never
`

// TestBadImageFailsFast: a step whose image cannot be pulled ends the run
// Failed within the kubelet's first back-off, naming container and image;
// the task's TaskRun carries Tekton's TaskRunImagePullFailed.
func TestBadImageFailsFast(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	created := time.Now()
	kube.Kubectl(t, badImage, "-n", ns, "create", "-f", "-")
	var pr *v1.PipelineRun
	kube.WaitFor(t, 2*time.Minute, "the run to end", func() bool {
		pr = getPipelineRun(t, ns, "bad")
		return pr.IsDone()
	})
	t.Logf("create → failed: %.1fs", time.Since(created).Seconds())
	c := pr.Status.GetCondition("Succeeded")
	if c == nil || c.Reason != "Failed" || !strings.Contains(c.Message, "localhost/no-such-image:missing") || !strings.Contains(c.Message, `"pull-nope"`) {
		t.Errorf("condition %+v, want Failed naming the container and image", c)
	}
	tr := &v1.TaskRun{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskrun", "bad-pull", "-o", "json")), tr); err != nil {
		t.Fatal(err)
	}
	if c := tr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "TaskRunImagePullFailed" {
		t.Errorf("TaskRun condition %+v, want TaskRunImagePullFailed", c)
	}
}

const stoppable = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: stop}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
  pipelineSpec:
    tasks:
    - name: first
      taskSpec:
        steps:
        - name: work
          image: localhost/busybox:pod-runner
          script: sleep 4; echo done
    - name: second
      runAfter: [first]
      taskSpec:
        steps:
        - name: work
          image: localhost/busybox:pod-runner
          script: echo second
    finally:
    - name: cleanup
      taskSpec:
        steps:
        - name: echo
          image: localhost/busybox:pod-runner
          script: echo cleanup
`

// TestGracefulStop: spec.status StoppedRunFinally lets the running task
// finish, starts no new one, runs finally; the run ends Cancelled with the
// unstarted task skipped as gracefully stopped.
func TestGracefulStop(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	kube.Kubectl(t, stoppable, "-n", ns, "create", "-f", "-")
	kube.WaitFor(t, time.Minute, "the first TaskRun", func() bool {
		return strings.TrimSpace(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "name")) == "taskrun.tekton.dev/stop-first"
	})
	kube.Kubectl(t, "", "-n", ns, "patch", "pipelinerun", "stop", "--type=merge", "-p", `{"spec":{"status":"StoppedRunFinally"}}`)
	var pr *v1.PipelineRun
	kube.WaitFor(t, 2*time.Minute, "the run to end", func() bool {
		pr = getPipelineRun(t, ns, "stop")
		return pr.IsDone()
	})
	if c := pr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "Cancelled" {
		t.Errorf("condition %+v, want Cancelled", c)
	}
	if sk := pr.Status.SkippedTasks; len(sk) != 1 || sk[0].Name != "second" || sk[0].Reason != v1.GracefullyStoppedSkip {
		t.Errorf("skippedTasks %+v, want second, gracefully stopped", sk)
	}
	for _, name := range []string{"stop-first", "stop-cleanup"} {
		tr := &v1.TaskRun{}
		if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskrun", name, "-o", "json")), tr); err != nil {
			t.Fatal(err)
		}
		if !tr.IsSuccessful() {
			t.Errorf("TaskRun %s: %+v, want it to succeed", name, tr.Status.Conditions)
		}
	}
}

const timesOut = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: late}
spec:
  managedBy: pod-runner.dev/controller
  taskRunTemplate: {serviceAccountName: default}
  timeouts: {pipeline: 8s}
  pipelineSpec:
    tasks:
    - name: wait
      taskSpec:
        steps:
        - name: sleep
          image: localhost/busybox:pod-runner
          script: sleep 300
`

// TestPipelineTimeout: timeouts.pipeline ends the run PipelineRunTimeout
// (enforced in the Pod, backed by the controller) and stops its task.
func TestPipelineTimeout(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	created := time.Now()
	kube.Kubectl(t, timesOut, "-n", ns, "create", "-f", "-")
	var pr *v1.PipelineRun
	kube.WaitFor(t, 2*time.Minute, "the run to end", func() bool {
		pr = getPipelineRun(t, ns, "late")
		return pr.IsDone()
	})
	t.Logf("create → timed out: %.1fs", time.Since(created).Seconds())
	if c := pr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "PipelineRunTimeout" {
		t.Errorf("condition %+v, want PipelineRunTimeout", c)
	}
	tr := &v1.TaskRun{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskrun", "late-wait", "-o", "json")), tr); err != nil {
		t.Fatal(err)
	}
	if !tr.IsDone() || tr.IsSuccessful() {
		t.Errorf("TaskRun late-wait %+v, want it ended unsuccessfully", tr.Status.Conditions)
	}
}

// TestDeleteRemovesPodAndTaskRuns: deleting a running PipelineRun removes
// its Pod and TaskRuns (owner references; Kubernetes' garbage collector).
func TestDeleteRemovesPodAndTaskRuns(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	kube.Kubectl(t, sleeper, "-n", ns, "create", "-f", "-")
	kube.WaitFor(t, time.Minute, "the task's TaskRun", func() bool {
		return strings.TrimSpace(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "name")) == "taskrun.tekton.dev/slow-wait"
	})
	kube.Kubectl(t, "", "-n", ns, "delete", "pipelinerun", "slow", "--wait=false")
	kube.WaitFor(t, 2*time.Minute, "the Pod and TaskRuns to go", func() bool {
		return strings.TrimSpace(kube.Kubectl(t, "", "-n", ns, "get", "pods,taskruns", "-o", "name")) == ""
	})
}
