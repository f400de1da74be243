package compile

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

const taskVolumesRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: vols
spec:
  params:
  - {name: cfg, value: settings}
  workspaces:
  - name: src
    emptyDir: {}
  - name: proj
    projected:
      sources:
      - configMap: {name: settings}
      - secret: {name: token, items: [{key: t, path: token}]}
  - name: drv
    csi:
      driver: secrets-store.csi.k8s.io
      readOnly: true
  pipelineSpec:
    params:
    - name: cfg
    workspaces:
    - name: src
    - name: proj
    - name: drv
    tasks:
    - name: uses
      workspaces:
      - {name: src, workspace: src}
      - {name: proj, workspace: proj}
      params:
      - {name: cm, value: $(params.cfg)}
      taskSpec:
        params:
        - name: cm
        - {name: sub, default: part}
        workspaces:
        - name: src
        - name: proj
          readOnly: true
        volumes:
        - name: cache
          emptyDir: {}
        - name: conf-$(params.sub)
          configMap:
            name: $(params.cm)
            items:
            - {key: a, path: $(params.sub)/a.txt}
        stepTemplate:
          volumeMounts:
          - {name: cache, mountPath: /cache}
        steps:
        - name: one
          image: busybox
          script: echo one
          volumeMounts:
          - {name: conf-$(params.sub), mountPath: /etc/conf, readOnly: true}
          - {name: $(workspaces.src.volume), mountPath: /src-too, subPath: $(context.taskRun.name)}
        - name: two
          image: busybox
          script: echo two
        sidecars:
        - name: side
          image: busybox
          script: sleep 1
          volumeMounts:
          - {name: cache, mountPath: /side-cache}
    - name: plain
      workspaces:
      - {name: drv, workspace: drv}
      taskSpec:
        workspaces:
        - name: drv
        steps:
        - {name: s, image: busybox, script: "true"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: alpha
`

// TestTaskVolumes: Task volumes and volumeMounts are substituted as
// Tekton's ApplyReplacements does (params, then contexts and
// $(workspaces.W.volume)), the stepTemplate's mounts merged into each step;
// the plan names them; tasks without any have none.
func TestTaskVolumes(t *testing.T) {
	c := mustCompile(t, taskVolumesRun, Options{})
	uses := planTask(t, c.Plan, "uses")
	diff(t, "plan volumes of uses", uses.GetSpec().GetVolumes(), []string{"cache", "conf-part", podlayout.WorkspaceVolume("src", c.Plan.GetUid())})
	if v := planTask(t, c.Plan, "plain").GetSpec().GetVolumes(); len(v) != 0 {
		t.Errorf("plain: plan volumes %v, want none", v)
	}
	if _, ok := c.TaskVolumes["plain"]; ok {
		t.Error("plain has TaskVolumes")
	}
	tv := c.TaskVolumes["uses"]
	if tv == nil {
		t.Fatal("no TaskVolumes for uses")
	}
	diff(t, "volumes", tv.Volumes, []corev1.Volume{
		{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "conf-part", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "settings"},
			Items:                []corev1.KeyToPath{{Key: "a", Path: "part/a.txt"}},
		}}},
	})
	trName := uses.GetTaskRunName()
	diff(t, "step mounts", tv.Steps, [][]corev1.VolumeMount{
		{
			{Name: "conf-part", MountPath: "/etc/conf", ReadOnly: true},
			{Name: podlayout.WorkspaceVolume("src", c.Plan.GetUid()), MountPath: "/src-too", SubPath: trName},
			{Name: "cache", MountPath: "/cache"},
		},
		{{Name: "cache", MountPath: "/cache"}},
	})
	diff(t, "sidecar mounts", tv.Sidecars, [][]corev1.VolumeMount{{{Name: "cache", MountPath: "/side-cache"}}})
	if docs := c.Documents(); len(docs) != 1 || docs[0].(*corev1.ConfigMap).Data["a"] != "alpha" {
		t.Errorf("Documents() = %v, want the settings document as given", docs)
	}
	// status.taskSpec keeps the templates, as Tekton stores it.
	if got := c.TaskSpecs["uses"].Volumes[1].Name; got != "conf-$(params.sub)" {
		t.Errorf("TaskSpecs volume name = %q, want the template", got)
	}

	// Projected and CSI workspaces are marked in the plan; their sources
	// stay in the run.
	byName := map[string]*planpb.Volume{}
	for _, v := range c.Plan.GetVolumes() {
		byName[v.GetName()] = v
	}
	diff(t, "projected volume", byName["proj"], &planpb.Volume{Name: "proj", ReadOnly: true, Source: &planpb.Volume_Projected{Projected: &planpb.EmptyDir{}},
		ProjectedFiles: []*planpb.ProjectedFiles{
			{Kind: planpb.KeyRef_CONFIG_MAP, Files: &planpb.Files{Name: "settings"}},
			{Kind: planpb.KeyRef_SECRET, Files: &planpb.Files{Name: "token", Items: []*planpb.KeyToPath{{Key: "t", Path: "token"}}}},
		}})
	diff(t, "csi volume", byName["drv"], &planpb.Volume{Name: "drv", ReadOnly: true, Source: &planpb.Volume_Csi{Csi: &planpb.EmptyDir{}}})
}

// TestTaskVolumesTaskRun: a TaskRun's params and the Task's defaults reach
// its volumes.
func TestTaskVolumesTaskRun(t *testing.T) {
	c := mustCompile(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: tr
spec:
  params:
  - {name: claim, value: my-claim}
  taskSpec:
    params:
    - name: claim
    - {name: secret, default: creds}
    volumes:
    - name: data
      persistentVolumeClaim: {claimName: $(params.claim)}
    - name: s
      secret: {secretName: $(params.secret)}
    steps:
    - name: s
      image: busybox
      script: ls /data
      volumeMounts:
      - {name: data, mountPath: /data}
      - {name: s, mountPath: /s}
`, Options{})
	tv := c.TaskVolumes["tr"]
	if tv == nil {
		t.Fatal("no TaskVolumes for tr")
	}
	diff(t, "volumes", tv.Volumes, []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "my-claim"}}},
		{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
	})
	if docs := c.Documents(); len(docs) != 0 {
		t.Errorf("Documents() = %v: none was given", docs)
	}
	diff(t, "plan volumes", planTask(t, c.Plan, "tr").GetSpec().GetVolumes(), []string{"data", "s"})
}

