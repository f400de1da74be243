package podspec

import (
	"fmt"
	"slices"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// collectClaimTemplates keeps the run's volumeClaimTemplates, which the Plan
// reduces to "a fresh volume", and its projected and CSI sources, which
// the Plan only marks.
func (b *builder) collectClaimTemplates() {
	var ws []v1.WorkspaceBinding
	if b.c.PipelineRun != nil {
		ws = b.c.PipelineRun.Spec.Workspaces
	} else if b.c.TaskRun != nil {
		ws = b.c.TaskRun.Spec.Workspaces
	}
	for _, w := range ws {
		switch {
		case w.Projected != nil:
			b.sources[w.Name] = corev1.VolumeSource{Projected: w.Projected.DeepCopy()}
		case w.CSI != nil:
			b.sources[w.Name] = corev1.VolumeSource{CSI: w.CSI.DeepCopy()}
		}
		if t := w.VolumeClaimTemplate; t != nil {
			b.bindings[w.Name] = &corev1.PersistentVolumeClaimTemplate{
				ObjectMeta: metav1.ObjectMeta{Labels: t.Labels, Annotations: t.Annotations},
				Spec:       t.Spec,
			}
		}
	}
}

// taskMounts are the mounts of every step container of t: the bin volume
// (read-only), the run volume, the task's own results and steps volumes,
// its own /workspace, /tekton/home and /tekton/scripts, and the workspaces
// it binds. Nothing
// of another task is mounted. The results and steps volumes are emptyDirs
// of their own, not subPaths of the state volume: podman 4.3 ignores
// subPath on an emptyDir and would show every task the whole volume. The
// supervisor mounts them under StateDir (b.taskState).
//
// The workspaces a step or sidecar isolates are not among them: isolated
// holds their mounts, for isolatedMounts.append.
func (b *builder) taskMounts(t *planpb.Task) (mounts []corev1.VolumeMount, isolated isolatedMounts, err error) {
	dir := podlayout.TaskDir(t.GetName())
	work, home, scripts := b.taskVolume(t, "work"), b.taskVolume(t, "home"), b.taskVolume(t, "scripts")
	res, steps := b.taskVolume(t, "results"), b.taskVolume(t, "steps")
	b.taskState = append(b.taskState,
		corev1.VolumeMount{Name: res, MountPath: podlayout.StateDir + "/" + dir + "/results"},
		corev1.VolumeMount{Name: steps, MountPath: podlayout.StateDir + "/" + dir + "/steps"})
	mounts = []corev1.VolumeMount{
		{Name: podlayout.VolumeName(podlayout.BinVolume, b.uid), MountPath: podlayout.BinDir, ReadOnly: true},
		{Name: podlayout.VolumeName(podlayout.RunVolume, b.uid), MountPath: podlayout.RunDir},
		{Name: res, MountPath: podlayout.ResultsDir},
		// Links to each step's own directory (runMounts), which only
		// the supervisor writes.
		{Name: steps, MountPath: podlayout.StepsDir, ReadOnly: true},
		{Name: work, MountPath: podlayout.WorkspaceDir},
		{Name: home, MountPath: podlayout.HomeDir},
		{Name: scripts, MountPath: podlayout.ScriptsDir},
	}
	// Tekton mounts /tekton/artifacts into every step; here only a task
	// whose steps can name it gets one (an emptyDir per task counts at
	// hundreds of tasks).
	if namesTaskArtifacts(t.GetSpec()) {
		arts := b.taskVolume(t, "artifacts")
		b.taskState = append(b.taskState, corev1.VolumeMount{Name: arts, MountPath: podlayout.StateDir + "/" + dir + "/artifacts"})
		mounts = append(mounts, corev1.VolumeMount{Name: arts, MountPath: podlayout.ArtifactsDir})
	}
	decls := map[string]*planpb.WorkspaceDeclaration{}
	for _, d := range t.GetSpec().GetWorkspaces() {
		decls[d.GetName()] = d
	}
	names := isolatedWorkspaces(t.GetSpec())
	isolated = isolatedMounts{}
	// Optional workspaces the run leaves unbound have no binding: nothing
	// is mounted, and $(workspaces.W.bound) is "false".
	for _, wb := range t.GetWorkspaces() {
		vol, readOnly, err := b.workspaceVolume(wb.GetVolume())
		if err != nil {
			return nil, nil, load.Errorf("", "", "task %q, workspace %q: %v", t.GetName(), wb.GetName(), err)
		}
		m := corev1.VolumeMount{
			Name:      vol,
			MountPath: mountPath(t, wb.GetName()),
			SubPath:   wb.GetSubPath(),
			ReadOnly:  readOnly || decls[wb.GetName()].GetReadOnly(),
		}
		if names[wb.GetName()] {
			isolated[wb.GetName()] = m
			continue
		}
		mounts = append(mounts, m)
	}
	return mounts, isolated, nil
}

// runVolumes are t's per-step volumes, each step's own directory
// (podlayout.RunStepsDir), which the supervisor mounts too.
func (b *builder) runVolumes(t *planpb.Task) runVolumes {
	var out runVolumes
	for j := range t.GetSpec().GetSteps() {
		name := b.taskVolume(t, fmt.Sprintf("run-%d", j))
		b.taskState = append(b.taskState, corev1.VolumeMount{Name: name, MountPath: fmt.Sprintf("%s/%s/run/%d", podlayout.StateDir, podlayout.TaskDir(t.GetName()), j)})
		out = append(out, name)
	}
	return out
}

// runVolumes are a task's per-step volumes, by step index.
type runVolumes []string

// mounts are the mounts into the container of step i: every step's own
// directory at /tekton/run/INDEX, writable only in its own step's
// container, as Tekton's pod mounts them (a step may read, not alter,
// another's exitCode and results).
func (rv runVolumes) mounts(i int) []corev1.VolumeMount {
	out := make([]corev1.VolumeMount, 0, len(rv))
	for j, name := range rv {
		out = append(out, corev1.VolumeMount{Name: name, MountPath: fmt.Sprintf("%s/%d", podlayout.RunStepsDir, j), ReadOnly: j != i})
	}
	return out
}

// namesTaskArtifacts tells whether a step of spec can write the task's
// artifacts: it names $(artifacts.path) or /tekton/artifacts.
func namesTaskArtifacts(spec *planpb.TaskSpec) bool {
	for _, s := range spec.GetSteps() {
		texts := slices.Concat([]string{s.GetScript(), s.GetWorkingDir()}, s.GetCommand(), s.GetArgs())
		for _, e := range s.GetEnv() {
			texts = append(texts, e.GetValue())
		}
		for _, text := range texts {
			if strings.Contains(text, "$(artifacts.path)") || strings.Contains(text, podlayout.ArtifactsDir) {
				return true
			}
		}
	}
	return false
}

// isolatedMounts are a task's isolated workspaces' mounts, by workspace.
type isolatedMounts map[string]corev1.VolumeMount

// isolatedWorkspaces are the workspaces some step or sidecar names: as in
// Tekton's workspace.Apply, each is mounted only into the containers that
// name it, at the path they give.
func isolatedWorkspaces(spec *planpb.TaskSpec) map[string]bool {
	out := map[string]bool{}
	for _, s := range append(slices.Clone(spec.GetSteps()), spec.GetSidecars()...) {
		for _, w := range s.GetWorkspaces() {
			out[w.GetName()] = true
		}
	}
	return out
}

// append adds to a container's mounts the isolated workspaces its
// step (or sidecar) s names; an unbound optional one adds nothing.
func (iso isolatedMounts) append(mounts []corev1.VolumeMount, s *planpb.Step) []corev1.VolumeMount {
	if len(s.GetWorkspaces()) == 0 {
		return mounts
	}
	out := slices.Clone(mounts)
	for _, w := range s.GetWorkspaces() {
		m, ok := iso[w.GetName()]
		if !ok {
			continue
		}
		if w.GetMountPath() != "" {
			m.MountPath = w.GetMountPath()
		}
		out = append(out, m)
	}
	return out
}

// taskVolume adds one of a task's own emptyDirs. Its name must be unique
// per run (podman shares emptyDirs by name) and per task: a long task name
// is replaced by its hash, since VolumeName keeps only a prefix. All are on
// disk, as Tekton's own tekton-internal-results and -steps emptyDirs.
func (b *builder) taskVolume(t *planpb.Task, kind string) string {
	n := kind + "-" + podlayout.TaskDir(t.GetName())
	if len(n) > 50 {
		n = kind + "-" + podlayout.RunSuffix(t.GetName())
	}
	name := podlayout.VolumeName(n, b.uid)
	b.addVolume(corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	return name
}

// workspaceVolume is the Pod volume behind a plan volume, added the first
// time a task binds it: an emptyDir is one volume for every task that binds
// it. It also tells whether the binding is read-only.
func (b *builder) workspaceVolume(planVolume string) (string, bool, error) {
	var v *planpb.Volume
	for _, pv := range b.plan.GetVolumes() {
		if pv.GetName() == planVolume {
			v = pv
		}
	}
	if v == nil {
		return "", false, fmt.Errorf("no volume %q in the plan", planVolume)
	}
	name := podlayout.WorkspaceVolume(planVolume, b.uid)
	if _, done := b.volumes[planVolume]; done {
		return name, v.GetReadOnly(), nil
	}
	var src corev1.VolumeSource
	switch s := v.GetSource().(type) {
	case *planpb.Volume_EmptyDir:
		src.EmptyDir = &corev1.EmptyDirVolumeSource{}
	case *planpb.Volume_ClaimTemplate:
		tmpl := b.bindings[planVolume]
		if tmpl == nil {
			return "", false, fmt.Errorf("volumeClaimTemplate of workspace %q not found in the run", planVolume)
		}
		src.Ephemeral = &corev1.EphemeralVolumeSource{VolumeClaimTemplate: tmpl.DeepCopy()}
	case *planpb.Volume_PersistentVolumeClaim:
		src.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: s.PersistentVolumeClaim, ReadOnly: v.GetReadOnly()}
	case *planpb.Volume_ConfigMap:
		f := s.ConfigMap
		items, mode := keyPaths(f)
		src.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: f.GetName()}, Items: items, DefaultMode: mode}
		if f.GetOptional() {
			src.ConfigMap.Optional = ptr(true)
		}
	case *planpb.Volume_Secret:
		f := s.Secret
		items, mode := keyPaths(f)
		src.Secret = &corev1.SecretVolumeSource{SecretName: f.GetName(), Items: items, DefaultMode: mode}
		if f.GetOptional() {
			src.Secret.Optional = ptr(true)
		}
	case *planpb.Volume_Projected, *planpb.Volume_Csi:
		found, ok := b.sources[planVolume]
		if !ok {
			return "", false, fmt.Errorf("projected or CSI source of workspace %q not found in the run", planVolume)
		}
		src = *found.DeepCopy()
	case *planpb.Volume_HostPath:
		if !b.opts.HostPaths {
			return "", false, fmt.Errorf("a host directory (--workspace) cannot back a workspace in a Pod")
		}
		src.HostPath = &corev1.HostPathVolumeSource{Path: s.HostPath, Type: ptr(corev1.HostPathDirectory)}
	default:
		return "", false, fmt.Errorf("volume %q has no source the Pod can mount", planVolume)
	}
	b.volumes[planVolume] = name
	b.addVolume(corev1.Volume{Name: name, VolumeSource: src})
	return name, v.GetReadOnly(), nil
}

func ptr[T any](v T) *T { return &v }

// keyPaths are a ConfigMap or Secret volume's items and defaultMode as the
// workspace binding gave them.
func keyPaths(f *planpb.Files) ([]corev1.KeyToPath, *int32) {
	var items []corev1.KeyToPath
	for _, it := range f.GetItems() {
		kp := corev1.KeyToPath{Key: it.GetKey(), Path: it.GetPath()}
		if it.GetMode() != 0 {
			kp.Mode = ptr(it.GetMode())
		}
		items = append(items, kp)
	}
	var mode *int32
	if f.GetDefaultMode() != 0 {
		mode = ptr(f.GetDefaultMode())
	}
	return items, mode
}
