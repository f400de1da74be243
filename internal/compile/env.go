package compile

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// env is a container's environment in the Plan: values as written, and
// ConfigMap and Secret keys (valueFrom, envFrom) by reference only, as
// Tekton leaves them to the kubelet: no Plan, Pod spec or log ever holds
// their values. A later variable replaces an earlier one of the same name,
// as the kubelet's. Locally the launcher reads the references from the
// documents given; one that a local run could not resolve (a required
// object or key not given) is noted as a local error.
func (c *compiler) env(env []corev1.EnvVar, envFrom []corev1.EnvFromSource, at where) ([]*planpb.EnvVar, []*planpb.EnvFrom, error) {
	var from []*planpb.EnvFrom
	for i, f := range envFrom {
		field := fmt.Sprintf("envFrom[%d]", i)
		var ef *planpb.EnvFrom
		switch {
		case f.ConfigMapRef != nil:
			ef = &planpb.EnvFrom{Kind: planpb.KeyRef_CONFIG_MAP, Name: f.ConfigMapRef.Name, Optional: isTrue(f.ConfigMapRef.Optional)}
			field += ".configMapRef"
		case f.SecretRef != nil:
			ef = &planpb.EnvFrom{Kind: planpb.KeyRef_SECRET, Name: f.SecretRef.Name, Optional: isTrue(f.SecretRef.Optional)}
			field += ".secretRef"
		default:
			continue
		}
		ef.Prefix = f.Prefix
		if _, found := c.objs.refer(ef.Kind, ef.Name); !found && !ef.Optional && !strings.Contains(ef.Name, "$(") {
			c.noteLocal(at.errorf(field+".name", "%s %q not found: give it as a document", ef.Kind.Object(), ef.Name))
		}
		from = append(from, ef)
	}
	var out []*planpb.EnvVar
	index := map[string]int{}
	for i, e := range env {
		v := &planpb.EnvVar{Name: e.Name, Value: e.Value}
		if e.ValueFrom != nil {
			ref, err := keyRef(e.ValueFrom, at, fmt.Sprintf("env[%d].valueFrom", i))
			if err != nil {
				return nil, nil, err
			}
			c.checkLocalKey(ref, at, fmt.Sprintf("env[%d].valueFrom", i))
			v = &planpb.EnvVar{Name: e.Name, ValueFrom: ref}
		}
		if j, ok := index[e.Name]; ok {
			out[j] = v
			continue
		}
		index[e.Name] = len(out)
		out = append(out, v)
	}
	return out, from, nil
}

// keyRef is the reference of a configMapKeyRef or secretKeyRef.
func keyRef(vf *corev1.EnvVarSource, at where, field string) (*planpb.KeyRef, error) {
	switch {
	case vf.ConfigMapKeyRef != nil:
		return &planpb.KeyRef{Kind: planpb.KeyRef_CONFIG_MAP, Name: vf.ConfigMapKeyRef.Name, Key: vf.ConfigMapKeyRef.Key, Optional: isTrue(vf.ConfigMapKeyRef.Optional)}, nil
	case vf.SecretKeyRef != nil:
		return &planpb.KeyRef{Kind: planpb.KeyRef_SECRET, Name: vf.SecretKeyRef.Name, Key: vf.SecretKeyRef.Key, Optional: isTrue(vf.SecretKeyRef.Optional)}, nil
	case vf.FieldRef != nil:
		return nil, unsupported(at, field+".fieldRef", "env valueFrom.fieldRef")
	case vf.ResourceFieldRef != nil:
		return nil, unsupported(at, field+".resourceFieldRef", "env valueFrom.resourceFieldRef")
	}
	return nil, unsupported(at, field, "this env valueFrom source")
}

// checkLocalKey notes a local error when a required key reference names an
// object or key the documents lack. One whose name or key holds a $(...)
// variable is known only at run time: the launcher checks it then.
// An optional one's document is still one the run refers to.
func (c *compiler) checkLocalKey(ref *planpb.KeyRef, at where, field string) {
	if strings.Contains(ref.Name, "$(") || strings.Contains(ref.Key, "$(") {
		return
	}
	data, found := c.objs.refer(ref.Kind, ref.Name)
	if ref.Optional {
		return
	}
	field += map[planpb.KeyRef_Kind]string{planpb.KeyRef_CONFIG_MAP: ".configMapKeyRef", planpb.KeyRef_SECRET: ".secretKeyRef"}[ref.Kind]
	switch _, hasKey := data[ref.Key]; {
	case !found:
		c.noteLocal(at.errorf(field+".name", "%s %q not found: give it as a document", ref.Kind.Object(), ref.Name))
	case !hasKey:
		c.noteLocal(at.errorf(field+".key", "%s %q has no key %q", ref.Kind.Object(), ref.Name, ref.Key))
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// use notes the ConfigMap or Secret document of that name, if given, as
// one the run refers to (Compiled.Documents).
func (o *objects) use(kind planpb.KeyRef_Kind, name string) {
	if d := o.doc(kind, name); d != nil {
		o.used[d] = true
	}
}

// refer is data, noting the document as used.
func (o *objects) refer(kind planpb.KeyRef_Kind, name string) (map[string][]byte, bool) {
	o.use(kind, name)
	return o.data(kind, name)
}

// doc is the ConfigMap or Secret document of that name, or nil.
func (o *objects) doc(kind planpb.KeyRef_Kind, name string) *load.Doc {
	if kind == planpb.KeyRef_SECRET {
		return o.secrets[name].doc
	}
	return o.configMaps[name].doc
}

// data is the data of a ConfigMap or Secret document, binary data
// included; a Secret's stringData takes precedence, as the API server
// merges it into data.
func (o *objects) data(kind planpb.KeyRef_Kind, name string) (map[string][]byte, bool) {
	data := map[string][]byte{}
	if kind == planpb.KeyRef_SECRET {
		e, ok := o.secrets[name]
		if !ok {
			return nil, false
		}
		for k, v := range e.obj.Data {
			data[k] = v
		}
		for k, v := range e.obj.StringData {
			data[k] = []byte(v)
		}
		return data, true
	}
	e, ok := o.configMaps[name]
	if !ok {
		return nil, false
	}
	for k, v := range e.obj.BinaryData {
		data[k] = v
	}
	for k, v := range e.obj.Data {
		data[k] = []byte(v)
	}
	return data, true
}
