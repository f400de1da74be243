package podspec

import (
	"context"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/workspace"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
)

// isolatedRun's task isolates "signals" to its first step (at the
// workspace's path) and its sidecar, and "creds" to its third step (at a
// path of the step's own), and shares "shared" with all its steps.
const isolatedRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: isolated}
spec:
  workspaces:
  - {name: signals, emptyDir: {}}
  - {name: creds, secret: {secretName: ssh}}
  - {name: shared, emptyDir: {}}
  pipelineSpec:
    workspaces: [{name: signals}, {name: creds}, {name: shared}]
    tasks:
    - name: t
      workspaces:
      - {name: signals, workspace: signals}
      - {name: creds, workspace: creds, subPath: keys}
      - {name: shared, workspace: shared}
      taskSpec:
        workspaces: [{name: signals}, {name: creds, readOnly: true}, {name: shared, mountPath: /data}]
        steps:
        - {name: signal, image: busybox, script: "true", workspaces: [{name: signals}]}
        - {name: none, image: busybox, script: "true"}
        - {name: keyed, image: busybox, script: "true", workspaces: [{name: creds, mountPath: /creds}]}
        sidecars:
        - {name: peer, image: busybox, script: "true", workspaces: [{name: signals}]}
`

// TestIsolatedWorkspaces: each container of the task mounts exactly the
// workspaces Tekton's workspace.Apply mounts into the same step or
// sidecar, at the same paths, with the binding's subPath and readOnly.
func TestIsolatedWorkspaces(t *testing.T) {
	docs, err := load.Read("test.yaml", strings.NewReader(isolatedRun))
	if err != nil {
		t.Fatal(err)
	}
	c := compileYAML(t, isolatedRun)
	pod, err := Pod(context.Background(), c, Options{Image: "pr:test", Resolver: fixedResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	task := c.Plan.GetTasks()[0]
	volumeOf := map[string]string{} // Pod volume → workspace
	for _, wb := range task.GetWorkspaces() {
		volumeOf[podlayout.WorkspaceVolume(wb.GetVolume(), c.Plan.GetUid())] = wb.GetName()
	}
	got := map[string][]string{} // container → "workspace path subPath ro"
	for _, ct := range pod.Spec.Containers {
		for _, m := range ct.VolumeMounts {
			if ws, ok := volumeOf[m.Name]; ok {
				got[ct.Name] = append(got[ct.Name], mountKey(ws, m))
			}
		}
	}

	// Tekton's answer for the same Task and bindings.
	pr := docs[0].Object.(*v1.PipelineRun)
	pt := pr.Spec.PipelineSpec.Tasks[0]
	var bindings []v1.WorkspaceBinding
	for _, w := range pt.Workspaces {
		for _, b := range pr.Spec.Workspaces {
			if b.Name == w.Workspace {
				b.Name, b.SubPath = w.Name, w.SubPath
				bindings = append(bindings, b)
			}
		}
	}
	volumes := workspace.CreateVolumes(bindings)
	applied, err := workspace.Apply(context.Background(), pt.TaskSpec.TaskSpec, bindings, volumes)
	if err != nil {
		t.Fatal(err)
	}
	wsOfVolume := map[string]string{}
	for ws, v := range volumes {
		wsOfVolume[v.Name] = ws
	}
	want := map[string][]string{}
	tektonMounts := func(container string, own []corev1.VolumeMount) {
		for _, m := range append(slices.Clone(applied.StepTemplate.VolumeMounts), own...) {
			if ws, ok := wsOfVolume[m.Name]; ok {
				want[container] = append(want[container], mountKey(ws, m))
			}
		}
	}
	for i, s := range applied.Steps {
		tektonMounts(podlayout.StepContainer(task.GetName(), results.StepName(s.Name, i)), s.VolumeMounts)
	}
	for i, s := range applied.Sidecars {
		// Tekton's stepTemplate is not merged into sidecars: only their own.
		for _, m := range s.VolumeMounts {
			if ws, ok := wsOfVolume[m.Name]; ok {
				name := podlayout.SidecarContainer(task.GetName(), results.StepName(s.Name, i))
				want[name] = append(want[name], mountKey(ws, m))
			}
		}
	}
	if len(want) < 3 {
		t.Fatalf("Tekton mounts workspaces into only %d containers: the case means nothing", len(want))
	}
	for ct := range want {
		slices.Sort(want[ct])
		slices.Sort(got[ct])
		if !slices.Equal(want[ct], got[ct]) {
			t.Errorf("%s mounts %q, Tekton's %q", ct, got[ct], want[ct])
		}
	}
	for ct := range got {
		if _, ok := want[ct]; !ok && len(got[ct]) > 0 {
			t.Errorf("%s mounts %q, Tekton's nothing", ct, got[ct])
		}
	}
}

func mountKey(ws string, m corev1.VolumeMount) string {
	ro := ""
	if m.ReadOnly {
		ro = " ro"
	}
	return ws + " " + m.MountPath + " " + m.SubPath + ro
}
