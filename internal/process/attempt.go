package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

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
	dir        string // STATE/tasks/TASK/ATTEMPT: results, steps, scripts
	work       string // RUN/tasks/TASK/ATTEMPT/workspace: the default working dir
	workspaces map[string]string
	// mounts, when set, are the workspaces' own mount points: a Task that
	// declares a readOnly workspace gets Tekton's mounts (root only).
	mounts []mount
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
	a := &attempt{l: l, env: env, task: task.GetName(), dir: filepath.Join(state, rel), work: filepath.Join(runDir, rel, "workspace")}
	dirs := []string{a.ResultsDir(), a.scriptsDir(), a.workspaceDir()}
	for i, s := range task.GetSpec().GetSteps() {
		dirs = append(dirs, filepath.Join(a.StepDir(results.StepName(s.GetName(), i)), "results"))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("attempt %d of task %q: %w", n, task.GetName(), err)
		}
	}
	a.workspaces = make(map[string]string, len(task.GetWorkspaces()))
	for _, b := range task.GetWorkspaces() {
		vol, ok := volumes[b.GetVolume()]
		if !ok {
			return nil, fmt.Errorf("workspace %q of task %q: no volume %q in the plan", b.GetName(), task.GetName(), b.GetVolume())
		}
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
	if err := a.mountWorkspaces(task.GetSpec().GetWorkspaces()); err != nil {
		return nil, fmt.Errorf("task %q: %w", task.GetName(), err)
	}
	return a, nil
}

// mountWorkspaces gives each bound workspace its own mount point when one of
// them is readOnly and the launcher can mount: then a readOnly workspace is
// read-only for the steps, even where another binding of the same volume is
// writable, as Tekton's mounts are.
func (a *attempt) mountWorkspaces(declared []*planpb.WorkspaceDeclaration) error {
	if !a.l.canMount() || !slices.ContainsFunc(declared, (*planpb.WorkspaceDeclaration).GetReadOnly) {
		return nil
	}
	for _, w := range declared {
		src, ok := a.workspaces[w.GetName()]
		if !ok {
			continue
		}
		dst := filepath.Join(a.dir, "workspaces", w.GetName())
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("mount point of workspace %q: %w", w.GetName(), err)
		}
		a.mounts = append(a.mounts, mount{readOnly: w.GetReadOnly(), src: src, dst: dst})
		a.workspaces[w.GetName()] = dst
	}
	return nil
}

func (a *attempt) ResultsDir() string   { return filepath.Join(a.dir, "results") }
func (a *attempt) scriptsDir() string   { return filepath.Join(a.dir, "scripts") }
func (a *attempt) workspaceDir() string { return a.work }

// StepDir is Tekton's /tekton/steps/step-NAME.
func (a *attempt) StepDir(step string) string {
	return filepath.Join(a.dir, "steps", "step-"+step)
}

// Workspace is the directory of a bound workspace; an optional workspace
// the run does not bind is not bound.
func (a *attempt) Workspace(name string) (string, bool) {
	p, ok := a.workspaces[name]
	return p, ok
}

// roleDir is the directory of a step (its /tekton/steps/step-NAME) or of
// a sidecar (kept apart: a sidecar may share a step's name).
func (a *attempt) roleDir(name string, as role) string {
	if as == sidecarRole {
		return filepath.Join(a.dir, "sidecars", name)
	}
	return a.StepDir(name)
}

// ReadResult reads a task result file. Tekton caps all of a TaskRun's results
// at 4 KiB (the termination message); a local run reads files, so no cap.
func (a *attempt) ReadResult(name string) (string, bool, error) {
	return results.ReadFile(a.ResultsDir(), name)
}

// ReadStepResult reads a step result file (no size cap, as ReadResult).
func (a *attempt) ReadStepResult(step, name string) (string, bool, error) {
	return results.ReadFile(filepath.Join(a.StepDir(step), "results"), name)
}

// Finish keeps the attempt's files: they go with the run directory on Close,
// and with --keep they show what each attempt did.
func (a *attempt) Finish() {}
