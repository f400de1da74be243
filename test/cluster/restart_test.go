package cluster

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/test/kube"
)

// restartDefs: produce waits, then gives a result; consume, after it,
// joins that result with a ConfigMap key the kubelet gives it.
const restartDefs = `
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: before}
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: produce}
spec:
  results: [{name: word}]
  steps:
  - name: make
    image: localhost/busybox:pod-runner
    script: |
      sleep 8
      printf original > $(results.word.path)
---
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: consume}
spec:
  params: [{name: in}]
  results: [{name: joined}]
  steps:
  - name: join
    image: localhost/busybox:pod-runner
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: settings, key: greeting}}
    script: printf '%s+%s' "$(params.in)" "$GREETING" > $(results.joined.path)
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: chain}
spec:
  tasks:
  - name: produce
    taskRef: {name: produce}
  - name: consume
    taskRef: {name: consume}
    params: [{name: in, value: $(tasks.produce.results.word)}]
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: run}
spec:
  managedBy: pod-runner.dev/controller
  pipelineRef: {name: chain}
  taskRunTemplate: {serviceAccountName: default}
`

// TestRestartRunsAsItBegan: the controller is stopped mid-run; meanwhile
// the run's Pipeline and one Task are deleted, the other Task and the
// ConfigMap edited. Started again, it finishes the run as it began: the
// Pod is the record of a running run.
func TestRestartRunsAsItBegan(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-restart")
	stop := kube.StartController(t, ns)
	kube.Kubectl(t, restartDefs, "-n", ns, "create", "-f", "-")
	kube.WaitFor(t, time.Minute, "produce's TaskRun", func() bool {
		return strings.TrimSpace(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "name")) == "taskrun.tekton.dev/run-produce"
	})
	stop()

	kube.Kubectl(t, "", "-n", ns, "delete", "pipeline", "chain")
	kube.Kubectl(t, "", "-n", ns, "delete", "task", "consume")
	kube.Kubectl(t, "", "-n", ns, "patch", "task", "produce", "--type=json",
		"-p", `[{"op":"replace","path":"/spec/steps/0/script","value":"printf edited > $(results.word.path)"}]`)
	kube.Kubectl(t, "", "-n", ns, "patch", "configmap", "settings", "--type=merge", "-p", `{"data":{"greeting":"after"}}`)

	kube.StartController(t, ns)
	var pr *v1.PipelineRun
	kube.WaitFor(t, 2*time.Minute, "the run to end", func() bool {
		pr = getPipelineRun(t, ns, "run")
		return pr.IsDone()
	})
	r := &finished{pr: pr, trs: taskRuns(t, ns, "run")}
	expect(t, "run", r.reason(), "Succeeded")
	expect(t, "consume's result", r.result("consume", "joined"), "original+before")
	if spec := r.trs["consume"].Status.TaskSpec; spec == nil || len(spec.Steps) != 1 || !strings.Contains(spec.Steps[0].Script, "GREETING") {
		t.Errorf("consume's taskSpec %+v: want the Task as it was", spec)
	}
	if pods := strings.Fields(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "name")); len(pods) != 1 {
		t.Errorf("pods %v, want the one", pods)
	}
}
