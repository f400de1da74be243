package cluster

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/admission"
	"github.com/e7763abc/pod-runner/internal/controller"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/tektonlocal"
)

// TestDeployedController: the controller as `make deploy` installs it
// (config/local, the ko-built image imported by make k8s-controller-image)
// runs delegated runs in the cluster, one with a Task from a resolver, one
// delegated by its webhook. It is told to watch only this test's
// namespace, so that it leaves the other tests' runs to their own
// controllers.
func TestDeployedController(t *testing.T) {
	enabled(t)
	if os.Getenv("POD_RUNNER_DEPLOYED") == "" {
		testenv.Require(t, "the controller's image in the cluster", errors.New("POD_RUNNER_DEPLOYED is not set (make e2e sets it after make k8s-controller-image)"))
	}
	installCRDs(t)
	ns := kube.Namespace(t, "pr-e2e")
	_, file, _, _ := runtime.Caller(0)
	out, err := exec.Command("kubectl", "kustomize", filepath.Join(filepath.Dir(file), "..", "..", "config", "local")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/local: %v", err)
	}
	manifests := strings.Replace(string(out), "        - --offline\n", "        - --offline\n        - --namespace="+ns+"\n", 1)
	if manifests == string(out) {
		t.Fatal("config/local has no --offline argument to add --namespace after")
	}
	kube.Kubectl(t, manifests, "apply", "-f", "-")
	t.Cleanup(func() {
		kube.Kubectl(t, "", "-n", "pod-runner", "delete", "deployment", "pod-runner-controller", "--ignore-not-found", "--wait=false")
	})
	kube.Kubectl(t, "", "-n", "pod-runner", "rollout", "restart", "deployment/pod-runner-controller")
	kube.Kubectl(t, "", "-n", "pod-runner", "rollout", "status", "deployment/pod-runner-controller", "--timeout=120s")

	kube.Kubectl(t, definitions+"---\n"+storedTask, "-n", ns, "apply", "-f", "-")
	// A remote ref too: the controller's RBAC lets it ask (and watch) the
	// resolvers through ResolutionRequests.
	tektonlocal.StartResolvers(t, tektonlocal.ResolversOptions{})
	remote := `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: remote}
spec:
  managedBy: pod-runner.dev/controller
  pipelineSpec:
    tasks:
    - name: stored
      taskRef: {resolver: cluster, params: [{name: kind, value: task}, {name: name, value: stored}, {name: namespace, value: ` + ns + `}]}
`
	// And one created as it is, in a namespace labelled for the webhook.
	kube.Kubectl(t, "", "label", "namespace", ns, admission.NamespaceLabel+"=true")
	kube.Kubectl(t, pipelineRun("mine", true)+"---\n"+remote+"---\n"+pipelineRun("labelled", false), "-n", ns, "create", "-f", "-")
	if pr := getPipelineRun(t, ns, "labelled"); pr.Spec.ManagedBy == nil || *pr.Spec.ManagedBy != controller.ManagedBy {
		t.Errorf("the deployed webhook did not delegate a run of a labelled namespace: spec.managedBy %v", pr.Spec.ManagedBy)
	}
	for _, name := range []string{"mine", "remote", "labelled"} {
		kube.WaitFor(t, 3*time.Minute, name+" to end", func() bool { return getPipelineRun(t, ns, name).IsDone() })
		if pr := getPipelineRun(t, ns, name); !pr.IsSuccessful() {
			t.Errorf("%s: %+v", name, pr.Status.Conditions)
		}
	}
	logs := kube.Kubectl(t, "", "-n", "pod-runner", "logs", "deployment/pod-runner-controller")
	if !strings.Contains(logs, `"created pod"`) {
		t.Errorf("the deployed controller's log has no created pod:\n%s", logs)
	}
}
