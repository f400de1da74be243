package podspec

import (
	"context"
	"reflect"
	"slices"
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
  podTemplate:
    securityContext: {runAsNonRoot: true, runAsUser: 1001}
    nodeSelector: {disk: ssd}
    tolerations: [{key: dedicated, operator: Equal, value: ci, effect: NoSchedule}]
    imagePullSecrets: [{name: registry}]
    priorityClassName: high
    env: [{name: FROM_TEMPLATE, value: "yes"}]
  taskSpec:
    stepTemplate:
      securityContext: {runAsNonRoot: true}
    steps:
    - {name: inherits, image: busybox, script: "true"}
    - {name: own, image: busybox, script: "true", securityContext: {runAsUser: 2000, allowPrivilegeEscalation: false}}
    sidecars:
    - {name: db, image: busybox, script: "true", securityContext: {runAsUser: 999}}
`

// TestSecurityContexts: the Pod has the run's podTemplate's fields and
// its steps its env, and each step and sidecar container has the
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
	for field, pair := range map[string][2]any{
		"securityContext":   {p.Spec.SecurityContext, tp.Spec.SecurityContext},
		"nodeSelector":      {p.Spec.NodeSelector, tp.Spec.NodeSelector},
		"tolerations":       {p.Spec.Tolerations, tp.Spec.Tolerations},
		"imagePullSecrets":  {p.Spec.ImagePullSecrets, tp.Spec.ImagePullSecrets},
		"priorityClassName": {p.Spec.PriorityClassName, tp.Spec.PriorityClassName},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("the Pod's %s is %+v, Tekton's %+v", field, pair[0], pair[1])
		}
	}
	for _, ct := range p.Spec.Containers {
		if ct.Name != podlayout.StepContainer(name, "inherits") {
			continue
		}
		if !slices.ContainsFunc(ct.Env, func(e corev1.EnvVar) bool { return e.Name == "FROM_TEMPLATE" && e.Value == "yes" }) {
			t.Errorf("step container %s lacks the podTemplate's env: %v", ct.Name, ct.Env)
		}
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
