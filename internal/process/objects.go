package process

import (
	"fmt"
	"slices"

	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// objectEnv is a step's environment with its ConfigMap and Secret
// references read from Options.Objects, as the kubelet reads them when it
// starts a container: envFrom sources first (a later source's key wins),
// then env. A required object or key that is missing fails the step, as
// the kubelet's CreateContainerConfigError fails its container.
func (l *Launcher) objectEnv(step *supervisor.Step) ([]string, error) {
	if len(step.EnvRefs) == 0 && len(step.EnvFrom) == 0 {
		return step.Env, nil
	}
	var env []string
	for _, f := range step.EnvFrom {
		data, found := l.data(f.GetKind(), f.GetName())
		if !found {
			if f.GetOptional() {
				continue
			}
			return nil, fmt.Errorf("envFrom: %s %q not found", f.GetKind().Object(), f.GetName())
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			env = append(env, f.GetPrefix()+k+"="+string(data[k]))
		}
	}
	env = append(env, step.Env...)
	for _, e := range step.EnvRefs {
		ref := e.GetValueFrom()
		data, found := l.data(ref.GetKind(), ref.GetName())
		v, hasKey := data[ref.GetKey()]
		switch {
		case hasKey:
			env = append(env, e.GetName()+"="+string(v))
		case ref.GetOptional():
			// The kubelet leaves the variable unset.
		case !found:
			return nil, fmt.Errorf("env %s: %s %q not found", e.GetName(), ref.GetKind().Object(), ref.GetName())
		default:
			return nil, fmt.Errorf("env %s: %s %q has no key %q", e.GetName(), ref.GetKind().Object(), ref.GetName(), ref.GetKey())
		}
	}
	return env, nil
}

func (l *Launcher) data(kind planpb.KeyRef_Kind, name string) (map[string][]byte, bool) {
	if l.opts.Objects == nil {
		return nil, false
	}
	return l.opts.Objects.Data(kind, name)
}
