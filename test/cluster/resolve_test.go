package cluster

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/test/kube"
	"github.com/e7763abc/pod-runner/test/testbin"
)

// TestLocalClusterResolver: `pod-runner run --kubeconfig` resolves
// `resolver: cluster` from the cluster with Tekton's cluster resolver and
// runs the Task on this machine; the TaskRun's provenance says where the
// Task came from.
func TestLocalClusterResolver(t *testing.T) {
	enabled(t)
	installCRDs(t)
	ns := kube.Namespace(t, "pr-resolve")
	kube.Kubectl(t, `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: stored}
spec:
  results: [{name: word}]
  steps:
  - {name: write, image: busybox, script: "printf stored > $(results.word.path)"}
`, "apply", "-n", ns, "-f", "-")
	bin, err := testbin.Build("github.com/e7763abc/pod-runner/cmd/pod-runner")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-q", "-o", "json", "--kubeconfig", os.Getenv("KUBECONFIG"), "-f", "-")
	cmd.Stdin = strings.NewReader(`apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: from-cluster, namespace: ` + ns + `}
spec:
  taskRef:
    resolver: cluster
    params: [{name: kind, value: task}, {name: name, value: stored}, {name: namespace, value: ` + ns + `}]
`)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("pod-runner run: %v\n%s", err, stderr)
	}
	var list struct{ Items []v1.TaskRun }
	if err := json.Unmarshal(out, &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("output: %v\n%s", err, out)
	}
	tr := list.Items[0]
	if len(tr.Status.Results) != 1 || tr.Status.Results[0].Value.StringVal != "stored" {
		t.Errorf("results = %+v, want word=stored", tr.Status.Results)
	}
	if src := tr.Status.Provenance.RefSource; src == nil || !strings.HasPrefix(src.URI, "/apis/tekton.dev/v1/namespaces/"+ns+"/task/stored@") {
		t.Errorf("provenance.refSource = %+v, want the cluster Task's URI", src)
	}
}
