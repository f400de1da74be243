package compile

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// sharedClaims maps each workspace binding of a claim another binding
// names first to that binding: Tekton mounts a claim once, whichever
// workspaces bind it (workspace.CreateVolumes), and a Pod with two volumes
// of one claim is one the kubelet does not start.
// A binding given a host directory (--workspace) is its own.
func sharedClaims(bindings []v1.WorkspaceBinding, hostDirs map[string]string) map[string]string {
	first, shared := map[string]string{}, map[string]string{}
	for _, b := range bindings {
		if b.PersistentVolumeClaim == nil || hostDirs[b.Name] != "" {
			continue
		}
		if f, ok := first[b.PersistentVolumeClaim.ClaimName]; ok {
			shared[b.Name] = f
			continue
		}
		first[b.PersistentVolumeClaim.ClaimName] = b.Name
	}
	return shared
}

// volumeFor is the plan volume behind the run's workspace binding name.
func volumeFor(shared map[string]string, binding string) string {
	if f, ok := shared[binding]; ok {
		return f
	}
	return binding
}

// volumes are the storage behind the run's workspace bindings, one per
// binding, named after it, but one per claim (c.shared). hostDirs are the
// --workspace NAME=DIR choices.
func (c *compiler) volumes(bindings []v1.WorkspaceBinding, hostDirs map[string]string, runAt where) ([]*planpb.Volume, error) {
	var out []*planpb.Volume
	for i, b := range bindings {
		if _, ok := c.shared[b.Name]; ok {
			continue
		}
		field := fmt.Sprintf("workspaces[%d]", i)
		v := &planpb.Volume{Name: b.Name}
		switch {
		case hostDirs[b.Name] != "":
			v.Source = &planpb.Volume_HostPath{HostPath: hostDirs[b.Name]}
		case b.EmptyDir != nil:
			v.Source = &planpb.Volume_EmptyDir{EmptyDir: &planpb.EmptyDir{}}
		case b.VolumeClaimTemplate != nil:
			v.Source = &planpb.Volume_ClaimTemplate{ClaimTemplate: &planpb.EmptyDir{}}
		case b.PersistentVolumeClaim != nil:
			v.Source = &planpb.Volume_PersistentVolumeClaim{PersistentVolumeClaim: b.PersistentVolumeClaim.ClaimName}
			v.ReadOnly = b.PersistentVolumeClaim.ReadOnly
		case b.ConfigMap != nil:
			files := c.files(planpb.KeyRef_CONFIG_MAP, b.ConfigMap.Name, b.ConfigMap.Items, b.ConfigMap.DefaultMode, isTrue(b.ConfigMap.Optional), runAt, field+".configMap")
			v.Source = &planpb.Volume_ConfigMap{ConfigMap: files}
			v.ReadOnly = true
		case b.Secret != nil:
			files := c.files(planpb.KeyRef_SECRET, b.Secret.SecretName, b.Secret.Items, b.Secret.DefaultMode, isTrue(b.Secret.Optional), runAt, field+".secret")
			v.Source = &planpb.Volume_Secret{Secret: files}
			v.ReadOnly = true
		case b.Projected != nil:
			// The source stays in the run's binding, where the injector
			// reads it; the kubelet mounts projected volumes read-only.
			v.Source = &planpb.Volume_Projected{Projected: &planpb.EmptyDir{}}
			c.volumeObjects(corev1.VolumeSource{Projected: b.Projected})
			v.ReadOnly = true
			v.ProjectedFiles, v.ProjectedUnsupported = c.projectedFiles(b.Projected, runAt, field+".projected")
		case b.CSI != nil:
			v.Source = &planpb.Volume_Csi{Csi: &planpb.EmptyDir{}}
			v.ReadOnly = isTrue(b.CSI.ReadOnly)
		default:
			return nil, runAt.errorf(field, "workspace binding %q has no volume source", b.Name)
		}
		out = append(out, v)
	}
	return out, nil
}

// projectedFiles are a projected volume's ConfigMap and Secret sources,
// for a local run to lay out; unsupported names a source it cannot build.
func (c *compiler) projectedFiles(p *corev1.ProjectedVolumeSource, runAt where, field string) (out []*planpb.ProjectedFiles, unsupported string) {
	for i, s := range p.Sources {
		at := fmt.Sprintf("%s.sources[%d]", field, i)
		switch {
		case s.ConfigMap != nil:
			out = append(out, &planpb.ProjectedFiles{Kind: planpb.KeyRef_CONFIG_MAP,
				Files: c.files(planpb.KeyRef_CONFIG_MAP, s.ConfigMap.Name, s.ConfigMap.Items, p.DefaultMode, isTrue(s.ConfigMap.Optional), runAt, at+".configMap")})
		case s.Secret != nil:
			out = append(out, &planpb.ProjectedFiles{Kind: planpb.KeyRef_SECRET,
				Files: c.files(planpb.KeyRef_SECRET, s.Secret.Name, s.Secret.Items, p.DefaultMode, isTrue(s.Secret.Optional), runAt, at+".secret")})
		case s.DownwardAPI != nil:
			unsupported = "its downwardAPI source"
		case s.ServiceAccountToken != nil:
			unsupported = "its serviceAccountToken source"
		default:
			unsupported = fmt.Sprintf("its source %d (the kubelet's own)", i)
		}
	}
	return out, unsupported
}

