package compile

import (
	"path/filepath"
	"testing"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestWorkspacesAndVolumes checks bindings, subPaths and the storage behind
// them (docs/workspaces.md).
func TestWorkspacesAndVolumes(t *testing.T) {
	hostDir := t.TempDir()
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: ws
spec:
  pipelineRef: {name: p}
  workspaces:
  - name: shared
    subPath: run-$(context.pipelineRun.name)
    volumeClaimTemplate:
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
  - name: scratch
    emptyDir: {}
  - name: settings
    configMap:
      name: settings
      items:
      - {key: a, path: dir/a.txt}
  - name: creds
    secret: {secretName: creds}
  - name: claim
    persistentVolumeClaim: {claimName: my-pvc, readOnly: true}
  - name: opt
    configMap: {name: absent, optional: true}
  - name: cache
    emptyDir: {}
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: p
spec:
  workspaces:
  - name: shared
  - name: scratch
  - name: settings
  - name: creds
  - name: claim
  - name: opt
  - name: cache
  - name: extra
    optional: true
  tasks:
  - name: build
    taskRef: {name: build}
    workspaces:
    - name: source
      workspace: shared
      subPath: src
    - name: cfg
      workspace: settings
  - name: embedded
    taskSpec:
      steps:
      - image: busybox
        script: ls $(workspaces.scratch.path)
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: build
spec:
  workspaces:
  - name: source
  - name: cfg
    mountPath: /etc/cfg
    readOnly: true
  - name: maybe
    optional: true
  steps:
  - image: busybox
    script: ls $(workspaces.source.path)
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: A
  b: B
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
data:
  token: dG9rZW4=
stringData:
  user: me
`, Options{Workspaces: map[string]string{"cache": hostDir, "extra": hostDir}})
	build := planTask(t, c.Plan, "build")
	diff(t, "build bindings", build.GetWorkspaces(), []*planpb.WorkspaceBinding{
		{Name: "source", Volume: "shared", SubPath: "run-ws/src"},
		{Name: "cfg", Volume: "settings"},
	})
	diff(t, "build declarations", build.GetSpec().GetWorkspaces(), []*planpb.WorkspaceDeclaration{
		{Name: "source", MountPath: "/workspace/source"},
		{Name: "cfg", MountPath: "/etc/cfg", ReadOnly: true},
		{Name: "maybe", MountPath: "/workspace/maybe", Optional: true},
	})
	// $(workspaces.W.volume) is the run's pod volume behind the binding.
	if got, want := build.GetContext()["workspaces.source.volume"], podlayout.WorkspaceVolume("shared", c.Plan.GetUid()); got != want {
		t.Errorf("workspaces.source.volume = %q, want %q", got, want)
	}
	// An embedded spec gets the workspaces it uses without declaring them.
	embedded := planTask(t, c.Plan, "embedded")
	diff(t, "embedded bindings", embedded.GetWorkspaces(), []*planpb.WorkspaceBinding{{Name: "scratch", Volume: "scratch"}})
	diff(t, "embedded declarations", embedded.GetSpec().GetWorkspaces(), []*planpb.WorkspaceDeclaration{{Name: "scratch", MountPath: "/workspace/scratch"}})

	abs, _ := filepath.Abs(hostDir)
	diff(t, "volumes", c.Plan.GetVolumes(), []*planpb.Volume{
		{Name: "shared", Source: &planpb.Volume_ClaimTemplate{ClaimTemplate: &planpb.EmptyDir{}}},
		{Name: "scratch", Source: &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}},
		{Name: "settings", ReadOnly: true, Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{
			Name: "settings", Data: map[string][]byte{"dir/a.txt": []byte("A")}}}},
		{Name: "creds", ReadOnly: true, Source: &planpb.Volume_Secret{Secret: &planpb.Files{
			Name: "creds", Data: map[string][]byte{"token": []byte("token"), "user": []byte("me")}}}},
		{Name: "claim", ReadOnly: true, Source: &planpb.Volume_PersistentVolumeClaim{PersistentVolumeClaim: "my-pvc"}},
		{Name: "opt", ReadOnly: true, Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{Name: "absent", Optional: true}}},
		{Name: "cache", Source: &planpb.Volume_HostPath{HostPath: abs}},
		{Name: "extra", Source: &planpb.Volume_HostPath{HostPath: abs}},
	})
}

// TestEnvFromConfigMapsAndSecrets checks env valueFrom and envFrom resolved
// from documents, as the kubelet resolves them.
func TestEnvFromConfigMapsAndSecrets(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: env
spec:
  params: [{name: key, value: k}]
  taskSpec:
    params: [{name: key}]
    steps:
    - name: s
      image: busybox
      envFrom:
      - configMapRef: {name: cfg}
        prefix: CFG_
      - secretRef: {name: absent, optional: true}
      env:
      - {name: CFG_a, value: overridden}
      - name: FROM_CM
        valueFrom: {configMapKeyRef: {name: cfg, key: b}}
      - name: FROM_SECRET
        valueFrom: {secretKeyRef: {name: creds, key: token}}
      - name: OPTIONAL_ABSENT
        valueFrom: {configMapKeyRef: {name: absent, key: x, optional: true}}
      - name: OPTIONAL_NO_KEY
        valueFrom: {configMapKeyRef: {name: cfg, key: nope, optional: true}}
      - name: TEMPLATED
        valueFrom: {configMapKeyRef: {name: cfg, key: $(params.key)}}
      script: env
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: A, b: B}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: secret-token}
`, Options{})
	diff(t, "env", c.Plan.GetTasks()[0].GetSpec().GetSteps()[0].GetEnv(), []*planpb.EnvVar{
		{Name: "CFG_a", Value: "overridden"},
		{Name: "CFG_b", Value: "B"},
		{Name: "FROM_CM", Value: "B"},
		{Name: "FROM_SECRET", Value: "secret-token"},
		{Name: "OPTIONAL_ABSENT", ValueFrom: &planpb.KeyRef{Name: "absent", Key: "x", Optional: true}},
		{Name: "TEMPLATED", ValueFrom: &planpb.KeyRef{Name: "cfg", Key: "$(params.key)"}},
	})
}
