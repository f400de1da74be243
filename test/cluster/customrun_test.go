package cluster

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
)

// groupPipeline is a two-task group: a param in, a result passed from the
// first task to the second, the second's as the group's result.
const groupPipeline = `
  pipelineSpec:
    params: [{name: msg, type: string}]
    results: [{name: out, value: $(tasks.b.results.said)}]
    tasks:
    - name: a
      taskRef: {name: echo}
      params: [{name: msg, value: $(params.msg)}]
    - name: b
      taskRef: {name: echo}
      params: [{name: msg, value: "$(tasks.a.results.said)+b"}]
`

// failingGroup fails its only task.
const failingGroup = `
  pipelineSpec:
    tasks:
    - name: boom
      taskSpec:
        steps:
        - name: fail
          image: localhost/busybox:pod-runner
          script: exit 3
`

// customRunYAML is a CustomRun of a PodPipeline: embedded (customSpec)
// when ref is empty, else naming the PodPipeline object ref.
func customRunYAML(name, ref, spec string) string {
	y := fmt.Sprintf(`apiVersion: tekton.dev/v1beta1
kind: CustomRun
metadata: {name: %s}
spec:
  serviceAccountName: default
  timeout: 10m
  params: [{name: msg, value: in}]
`, name)
	if ref != "" {
		return y + fmt.Sprintf("  customRef: {apiVersion: pod-runner.dev/v1alpha1, kind: PodPipeline, name: %s}\n", ref)
	}
	return y + "  customSpec:\n    apiVersion: pod-runner.dev/v1alpha1\n    kind: PodPipeline\n    spec:\n" + indent(spec, "    ")
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimPrefix(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "\n")
}

func getCustomRun(t *testing.T, ns, name string) *v1beta1.CustomRun {
	t.Helper()
	run := &v1beta1.CustomRun{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "customrun", name, "-o", "json")), run); err != nil {
		t.Fatal(err)
	}
	return run
}

// installPodPipelineCRD applies config/crd (never removed: other tests
// on the cluster may use it).
func installPodPipelineCRD(t *testing.T) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	kube.Kubectl(t, "", "apply", "--server-side", "-k", filepath.Join(filepath.Dir(file), "..", "..", "config", "crd"))
	kube.WaitEstablished(t, "crd/podpipelines.pod-runner.dev")
}

func result(run *v1beta1.CustomRun, name string) (string, bool) {
	for _, r := range run.Status.Results {
		if r.Name == name {
			return r.Value, true
		}
	}
	return "", false
}

