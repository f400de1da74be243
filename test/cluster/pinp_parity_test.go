package cluster

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
)

// pinpDefinitions: a parent Pipeline whose tasks run a referenced child
// Pipeline (params and a workspace bound through, a subPath joined, a
// result between its tasks, its own finally) after a task of its own, and
// an embedded one, then a task after the child.
const pinpDefinitions = `
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: inner}
spec:
  params: [{name: word, type: string}]
  workspaces: [{name: src}]
  tasks:
  - name: show
    params: [{name: word, value: $(params.word)}]
    workspaces: [{name: src, workspace: src}]
    taskSpec:
      params: [{name: word}]
      workspaces: [{name: src}]
      results: [{name: said}]
      steps:
      - name: say
        image: localhost/busybox:pod-runner
        script: printf '%s' "$(params.word)" | tee $(workspaces.src.path)/said > $(results.said.path)
  - name: check
    params: [{name: said, value: $(tasks.show.results.said)}]
    taskSpec:
      params: [{name: said}]
      steps:
      - {name: check, image: localhost/busybox:pod-runner, script: 'test "$(params.said)" = pod'}
  finally:
  - name: tidy
    taskSpec:
      steps: [{name: s, image: localhost/busybox:pod-runner, script: 'echo $(tasks.status)'}]
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: outer}
spec:
  params: [{name: greeting, type: string}]
  workspaces: [{name: shared}]
  tasks:
  - name: first
    taskSpec:
      steps: [{name: s, image: localhost/busybox:pod-runner, script: 'true'}]
  - name: child
    runAfter: [first]
    pipelineRef: {name: inner}
    params: [{name: word, value: $(params.greeting)}]
    workspaces: [{name: src, workspace: shared, subPath: sub}]
  - name: inline
    pipelineSpec:
      tasks:
      - name: hello
        taskSpec:
          steps: [{name: s, image: localhost/busybox:pod-runner, script: 'echo hi'}]
  - name: last
    runAfter: [child]
    taskSpec:
      steps: [{name: s, image: localhost/busybox:pod-runner, script: 'true'}]
`

const pinpRun = `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pinp}
spec:
  pipelineRef: {name: outer}
  params: [{name: greeting, value: pod}]
  taskRunTemplate: {serviceAccountName: default}
  workspaces: [{name: shared, emptyDir: {}}]
`

// TestPipelinesInPipelinesParityWithTekton runs the same pipelines in
// pipelines through Tekton's own controller (alpha, child PipelineRuns)
// and through ours (one Pod), and compares the parent PipelineRun, each
// child PipelineRun and every TaskRun under them field by field, as
// TestParityWithTekton does.
func TestPipelinesInPipelinesParityWithTekton(t *testing.T) {
	enabled(t)
	installCRDs(t)
	nsTekton, nsOurs := kube.Namespace(t, "pr-e2e"), kube.Namespace(t, "pr-e2e")
	tektonlocal.Start(t, tektonlocal.Options{Namespace: nsTekton, FeatureFlags: map[string]string{"enable-api-fields": "alpha"}})
	kube.StartController(t, nsOurs)
	for _, ns := range []string{nsTekton, nsOurs} {
		kube.Kubectl(t, pinpDefinitions, "-n", ns, "apply", "-f", "-")
	}
	kube.Kubectl(t, pinpRun, "-n", nsTekton, "create", "-f", "-")
	kube.Kubectl(t, delegated(pinpRun), "-n", nsOurs, "create", "-f", "-")
	for _, ns := range []string{nsTekton, nsOurs} {
		kube.WaitFor(t, 5*time.Minute, "pinp in "+ns+" to end", func() bool { return getPipelineRun(t, ns, "pinp").IsDone() })
	}
	if tk := getPipelineRun(t, nsTekton, "pinp"); !tk.IsSuccessful() {
		t.Fatalf("Tekton's run ended %+v: the case is wrong", tk.Status.Conditions)
	}
	d := &differ{}
	d.run(fetchRun(t, nsTekton, "pinp"), fetchRun(t, nsOurs, "pinp"))
	for _, child := range []string{"pinp-child", "pinp-inline"} {
		want, got := fetchRun(t, nsTekton, child), fetchRun(t, nsOurs, child)
		fields := []string{"spec", "metadata.ownerReferences"}
		d.object("PipelineRun", child, pick(want.pr, fields...), pick(got.pr, fields...))
		d.run(want, got)
	}
	var list struct{ Items []json.RawMessage }
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", nsOurs, "get", "pipelineruns", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 3 {
		t.Errorf("%d PipelineRuns in our namespace, want the run and its two children", len(list.Items))
	}
	for _, e := range d.extra {
		t.Logf("only ours: %s", e)
	}
	for _, a := range d.allowed {
		t.Logf("allowed: %s", a)
	}
	for _, diff := range d.diffs {
		t.Error(diff)
	}
}
