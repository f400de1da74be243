package podlaunch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/e7763abc/pod-runner/internal/artifacts"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
	"github.com/e7763abc/pod-runner/proto/steppb"
)

// stopMargin is how long past the grace period a stopped step may take to
// report; past it the container is taken as lost.
const stopMargin = 5 * time.Second

// ReasonContainerEnded is StepExit.Reason when a step's container ended
// (killed, evicted, crashed) before its step did.
const ReasonContainerEnded = "ContainerEnded"

// attempt is one attempt of a task, whose steps see the state volume's task
// directory at Tekton's paths.
type attempt struct {
	l          *Launcher
	task       string
	dir        string         // the supervisor's mount of the task's state directory
	results    string         // the results directory as the steps see it
	steps      string         // the steps directory as the steps see it
	index      map[string]int // step name → index: its own directory is run/INDEX/status
	workspaces map[string]string
	sidecars   []*sidecarRun // StartSidecars' sidecars, nil where one never started
}

// StartAttempt makes (or, for a retry, empties) the task's results and step
// directories in the state volume.
func (l *Launcher) StartAttempt(_ context.Context, task *planpb.Task, n int) (supervisor.Attempt, error) {
	l.mu.Lock()
	prepared, decls := l.ln != nil, l.workspaces[task.GetName()]
	l.mu.Unlock()
	if !prepared {
		return nil, errors.New("launcher not prepared")
	}
	a := &attempt{l: l, task: task.GetName(), dir: filepath.Join(l.opts.StateDir, podlayout.TaskDir(task.GetName())),
		workspaces: map[string]string{}, index: map[string]int{}}
	view := l.opts.StepView(task.GetName())
	a.results, a.steps = view.Results, view.Steps
	if err := a.layout(task, view); err != nil {
		return nil, fmt.Errorf("attempt %d of task %q: %w", n, task.GetName(), err)
	}
	for _, b := range task.GetWorkspaces() {
		p, ok := decls[b.GetName()]
		if !ok {
			p = podlayout.WorkspaceDir + "/" + b.GetName()
		}
		a.workspaces[b.GetName()] = p
	}
	return a, nil
}

