package podspec

import (
	"context"
	"slices"
	"testing"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
)

// TestTasksAreIsolated: in a run's Pod, a volume is mounted only into the
// containers of the tasks entitled to it — pod-runner's binary and socket
// volumes into every container; a workspace's volume (a Secret, a
// ConfigMap, a shared emptyDir) only into the tasks that bind it; every
// other volume (a task's results, steps, /workspace, /tekton/home, its
// Task volumes) into one task's containers only. So one task's steps can
// neither write another's results nor read a Secret or workspace they do
// not bind.
func TestTasksAreIsolated(t *testing.T) {
	for name, run := range map[string]string{"workspaces": pipelineYAML, "task volumes": taskVolumesRun} {
		t.Run(name, func(t *testing.T) {
			c := compileYAML(t, run)
			pod, err := Pod(context.Background(), c, Options{Image: "pr:test", Resolver: fixedResolver{}})
			if err != nil {
				t.Fatal(err)
			}
			uid := c.Plan.GetUid()
			taskOf := map[string]string{}    // container → task
			binders := map[string][]string{} // workspace volume → tasks binding it
			for _, tk := range append(slices.Clone(c.Plan.GetTasks()), c.Plan.GetFinally()...) {
				for i, s := range tk.GetSpec().GetSteps() {
					taskOf[podlayout.StepContainer(tk.GetName(), results.StepName(s.GetName(), i))] = tk.GetName()
				}
				for i, s := range tk.GetSpec().GetSidecars() {
					taskOf[podlayout.SidecarContainer(tk.GetName(), results.StepName(s.GetName(), i))] = tk.GetName()
				}
				for _, wb := range tk.GetWorkspaces() {
					v := podlayout.WorkspaceVolume(wb.GetVolume(), uid)
					binders[v] = append(binders[v], tk.GetName())
				}
			}
			everyone := map[string]bool{podlayout.VolumeName(podlayout.BinVolume, uid): true, podlayout.VolumeName(podlayout.RunVolume, uid): true}
			mountedBy := map[string]map[string]bool{} // volume → tasks
			for _, ct := range pod.Spec.Containers {
				task, ok := taskOf[ct.Name]
				if !ok {
					if ct.Name != podlayout.SupervisorContainer {
						t.Errorf("container %s belongs to no task", ct.Name)
					}
					continue
				}
				for _, m := range ct.VolumeMounts {
					if mountedBy[m.Name] == nil {
						mountedBy[m.Name] = map[string]bool{}
					}
					mountedBy[m.Name][task] = true
				}
			}
			if len(mountedBy) < 4 {
				t.Fatalf("only %d volumes mounted: the check would mean nothing", len(mountedBy))
			}
			for vol, tasks := range mountedBy {
				switch {
				case everyone[vol]:
				case binders[vol] != nil:
					for task := range tasks {
						if !slices.Contains(binders[vol], task) {
							t.Errorf("workspace volume %s is mounted into %s, which does not bind it", vol, task)
						}
					}
				case len(tasks) != 1:
					t.Errorf("volume %s is mounted into %d tasks' containers: %v", vol, len(tasks), tasks)
				}
			}
		})
	}
}

// fixedResolver gives every image the same entrypoint.
type fixedResolver struct{}

func (fixedResolver) Entrypoint(_ context.Context, image string, _ bool) (Entrypoint, error) {
	return Entrypoint{Image: image, Command: []string{"/bin/true"}}, nil
}
