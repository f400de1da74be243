package process

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TaskMounts are a task's own volumes (Task spec.volumes) and where its
// steps and sidecars mount them, which the Plan only names
// (compile.TaskVolumes has them).
type TaskMounts struct {
	// Volumes' sources are as for workspaces: emptyDir, hostPath,
	// ConfigMap and Secret files.
	Volumes []*planpb.Volume
	// Steps[i] are step i's mounts, Sidecars[i] sidecar i's. A mount names
	// one of Volumes or a workspace's volume ($(workspaces.W.volume)).
	Steps, Sidecars [][]Mount
}

// Mount is one volumeMount.
type Mount struct {
	Name, MountPath, SubPath string
	ReadOnly                 bool
}

// taskVolumeDirs makes the directories behind a task's own volumes, once
// per task (an emptyDir lives as long as the pod, across retries), and
// returns them by name, with the workspaces' volumes under the names
// $(workspaces.W.volume) gives them.
func (l *Launcher) taskVolumeDirs(task *planpb.Task) (dirs map[string]string, readOnly map[string]bool, err error) {
	tm := l.opts.TaskMounts[task.GetName()]
	dirs, readOnly = map[string]string{}, map[string]bool{}
	for _, wb := range task.GetWorkspaces() {
		name := podlayout.WorkspaceVolume(wb.GetVolume(), l.uid)
		dirs[name], readOnly[name] = l.volumes[wb.GetVolume()], l.readOnlyVolumes[wb.GetVolume()]
	}
	if tm == nil {
		return dirs, readOnly, nil
	}
	for _, v := range tm.Volumes {
		if err := checkName(v.GetName()); err != nil {
			return nil, nil, fmt.Errorf("volume %q: %w", v.GetName(), err)
		}
		own := filepath.Join(l.runDir, "taskvolumes", task.GetName(), v.GetName())
		var p string
		if _, err := os.Stat(own); err == nil {
			p = own // made by an earlier attempt
		} else if p, err = l.makeVolume(v, own); err != nil {
			return nil, nil, fmt.Errorf("volume %q: %w", v.GetName(), err)
		}
		dirs[v.GetName()], readOnly[v.GetName()] = p, v.GetReadOnly()
	}
	return dirs, readOnly, nil
}

// volumeBinds are implicit, a step's (or sidecar's) binds of Tekton's
// paths and workspaces, with its volumeMounts. As in Tekton's pod, a mount
// at /workspace or /tekton/home takes the place of the implicit one, and a
// sidecar's mount that of a workspace at its path.
func (a *attempt) volumeBinds(implicit []mountns.Bind, as role, index int) ([]mountns.Bind, error) {
	tm := a.l.opts.TaskMounts[a.task]
	if tm == nil {
		return implicit, nil
	}
	own := tm.Steps
	if as == sidecarRole {
		own = tm.Sidecars
	}
	if index >= len(own) {
		return implicit, nil
	}
	out := slices.Clone(implicit)
	for _, m := range own[index] {
		src, ok := a.volumeDirs[m.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %q names no volume of the task (its volumes, or a workspace's $(workspaces.W.volume))", m.Name)
		}
		if m.SubPath != "" {
			if !filepath.IsLocal(m.SubPath) {
				return nil, fmt.Errorf("volumeMount %q: subPath %q leaves the volume", m.Name, m.SubPath)
			}
			src = filepath.Join(src, m.SubPath)
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, fmt.Errorf("volumeMount %q: %w", m.Name, err)
			}
		}
		dst := filepath.Clean(m.MountPath)
		// A sidecar's own mount takes the place of a workspace's at its
		// path (workspace.AddSidecarVolumeMount).
		out = slices.DeleteFunc(out, func(b mountns.Bind) bool {
			return b.Dst == dst && (as == sidecarRole || dst == podlayout.WorkspaceDir || dst == podlayout.HomeDir)
		})
		if slices.ContainsFunc(out, func(b mountns.Bind) bool { return b.Dst == dst }) {
			return nil, fmt.Errorf("volumeMount %q at %s: the path is already mounted", m.Name, m.MountPath)
		}
		out = append(out, mountns.Bind{Src: src, Dst: dst, ReadOnly: m.ReadOnly || a.volumeReadOnly[m.Name]})
	}
	return out, nil
}
