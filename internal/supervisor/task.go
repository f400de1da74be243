package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/internal/artifacts"
	"github.com/e7763abc/pod-runner/internal/facts"
	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// runTask runs a task to its end, retries included, and returns its status.
// ctx is cancelled with a cause (cancel, pipeline timeouts) to stop it.
func (s *Supervisor) runTask(ctx context.Context, ready *facts.Ready) taskEnd {
	t := ready.Task
	if t.GetChild() != nil {
		return s.runChild(ctx, ready)
	}
	st := &planpb.TaskStatus{Name: t.GetName(), TaskRunName: t.GetTaskRunName(), Finally: ready.Final, Params: ready.Params}
	if m := t.GetMatrix(); m != nil {
		st.Matrix, st.TaskRunUid = m, t.GetContext()["context.taskRun.uid"]
	}
	for attempt := 0; ; attempt++ {
		st.StartTime = timestamppb.New(s.now())
		st.CompletionTime = nil
		st.Steps = nil
		st.Results = nil
		st.ArtifactInputs, st.ArtifactOutputs = nil, nil
		st.Condition = &planpb.Condition{Status: "Unknown", Reason: reasons.Running, Message: reasons.MsgTaskRunning, LastTransitionTime: st.StartTime}
		s.reportTask(st)

		end := s.runAttempt(ctx, ready, attempt, st)
		st.CompletionTime = timestamppb.New(s.now())
		st.Condition.LastTransitionTime = st.CompletionTime
		if end.ok || end.cancelled || attempt >= int(t.GetRetries()) {
			s.results.Set(t.GetName(), st.Results)
			s.artifacts.set(t, artifacts.Set{Inputs: st.ArtifactInputs, Outputs: st.ArtifactOutputs})
			s.reportTask(st)
			end.status = st
			return end
		}
		// Retry: the failed attempt moves to retriesStatus, as Tekton does.
		st.Retries = append(st.Retries, &planpb.TaskAttempt{
			Condition: st.Condition, StartTime: st.StartTime, CompletionTime: st.CompletionTime, Steps: st.Steps,
		})
	}
}

func (s *Supervisor) reportTask(st *planpb.TaskStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Reporter != nil {
		s.Reporter.Report(&planpb.Event{Time: timestamppb.New(s.now()), Kind: &planpb.Event_Task{Task: proto.Clone(st).(*planpb.TaskStatus)}})
	}
}

