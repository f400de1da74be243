package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tektonscheme "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/scheme"
	"k8s.io/apimachinery/pkg/runtime/schema"
	knjson "knative.dev/pkg/webhook/json"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/test/exampleimages"
	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// examplePass is one run of the examples with one set of feature flags, as
// Tekton's CI runs its examples once per set (test/e2e-tests-kind-*.env):
// the stable and beta examples with beta's flags, the alpha ones with
// alpha's.
type examplePass struct {
	name  string
	dirs  []string
	flags map[string]string
}

var examplePasses = []examplePass{
	{"beta", []string{"pipelineruns", "pipelineruns/beta", "taskruns", "taskruns/beta"}, map[string]string{
		"enable-api-fields": "beta", "results-from": "sidecar-logs", "keep-pod-on-cancel": "true",
	}},
	{"alpha", []string{"pipelineruns/alpha", "taskruns/alpha"}, map[string]string{
		"enable-api-fields": "alpha", "results-from": "sidecar-logs", "keep-pod-on-cancel": "true",
		"enable-cel-in-whenexpression": "true", "enable-param-enum": "true", "enable-artifacts": "true",
		"enable-concise-resolver-syntax": "true", "enable-kubernetes-sidecar": "true",
		"enable-termination-message-compression": "true",
	}},
}

// Images: the cluster has no registry, so the images the examples name are
// stood in for by two built here: busybox's and alpine's (busybox's shell,
// its applets where Alpine has them) by localhost/busybox, all the others
// (ubuntu, bash, python, node, perl, alpine/git, ...) by the Debian image of
// images/debian.
const (
	busyboxImage = "localhost/busybox:pod-runner"
	debianImage  = "localhost/debian:pod-runner"
)

// exampleImage is the local image that stands in for image ("" keeps it).
func exampleImage(image string) string {
	repo := exampleimages.Repo(image)
	switch {
	case strings.HasPrefix(repo, "localhost/"):
		return ""
	case repo == "mirror.gcr.io/busybox", repo == "cgr.dev/chainguard/busybox", repo == "mirror.gcr.io/alpine":
		return busyboxImage
	}
	return debianImage
}

// TestTektonExamples runs Tekton's own examples (examples/v1 of the pinned
// module, alpha and beta included) through pod-runner's controller on the
// cluster, the way Tekton's test/examples_test.go runs them against its
// own: a fresh namespace per example, its documents created with kubectl
// (`namespace: default` made the test's), and each of its runs waited for
// until it succeeds; once per feature-flag set. A run is delegated
// (spec.managedBy; a TaskRun as a PipelineRun of one task, the controller
// taking PipelineRuns), a claim the example creates is bound to a hostPath
// volume made for it (the cluster has no provisioner), and images are the
// local stand-ins. The examples that do not pass are a ledger
// (examples_ledger_test.go), each with its reason, that fails the test when
// an entry passes or fails some other way. The controller watches every
// namespace, so this runs alone (make tekton-e2e).
func TestTektonExamples(t *testing.T) {
	enabled(t)
	if os.Getenv("POD_RUNNER_TEKTON_E2E") == "" {
		testenv.Require(t, "the cluster to itself", errors.New("POD_RUNNER_TEKTON_E2E is not set: make tekton-e2e runs this alone, its controller watching every namespace"))
	}
	installCRDs(t)
	root := filepath.Join(tektonModuleDir(t), "examples", "v1")
	files := map[string][]string{}
	var all []string
	for _, p := range examplePasses {
		for _, d := range p.dirs {
			m, err := filepath.Glob(filepath.Join(root, d, "*.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			files[p.name] = append(files[p.name], m...)
		}
		all = append(all, files[p.name]...)
	}
	if len(all) < 100 {
		t.Fatalf("found %d examples under %s", len(all), root)
	}
	for name := range exampleLedger {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("the ledger names %s, which is not an example", name)
		}
	}
	t.Cleanup(func() {
		kube.Kubectl(t, "", "delete", "namespaces", "-l", exampleLabel+"=true", "--wait=false", "--ignore-not-found")
		kube.Kubectl(t, "", "delete", "persistentvolumes", "-l", exampleLabel+"=true", "--wait=false", "--ignore-not-found")
	})

	system := kube.Namespace(t, "pr-examples-system")
	kube.Kubectl(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-defaults}\n", "-n", system, "apply", "-f", "-")
	kube.MapImages(t, "pod-runner-images-"+system, exampleLabel+"=true", exampleImage)
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/injector")
	if err != nil {
		t.Fatal(err)
	}
	flags, err := exampleimages.EntrypointFlags(all)
	if err != nil {
		t.Fatal(err)
	}
	kube.StartControllerProcess(t, bin, "", append(flags, "--tekton-namespace="+system)...)

	// POD_RUNNER_EXAMPLES (a regexp of paths under examples/v1) runs only
	// those, to look at some again; the share is then not checked.
	only := regexp.MustCompile(os.Getenv("POD_RUNNER_EXAMPLES"))
	var mu sync.Mutex
	passed, runnable, racyRun, racyPassed := 0, 0, 0, 0
	for _, p := range examplePasses {
		data, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]string{"name": "feature-flags"}, "data": p.flags})
		kube.Kubectl(t, string(data), "-n", system, "apply", "-f", "-")
		time.Sleep(2 * time.Second) // the controller's cache hears the change
		t.Run(p.name, func(t *testing.T) {
			for _, f := range files[p.name] {
				name, _ := filepath.Rel(root, f)
				e, listed := exampleLedger[name]
				if listed && !e.runnable() || !only.MatchString(name) {
					continue
				}
				runnable++
				if e.racy {
					racyRun++
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					err := runClusterExample(t, f)
					switch {
					case e.racy && err == nil:
						mu.Lock()
						passed++
						racyPassed++
						mu.Unlock()
					case listed && err == nil:
						t.Errorf("passes now: remove it from the ledger (it failed because %s)", e.why)
					case listed && !strings.Contains(err.Error(), e.want):
						t.Errorf("fails, but not because %s (output lacks %q): %v", e.why, e.want, err)
					case !listed && err != nil:
						t.Error(err)
					case !listed:
						mu.Lock()
						passed++
						mu.Unlock()
					}
				})
			}
		})
	}
	share := float64(passed) / float64(runnable)
	// The floor is for pod-runner, not for the examples' own races: it
	// leaves them out.
	steady := float64(passed-racyPassed) / float64(runnable-racyRun)
	t.Logf("Tekton examples in pod mode on the cluster: %d in all, %d runnable here, %d pass, %d fail as the ledger expects: %.0f%% of the runnable, %.0f%% of all",
		len(all), runnable, passed, runnable-passed, 100*share, 100*float64(passed)/float64(len(all)))
	if steady < exampleFloor && only.String() == "" {
		t.Errorf("only %.1f%% of the runnable Tekton examples that do not race with themselves pass on the cluster; at least %.0f%% did", 100*steady, 100*exampleFloor)
	}
}