// TestPodPipelineCustomRun: CustomRuns of PodPipelines, created directly
// (as Tekton's controller creates them for a custom pipeline task), run
// their group in one Pod each — embedded or named by customRef — with the
// CustomRun's param in and the group's result out; a failing group ends
// the CustomRun Failed.
func TestPodPipelineCustomRun(t *testing.T) {
	enabled(t)
	installCRDs(t)
	installPodPipelineCRD(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	kube.Kubectl(t, definitions, "-n", ns, "apply", "-f", "-")
	kube.Kubectl(t, "apiVersion: pod-runner.dev/v1alpha1\nkind: PodPipeline\nmetadata: {name: pair}\nspec:\n"+indent(groupPipeline, ""), "-n", ns, "apply", "-f", "-")
	kube.Kubectl(t, customRunYAML("embedded", "", groupPipeline)+"\n---\n"+customRunYAML("byref", "pair", "")+"\n---\n"+customRunYAML("fails", "", failingGroup),
		"-n", ns, "create", "-f", "-")

	created := time.Now()
	runs := map[string]*v1beta1.CustomRun{}
	kube.WaitFor(t, 3*time.Minute, "the CustomRuns to end", func() bool {
		for _, name := range []string{"embedded", "byref", "fails"} {
			runs[name] = getCustomRun(t, ns, name)
			if !runs[name].IsDone() {
				return false
			}
		}
		return true
	})
	t.Logf("create → all three done: %.1fs", time.Since(created).Seconds())

	pods := &corev1.PodList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
		t.Fatal(err)
	}
	podOf := map[string]string{}
	for _, p := range pods.Items {
		if owner := metav1.GetControllerOf(&p); owner != nil && owner.Kind == "CustomRun" {
			if podOf[owner.Name] != "" {
				t.Errorf("CustomRun %s has pods %s and %s: want one", owner.Name, podOf[owner.Name], p.Name)
			}
			podOf[owner.Name] = p.Name
		}
	}
	trs := &v1.TaskRunList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "json")), trs); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"embedded", "byref"} {
		run := runs[name]
		if !run.IsSuccessful() {
			t.Errorf("%s: %+v", name, run.Status.Conditions)
			continue
		}
		if c := run.Status.GetCondition("Succeeded"); c.Reason != "Succeeded" {
			t.Errorf("%s reason %q", name, c.Reason)
		}
		if out, ok := result(run, "out"); out != "in+b" {
			t.Errorf("%s result out = %q (present %v), want in+b", name, out, ok)
		}
		if podOf[name] != name || run.Status.StartTime == nil || run.Status.CompletionTime == nil {
			t.Errorf("%s: pod %q start %v completion %v", name, podOf[name], run.Status.StartTime, run.Status.CompletionTime)
		}
		n := 0
		for _, tr := range trs.Items {
			if tr.Labels["tekton.dev/customRun"] != name {
				continue
			}
			n++
			if !tr.IsSuccessful() || tr.Status.PodName != name {
				t.Errorf("TaskRun %s: succeeded %v podName %q", tr.Name, tr.IsSuccessful(), tr.Status.PodName)
			}
		}
		if n != 2 {
			t.Errorf("%s: %d TaskRuns, want 2", name, n)
		}
	}
	// The CustomRun keeps the group's PipelineRun reason; its task's
	// TaskRun has Tekton's for a step that exited non-zero.
	if c := runs["fails"].Status.GetCondition("Succeeded"); c == nil || c.IsTrue() || c.IsUnknown() || c.Reason != "Failed" {
		t.Errorf("fails: condition %+v, want False/Failed", c)
	}
	failed := 0
	for _, tr := range trs.Items {
		if tr.Labels["tekton.dev/customRun"] != "fails" {
			continue
		}
		failed++
		if c := tr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "StepFailed" || c.Message != `"step-fail" exited with code 3: Error` {
			t.Errorf("TaskRun %s: condition %+v, want StepFailed", tr.Name, c)
		}
	}
	if failed != 1 {
		t.Errorf("fails: %d TaskRuns, want 1", failed)
	}
	if podOf["fails"] != "fails" {
		t.Errorf("fails ran in pod %q", podOf["fails"])
	}
}

// parentPipelineRun is a PipelineRun for Tekton's own controller (no
// managedBy): its middle task is the PodPipeline custom task, embedded
// (TEP-0061), taking the first task's result as its param; the last task
// consumes the group's result.
const parentPipelineRun = `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: parent}
spec:
  taskRunTemplate: {serviceAccountName: default}
  timeouts: {pipeline: 10m}
  pipelineSpec:
    results: [{name: final, value: $(tasks.after.results.said)}]
    tasks:
    - name: before
      taskRef: {name: echo}
      params: [{name: msg, value: start}]
    - name: group
      params: [{name: msg, value: $(tasks.before.results.said)}]
      taskSpec:
        apiVersion: pod-runner.dev/v1alpha1
        kind: PodPipeline
        spec:
          pipelineSpec:
            params: [{name: msg, type: string}]
            results: [{name: out, value: $(tasks.b.results.said)}]
            tasks:
            - name: a
              taskRef: {name: echo}
              params: [{name: msg, value: $(params.msg)}]
            - name: b
              taskRef: {name: echo}
              params: [{name: msg, value: "$(tasks.a.results.said)+b"}]
    - name: after
      taskRef: {name: echo}
      params: [{name: msg, value: "$(tasks.group.results.out)+after"}]
`