// runAttempt runs the steps of one attempt and fills st: steps, results,
// condition.
func (s *Supervisor) runAttempt(ctx context.Context, ready *facts.Ready, attempt int, st *planpb.TaskStatus) taskEnd {
	t := ready.Task
	if d := t.GetTimeout().AsDuration(); t.GetTimeout() != nil && d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, errTaskTimeout)
		defer cancel()
	}
	att, err := s.Launcher.StartAttempt(ctx, t, attempt)
	if err != nil {
		return fail(st, reasons.Failed, fmt.Sprintf("could not start task %q: %v", t.GetName(), err))
	}
	defer att.Finish()

	taskCtx := make(map[string]string, len(t.GetContext())+1)
	for k, v := range t.GetContext() {
		taskCtx[k] = v
	}
	taskCtx["context.task.retry-count"] = strconv.Itoa(attempt)
	spec := results.Propagate(t.GetSpec(), ready.Results)
	spec = results.Propagate(spec, s.artifacts.vars())
	steps, err := results.TaskSteps(spec, ready.Params, taskCtx, att)
	if err != nil {
		return fail(st, reasons.Failed, fmt.Sprintf("invalid task %q: %v", t.GetName(), err))
	}
	// Sidecars start before the steps and are stopped once they end,
	// whichever way the attempt ends.
	stopSidecars, err := s.startSidecars(ctx, att, t, spec, ready.Params, taskCtx, st)
	if err != nil {
		return fail(st, reasons.Failed, err.Error())
	}
	defer stopSidecars()

	var failed *planpb.StepState // the first step that failed the task
	var failure string           // and its message
	var arts attemptArtifacts
	defer func() { st.ArtifactInputs, st.ArtifactOutputs = arts.task.Inputs, arts.task.Outputs }()
	for i, step := range steps {
		state := &planpb.StepState{Name: step.GetName(), Container: "step-" + step.GetName(), Image: step.GetImage()}
		st.Steps = append(st.Steps, state)
		if failed != nil || ctx.Err() != nil {
			skipStep(state)
			continue
		}
		step, err := withStepResults(att, steps, step)
		if err != nil {
			// The entrypoint fails the step before it starts.
			s.terminated(state, StepExit{ExitCode: 1})
			state.Reason = reasons.StepError
			failed, failure = state, fmt.Sprintf("%q failed: %v", state.GetContainer(), err)
			s.reportTask(st)
			continue
		}
		if !facts.WhenAllows(step.GetWhen()) {
			// Tekton's entrypoint: the step is skipped, not failed.
			now := time.Now()
			s.terminated(state, StepExit{ExitCode: 0, Started: now, Finished: now})
			state.Reason = reasons.StepSkipped
			s.reportTask(st)
			continue
		}
		exit := s.runStep(ctx, att, t, i, arts.withStepArtifacts(step), state)
		if err := arts.collect(att, step.GetName(), state); err != nil && exit == "" {
			// Tekton's entrypoint exits 1 after the step ran.
			state.ExitCode, state.Reason = 1, reasons.StepError
			exit = fmt.Sprintf("%q exited with code 1: %v", state.GetContainer(), err)
		}
		s.reportTask(st)
		if cause := context.Cause(ctx); ctx.Err() != nil {
			return s.stopped(st, t, att, cause)
		}
		if exit != "" {
			failed, failure = state, exit
		}
	}
	if cause := context.Cause(ctx); ctx.Err() != nil {
		// Stopped between two steps.
		return s.stopped(st, t, att, cause)
	}
	// The sidecars are stopped as the steps end; which had ended before
	// may decide the task's reason.
	sidecarsEnded := stopSidecars()
	resultsErr := s.collectResults(st, t, att)
	if reason, msg := attemptFailure(failed, failure, st.Sidecars, sidecarsEnded); reason != "" {
		// A failure of a task whose failure the pipeline ignores is
		// FailureIgnored (pod.updateCompletedTaskRunStatus).
		if t.GetOnErrorContinue() {
			return fail(st, reasons.FailureIgnored, msg)
		}
		return fail(st, reason, msg)
	}
	if resultsErr != nil {
		return fail(st, reasons.TaskValidation, resultsErr.Error())
	}
	st.Condition = &planpb.Condition{Status: "True", Reason: reasons.Succeeded, Message: "All Steps have completed executing"}
	return taskEnd{ok: true}
}

// attemptFailure is the reason and message of an attempt whose steps all
// ended, as Tekton's pod status code gives them (pkg/pod DidTaskRunFail,
// getFailureInfo, getFailureMessage), "" if it succeeded. step is the step
// that failed the task, if any, with its message; ended tells which
// sidecars had ended on their own by then, as the Pod's container statuses
// would show. A sidecar that ended non-zero or OOM-killed names the
// failure before the step does, but does not fail the task by itself: the
// kubelet first reports every container terminated with the Pod still
// Running, and Failed only later, and Tekton's controller decides on the
// first (measured with Tekton's own controller on Kubernetes 1.32:
// test/cluster parity).
func attemptFailure(step *planpb.StepState, stepMsg string, sidecars []*planpb.StepState, ended []bool) (reason, msg string) {
	if step == nil {
		return "", ""
	}
	var oom, nonZero *planpb.StepState // the first sidecar of each kind
	for i, sc := range sidecars {
		if i >= len(ended) || !ended[i] {
			continue
		}
		// The kubelet lists container statuses by name, which is the
		// order Tekton looks at them in.
		switch {
		case sc.GetReason() == reasons.OOMKilled:
			if oom == nil || sc.GetContainer() < oom.GetContainer() {
				oom = sc
			}
		case sc.GetExitCode() != 0:
			if nonZero == nil || sc.GetContainer() < nonZero.GetContainer() {
				nonZero = sc
			}
		}
	}
	switch {
	case oom != nil:
		return reasons.SidecarOOM, containerExited(oom)
	case step.GetReason() == reasons.OOMKilled:
		return reasons.StepOOM, stepMsg
	case nonZero != nil:
		return reasons.SidecarFailed, containerExited(nonZero)
	}
	return reasons.StepFailed, stepMsg
}