// exampleLabel marks what the examples test creates: its namespaces (where
// its images are mapped) and its volumes.
const exampleLabel = "pod-runner.dev/examples"

var defaultNamespaceRE = regexp.MustCompile("namespace: default")

// runClusterExample creates the example's documents in a namespace of its
// own and waits for each of its runs to end; nil when all succeeded.
func runClusterExample(t *testing.T, file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	ns := kube.Namespace(t, "ex")
	kube.Kubectl(t, "", "label", "namespace", ns, exampleLabel+"=true")
	raw = defaultNamespaceRE.ReplaceAll(raw, []byte("namespace: "+ns))
	var docs []string
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(d), &obj); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if obj == nil {
			continue
		}
		if obj, err = asTektonWebhookStores(obj); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		switch obj["kind"] {
		case "PipelineRun", "TaskRun":
			obj = kube.Delegate(obj)
		case "PersistentVolumeClaim":
			provision(t, ns, obj)
		case "StepAction":
			// Stored as v1beta1: the API server converts a v1alpha1 one
			// through Tekton's conversion webhook, which is not deployed
			// here; the two versions are the same, field for field.
			if obj["apiVersion"] == "tekton.dev/v1alpha1" {
				obj["apiVersion"] = "tekton.dev/v1beta1"
			}
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		docs = append(docs, string(b))
	}
	cmd := exec.Command("kubectl", "create", "-n", ns, "-o", "name", "-f", "-")
	cmd.Stdin = strings.NewReader(strings.Join(docs, "\n"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl create: %v: %s", err, stderr.String())
	}
	var errs []error
	for _, obj := range strings.Fields(stdout.String()) {
		if name, ok := strings.CutPrefix(obj, "pipelinerun.tekton.dev/"); ok {
			errs = append(errs, waitExampleRun(ns, name))
		}
	}
	return errors.Join(errs...)
}

// asTektonWebhookStores is a Tekton object as Tekton's defaulting webhook,
// not deployed here, would store it: decoded with knative's webhook/json
// (encoding/json: field names match case-insensitively, so an example's
// `mountpath:` is stored as `mountPath:`) and encoded again. Its defaults
// are not applied. Other kinds are returned as they are.
func asTektonWebhookStores(obj map[string]any) (map[string]any, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if !strings.HasPrefix(apiVersion, "tekton.dev/") {
		return obj, nil
	}
	typed, err := tektonscheme.Scheme.New(schema.FromAPIVersionAndKind(apiVersion, kind))
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	if err := knjson.Decode(raw, typed, true); err != nil {
		return nil, fmt.Errorf("Tekton's webhook would refuse %s %v: %w", kind, obj["metadata"], err)
	}
	if raw, err = json.Marshal(typed); err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(raw, &out)
}

