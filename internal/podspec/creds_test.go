package podspec

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	"github.com/tektoncd/pipeline/pkg/pod"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
)

// credsSecrets are a ServiceAccount's Secrets of every kind credsInit
// looks at: git over basic auth (two URLs) and ssh, docker's basic auth
// and config.json, and one with no Tekton annotation.
var credsSecrets = []*corev1.Secret{
	{ObjectMeta: metav1.ObjectMeta{Name: "git-basic", Annotations: map[string]string{"tekton.dev/git-1": "https://b.example", "tekton.dev/git-0": "https://a.example"}},
		Type: corev1.SecretTypeBasicAuth},
	{ObjectMeta: metav1.ObjectMeta{Name: "git-ssh", Annotations: map[string]string{"tekton.dev/git-0": "github.com"}}, Type: corev1.SecretTypeSSHAuth},
	{ObjectMeta: metav1.ObjectMeta{Name: "docker-basic", Annotations: map[string]string{"tekton.dev/docker-0": "https://index.docker.io/v1/"}}, Type: corev1.SecretTypeBasicAuth},
	{ObjectMeta: metav1.ObjectMeta{Name: "docker-json", Annotations: map[string]string{"tekton.dev/docker-0": "registry.example"}}, Type: corev1.SecretTypeDockerConfigJson},
	{ObjectMeta: metav1.ObjectMeta{Name: "plain", Annotations: map[string]string{"other": "x"}}, Type: corev1.SecretTypeOpaque},
}

type fixedSecrets map[string][]*corev1.Secret // ServiceAccount → its Secrets

func (f fixedSecrets) ServiceAccountSecrets(_ context.Context, _, sa string) ([]*corev1.Secret, error) {
	return f[sa], nil
}

const credsRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: creds, namespace: team}
spec:
  taskRunSpecs:
  - {pipelineTaskName: push, serviceAccountName: builder}
  workspaces: [{name: src, emptyDir: {}}]
  pipelineSpec:
    workspaces: [{name: src}]
    tasks:
    - name: push
      workspaces: [{name: src, workspace: src}]
      taskSpec:
        workspaces: [{name: src, mountPath: /src}]
        steps:
        - {name: a, image: busybox, script: "true"}
        - {name: b, image: busybox, script: "true"}
        sidecars:
        - {name: db, image: busybox, script: "true"}
    - name: other
      taskSpec:
        steps:
        - {name: c, image: busybox, script: "true"}
`

// TestCredentials: a task's steps get what Tekton's pod builder gives the
// steps of the same TaskRun from its ServiceAccount — the same entrypoint
// credential flags and the same Secrets at the same paths — and nothing
// else of the Pod does: not its sidecars, not a task of another
// ServiceAccount.
func TestCredentials(t *testing.T) {
	c := compileYAML(t, credsRun)
	p, err := Pod(context.Background(), c, Options{Image: "pr:test", Resolver: fixedResolver{}, Credentials: fixedSecrets{"builder": credsSecrets}})
	if err != nil {
		t.Fatal(err)
	}
	// Tekton's answer for the push task's TaskRun.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: "team"}}
	objs := []runtime.Object{sa}
	for _, s := range credsSecrets {
		s := s.DeepCopy()
		s.Namespace = "team"
		sa.Secrets = append(sa.Secrets, corev1.ObjectReference{Name: s.Name})
		objs = append(objs, s)
	}
	sa.Secrets = append(sa.Secrets, corev1.ObjectReference{Name: "missing"})
	tr := c.TaskRuns["push"].DeepCopy()
	b := pod.Builder{Images: pipeline.Images{EntrypointImage: "entrypoint", ShellImage: "shell", WorkingDirInitImage: "wd"}, KubeClient: k8sfake.NewSimpleClientset(objs...)}
	tp, err := b.Build(context.Background(), tr, *c.TaskSpecs["push"])
	if err != nil {
		t.Fatal(err)
	}
	var wantArgs, wantPaths []string
	for _, a := range tp.Spec.Containers[0].Args {
		for _, f := range []string{"-basic-git=", "-ssh-git=", "-basic-docker=", "-docker-config=", "-docker-cfg="} {
			if strings.HasPrefix(a, f) {
				wantArgs = append(wantArgs, "--creds="+strings.TrimPrefix(a, "-"))
			}
		}
	}
	for _, m := range tp.Spec.Containers[0].VolumeMounts {
		if strings.HasPrefix(m.MountPath, "/tekton/creds-secrets/") {
			wantPaths = append(wantPaths, m.MountPath)
		}
	}
	if len(wantArgs) < 5 || len(wantPaths) != 4 {
		t.Fatalf("Tekton gives %d credential flags and %d Secret mounts: the case means nothing", len(wantArgs), len(wantPaths))
	}
	// Each step its own /tekton/creds, as Tekton's (a step of another user
	// must not find the files the one before it wrote).
	credsVolumes := func(cs []corev1.Container) map[string]bool {
		out := map[string]bool{}
		for _, ct := range cs {
			for _, m := range ct.VolumeMounts {
				if m.MountPath == "/tekton/creds" {
					out[m.Name] = true
				}
			}
		}
		return out
	}
	if want, got := len(credsVolumes(tp.Spec.Containers)), len(credsVolumes(p.Spec.Containers)); got != want || want != 2 {
		t.Errorf("the push task's steps mount %d volumes at /tekton/creds; Tekton's %d", got, want)
	}
	pushed := map[string]bool{}
	for i, s := range c.TaskSpecs["push"].Steps {
		pushed[podlayout.StepContainer("push", results.StepName(s.Name, i))] = true
	}
	for _, ct := range p.Spec.Containers {
		var args, paths []string
		for _, a := range ct.Args {
			if strings.HasPrefix(a, "--creds=") {
				args = append(args, a)
			}
		}
		for _, m := range ct.VolumeMounts {
			if strings.HasPrefix(m.MountPath, "/tekton/creds-secrets/") {
				paths = append(paths, m.MountPath)
			}
		}
		if !pushed[ct.Name] {
			if len(args)+len(paths) > 0 {
				t.Errorf("%s gets credentials %q at %q: it is not a step of the task whose ServiceAccount has them", ct.Name, args, paths)
			}
			continue
		}
		slices.Sort(paths)
		slices.Sort(wantPaths)
		if !slices.Equal(args, wantArgs) || !slices.Equal(paths, wantPaths) {
			t.Errorf("%s: flags %q at %q, Tekton's %q at %q", ct.Name, args, paths, wantArgs, wantPaths)
		}
	}
}
