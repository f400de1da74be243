package process

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A task whose steps name Tekton's container paths, or that needs mounts of
// its own (a readOnly workspace, a workspace at a mountPath, one isolated
// to some steps), runs each step in a mount namespace of its own
// (mountns) where it sees what its container would: /workspace, its
// workspaces at their paths, /tekton/results, /tekton/steps, /tekton/home
// and /tekton/scripts. Its $(...) paths are then those container paths.
// Every other task sees host directories, substituted into its steps,
// which costs nothing per step.

// needsTektonPaths tells why a task's steps need Tekton's paths; "" when
// they do not.
func needsTektonPaths(t *planpb.Task) string {
	spec := t.GetSpec()
	if len(spec.GetVolumes()) > 0 {
		return "it has volumeMounts"
	}
	for _, d := range spec.GetWorkspaces() {
		switch {
		case d.GetMountPath() != "":
			return fmt.Sprintf("its workspace %q has a mountPath", d.GetName())
		case d.GetReadOnly():
			return fmt.Sprintf("its workspace %q is readOnly", d.GetName())
		}
	}
	for _, s := range slices.Concat(spec.GetSteps(), spec.GetSidecars()) {
		if len(s.GetWorkspaces()) > 0 {
			return fmt.Sprintf("step %q isolates a workspace", s.GetName())
		}
		texts := slices.Concat([]string{s.GetScript(), s.GetWorkingDir(), s.GetStdoutPath(), s.GetStderrPath()}, s.GetCommand(), s.GetArgs())
		for _, e := range s.GetEnv() {
			texts = append(texts, e.GetValue())
		}
		for _, text := range texts {
			if namesTektonPath(text) {
				return fmt.Sprintf("step %q names %s or %s", s.GetName(), podlayout.WorkspaceDir, "/tekton/")
			}
		}
	}
	return ""
}

// namesTektonPath tells whether text has /workspace or /tekton/ in it as a
// path.
func namesTektonPath(text string) bool {
	for _, p := range []string{podlayout.WorkspaceDir, "/tekton/"} {
		for i := strings.Index(text, p); i >= 0; i = nextIndex(text, p, i) {
			end := i + len(p)
			if p == "/tekton/" || end == len(text) || strings.ContainsRune("/ \t\n\"':;)", rune(text[end])) {
				return true
			}
		}
	}
	return false
}

func nextIndex(text, sub string, i int) int {
	j := strings.Index(text[i+1:], sub)
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// The container paths of an attempt in Tekton's view; the host paths
// otherwise.

func (a *attempt) ResultsDir() string {
	if a.tektonPaths {
		return podlayout.ResultsDir
	}
	return a.hostResultsDir()
}

// ArtifactsDir is Tekton's /tekton/artifacts.
func (a *attempt) ArtifactsDir() string {
	if a.tektonPaths {
		return podlayout.ArtifactsDir
	}
	return a.hostArtifactsDir()
}

// StepDir is Tekton's /tekton/steps/step-NAME.
func (a *attempt) StepDir(step string) string {
	if a.tektonPaths {
		return podlayout.StepsDir + "/step-" + step
	}
	return a.hostStepDir(step)
}

// Workspace is the path of a bound workspace; an optional workspace the
// run does not bind is not bound.
func (a *attempt) Workspace(name string) (string, bool) {
	p, ok := a.workspaces[name]
	if ok && a.tektonPaths {
		p = workspacePath(a.decls, name)
	}
	return p, ok
}

func workspacePath(decls []*planpb.WorkspaceDeclaration, name string) string {
	for _, d := range decls {
		if d.GetName() == name && d.GetMountPath() != "" {
			return d.GetMountPath()
		}
	}
	return podlayout.WorkspaceDir + "/" + name
}

// view is what a step (or sidecar) of the attempt sees: as Tekton mounts a
// pod, a step gets /workspace, /tekton/results, /tekton/steps (read-only
// but for its own directory) and /tekton/home, a sidecar none of them; both get /tekton/scripts and the
// task's workspaces, an isolated one only where the step names it.
func (a *attempt) view(step *supervisor.Step, as role, dir string) (mountns.Spec, error) {
	var binds []mountns.Bind
	if as == stepRole {
		binds = append(binds,
			mountns.Bind{Src: a.work, Dst: podlayout.WorkspaceDir},
			mountns.Bind{Src: a.hostResultsDir(), Dst: podlayout.ResultsDir},
			// As in Tekton's pod, a step may write only its own
			// directory of /tekton/steps (its exitCode, its results).
			mountns.Bind{Src: filepath.Join(a.dir, "steps"), Dst: podlayout.StepsDir, ReadOnly: true},
			mountns.Bind{Src: a.hostStepDir(step.Name), Dst: podlayout.StepsDir + "/step-" + step.Name},
			mountns.Bind{Src: a.home(), Dst: podlayout.HomeDir},
			mountns.Bind{Src: a.hostArtifactsDir(), Dst: podlayout.ArtifactsDir})
	}
	binds = append(binds, mountns.Bind{Src: a.scriptsDir(), Dst: podlayout.ScriptsDir, ReadOnly: true})
	isolated := map[string]bool{}
	for _, s := range slices.Concat(a.spec.GetSteps(), a.spec.GetSidecars()) {
		for _, w := range s.GetWorkspaces() {
			isolated[w.GetName()] = true
		}
	}
	for _, d := range a.decls {
		src, ok := a.workspaces[d.GetName()]
		if !ok {
			continue
		}
		dst := workspacePath(a.decls, d.GetName())
		if isolated[d.GetName()] {
			i := slices.IndexFunc(step.Workspaces, func(w *planpb.StepWorkspace) bool { return w.GetName() == d.GetName() })
			if i < 0 {
				continue
			}
			if mp := step.Workspaces[i].GetMountPath(); mp != "" {
				dst = mp
			}
		}
		binds = append(binds, mountns.Bind{Src: src, Dst: dst, ReadOnly: d.GetReadOnly() || a.readOnly[d.GetName()]})
	}
	binds, err := a.volumeBinds(binds, as, step.Index)
	if err != nil {
		return mountns.Spec{}, err
	}
	l := a.l
	hide := []string{filepath.Join(l.runDir, "volumes"), filepath.Join(l.runDir, "claims"), filepath.Join(l.runDir, "tasks"), filepath.Join(l.state, "tasks")}
	hide = append(hide, filepath.Join(l.runDir, "taskvolumes"))
	return mountns.Spec{Root: l.nsRoot, Scratch: l.nsScratch, Binds: binds, Hide: hide, Dir: dir}, nil
}

// hostPath is the host path behind a path of spec's view (for the
// stdoutConfig files the launcher writes); "" when no bind holds it.
func hostPath(spec mountns.Spec, p string) string {
	best := -1
	for i, b := range spec.Binds {
		if (p == b.Dst || strings.HasPrefix(p, strings.TrimSuffix(b.Dst, "/")+"/")) && (best < 0 || len(b.Dst) > len(spec.Binds[best].Dst)) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	b := spec.Binds[best]
	return filepath.Join(b.Src, strings.TrimPrefix(p, b.Dst))
}

// stepIndexLinks are Tekton's /tekton/steps/<index> links to each step's
// directory (step-init makes them).
func stepIndexLinks(spec *planpb.TaskSpec) map[string]string {
	links := map[string]string{}
	for i, s := range spec.GetSteps() {
		links[fmt.Sprint(i)] = "step-" + results.StepName(s.GetName(), i)
	}
	return links
}
