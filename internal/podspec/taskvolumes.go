package podspec

import (
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// ownVolumes are a task's Task volumes (spec.volumes) as Pod volumes and
// the mounts of its steps and sidecars. They are mounted only into that
// task's containers, at the paths its volumeMounts give.
type ownVolumes struct {
	// pod maps a Task volume's name, or a workspace volume's name
	// ($(workspaces.W.volume)), to its Pod volume.
	pod             map[string]string
	steps, sidecars [][]corev1.VolumeMount
}

// taskOwnVolumes adds t's Task volumes to the Pod, each named uniquely per
// run and per task (two tasks may both name a volume "data"; podman shares
// emptyDirs by name). Their sources pass through as Tekton passes them to
// its pod; ConfigMaps and Secrets given as documents are copied per run, as
// workspace ones are, so that the Pod holds what was compiled.
func (b *builder) taskOwnVolumes(t *planpb.Task) (*ownVolumes, error) {
	tv := b.c.TaskVolumes[t.GetName()]
	if tv == nil {
		if len(t.GetSpec().GetVolumes()) > 0 {
			return nil, load.Errorf("", "", "task %q: Task volumes %v are not in the compiled run", t.GetName(), t.GetSpec().GetVolumes())
		}
		return nil, nil
	}
	own := &ownVolumes{pod: map[string]string{}, steps: tv.Steps, sidecars: tv.Sidecars}
	for _, wb := range t.GetWorkspaces() {
		name := podlayout.WorkspaceVolume(wb.GetVolume(), b.uid)
		own.pod[name] = name
	}
	for _, v := range tv.Volumes {
		name := b.taskVolumeName(t, v.Name)
		own.pod[v.Name] = name
		b.addVolume(corev1.Volume{Name: name, VolumeSource: *v.VolumeSource.DeepCopy()})
	}
	return own, nil
}

// taskVolumeName is the Pod volume of a task's Task volume: "tv-TASK-VOLUME"
// with the run's suffix, the task and volume replaced by a hash when long
// (VolumeName keeps only a prefix).
func (b *builder) taskVolumeName(t *planpb.Task, volume string) string {
	n := "tv-" + podlayout.TaskDir(t.GetName()) + "-" + volume
	if len(n) > 50 {
		n = "tv-" + podlayout.RunSuffix(t.GetName()+"/"+volume)
	}
	return podlayout.VolumeName(n, b.uid)
}

// mounts are a container's mounts: base (the task's workspaces and
// pod-runner's own) and the volumeMounts of step (or sidecar) i, each
// naming one of the task's volumes. A nil ownVolumes adds nothing.
func (o *ownVolumes) mounts(base []corev1.VolumeMount, sidecar bool, i int, where string) ([]corev1.VolumeMount, error) {
	if o == nil {
		return base, nil
	}
	own := o.steps
	if sidecar {
		own = o.sidecars
	}
	if i >= len(own) || len(own[i]) == 0 {
		return base, nil
	}
	out := slices.Clone(base)
	for _, m := range own[i] {
		name, ok := o.pod[m.Name]
		if !ok {
			return nil, load.Errorf("", "", "%s: volumeMount %q names no volume of the task (its volumes, or a workspace's $(workspaces.W.volume))", where, m.Name)
		}
		// A step's own mount at /workspace or /tekton/home takes the place
		// of the implicit one, as in Tekton's pod ("so they can be
		// overridden by the user").
		// A sidecar's own mount takes the place of a workspace's at its
		// path, as workspace.AddSidecarVolumeMount leaves it.
		out = slices.DeleteFunc(out, func(prev corev1.VolumeMount) bool {
			return filepath.Clean(prev.MountPath) == filepath.Clean(m.MountPath) && (sidecar && !pinned(prev.MountPath) || overridable(prev.MountPath))
		})
		for _, prev := range out {
			if filepath.Clean(prev.MountPath) == filepath.Clean(m.MountPath) {
				return nil, load.Errorf("", "", "%s: volumeMount %q at %s: the path is already mounted (%s)", where, m.Name, m.MountPath, prev.Name)
			}
		}
		m.Name = name
		out = append(out, m)
	}
	return out, nil
}

// pinned tells whether the mount at path is pod-runner's own, which even a
// sidecar's mount may not replace.
func pinned(path string) bool {
	p := filepath.Clean(path)
	return p == podlayout.BinDir || p == podlayout.RunDir || p == podlayout.ScriptsDir
}

// overridable tells whether a step's volumeMount may replace the mount at
// path: Tekton's implicit /workspace and /tekton/home may be, while
// /tekton/results and /tekton/steps carry what the supervisor reads, and
// pod-runner's own mounts what the step runs with.
func overridable(path string) bool {
	switch filepath.Clean(path) {
	case podlayout.WorkspaceDir, podlayout.HomeDir:
		return true
	}
	return false
}
