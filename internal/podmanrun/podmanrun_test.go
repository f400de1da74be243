package podmanrun

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Step containers print with the host mode's [task/step] prefixes,
// sidecars as [task/sidecar-name], finally tasks' too.
func TestPrefixes(t *testing.T) {
	plan := &planpb.Plan{
		Tasks: []*planpb.Task{{Name: "build", Spec: &planpb.TaskSpec{
			Steps:    []*planpb.Step{{Name: "compile"}, {Name: "test"}},
			Sidecars: []*planpb.Step{{Name: "db"}},
		}}},
		Finally: []*planpb.Task{{Name: "report", Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "say"}}}}},
	}
	got := prefixes(plan)
	for container, want := range map[string]string{
		podlayout.StepContainer("build", "compile"): "[build/compile] ",
		podlayout.StepContainer("build", "test"):    "[build/test] ",
		podlayout.SidecarContainer("build", "db"):   "[build/sidecar-db] ",
		podlayout.StepContainer("report", "say"):    "[report/say] ",
	} {
		if got[container] != want {
			t.Errorf("%s: prefix %q, want %q", container, got[container], want)
		}
	}
	if len(got) != 4 {
		t.Errorf("prefixes %v", got)
	}
}

// podman 4.3 reads multi-document YAML, not a List: the objects first,
// then the Pod, each a document of its own.
func TestDocuments(t *testing.T) {
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "settings"}}
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "run"}}
	b, err := documents(pod, []any{cm})
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(strings.TrimPrefix(string(b), "---\n"), "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents:\n%s", len(docs), b)
	}
	for i, kind := range []string{"ConfigMap", "Pod"} {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(docs[i]), &head); err != nil || head.Kind != kind {
			t.Errorf("document %d: kind %q (%v), want %s", i, head.Kind, err, kind)
		}
	}
}
