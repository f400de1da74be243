package compile

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// env resolves a container's environment as the kubelet would: envFrom
// first, then env, a later variable replacing an earlier one of the same
// name. Values from ConfigMaps and Secrets given as documents are resolved
// now. A reference to one that is not given stays a value_from (pod mode
// reads it in the cluster) when it is optional; when it is required the run
// cannot start here, so it is invalid input. A reference whose name or key
// holds a $(...) variable stays a value_from for the supervisor to
// substitute.
func (c *compiler) env(env []corev1.EnvVar, envFrom []corev1.EnvFromSource, at where) ([]*planpb.EnvVar, error) {
	var out []*planpb.EnvVar
	index := map[string]int{}
	set := func(e *planpb.EnvVar) {
		if i, ok := index[e.Name]; ok {
			out[i] = e
			return
		}
		index[e.Name] = len(out)
		out = append(out, e)
	}
	for i, from := range envFrom {
		field := fmt.Sprintf("envFrom[%d]", i)
		var (
			data     map[string]string
			found    bool
			optional bool
			kind     string
			name     string
		)
		switch {
		case from.ConfigMapRef != nil:
			kind, name, optional = "ConfigMap", from.ConfigMapRef.Name, isTrue(from.ConfigMapRef.Optional)
			data, found = c.configMapData(name)
			field += ".configMapRef"
		case from.SecretRef != nil:
			kind, name, optional = "Secret", from.SecretRef.Name, isTrue(from.SecretRef.Optional)
			data, found = c.secretData(name)
			field += ".secretRef"
		default:
			continue
		}
		if !found {
			if optional {
				// Nothing to set; pod mode gives the same when it is absent there too.
				continue
			}
			return nil, at.errorf(field+".name", "%s %q not found: give it as a document", kind, name)
		}
		for _, k := range sortedKeys(data) {
			set(&planpb.EnvVar{Name: from.Prefix + k, Value: data[k]})
		}
	}
	for i, e := range env {
		field := fmt.Sprintf("env[%d].valueFrom", i)
		if e.ValueFrom == nil {
			set(&planpb.EnvVar{Name: e.Name, Value: e.Value})
			continue
		}
		var ref *planpb.KeyRef
		var data map[string]string
		var found bool
		switch vf := e.ValueFrom; {
		case vf.ConfigMapKeyRef != nil:
			ref = &planpb.KeyRef{Kind: planpb.KeyRef_CONFIG_MAP, Name: vf.ConfigMapKeyRef.Name, Key: vf.ConfigMapKeyRef.Key, Optional: isTrue(vf.ConfigMapKeyRef.Optional)}
			field += ".configMapKeyRef"
			data, found = c.configMapData(ref.Name)
		case vf.SecretKeyRef != nil:
			ref = &planpb.KeyRef{Kind: planpb.KeyRef_SECRET, Name: vf.SecretKeyRef.Name, Key: vf.SecretKeyRef.Key, Optional: isTrue(vf.SecretKeyRef.Optional)}
			field += ".secretKeyRef"
			data, found = c.secretData(ref.Name)
		case vf.FieldRef != nil:
			return nil, unsupported(at, field+".fieldRef", "env valueFrom.fieldRef")
		case vf.ResourceFieldRef != nil:
			return nil, unsupported(at, field+".resourceFieldRef", "env valueFrom.resourceFieldRef")
		default:
			return nil, unsupported(at, field, "this env valueFrom source")
		}
		kind := "ConfigMap"
		if ref.Kind == planpb.KeyRef_SECRET {
			kind = "Secret"
		}
		switch v, hasKey := data[ref.Key]; {
		case strings.Contains(ref.Name, "$(") || strings.Contains(ref.Key, "$("):
			set(&planpb.EnvVar{Name: e.Name, ValueFrom: ref})
		case found && hasKey:
			set(&planpb.EnvVar{Name: e.Name, Value: v})
		case found && ref.Optional:
			// The kubelet leaves the variable unset.
		case found:
			return nil, at.errorf(field+".key", "%s %q has no key %q", kind, ref.Name, ref.Key)
		case ref.Optional:
			set(&planpb.EnvVar{Name: e.Name, ValueFrom: ref})
		default:
			return nil, at.errorf(field+".name", "%s %q not found: give it as a document", kind, ref.Name)
		}
	}
	return out, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// configMapData is the data of a ConfigMap document, binary data included.
func (c *compiler) configMapData(name string) (map[string]string, bool) {
	e, ok := c.objs.configMaps[name]
	if !ok {
		return nil, false
	}
	data := map[string]string{}
	for k, v := range e.obj.BinaryData {
		data[k] = string(v)
	}
	for k, v := range e.obj.Data {
		data[k] = v
	}
	return data, true
}

// secretData is the data of a Secret document; stringData takes precedence,
// as the API server merges it into data.
func (c *compiler) secretData(name string) (map[string]string, bool) {
	e, ok := c.objs.secrets[name]
	if !ok {
		return nil, false
	}
	data := map[string]string{}
	for k, v := range e.obj.Data {
		data[k] = string(v)
	}
	for k, v := range e.obj.StringData {
		data[k] = v
	}
	return data, true
}