// exampleTimeout bounds one run: Tekton's examples_test waits up to its
// suite's timeout (10 minutes); none of the examples sleeps for more than a
// minute.
const exampleTimeout = 5 * time.Minute

// waitExampleRun waits for the PipelineRun to end; an error says how it
// did not succeed, with its failed TaskRuns' messages.
func waitExampleRun(ns, name string) error {
	deadline := time.Now().Add(exampleTimeout)
	for {
		out, err := exec.Command("kubectl", "-n", ns, "get", "pipelinerun", name, "-o",
			`jsonpath={.status.conditions[?(@.type=="Succeeded")].status} {.status.conditions[?(@.type=="Succeeded")].reason}: {.status.conditions[?(@.type=="Succeeded")].message}`).Output()
		state := strings.TrimSpace(string(out))
		switch {
		case err != nil:
		case strings.HasPrefix(state, "True "):
			return nil
		case strings.HasPrefix(state, "False "):
			return fmt.Errorf("PipelineRun %s: %s%s", name, state, failedTaskRuns(ns))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PipelineRun %s has not ended after %s (%q)%s", name, exampleTimeout, state, failedTaskRuns(ns))
		}
		time.Sleep(time.Second)
	}
}

// failedTaskRuns are the messages of the namespace's TaskRuns that did not
// succeed, one per line, each with the last lines of its failed
// containers' logs.
func failedTaskRuns(ns string) string {
	out, _ := exec.Command("kubectl", "-n", ns, "get", "taskruns", "-o", "json").Output()
	var list struct {
		Items []struct {
			Metadata struct{ Name string }
			Status   struct {
				PodName    string
				Conditions []struct{ Status, Reason, Message string }
				Steps      []containerState
				Sidecars   []containerState
			}
		}
	}
	_ = json.Unmarshal(out, &list)
	var b strings.Builder
	for _, tr := range list.Items {
		st := tr.Status
		if len(st.Conditions) == 0 || st.Conditions[0].Status == "True" {
			continue
		}
		c := st.Conditions[0]
		fmt.Fprintf(&b, "\n  TaskRun %s %s %s: %s", tr.Metadata.Name, c.Status, c.Reason, c.Message)
		for _, s := range append(st.Steps, st.Sidecars...) {
			if s.Terminated == nil || s.Terminated.ExitCode == 0 {
				continue
			}
			logs, _ := exec.Command("kubectl", "-n", ns, "logs", st.PodName, "-c", s.Container, "--tail=6").CombinedOutput()
			fmt.Fprintf(&b, "\n    %s:\n      %s", s.Container, strings.ReplaceAll(strings.TrimSpace(string(logs)), "\n", "\n      "))
		}
	}
	return b.String()
}

// containerState is what failedTaskRuns reads of a TaskRun's step or
// sidecar state.
type containerState struct {
	Container  string
	Terminated *struct{ ExitCode int }
}

// provision makes the volume a claim of the example binds to (the cluster
// has no provisioner): a hostPath PersistentVolume of the claim's size and
// access modes, reserved for it (claimRef), in a directory of its own.
func provision(t *testing.T, ns string, claim map[string]any) {
	meta, _ := claim["metadata"].(map[string]any)
	spec, _ := claim["spec"].(map[string]any)
	name, _ := meta["name"].(string)
	if name == "" {
		return // generateName: kubectl names it; left unbound
	}
	size := "1Gi"
	if r, ok := spec["resources"].(map[string]any); ok {
		if req, ok := r["requests"].(map[string]any); ok {
			if s, ok := req["storage"].(string); ok {
				size = s
			}
		}
	}
	modes := spec["accessModes"]
	if modes == nil {
		modes = []string{"ReadWriteOnce"}
	}
	dir := filepath.Join(t.TempDir(), "pv")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o777)
	pv := map[string]any{"apiVersion": "v1", "kind": "PersistentVolume",
		"metadata": map[string]any{"name": ns + "-" + name, "labels": map[string]string{exampleLabel: "true"}},
		"spec": map[string]any{
			"capacity": map[string]string{"storage": size}, "accessModes": modes,
			"persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
			"claimRef": map[string]string{"namespace": ns, "name": name},
			"hostPath": map[string]string{"path": dir, "type": "Directory"},
		}}
	spec["storageClassName"] = ""
	b, _ := json.Marshal(pv)
	kube.Kubectl(t, string(b), "create", "-f", "-")
}
