package compile

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"google.golang.org/protobuf/proto"
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
			Name: "settings", Items: []*planpb.KeyToPath{{Key: "a", Path: "dir/a.txt"}}}}},
		{Name: "creds", ReadOnly: true, Source: &planpb.Volume_Secret{Secret: &planpb.Files{Name: "creds"}}},
		{Name: "claim", ReadOnly: true, Source: &planpb.Volume_PersistentVolumeClaim{PersistentVolumeClaim: "my-pvc"}},
		{Name: "opt", ReadOnly: true, Source: &planpb.Volume_ConfigMap{ConfigMap: &planpb.Files{Name: "absent", Optional: true}}},
		{Name: "cache", Source: &planpb.Volume_HostPath{HostPath: abs}},
		{Name: "extra", Source: &planpb.Volume_HostPath{HostPath: abs}},
	})
}

// TestEnvFromConfigMapsAndSecrets: env valueFrom and envFrom stay
// references in the Plan, as Tekton leaves them to the kubelet: no value of
// a ConfigMap or Secret is in it, and a later variable of the same name
// replaces an earlier one.
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
      - name: OPTIONAL_GIVEN
        valueFrom: {secretKeyRef: {name: extra, key: x, optional: true}}
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
---
apiVersion: v1
kind: Secret
metadata: {name: extra}
stringData: {x: optional-value}
`, Options{})
	step := c.Plan.GetTasks()[0].GetSpec().GetSteps()[0]
	diff(t, "env", step.GetEnv(), []*planpb.EnvVar{
		{Name: "CFG_a", Value: "overridden"},
		{Name: "FROM_CM", ValueFrom: &planpb.KeyRef{Name: "cfg", Key: "b"}},
		{Name: "FROM_SECRET", ValueFrom: &planpb.KeyRef{Kind: planpb.KeyRef_SECRET, Name: "creds", Key: "token"}},
		{Name: "OPTIONAL_ABSENT", ValueFrom: &planpb.KeyRef{Name: "absent", Key: "x", Optional: true}},
		{Name: "OPTIONAL_NO_KEY", ValueFrom: &planpb.KeyRef{Name: "cfg", Key: "nope", Optional: true}},
		{Name: "TEMPLATED", ValueFrom: &planpb.KeyRef{Name: "cfg", Key: "$(params.key)"}},
		{Name: "OPTIONAL_GIVEN", ValueFrom: &planpb.KeyRef{Kind: planpb.KeyRef_SECRET, Name: "extra", Key: "x", Optional: true}},
	})
	diff(t, "envFrom", step.GetEnvFrom(), []*planpb.EnvFrom{
		{Name: "cfg", Prefix: "CFG_"},
		{Kind: planpb.KeyRef_SECRET, Name: "absent", Optional: true},
	})
	if err := c.LocalError(); err != nil {
		t.Errorf("LocalError: %v", err)
	}
	plan, err := proto.Marshal(c.Plan)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plan, []byte("secret-token")) {
		t.Errorf("the Plan holds the Secret's value")
	}
	if data, ok := c.Data(planpb.KeyRef_SECRET, "creds"); !ok || string(data["token"]) != "secret-token" {
		t.Errorf("Data(Secret creds) = %q, %v: the local launcher reads values from the documents", data, ok)
	}
	var names []string
	for _, o := range c.Documents() {
		names = append(names, fmt.Sprintf("%T", o))
	}
	if want := []string{"*v1.ConfigMap", "*v1.Secret", "*v1.Secret"}; !slices.Equal(names, want) {
		t.Errorf("Documents() = %v, want %v (the referenced ones, as given; an optional reference too)", names, want)
	}
}

// TestLocalErrors: a required ConfigMap, Secret or key that is not among the
// documents compiles (a Pod reads it from the cluster) but cannot run
// locally: LocalError names the document and field.
func TestLocalErrors(t *testing.T) {
	for _, c := range []struct{ name, step, want string }{
		{"secretKeyRef absent", `env: [{name: X, valueFrom: {secretKeyRef: {name: nope, key: k}}}]`,
			`spec.taskSpec.steps[0].env[0].valueFrom.secretKeyRef.name: Secret "nope" not found: give it as a document`},
		{"configMapKeyRef no key", `env: [{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: nokey}}}]`,
			`spec.taskSpec.steps[0].env[0].valueFrom.configMapKeyRef.key: ConfigMap "cfg" has no key "nokey"`},
		{"envFrom absent", `envFrom: [{secretRef: {name: nope}}]`,
			`spec.taskSpec.steps[0].envFrom[0].secretRef.name: Secret "nope" not found: give it as a document`},
		{"optional absent", `envFrom: [{secretRef: {name: nope, optional: true}}]`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			compiled := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: r}
spec:
  taskSpec:
    steps:
    - name: s
      image: busybox
      script: env
      `+c.step+`
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: A}
`, Options{})
			err := compiled.LocalError()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("LocalError: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("LocalError: %v, want %q", err, c.want)
			}
		})
	}
}

// TestOneClaimTwoWorkspaces: two workspaces bound to one claim are one
// volume, mounted by each with its own subPath, as Tekton mounts a claim
// once (workspace.CreateVolumes); $(workspaces.W.volume) names it for both.
func TestOneClaimTwoWorkspaces(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: claims}
spec:
  workspaces:
  - {name: src, persistentVolumeClaim: {claimName: data}, subPath: src}
  - {name: out, persistentVolumeClaim: {claimName: data}, subPath: out}
  - {name: other, persistentVolumeClaim: {claimName: elsewhere}}
  pipelineSpec:
    workspaces: [{name: src}, {name: out}, {name: other}]
    tasks:
    - name: t
      workspaces: [{name: in, workspace: src}, {name: out, workspace: out}, {name: o, workspace: other}]
      taskSpec:
        workspaces: [{name: in}, {name: out}, {name: o}]
        steps: [{name: s, image: busybox, script: "true"}]
`, Options{})
	var names []string
	for _, v := range c.Plan.GetVolumes() {
		names = append(names, v.GetName())
	}
	if !slices.Equal(names, []string{"src", "other"}) {
		t.Errorf("plan volumes %v, want one per claim: [src other]", names)
	}
	task := c.Plan.GetTasks()[0]
	diff(t, "bindings", task.GetWorkspaces(), []*planpb.WorkspaceBinding{
		{Name: "in", Volume: "src", SubPath: "src"}, {Name: "out", Volume: "src", SubPath: "out"}, {Name: "o", Volume: "other"}})
	if in, out := task.GetContext()["workspaces.in.volume"], task.GetContext()["workspaces.out.volume"]; in == "" || in != out {
		t.Errorf("$(workspaces.in.volume) = %q, $(workspaces.out.volume) = %q: want the one volume", in, out)
	}
}
