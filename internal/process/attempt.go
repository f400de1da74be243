package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/e7763abc/pod-runner/internal/artifacts"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// attempt is one attempt of one task; its directories stand for a pod's
// /tekton/results, /tekton/steps, /tekton/scripts and /workspace.
type attempt struct {
	l          *Launcher
	env        []string // the launcher's base env
	task       string
	spec       *planpb.TaskSpec
	dir        string // STATE/tasks/TASK/ATTEMPT: results, steps, scripts, home
	work       string // RUN/tasks/TASK/ATTEMPT/workspace: the default working dir
	workspaces map[string]string
	decls      []*planpb.WorkspaceDeclaration
	// readOnly tells the workspaces whose binding is read-only (a
	// ConfigMap or Secret).
	readOnly map[string]bool
	// tektonPaths: every step runs in a mount namespace where it sees
	// Tekton's paths (tektonpaths.go).
	tektonPaths bool
	// volumeDirs are the directories of the task's own volumes and its
	// workspaces' volumes, by the names its volumeMounts use.
	volumeDirs     map[string]string
	volumeReadOnly map[string]bool
	// sidecars run beside the steps, between StartSidecars and
	// StopSidecars; nil for one that ended by itself.
	sidecars []*running
}

// StartAttempt makes the attempt's directories and resolves its workspaces.
func (l *Launcher) StartAttempt(_ context.Context, task *planpb.Task, n int) (supervisor.Attempt, error) {
	l.mu.Lock()
	runDir, state, volumes, env := l.runDir, l.state, l.volumes, l.env
	l.mu.Unlock()
	if runDir == "" {
		return nil, errors.New("launcher not prepared")
	}
	if err := checkName(task.GetName()); err != nil {
		return nil, fmt.Errorf("task name: %w", err)
	}
	rel := filepath.Join("tasks", task.GetName(), strconv.Itoa(n))
	a := &attempt{
		l: l, env: env, task: task.GetName(), spec: task.GetSpec(), decls: task.GetSpec().GetWorkspaces(),
		dir: filepath.Join(state, rel), work: filepath.Join(runDir, rel, "workspace"),
		tektonPaths: l.tektonPaths(task),
	}
	dirs := []string{a.hostResultsDir(), a.scriptsDir(), a.workspaceDir(), a.home(), a.hostArtifactsDir()}
	for i, s := range task.GetSpec().GetSteps() {
		step := a.hostStepDir(results.StepName(s.GetName(), i))
		dirs = append(dirs, filepath.Join(step, "results"), filepath.Join(step, "artifacts"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("attempt %d of task %q: %w", n, task.GetName(), err)
		}
	}
	for index, target := range stepIndexLinks(task.GetSpec()) {
		if err := os.Symlink(target, filepath.Join(a.dir, "steps", index)); err != nil {
			return nil, fmt.Errorf("attempt %d of task %q: %w", n, task.GetName(), err)
		}
	}
	a.workspaces = make(map[string]string, len(task.GetWorkspaces()))
	a.readOnly = map[string]bool{}
	for _, b := range task.GetWorkspaces() {
		vol, ok := volumes[b.GetVolume()]
		if !ok {
			return nil, fmt.Errorf("workspace %q of task %q: no volume %q in the plan", b.GetName(), task.GetName(), b.GetVolume())
		}
		a.readOnly[b.GetName()] = l.readOnlyVolumes[b.GetVolume()]
		p := vol
		if sub := b.GetSubPath(); sub != "" {
			// Kubernetes refuses a subPath that leaves the volume; so do we.
			if !filepath.IsLocal(sub) {
				return nil, fmt.Errorf("workspace %q of task %q: subPath %q leaves the volume", b.GetName(), task.GetName(), sub)
			}
			p = filepath.Join(vol, sub)
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, fmt.Errorf("workspace %q of task %q: %w", b.GetName(), task.GetName(), err)
			}
		}
		a.workspaces[b.GetName()] = p
	}
	if a.tektonPaths {
		var err error
		if a.volumeDirs, a.volumeReadOnly, err = l.taskVolumeDirs(task); err != nil {
			return nil, fmt.Errorf("task %q: %w", task.GetName(), err)
		}
	}
	return a, nil
}

func (a *attempt) hostResultsDir() string { return filepath.Join(a.dir, "results") }
func (a *attempt) scriptsDir() string     { return filepath.Join(a.dir, "scripts") }
func (a *attempt) workspaceDir() string   { return a.work }
func (a *attempt) home() string           { return filepath.Join(a.dir, "home") }
func (a *attempt) hostArtifactsDir() string {
	return filepath.Join(a.dir, "artifacts")
}

// ReadArtifacts reads the artifacts file of a step, or of the task (step
// ""); ok is false when there is none.
func (a *attempt) ReadArtifacts(step string) ([]byte, bool, error) {
	dir := a.hostArtifactsDir()
	if step != "" {
		dir = filepath.Join(a.hostStepDir(step), "artifacts")
	}
	return artifacts.ReadFile(filepath.Join(dir, artifacts.FileName))
}

// hostStepDir is the host directory of Tekton's /tekton/steps/step-NAME.
func (a *attempt) hostStepDir(step string) string {
	return filepath.Join(a.dir, "steps", "step-"+step)
}

// roleDir is the directory of a step (its /tekton/steps/step-NAME) or of
// a sidecar (kept apart: a sidecar may share a step's name).
func (a *attempt) roleDir(name string, as role) string {
	if as == sidecarRole {
		return filepath.Join(a.dir, "sidecars", name)
	}
	return a.hostStepDir(name)
}

// ReadResult reads a task result file. Tekton caps all of a TaskRun's results
// at 4 KiB (the termination message); a local run reads files, so no cap.
func (a *attempt) ReadResult(name string) (string, bool, error) {
	return results.ReadFile(a.hostResultsDir(), name)
}

// ReadStepResult reads a step result file (no size cap, as ReadResult).
func (a *attempt) ReadStepResult(step, name string) (string, bool, error) {
	return results.ReadFile(filepath.Join(a.hostStepDir(step), "results"), name)
}

// Finish keeps the attempt's files: they go with the run directory on Close,
// and with --keep they show what each attempt did.
func (a *attempt) Finish() {}