// files is a ConfigMap or Secret volume by reference, laid out as the
// binding says (items, defaultMode). A local run reads it from the
// documents: one it could not mount (a required object or item key not
// given) is noted as a local error.
func (c *compiler) files(kind planpb.KeyRef_Kind, name string, items []corev1.KeyToPath, defaultMode *int32, optional bool, runAt where, field string) *planpb.Files {
	files := &planpb.Files{Name: name, Optional: optional}
	if defaultMode != nil {
		files.DefaultMode = *defaultMode
	}
	for _, it := range items {
		kp := &planpb.KeyToPath{Key: it.Key, Path: it.Path}
		if it.Mode != nil {
			kp.Mode = *it.Mode
		}
		files.Items = append(files.Items, kp)
	}
	data, found := c.objs.refer(kind, name)
	if !found {
		if !optional {
			c.noteLocal(runAt.errorf(field, "%s %q not found: give it as a document", kind.Object(), name))
		}
		return files
	}
	for i, it := range items {
		if _, ok := data[it.Key]; !ok && !optional {
			c.noteLocal(runAt.errorf(fmt.Sprintf("%s.items[%d].key", field, i), "%s %q has no key %q", kind.Object(), name, it.Key))
		}
	}
	return files
}

// overrideRun applies the command line's params and workspaces to the run:
// a --param replaces the run's value or adds one, typed as the declaration
// says (JSON for arrays and objects); a --workspace binds a workspace to a
// host directory, replacing the run's binding but keeping its subPath.
// declaredWs nil means any workspace name is accepted (an embedded Task spec
// may use undeclared ones). what names the declaring object in messages.
func (c *compiler) overrideRun(ps *v1.Params, bindings *[]v1.WorkspaceBinding, declared v1.ParamSpecs, declaredWs map[string]bool, what string) (map[string]string, error) {
	types := map[string]v1.ParamType{}
	for _, d := range declared {
		types[d.Name] = d.Type
	}
	for _, name := range sortedKeys(c.opts.Params) {
		raw := c.opts.Params[name]
		field := "--param " + name
		var val v1.ParamValue
		switch types[name] {
		case v1.ParamTypeArray:
			var arr []string
			if err := json.Unmarshal([]byte(raw), &arr); err != nil {
				return nil, load.Errorf("", field, "param %q of %s is an array: give a JSON array of strings: %v", name, what, err)
			}
			val = v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: arr}
		case v1.ParamTypeObject:
			var obj map[string]string
			if err := json.Unmarshal([]byte(raw), &obj); err != nil {
				return nil, load.Errorf("", field, "param %q of %s is an object: give a JSON object of strings: %v", name, what, err)
			}
			val = *v1.NewObject(obj)
		default:
			val = v1.ParamValue{Type: v1.ParamTypeString, StringVal: raw}
		}
		replaced := false
		for i := range *ps {
			if (*ps)[i].Name == name {
				(*ps)[i].Value = val
				replaced = true
			}
		}
		if !replaced {
			*ps = append(*ps, v1.Param{Name: name, Value: val})
		}
	}

	hostDirs := map[string]string{}
	for _, name := range sortedKeys(c.opts.Workspaces) {
		if declaredWs != nil && !declaredWs[name] {
			return nil, load.Errorf("", "--workspace "+name, "%s declares no workspace %q", what, name)
		}
		dir, err := filepath.Abs(c.opts.Workspaces[name])
		if err != nil {
			return nil, load.Errorf("", "--workspace "+name, "%v", err)
		}
		hostDirs[name] = dir
		// The run's object keeps a valid binding; the plan's volume is the host dir.
		b := v1.WorkspaceBinding{Name: name, EmptyDir: &corev1.EmptyDirVolumeSource{}}
		replaced := false
		for i := range *bindings {
			if (*bindings)[i].Name == name {
				b.SubPath = (*bindings)[i].SubPath
				(*bindings)[i] = b
				replaced = true
			}
		}
		if !replaced {
			*bindings = append(*bindings, b)
		}
	}
	return hostDirs, nil
}
