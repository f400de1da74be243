package supervisor

import (
	"context"
	"time"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Launcher is how steps run: host processes in local mode, step containers
// in pod mode. It is the only part of the supervisor that differs between the
// two.
type Launcher interface {
	// Prepare readies the run's volumes before any task starts.
	Prepare(ctx context.Context, plan *planpb.Plan) error
	// StartAttempt readies one attempt of a task (attempt 0 is the first run,
	// n the n-th retry): its results and step directories, its workspaces.
	StartAttempt(ctx context.Context, task *planpb.Task, attempt int) (Attempt, error)
	// Close releases what Prepare made (temporary volumes), unless told to keep it.
	Close() error
}

// Attempt is one attempt of one task, as its steps see it.
type Attempt interface {
	// ResultsDir is where $(results.NAME.path) files live, as the steps see it.
	ResultsDir() string
	// StepDir is the directory of step NAME ($(steps.step-NAME.exitCode.path)
	// is StepDir(NAME)/exitCode), as the steps see it.
	StepDir(step string) string
	// Workspace is the path of a bound workspace as the steps see it, and
	// whether it is bound.
	Workspace(name string) (path string, bound bool)
	// ArtifactsDir is Tekton's /tekton/artifacts, as the steps see it.
	ArtifactsDir() string
	// ReadArtifacts reads the artifacts file a step wrote
	// ($(step.artifacts.path)), or the task's ($(artifacts.path)) for step
	// ""; ok is false when there is none.
	ReadArtifacts(step string) (raw []byte, ok bool, err error)
	// RunStep runs one fully substituted step and waits for it to end. When ctx
	// ends first the step is stopped (SIGTERM, then SIGKILL after a grace
	// period) and RunStep returns once it is gone.
	RunStep(ctx context.Context, step *Step) StepExit
	// ReadResult reads the raw content of a result file written by the steps;
	// ok is false when the file does not exist.
	ReadResult(name string) (content string, ok bool, err error)
	// ReadStepResult reads a step result (Tekton's $(step.results.NAME.path)).
	ReadStepResult(step, name string) (content string, ok bool, err error)
	// Finish ends the attempt.
	Finish()
}

// Step is a step ready to run: every variable substituted.
type Step struct {
	Task  string // pipeline task name
	Name  string // step name
	Index int
	Image string
	// Command and Args as Tekton would run them. When Script is set the
	// launcher writes it to an executable file and runs that file with Args.
	Command []string
	Args    []string
	Script  string
	Env     []string // KEY=VALUE
	// EnvRefs and EnvFrom are the variables set from ConfigMaps and
	// Secrets, by reference: the kubelet resolves them in a Pod, the
	// launcher locally. EnvFrom's come first, then Env and EnvRefs (whose
	// names differ), as the kubelet orders them.
	EnvRefs    []*planpb.EnvVar
	EnvFrom    []*planpb.EnvFrom
	WorkingDir string
	// StdoutPath / StderrPath: also copy the stream to this file (stdoutConfig).
	StdoutPath string
	StderrPath string
	// Hermetic: run the step with no network (Tekton's
	// experimental.tekton.dev/execution-mode: hermetic on its TaskRun). A
	// launcher that cannot must fail the step, never run it with network.
	Hermetic bool
	// Workspaces are the task's workspaces isolated to this step (or
	// sidecar): it alone of the task's containers sees them.
	Workspaces []*planpb.StepWorkspace
	// ReadinessProbe and StartupProbe (sidecars only): StartSidecars
	// returns once they passed (internal/probe), or the sidecar ended.
	ReadinessProbe, StartupProbe *planpb.Probe
}

// StepExit is how a step ended.
type StepExit struct {
	ExitCode int
	// Started and Finished are the real times of the step's process.
	Started, Finished time.Time
	// Err is set when the step could not be started or was lost (its
	// container died); ExitCode is then meaningless unless Killed says why.
	Err error
	// Reason the step was terminated from outside, e.g. "OOMKilled"; empty
	// for a normal exit.
	Reason string
}

// Reporter receives status events as the run goes.
type Reporter interface {
	Report(*planpb.Event)
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(*planpb.Event)

// Report calls f(e).
func (f ReporterFunc) Report(e *planpb.Event) { f(e) }