// layout makes the attempt's directories, as Tekton's step-init lays them
// out: each step's own directory is run/INDEX/status (exitCode, results,
// artifacts) on a volume of its own, which only its container may write,
// and steps/step-NAME and steps/INDEX link to it. The step containers
// mount these volumes: a retry empties them rather than replacing them,
// which would leave the mounts on deleted directories.
func (a *attempt) layout(task *planpb.Task, view StepView) error {
	dirs := []string{filepath.Join(a.dir, "results"), filepath.Join(a.dir, "steps")}
	if _, err := os.Stat(filepath.Join(a.dir, "artifacts")); err == nil {
		dirs = append(dirs, filepath.Join(a.dir, "artifacts")) // mounted: the task names it
	}
	for i := range task.GetSpec().GetSteps() {
		dirs = append(dirs, filepath.Join(a.dir, "run", strconv.Itoa(i)))
	}
	for _, d := range dirs {
		if err := emptyDir(d); err != nil {
			return err
		}
	}
	for i, s := range task.GetSpec().GetSteps() {
		name := results.StepName(s.GetName(), i)
		a.index[name] = i
		// Writable by every user: a step's container may run as any
		// (its exitCode goes in its own directory).
		for _, sub := range []string{"", "results", "artifacts"} {
			if err := mkdir(filepath.Join(a.ownDir(name), sub)); err != nil {
				return err
			}
		}
		own := filepath.Join(view.Run, strconv.Itoa(i), "status")
		for _, link := range []string{"step-" + name, strconv.Itoa(i)} {
			if err := os.Symlink(own, filepath.Join(a.dir, "steps", link)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ownDir is a step's own directory (/tekton/steps/step-NAME) through the
// supervisor's mount.
func (a *attempt) ownDir(step string) string {
	return filepath.Join(a.dir, "run", strconv.Itoa(a.index[step]), "status")
}

// emptyDir makes dir, or removes what it holds.
func emptyDir(dir string) error {
	if err := mkdir(dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// mkdir makes dir and its parents writable by every user: a step's image
// may run as any user, as with Tekton's emptyDir volumes. A directory that
// already is (an emptyDir's own, which a supervisor run as another user
// than root, by the run's podTemplate, may not chmod) is left as it is.
func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm() == 0o777 {
		return nil
	}
	return os.Chmod(dir, 0o777)
}

// ResultsDir is Tekton's /tekton/results, as the task's containers mount it.
func (a *attempt) ResultsDir() string { return a.results }

// StepDir is /tekton/steps/step-NAME, as the task's containers mount it.
func (a *attempt) StepDir(step string) string { return a.steps + "/step-" + step }

// ArtifactsDir is Tekton's /tekton/artifacts.
func (a *attempt) ArtifactsDir() string { return podlayout.ArtifactsDir }

// ReadArtifacts reads the artifacts file of a step, or of the task (step
// ""), through the supervisor's mounts; ok is false when there is none.
func (a *attempt) ReadArtifacts(step string) ([]byte, bool, error) {
	dir := filepath.Join(a.dir, "artifacts")
	if step != "" {
		dir = filepath.Join(a.ownDir(step), "artifacts")
	}
	return artifacts.ReadFile(filepath.Join(dir, artifacts.FileName))
}

// Workspace is the mount path of a bound workspace in the task's containers.
func (a *attempt) Workspace(name string) (string, bool) {
	p, ok := a.workspaces[name]
	return p, ok
}

// ReadResult reads a result the steps wrote, through the supervisor's mount.
func (a *attempt) ReadResult(name string) (string, bool, error) {
	return results.ReadFile(filepath.Join(a.dir, "results"), name)
}

// ReadStepResult reads a step result through the supervisor's mount.
func (a *attempt) ReadStepResult(step, name string) (string, bool, error) {
	return results.ReadFile(filepath.Join(a.ownDir(step), "results"), name)
}

// Finish keeps the files: a retry empties them, the pod's end removes them.
func (a *attempt) Finish() {}

// RunStep waits for the step's container to connect, sends it the step, and
// waits for it to end. When ctx ends first the step is told to stop.
func (a *attempt) RunStep(ctx context.Context, step *supervisor.Step) supervisor.StepExit {
	l := a.l
	stepName := results.StepName(step.Name, step.Index)
	name := podlayout.StepContainer(a.task, stepName)
	c, err := l.connected(ctx, name)
	if err != nil {
		return supervisor.StepExit{Err: fmt.Errorf("container %q never connected: %w", name, err)}
	}
	p := c.peer
	lost := func(since time.Time) supervisor.StepExit {
		return supervisor.StepExit{Started: since, Finished: time.Now(), ExitCode: 1, Reason: ReasonContainerEnded,
			Err: fmt.Errorf("container %q ended unexpectedly (%v)", name, p.err)}
	}
	select {
	case <-p.gone:
		return lost(time.Time{})
	default:
	}
	seq := l.nextSeq()
	run := &steppb.Run{
		Seq: seq, Command: step.Command, Args: step.Args, Script: step.Script,
		Env: step.Env, WorkingDir: step.WorkingDir,
		StdoutPath: step.StdoutPath, StderrPath: step.StderrPath,
		ExitCodePath: a.StepDir(stepName) + "/exitCode", Name: stepName,
		Hermetic: step.Hermetic,
	}
	sent := time.Now()
	if err := p.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Run{Run: run}}); err != nil {
		<-p.gone // a failed write means the connection is going
		return lost(time.Time{})
	}
	var deadline <-chan time.Time
	done := ctx.Done()
	for {
		select {
		case ex := <-p.exited:
			if ex.GetSeq() == seq {
				return toExit(ex)
			}
		case <-p.gone:
			return lost(sent)
		case <-done:
			done = nil
			stop := &steppb.Stop{Seq: seq, GraceMs: l.opts.Grace.Milliseconds()}
			if err := p.send(&steppb.SupervisorMessage{Kind: &steppb.SupervisorMessage_Stop{Stop: stop}}); err != nil {
				<-p.gone
				return lost(sent)
			}
			deadline = time.After(l.opts.Grace + stopMargin)
		case <-deadline:
			return supervisor.StepExit{Started: sent, Finished: time.Now(), ExitCode: 1,
				Err: fmt.Errorf("container %q did not stop its step within %v", name, l.opts.Grace+stopMargin)}
		}
	}
}

// toExit reads an Exited message.
func toExit(ex *steppb.Exited) supervisor.StepExit {
	out := supervisor.StepExit{ExitCode: int(ex.GetExitCode()), Reason: ex.GetReason()}
	if t := ex.GetStartedUnixNano(); t != 0 {
		out.Started = time.Unix(0, t)
	}
	if t := ex.GetFinishedUnixNano(); t != 0 {
		out.Finished = time.Unix(0, t)
	}
	if e := ex.GetError(); e != "" {
		out.Err = errors.New(e)
	}
	return out
}
