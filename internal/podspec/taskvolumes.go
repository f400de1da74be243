package podspec

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/internal/compile"
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
		src := *v.VolumeSource.DeepCopy()
		b.copyVolumeObjects(name, &src, tv)
		b.addVolume(corev1.Volume{Name: name, VolumeSource: src})
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

// copyVolumeObjects points src at per-run copies of the ConfigMaps and
// Secrets given as documents (tv), added to the objects before the Pod.
func (b *builder) copyVolumeObjects(name string, src *corev1.VolumeSource, tv *compile.TaskVolumes) {
	if s := src.ConfigMap; s != nil {
		s.Name = b.copyConfigMap(name, tv.ConfigMaps[s.Name], s.Name)
	}
	if s := src.Secret; s != nil {
		s.SecretName = b.copySecret(name, tv.Secrets[s.SecretName], s.SecretName)
	}
	if src.Projected != nil {
		for i := range src.Projected.Sources {
			p := &src.Projected.Sources[i]
			n := name + "-" + strconv.Itoa(i)
			if p.ConfigMap != nil {
				p.ConfigMap.Name = b.copyConfigMap(n, tv.ConfigMaps[p.ConfigMap.Name], p.ConfigMap.Name)
			}
			if p.Secret != nil {
				p.Secret.Name = b.copySecret(n, tv.Secrets[p.Secret.Name], p.Secret.Name)
			}
		}
	}
}

// copyConfigMap adds a copy of cm named name and returns the name; without
// a document it keeps the original name (the cluster's object).
func (b *builder) copyConfigMap(name string, cm *corev1.ConfigMap, original string) string {
	if cm == nil {
		return original
	}
	b.objs = append(b.objs, &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: b.copyMeta(name),
		Data:       cm.Data, BinaryData: cm.BinaryData,
	})
	return name
}

func (b *builder) copySecret(name string, s *corev1.Secret, original string) string {
	if s == nil {
		return original
	}
	data := map[string][]byte{}
	for k, v := range s.Data {
		data[k] = v
	}
	for k, v := range s.StringData {
		data[k] = []byte(v)
	}
	b.objs = append(b.objs, &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: b.copyMeta(name),
		Type:       s.Type, Data: data,
	})
	return name
}

func (b *builder) copyMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: b.plan.GetNamespace(), Labels: map[string]string{ManagedByLabel: ManagedBy}}
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
		for _, prev := range out {
			if prev.MountPath == m.MountPath {
				return nil, load.Errorf("", "", "%s: volumeMount %q at %s: the path is already mounted (%s)", where, m.Name, m.MountPath, prev.Name)
			}
		}
		m.Name = name
		out = append(out, m)
	}
	return out, nil
}