// containerExited is Tekton's failure message for a container that ended
// non-zero (extractContainerFailureMessage).
func containerExited(state *planpb.StepState) string {
	if state.GetReason() == "" {
		return fmt.Sprintf("%q exited with code %d", state.GetContainer(), state.GetExitCode())
	}
	return fmt.Sprintf("%q exited with code %d: %s", state.GetContainer(), state.GetExitCode(), state.GetReason())
}

// runStep runs one step and records its state; it returns a failure message
// when the step fails the task.
func (s *Supervisor) runStep(ctx context.Context, att Attempt, t *planpb.Task, index int, step *planpb.Step, state *planpb.StepState) string {
	stepCtx := ctx
	if d := step.GetTimeout().AsDuration(); step.GetTimeout() != nil && d > 0 {
		var cancel context.CancelFunc
		stepCtx, cancel = context.WithTimeoutCause(ctx, d, errStepTimeout)
		defer cancel()
	}
	state.Running = true
	state.StartedAt = timestamppb.New(s.now())
	l := launchable(t, index, step)
	// Steps only: Tekton's hermetic mode leaves the sidecars their network.
	l.Hermetic = t.GetHermetic()
	exit := att.RunStep(stepCtx, l)
	s.terminated(state, exit)
	container := "step-" + step.GetName()
	switch {
	case ctx.Err() != nil:
		// The task was stopped from outside; runAttempt sets the reason.
		state.Reason = reasons.StepCancelled
		return ""
	case errors.Is(context.Cause(stepCtx), errStepTimeout):
		state.Reason = reasons.StepTimeoutExceeded
		if state.ExitCode == 0 {
			state.ExitCode = 1
		}
		return fmt.Sprintf("%q exited because the step exceeded the specified timeout limit", container)
	case exit.Err != nil:
		state.Reason = failedStepReason(exit)
		if state.ExitCode == 0 {
			state.ExitCode = 1
		}
		return fmt.Sprintf("%q failed: %v", container, exit.Err)
	case exit.ExitCode == 0:
		state.Reason = reasons.StepCompleted
		return ""
	case step.GetOnError() == planpb.OnError_CONTINUE:
		state.Reason = reasons.StepContinued
		return ""
	default:
		state.Reason = failedStepReason(exit)
		if exit.Reason != "" {
			return fmt.Sprintf("%q exited with code %d: %s", container, exit.ExitCode, exit.Reason)
		}
		return fmt.Sprintf("%q exited with code %d: %s", container, exit.ExitCode, reasons.StepError)
	}
}

// failedStepReason is the terminated reason of a step that failed: its
// container's, as Tekton copies it (reasons.OOMKilled or Error).
func failedStepReason(exit StepExit) string {
	if exit.Reason == reasons.OOMKilled {
		return reasons.OOMKilled
	}
	return reasons.StepError
}

// terminated records that a step or sidecar ended: its exit code and the
// real times of its process (the supervisor's clock for what it lacks).
func (s *Supervisor) terminated(state *planpb.StepState, exit StepExit) {
	state.Running = false
	state.Terminated = true
	state.ExitCode = int32(exit.ExitCode)
	if !exit.Started.IsZero() {
		state.StartedAt = timestamppb.New(exit.Started)
	}
	finished := exit.Finished
	if finished.IsZero() {
		finished = s.now()
	}
	state.FinishedAt = timestamppb.New(finished)
}

// skipStep marks a step that did not run because an earlier one failed.
func skipStep(state *planpb.StepState) {
	state.Terminated = true
	state.ExitCode = 1
	state.Reason = reasons.StepSkipped
	state.Skipped = true
}

// stopped ends an attempt that was stopped from outside: a timeout or a cancel.
func (s *Supervisor) stopped(st *planpb.TaskStatus, t *planpb.Task, att Attempt, cause error) taskEnd {
	s.collectResults(st, t, att)
	switch {
	case errors.Is(cause, errTaskTimeout):
		end := fail(st, reasons.TaskTimeout, fmt.Sprintf("TaskRun %q failed to finish within %q", t.GetTaskRunName(), t.GetTimeout().AsDuration().String()))
		return end
	case errors.Is(cause, errCancelled):
		msg := reasons.MsgCancelledByPipeline
		if s.Plan.GetKind() == planpb.RunKind_TASK_RUN {
			msg = "" // a TaskRun cancelled by its user has no status message
		}
		end := fail(st, reasons.TaskCancelled, fmt.Sprintf("TaskRun %q was cancelled. %s", t.GetTaskRunName(), msg))
		end.cancelled = true
		return end
	default: // a pipeline, tasks or finally timeout
		end := fail(st, reasons.TaskCancelled, fmt.Sprintf("TaskRun %q was cancelled. %s", t.GetTaskRunName(), reasons.MsgCancelledByPipelineTimeout))
		end.cancelled, end.timeout = true, true
		return end
	}
}

