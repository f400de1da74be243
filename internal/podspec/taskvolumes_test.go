package podspec

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/podlayout"
)

// taskVolumesRun: two tasks each with a Task volume named "data"; the first
// also mounts a ConfigMap given as a document and binds a projected
// workspace, the second binds a CSI workspace; a third task has neither.
const taskVolumesRun = `
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr}
spec:
  workspaces:
  - name: proj
    projected:
      sources:
      - configMap: {name: settings}
      - secret: {name: creds}
  - name: drv
    csi: {driver: example.csi.k8s.io, readOnly: true}
  pipelineSpec:
    workspaces: [{name: proj}, {name: drv}]
    tasks:
    - name: ` + longTask + `
      workspaces: [{name: p, workspace: proj}]
      taskSpec:
        workspaces: [{name: p, mountPath: /proj, readOnly: true}]
        volumes:
        - {name: data, emptyDir: {}}
        - name: conf
          configMap: {name: settings, items: [{key: a, path: x/a.txt}]}
        steps:
        - name: write
          image: busybox
          script: echo hi > /shared/f
          volumeMounts: [{name: data, mountPath: /shared}]
        - name: read
          image: busybox
          script: cat /shared/f /etc/conf/x/a.txt
          volumeMounts:
          - {name: data, mountPath: /shared, readOnly: true}
          - {name: conf, mountPath: /etc/conf, subPath: x}
        sidecars:
        - name: side
          image: busybox
          script: sleep 1
          volumeMounts: [{name: data, mountPath: /side}]
    - name: second
      workspaces: [{name: d, workspace: drv}]
      taskSpec:
        workspaces: [{name: d}]
        volumes: [{name: data, emptyDir: {}}]
        steps:
        - name: s
          image: busybox
          script: ls /data
          volumeMounts: [{name: data, mountPath: /data}]
    - name: third
      taskSpec:
        steps: [{name: s, image: busybox, script: "true"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: alpha}
`

// Task volumes become Pod volumes unique per run and per task, mounted
// only into their task's containers at the volumeMounts' paths; projected
// and CSI workspaces only into the tasks that bind them.
func TestTaskVolumesInPod(t *testing.T) {
	c := compileYAML(t, taskVolumesRun)
	pod, err := Pod(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, pod)
	uid := c.Plan.GetUid()
	vs := volumes(pod)
	b := &builder{uid: uid}
	firstData, conf := b.taskVolumeName(c.Plan.GetTasks()[0], "data"), b.taskVolumeName(c.Plan.GetTasks()[0], "conf")
	secondData := b.taskVolumeName(c.Plan.GetTasks()[1], "data")
	proj, drv := podlayout.WorkspaceVolume("proj", uid), podlayout.WorkspaceVolume("drv", uid)
	if firstData == secondData {
		t.Fatalf("both tasks' data volumes are named %q", firstData)
	}
	for _, n := range []string{firstData, conf, secondData, proj, drv} {
		if _, ok := vs[n]; !ok || len(n) > 63 || !strings.HasSuffix(n, podlayout.RunSuffix(uid)) {
			t.Errorf("volume %q: in pod %v, want ≤63 characters ending in the run's suffix", n, ok)
		}
	}
	if vs[firstData].EmptyDir == nil || vs[secondData].EmptyDir == nil {
		t.Errorf("data volumes %+v %+v, want emptyDirs", vs[firstData], vs[secondData])
	}
	// The ConfigMap given as a document is the Task's, by its own name.
	if cm := vs[conf].ConfigMap; cm == nil || cm.Name != "settings" || len(cm.Items) != 1 || cm.Items[0].Path != "x/a.txt" {
		t.Errorf("conf volume %+v", vs[conf])
	}
	if p := vs[proj].Projected; p == nil || len(p.Sources) != 2 || p.Sources[0].ConfigMap.Name != "settings" || p.Sources[1].Secret.Name != "creds" {
		t.Errorf("projected volume %+v", vs[proj])
	}
	if d := vs[drv].CSI; d == nil || d.Driver != "example.csi.k8s.io" {
		t.Errorf("csi volume %+v", vs[drv])
	}

	byName := map[string]corev1.Container{}
	for _, ct := range pod.Spec.Containers {
		byName[ct.Name] = ct
	}
	type want struct {
		path      string
		vol       string
		readOnly  bool
		subPath   string
		forbidden bool
	}
	write, read := podlayout.StepContainer(longTask, "write"), podlayout.StepContainer(longTask, "read")
	side := podlayout.SidecarContainer(longTask, "side")
	for _, tc := range []struct {
		container string
		want      []want
	}{
		{write, []want{{path: "/shared", vol: firstData}, {path: "/proj", vol: proj, readOnly: true}, {path: "/etc/conf", forbidden: true}}},
		{read, []want{{path: "/shared", vol: firstData, readOnly: true}, {path: "/etc/conf", vol: conf, subPath: "x"}, {path: "/proj", vol: proj, readOnly: true}}},
		{side, []want{{path: "/side", vol: firstData}, {path: "/shared", forbidden: true}, {path: "/proj", vol: proj, readOnly: true}}},
		{"second-s", []want{{path: "/data", vol: secondData}, {path: "/workspace/d", vol: drv, readOnly: true}}},
		{"third-s", nil},
	} {
		ct, ok := byName[tc.container]
		if !ok {
			t.Errorf("no container %q", tc.container)
			continue
		}
		m := mounts(ct)
		for _, w := range tc.want {
			got, ok := m[w.path]
			if w.forbidden {
				if ok {
					t.Errorf("%s mounts %s", tc.container, w.path)
				}
				continue
			}
			if !ok || got.Name != w.vol || got.ReadOnly != w.readOnly || got.SubPath != w.subPath {
				t.Errorf("%s at %s: %+v, want %s readOnly=%v subPath=%q", tc.container, w.path, got, w.vol, w.readOnly, w.subPath)
			}
		}
		// No container mounts another task's volumes.
		mine := map[string]bool{}
		for _, w := range tc.want {
			mine[w.vol] = true
		}
		for _, vm := range ct.VolumeMounts {
			for _, other := range []string{firstData, conf, secondData, proj, drv} {
				if vm.Name == other && !mine[other] {
					t.Errorf("%s mounts %s (%s), which is another task's", tc.container, other, vm.MountPath)
				}
			}
		}
	}
}

