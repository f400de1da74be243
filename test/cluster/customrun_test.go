package cluster

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	if err := json.Unmarshal([]byte(kubectl(t, "", "-n", ns, "get", "customrun", name, "-o", "json")), run); err != nil {
		t.Fatal(err)
	}
	return run
}

// installPodPipelineCRD applies config/crd (never removed: other tests
// on the cluster may use it).
func installPodPipelineCRD(t *testing.T) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	kubectl(t, "", "apply", "--server-side", "-k", filepath.Join(filepath.Dir(file), "..", "..", "config", "crd"))
	kubectl(t, "", "wait", "--for", "condition=established", "--timeout=60s", "crd/podpipelines.pod-runner.dev")
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
	ns := namespace(t)
	startController(t, ns)
	kubectl(t, definitions, "-n", ns, "apply", "-f", "-")
	kubectl(t, "apiVersion: pod-runner.dev/v1alpha1\nkind: PodPipeline\nmetadata: {name: pair}\nspec:\n"+indent(groupPipeline, ""), "-n", ns, "apply", "-f", "-")
	kubectl(t, customRunYAML("embedded", "", groupPipeline)+"\n---\n"+customRunYAML("byref", "pair", "")+"\n---\n"+customRunYAML("fails", "", failingGroup),
		"-n", ns, "create", "-f", "-")

	created := time.Now()
	runs := map[string]*v1beta1.CustomRun{}
	waitFor(t, 3*time.Minute, "the CustomRuns to end", func() bool {
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
	if err := json.Unmarshal([]byte(kubectl(t, "", "-n", ns, "get", "pods", "-o", "json")), pods); err != nil {
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
	if err := json.Unmarshal([]byte(kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "json")), trs); err != nil {
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
	if c := runs["fails"].Status.GetCondition("Succeeded"); c == nil || c.IsTrue() || c.IsUnknown() || c.Reason != "Failed" {
		t.Errorf("fails: condition %+v, want False/Failed", c)
	}
	if podOf["fails"] != "fails" {
		t.Errorf("fails ran in pod %q", podOf["fails"])
	}
}
