package cluster

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
)

// TestTektonLeavesDelegatedRunsAlone: with Tekton's own controller
// watching the same namespace, a delegated run is ours alone from start to
// end (Tekton v1.15.1 reconciles the controller owner of any TaskRun that
// changes, so our TaskRuns must not name the run as their controller), and
// a run without managedBy is Tekton's.
func TestTektonLeavesDelegatedRunsAlone(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	tektonlocal.Start(t, tektonlocal.Options{Namespace: ns})
	kube.StartController(t, ns)
	kube.Kubectl(t, definitions, "-n", ns, "apply", "-f", "-")
	// Ten tasks at once: Tekton, woken by our first TaskRun, would race us
	// to create the other nine.
	mine := strings.Replace(tenTasks(), "name: run}", "name: mine}", 1)
	kube.Kubectl(t, mine+"---\n"+pipelineRun("theirs", false), "-n", ns, "create", "-f", "-")
	for _, name := range []string{"mine", "theirs"} {
		kube.WaitFor(t, 3*time.Minute, name+" to end", func() bool { return getPipelineRun(t, ns, name).IsDone() })
		if pr := getPipelineRun(t, ns, name); !pr.IsSuccessful() {
			t.Errorf("%s: %+v", name, pr.Status.Conditions)
		}
	}
	trs := &v1.TaskRunList{}
	if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "taskruns", "-o", "json")), trs); err != nil {
		t.Fatal(err)
	}
	for _, tr := range trs.Items {
		ours := tr.Spec.ManagedBy != nil && *tr.Spec.ManagedBy == "pod-runner.dev/controller"
		if run := tr.Labels["tekton.dev/pipelineRun"]; (run == "mine") != ours {
			t.Errorf("TaskRun %s of %s: managedBy %v", tr.Name, run, tr.Spec.ManagedBy)
		}
	}
	if pods := strings.Fields(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-l", "tekton.dev/pipelineRun=mine", "-o", "name")); len(pods) != 1 {
		t.Errorf("pods of mine: %v, want our one", pods)
	}
}