// A volumeMount must name one of its task's volumes; a mount at a path
// already mounted is refused before Kubernetes would.
func TestTaskVolumeMountErrors(t *testing.T) {
	for _, tc := range []struct{ name, mounts, want string }{
		{"unknown volume", "[{name: nope, mountPath: /x}]", `volumeMount "nope" names no volume of the task`},
		{"path taken", "[{name: data, mountPath: /a}, {name: data, mountPath: /a}]", "already mounted"},
		{"over pod-runner's own mounts", "[{name: data, mountPath: /pod-runner/bin}]", "already mounted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := compileYAML(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  taskSpec:
    volumes: [{name: data, emptyDir: {}}]
    steps:
    - name: s
      image: busybox
      script: "true"
      volumeMounts: `+tc.mounts+`
`)
			_, err := Pod(context.Background(), c, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Pod: %v, want %q", err, tc.want)
			}
		})
	}
}

// A step's volumeMount at /workspace or /tekton/home replaces the implicit
// mount there, as Tekton's pod lets it.
func TestTaskVolumeMountOverridesImplicit(t *testing.T) {
	c := compileYAML(t, `
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: tr}
spec:
  taskSpec:
    volumes: [{name: data, emptyDir: {}}, {name: home, emptyDir: {}}]
    steps:
    - name: s
      image: busybox
      script: "true"
      volumeMounts: [{name: data, mountPath: /workspace/}, {name: home, mountPath: /tekton/home}]
    - {name: other, image: busybox, script: "true"}
`)
	pod, err := Pod(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, pod)
	b := &builder{uid: c.Plan.GetUid()}
	task := c.Plan.GetTasks()[0]
	mountAt := func(container, path string) []string {
		var names []string
		for _, ct := range pod.Spec.Containers {
			if ct.Name != container {
				continue
			}
			for _, m := range ct.VolumeMounts {
				if filepath.Clean(m.MountPath) == path {
					names = append(names, m.Name)
				}
			}
		}
		return names
	}
	s, other := podlayout.StepContainer(task.GetName(), "s"), podlayout.StepContainer(task.GetName(), "other")
	if got := mountAt(s, podlayout.WorkspaceDir); !slices.Equal(got, []string{b.taskVolumeName(task, "data")}) {
		t.Errorf("%s at /workspace: %v, want only the Task volume", s, got)
	}
	if got := mountAt(s, podlayout.HomeDir); !slices.Equal(got, []string{b.taskVolumeName(task, "home")}) {
		t.Errorf("%s at /tekton/home: %v, want only the Task volume", s, got)
	}
	if got := mountAt(other, podlayout.WorkspaceDir); len(got) != 1 || got[0] == b.taskVolumeName(task, "data") {
		t.Errorf("%s at /workspace: %v, want its implicit mount", other, got)
	}
}
