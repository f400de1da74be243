package podmanrun

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SplitSubPaths works around podman 4.3 ignoring subPath on an emptyDir
// (it mounts the whole volume): each (emptyDir, subPath) pair becomes a
// volume of its own, mounted where the subPath was and, in every container
// that mounts the whole emptyDir at P, at P/subPath, so each container sees
// the same files as under a kubelet. It reports whether it changed the Pod.
// The injector's own volumes use no subPath (each task has its own results
// and steps emptyDirs); only a workspace bound with a subPath still needs
// this under podman.
func SplitSubPaths(p *corev1.Pod) bool {
	emptyDirs := map[string]*corev1.EmptyDirVolumeSource{}
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil {
			emptyDirs[v.Name] = v.EmptyDir
		}
	}
	type key struct{ volume, subPath string }
	split := map[key]string{}
	var order []key
	each := func(f func(c *corev1.Container)) {
		for i := range p.Spec.InitContainers {
			f(&p.Spec.InitContainers[i])
		}
		for i := range p.Spec.Containers {
			f(&p.Spec.Containers[i])
		}
	}
	each(func(c *corev1.Container) {
		for i, m := range c.VolumeMounts {
			if m.SubPath == "" || emptyDirs[m.Name] == nil {
				continue
			}
			k := key{m.Name, path.Clean(m.SubPath)}
			name, ok := split[k]
			if !ok {
				sum := sha256.Sum256([]byte(k.volume + "/" + k.subPath))
				prefix := k.volume
				if len(prefix) > 54 {
					prefix = strings.TrimRight(prefix[:54], "-")
				}
				name = prefix + "-" + hex.EncodeToString(sum[:4])
				split[k] = name
				order = append(order, k)
				p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name,
					VolumeSource: corev1.VolumeSource{EmptyDir: emptyDirs[k.volume].DeepCopy()}})
			}
			c.VolumeMounts[i].Name, c.VolumeMounts[i].SubPath = name, ""
		}
	})
	each(func(c *corev1.Container) {
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" {
				continue
			}
			for _, k := range order {
				if k.volume == m.Name {
					c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: split[k],
						MountPath: path.Join(m.MountPath, k.subPath), ReadOnly: m.ReadOnly})
				}
			}
		}
	})
	return len(order) > 0
}