func fail(st *planpb.TaskStatus, reason, msg string) taskEnd {
	st.Condition = &planpb.Condition{Status: "False", Reason: reason, Message: msg}
	return taskEnd{}
}

// collectResults reads the task's declared results into st. Results that do
// not match their declaration are left out and reported as Tekton's
// validateTaskRunResults does.
func (s *Supervisor) collectResults(st *planpb.TaskStatus, t *planpb.Task, att Attempt) error {
	var bad []string
	for _, spec := range t.GetSpec().GetResults() {
		raw, ok, err := att.ReadResult(spec.GetName())
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q: %v", spec.GetName(), err))
			continue
		}
		if !ok {
			continue
		}
		v, err := results.Parse(spec, raw)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		st.Results = append(st.Results, &planpb.ResultValue{Name: spec.GetName(), Value: v})
	}
	if len(bad) > 0 {
		//lint:ignore ST1005 Tekton's message, word for word
		return fmt.Errorf("Provided results don't match declared results; may be invalid JSON or missing result declaration: %s", strings.Join(bad, ", "))
	}
	return nil
}

// launchable turns a substituted plan step into what a Launcher runs.
func launchable(t *planpb.Task, index int, step *planpb.Step) *Step {
	env := make([]string, 0, len(step.GetEnv()))
	var refs []*planpb.EnvVar
	for _, e := range step.GetEnv() {
		if e.GetValueFrom() != nil {
			refs = append(refs, e)
			continue
		}
		env = append(env, e.GetName()+"="+e.GetValue())
	}
	l := &Step{
		Task: t.GetName(), Name: step.GetName(), Index: index, Image: step.GetImage(),
		Command: step.GetCommand(), Args: step.GetArgs(), Env: env, EnvRefs: refs, EnvFrom: step.GetEnvFrom(),
		WorkingDir: step.GetWorkingDir(),
		StdoutPath: step.GetStdoutPath(), StderrPath: step.GetStderrPath(),
		Workspaces:     step.GetWorkspaces(),
		ReadinessProbe: step.GetReadinessProbe(), StartupProbe: step.GetStartupProbe(),
	}
	if script := step.GetScript(); script != "" {
		l.Script = withShebang(script)
	}
	return l
}

// withShebang gives a script without "#!" Tekton's default interpreter: sh
// with set -e.
func withShebang(script string) string {
	if strings.HasPrefix(script, "#!") {
		return script
	}
	return "#!/bin/sh\nset -e\n" + script
}

// withStepResults is step with the results of earlier steps it reads
// through $(steps.S.results.R) substituted in its env, command and args,
// as Tekton's entrypoint does when the step starts; a result that is not
// there is an error, as it is for the entrypoint.
func withStepResults(att Attempt, steps []*planpb.Step, step *planpb.Step) (*planpb.Step, error) {
	refs := results.StepResultRefs(step)
	if len(refs) == 0 {
		return step, nil
	}
	vars := results.NewVars()
	for _, r := range refs {
		raw, ok, err := att.ReadStepResult(r.Task, r.Result)
		switch {
		case err != nil:
			return nil, fmt.Errorf("read the result %q of step %q: %w", r.Result, r.Task, err)
		case !ok:
			return nil, fmt.Errorf("step %q has no result %q for $(steps.%s.results.%s)", r.Task, r.Result, r.Task, r.Result)
		}
		spec := &planpb.ResultSpec{Name: r.Result}
		for _, s := range steps {
			for _, rs := range s.GetResults() {
				if s.GetName() == r.Task && rs.GetName() == r.Result {
					spec = rs
				}
			}
		}
		v, err := results.Parse(spec, raw)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", r.Task, err)
		}
		vars.SetStepResult(r.Task, r.Result, v)
	}
	return results.ApplyStepResults(step, vars), nil
}
