package compile

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	trresources "github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TaskVolumes are a task's own volumes (Task spec.volumes) and where its
// steps and sidecars mount them (volumeMounts, the stepTemplate's merged
// in), with params and contexts substituted as Tekton's ApplyReplacements
// does before it builds the pod. The Plan only names them: the injector
// mounts them.
type TaskVolumes struct {
	Volumes []corev1.Volume
	// Steps[i] are the mounts of the plan task's step i, Sidecars[i] of
	// its sidecar i. A mount may also name a workspace's volume
	// ($(workspaces.W.volume)).
	Steps    [][]corev1.VolumeMount
	Sidecars [][]corev1.VolumeMount
	// Local are the volumes as a local run makes them (Volumes[i] is
	// Local[i]): directories, and ConfigMaps and Secrets laid out as files
	// from the documents given. A source only a kubelet makes is a local
	// error.
	Local []*planpb.Volume
}

// taskVolumes substitutes a task's volumes and volumeMounts (ts: the
// task's resolved spec, t: its plan task, workspace contexts set) and
// names them in t's spec. Nil when the task has none. A Pod's volumes are
// fixed when it is created, so a volume or mount that depends on a param
// known only at run time (a task result, a matrix) is refused.
func (c *compiler) taskVolumes(in taskInput, ts *v1.TaskSpec, t *planpb.Task) (*TaskVolumes, error) {
	var templateVolumes []corev1.Volume
	if pt := in.tr.Spec.PodTemplate; pt != nil {
		templateVolumes = pt.Volumes
	}
	uses := len(ts.Volumes) > 0 || len(templateVolumes) > 0 || ts.StepTemplate != nil && len(ts.StepTemplate.VolumeMounts) > 0
	for _, s := range ts.Steps {
		uses = uses || len(s.VolumeMounts) > 0
	}
	for _, s := range ts.Sidecars {
		uses = uses || len(s.VolumeMounts) > 0
	}
	if !uses {
		return nil, nil
	}
	// As task() merged them (it reported any error).
	merged, err := v1.MergeStepsWithStepTemplate(ts.StepTemplate, ts.Steps)
	if err != nil {
		return nil, in.specAt.errorf("stepTemplate", "merge stepTemplate into steps: %v", err)
	}
	// The pod's volumes are the Task's and its podTemplate's (pod.go), so
	// its steps may mount either; the podTemplate's are not substituted.
	spec := &v1.TaskSpec{Params: ts.Params, Steps: merged, Sidecars: ts.Sidecars, Volumes: ts.Volumes}
	spec = trresources.ApplyParameters(spec, in.knownParams(), ts.Params...)
	// Mount paths may name a workspace's path (a sidecar mounting a
	// workspace's volume where the steps see it): its container path.
	replacements := maps.Clone(t.GetContext())
	for _, b := range t.GetWorkspaces() {
		replacements["workspaces."+b.GetName()+".path"] = containerPath(ts.Workspaces, b.GetName())
	}
	spec = trresources.ApplyReplacements(spec, replacements, nil, nil)

	spec.Volumes = append(spec.Volumes, templateVolumes...)
	tv := &TaskVolumes{Volumes: spec.Volumes}
	names := map[string]bool{}
	for i, v := range spec.Volumes {
		if err := fixed(v, in.specAt, fmt.Sprintf("volumes[%d]", i)); err != nil {
			return nil, err
		}
		names[v.Name] = true
		c.volumeObjects(v.VolumeSource)
		tv.Local = append(tv.Local, c.localVolume(v, in.specAt, fmt.Sprintf("volumes[%d]", i)))
	}
	for i, s := range spec.Steps {
		for j, m := range s.VolumeMounts {
			if err := fixed(m, in.specAt, fmt.Sprintf("steps[%d].volumeMounts[%d]", i, j)); err != nil {
				return nil, err
			}
			names[m.Name] = true
		}
		tv.Steps = append(tv.Steps, s.VolumeMounts)
	}
	for i, s := range spec.Sidecars {
		for j, m := range s.VolumeMounts {
			if err := fixed(m, in.specAt, fmt.Sprintf("sidecars[%d].volumeMounts[%d]", i, j)); err != nil {
				return nil, err
			}
			names[m.Name] = true
		}
		tv.Sidecars = append(tv.Sidecars, s.VolumeMounts)
	}
	t.Spec.Volumes = sortedKeys(names)
	return tv, nil
}

// containerPath is where a workspace is mounted in a task's containers.
func containerPath(decls []v1.WorkspaceDeclaration, name string) string {
	for _, d := range decls {
		if d.Name == name && d.MountPath != "" {
			return d.MountPath
		}
	}
	return podlayout.WorkspaceDir + "/" + name
}

// localVolume is a Task volume as a local run makes it.
func (c *compiler) localVolume(v corev1.Volume, at where, field string) *planpb.Volume {
	out := &planpb.Volume{Name: v.Name}
	switch src := v.VolumeSource; {
	case src.EmptyDir != nil, src == corev1.VolumeSource{}:
		// No source: the API server makes it an emptyDir.
		out.Source = &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}
	case src.HostPath != nil:
		out.Source = &planpb.Volume_HostPath{HostPath: src.HostPath.Path}
	case src.ConfigMap != nil:
		cm := src.ConfigMap
		out.ReadOnly = true
		out.Source = &planpb.Volume_ConfigMap{ConfigMap: c.files(planpb.KeyRef_CONFIG_MAP, cm.Name, cm.Items, cm.DefaultMode, isTrue(cm.Optional), at, field+".configMap")}
	case src.Secret != nil:
		sec := src.Secret
		out.ReadOnly = true
		out.Source = &planpb.Volume_Secret{Secret: c.files(planpb.KeyRef_SECRET, sec.SecretName, sec.Items, sec.DefaultMode, isTrue(sec.Optional), at, field+".secret")}
	default:
		c.noteLocal(at.errorf(field, "volume %q: only emptyDir, hostPath, configMap and secret Task volumes run locally; the others need a kubelet (pod mode: injector compile)", v.Name))
	}
	return out
}

// fixed refuses a volume or mount that still refers to a param after
// substitution: its value is known only at run time.
func fixed(v any, at where, field string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", at.at(field), err)
	}
	for _, ref := range []string{"$(params.", "$(params[", "$(inputs.params."} {
		if strings.Contains(string(b), ref) {
			return at.errorf(field, "uses a param known only at run time (a task result or a matrix): a Pod's volumes are fixed when it is created, so Task volumes and volumeMounts can use only params known before the run starts")
		}
	}
	return nil
}

// volumeObjects marks the ConfigMaps and Secrets given as documents that a
// volume source names as used, so that the injector hands them to the Pod
// with it (the volume names them as the user wrote it).
func (c *compiler) volumeObjects(src corev1.VolumeSource) {
	if src.ConfigMap != nil {
		c.objs.use(planpb.KeyRef_CONFIG_MAP, src.ConfigMap.Name)
	}
	if src.Secret != nil {
		c.objs.use(planpb.KeyRef_SECRET, src.Secret.SecretName)
	}
	if src.Projected != nil {
		for _, p := range src.Projected.Sources {
			if p.ConfigMap != nil {
				c.objs.use(planpb.KeyRef_CONFIG_MAP, p.ConfigMap.Name)
			}
			if p.Secret != nil {
				c.objs.use(planpb.KeyRef_SECRET, p.Secret.Name)
			}
		}
	}
}
