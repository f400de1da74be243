package podspec

import (
	"context"
	"reflect"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	"github.com/tektoncd/pipeline/pkg/pod"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

const securityRun = `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: sec, namespace: team}
spec:
  taskSpec:
    stepTemplate:
      securityContext: {runAsNonRoot: true}
    steps:
    - {name: inherits, image: busybox, script: "true"}
    - {name: own, image: busybox, script: "true", securityContext: {runAsUser: 2000, allowPrivilegeEscalation: false}}
    sidecars:
    - {name: db, image: busybox, script: "true", securityContext: {runAsUser: 999}}
`

// TestSecurityContexts: each step and sidecar container has the
// securityContext Tekton's pod builder gives the same step or sidecar (a
// step's own merged over its stepTemplate's): a step that asks not to run
// as root does not.
func TestSecurityContexts(t *testing.T) {
	c := compileYAML(t, securityRun)
	p, err := Pod(context.Background(), c, Options{Image: "pr:test", Resolver: fixedResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	tr := c.TaskRun.DeepCopy()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "team"}}
	b := pod.Builder{Images: pipeline.Images{EntrypointImage: "entrypoint", ShellImage: "shell", WorkingDirInitImage: "wd"}, KubeClient: k8sfake.NewSimpleClientset(sa)}
	var name string
	for n := range c.TaskSpecs {
		name = n
	}
	tp, err := b.Build(context.Background(), tr, *c.TaskSpecs[name])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*corev1.SecurityContext{}
	for _, ct := range tp.Spec.Containers {
		want[ct.Name] = ct.SecurityContext
	}
	got := map[string]*corev1.SecurityContext{}
	for _, ct := range p.Spec.Containers {
		got[ct.Name] = ct.SecurityContext
	}
	for tekton, ours := range map[string]string{
		"step-inherits": podlayout.StepContainer(name, "inherits"), "step-own": podlayout.StepContainer(name, "own"), "sidecar-db": podlayout.SidecarContainer(name, "db"),
	} {
		if want[tekton] == nil {
			t.Fatalf("Tekton's %s has no securityContext: the case means nothing", tekton)
		}
		if !reflect.DeepEqual(got[ours], want[tekton]) {
			t.Errorf("%s: securityContext %+v, Tekton's %s %+v", ours, got[ours], tekton, want[tekton])
		}
	}
}