// TestPodPipelineInTektonPipeline: Tekton's own controller (tektonlocal)
// runs a PipelineRun whose middle task is a PodPipeline: it creates the
// CustomRun, pod-runner runs the group in one Pod, and Tekton's next task
// consumes the group's result.
func TestPodPipelineInTektonPipeline(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	tektonlocal.Start(t, tektonlocal.Options{Namespace: ns})
	kube.Kubectl(t, definitions, "-n", ns, "apply", "-f", "-")
	kube.Kubectl(t, parentPipelineRun, "-n", ns, "create", "-f", "-")

	created := time.Now()
	var pr *v1.PipelineRun
	kube.WaitFor(t, 4*time.Minute, "the parent run to end", func() bool {
		pr = getPipelineRun(t, ns, "parent")
		return pr.IsDone()
	})
	t.Logf("create → parent done: %.1fs", time.Since(created).Seconds())
	if !pr.IsSuccessful() {
		t.Fatalf("parent: %+v", pr.Status.Conditions)
	}
	if len(pr.Status.Results) != 1 || pr.Status.Results[0].Value.StringVal != "start+b+after" {
		t.Errorf("parent results %+v, want final = start+b+after", pr.Status.Results)
	}
	kinds := map[string]string{}
	for _, c := range pr.Status.ChildReferences {
		kinds[c.PipelineTaskName] = c.Kind
	}
	if kinds["before"] != "TaskRun" || kinds["group"] != "CustomRun" || kinds["after"] != "TaskRun" {
		t.Errorf("childReferences %+v", pr.Status.ChildReferences)
	}
	run := getCustomRun(t, ns, "parent-group")
	if out, _ := result(run, "out"); !run.IsSuccessful() || out != "start+b" {
		t.Errorf("CustomRun parent-group: %+v results %+v", run.Status.Conditions, run.Status.Results)
	}
	// Tekton's two tasks in a Pod each, the group's two in one.
	pods := &corev1.PodList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	if len(pods.Items) != 3 || !slices.Contains(names, "parent-group") {
		t.Errorf("pods %v: want Tekton's two and the group's parent-group", names)
	}
	groupTRs := strings.Fields(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-l", "tekton.dev/customRun=parent-group", "-o", "name"))
	if len(groupTRs) != 2 {
		t.Errorf("group TaskRuns %v, want 2", groupTRs)
	}
}

// TestCancelParentCancelsPodPipeline: cancelling a Tekton-run PipelineRun
// while its PodPipeline group runs has Tekton patch the CustomRun
// (spec.status RunCancelled); pod-runner stops the group's Pod and ends
// the CustomRun CustomRunCancelled with Tekton's message.
func TestCancelParentCancelsPodPipeline(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	kube.StartController(t, ns)
	tektonlocal.Start(t, tektonlocal.Options{Namespace: ns})
	kube.Kubectl(t, `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: parent}
spec:
  taskRunTemplate: {serviceAccountName: default}
  timeouts: {pipeline: 10m}
  pipelineSpec:
    tasks:
    - name: group
      taskSpec:
        apiVersion: pod-runner.dev/v1alpha1
        kind: PodPipeline
        spec:
          pipelineSpec:
            tasks:
            - name: wait
              taskSpec:
                steps:
                - {name: sleep, image: localhost/busybox:pod-runner, script: sleep 300}
`, "-n", ns, "create", "-f", "-")
	kube.WaitFor(t, 2*time.Minute, "the group's task to run", func() bool {
		return strings.TrimSpace(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-l", "tekton.dev/customRun=parent-group", "-o", "name")) != ""
	})
	kube.Kubectl(t, "", "-n", ns, "patch", "pipelinerun", "parent", "--type=merge", "-p", `{"spec":{"status":"Cancelled"}}`)
	cancelled := time.Now()
	var run *v1beta1.CustomRun
	kube.WaitFor(t, 2*time.Minute, "the CustomRun to end", func() bool {
		run = getCustomRun(t, ns, "parent-group")
		return run.IsDone()
	})
	t.Logf("cancel → CustomRun done: %.1fs", time.Since(cancelled).Seconds())
	c := run.Status.GetCondition("Succeeded")
	if c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != string(v1beta1.CustomRunCancelledByPipelineMsg) {
		t.Errorf("CustomRun condition %+v, want CustomRunCancelled with Tekton's message", c)
	}
	kube.WaitFor(t, time.Minute, "the parent to end", func() bool { return getPipelineRun(t, ns, "parent").IsDone() })
	if c := getPipelineRun(t, ns, "parent").Status.GetCondition("Succeeded"); c.Reason != "Cancelled" {
		t.Errorf("parent condition %+v, want Cancelled", c)
	}
	if phase := kube.Kubectl(t, "", "-n", ns, "get", "pod", "parent-group", "-o", "jsonpath={.status.phase}"); phase == "Running" || phase == "Pending" {
		t.Errorf("the group's Pod is still %s", phase)
	}
}