// TestTaskVolumesRunTime: a Pod's volumes are fixed when it is created, so
// a volume or mount fed by a task result (or a matrix) is refused.
func TestTaskVolumesRunTime(t *testing.T) {
	const pipeline = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: rt
spec:
  pipelineSpec:
    tasks:
    - name: a
      taskSpec:
        results: [{name: name}]
        steps: [{name: s, image: busybox, script: "echo -n x > $(results.name.path)"}]
    - name: b
      params:
      - {name: nm, value: $(tasks.a.results.name)}
      taskSpec:
        params: [{name: nm}]
        volumes:
        - name: v
          configMap: {name: VOLUME}
        steps:
        - name: s
          image: busybox
          script: "true"
          volumeMounts:
          - {name: v, mountPath: MOUNT}
`
	for _, tc := range []struct {
		name, volume, mount, field string
	}{
		{"volume source", "$(params.nm)", "/m", "spec.pipelineSpec.tasks[1].taskSpec.volumes[0]"},
		{"mount path", "cm", "/m/$(params.nm)", "spec.pipelineSpec.tasks[1].taskSpec.steps[0].volumeMounts[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.NewReplacer("VOLUME", tc.volume, "MOUNT", tc.mount).Replace(pipeline)
			_, err := compileYAML(t, in, Options{})
			var le *load.Error
			if !errors.As(err, &le) {
				t.Fatalf("Compile: %v, want a *load.Error", err)
			}
			if le.Field != tc.field || !strings.Contains(le.Msg, "known only at run time") || !strings.Contains(le.Msg, "fixed when it is created") {
				t.Errorf("error = %v (field %q), want field %q and the run-time message", le, le.Field, tc.field)
			}
		})
	}
}
