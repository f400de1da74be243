package tektonlocal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/kube"
)

// TestConfig: the release's ConfigMaps, coschedule disabled, overrides
// applied, every other flag kept at the release's default.
func TestConfig(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := tektonModule(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Config(dir, map[string]string{"running-in-environment-with-injected-sidecars": "false"}, map[string]string{"default-maximum-resolution-timeout": "10s"})
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var kinds []string
	var flags, defaults *corev1.ConfigMap
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{}
		if err := yaml.Unmarshal(doc, cm); err != nil {
			t.Fatal(err)
		}
		if cm.Kind == "" {
			continue
		}
		kinds = append(kinds, cm.Kind+"/"+cm.Name)
		if cm.Kind == "ConfigMap" && cm.Namespace != SystemNamespace {
			t.Errorf("%s in namespace %q", cm.Name, cm.Namespace)
		}
		switch cm.Name {
		case "feature-flags":
			flags = cm
		case "config-defaults":
			defaults = cm
		}
	}
	if len(kinds) < 10 || kinds[0] != "Namespace/"+SystemNamespace {
		t.Fatalf("documents %v: want the namespace first, then the release's ConfigMaps", kinds)
	}
	if flags == nil {
		t.Fatalf("no feature-flags in %v", kinds)
	}
	if defaults == nil || defaults.Data["default-maximum-resolution-timeout"] != "10s" || defaults.Data["_example"] == "" {
		t.Errorf("config-defaults %v: want the release's, default-maximum-resolution-timeout set", defaults)
	}
	want := map[string]string{"coschedule": "disabled", "running-in-environment-with-injected-sidecars": "false",
		"enable-api-fields": "beta", "enable-provenance-in-status": "true", "results-from": "termination-message"}
	for k, v := range want {
		if flags.Data[k] != v {
			t.Errorf("feature-flags %s = %q, want %q", k, flags.Data[k], v)
		}
	}
}

// TestControllerEnv: the Deployment's CONFIG_* names, SYSTEM_NAMESPACE
// set, the Deployment's certificate paths left out.
func TestControllerEnv(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := tektonModule(root)
	if err != nil {
		t.Fatal(err)
	}
	env, err := controllerEnv(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(env, " ")
	for _, want := range []string{"SYSTEM_NAMESPACE=tekton-pipelines", "CONFIG_FEATURE_FLAGS_NAME=feature-flags", "CONFIG_DEFAULTS_NAME=config-defaults", "CONFIG_LOGGING_NAME=config-logging"} {
		if !strings.Contains(got, want) {
			t.Errorf("env %v lacks %s", env, want)
		}
	}
	if strings.Contains(got, "SSL_CERT_FILE") {
		t.Errorf("env %v keeps the Deployment's certificate path", env)
	}
}

// TestRunsAPipeline: Tekton's controller, started here, runs a two-task
// PipelineRun (one pod per task) to Succeeded. Needs the local cluster.
func TestRunsAPipeline(t *testing.T) {
	testenv.Require(t, "a cluster", testenv.Env("POD_RUNNER_CLUSTER", "make e2e or make cluster-e2e, with KUBECONFIG,"))
	ns := kube.Namespace(t, "pr-tekton")
	Start(t, Options{Namespace: ns})
	pr := `apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: two}
spec:
  taskRunTemplate: {serviceAccountName: default}
  timeouts: {pipeline: 5m}
  pipelineSpec:
    tasks:
    - name: a
      taskSpec:
        results: [{name: out}]
        steps:
        - {name: s, image: ` + ShellImage + `, script: 'printf hi > $(results.out.path)'}
    - name: b
      params: [{name: in, value: $(tasks.a.results.out)}]
      taskSpec:
        params: [{name: in}]
        steps:
        - {name: s, image: ` + ShellImage + `, script: 'test "$(params.in)" = hi'}
`
	kube.Kubectl(t, pr, "-n", ns, "create", "-f", "-")
	var run v1.PipelineRun
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if err := json.Unmarshal([]byte(kube.Kubectl(t, "", "-n", ns, "get", "pipelinerun", "two", "-o", "json")), &run); err != nil {
			t.Fatal(err)
		}
		if run.IsDone() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done after 3m: %+v", run.Status)
		}
	}
	if !run.IsSuccessful() || len(run.Status.ChildReferences) != 2 {
		t.Fatalf("status %+v", run.Status)
	}
	pods := strings.Fields(kube.Kubectl(t, "", "-n", ns, "get", "pods", "-o", "name"))
	if len(pods) != 2 {
		t.Errorf("pods %v: Tekton runs one pod per task", pods)
	}
}
