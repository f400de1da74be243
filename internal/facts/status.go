package facts

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Finished records the end of a plan task that was started: a TaskRun.
func (f *Facts) Finished(name string, ok bool, reason string, cancelled, byTimeout bool) {
	r, n := f.runs[name], f.runNode[name]
	if ok {
		r.phase = succeeded
	} else {
		r.phase = failed
	}
	r.reason, r.cancelled, r.byTimeout = reason, cancelled, byTimeout
	if !n.ended() {
		// A matrixed task ends with its last TaskRun.
		return
	}
	if f.frozen != nil {
		return
	}
	// The results of a finished task may make a reference unresolvable,
	// which ends the run before anything else is decided
	// (resolvePipelineState, ResolvePipelineTask's validateArrayResultsIndex).
	if err := f.resolveError(); err != "" {
		f.freeze(&planpb.Condition{Status: "False", Reason: reasons.FailedValidation,
			Message: fmt.Sprintf("[User error] PipelineRun %s/%s can't be Run; couldn't resolve all references: %s",
				f.plan.GetNamespace(), f.plan.GetName(), err)}, f.lastSkipped, nil)
		return
	}
	f.settle()
}

// Cancel records spec.status Cancelled: nothing new starts, finally included.
// The run ends now with the skipped tasks it had and no pipeline results:
// Tekton's cancelPipelineRun sets only the condition.
func (f *Facts) Cancel() {
	f.cancelled = true
	if f.frozen == nil {
		f.freeze(&planpb.Condition{Status: "False", Reason: reasons.Cancelled,
			Message: fmt.Sprintf("PipelineRun %q was cancelled", f.plan.GetName())}, f.lastSkipped, nil)
	}
}

// CancelRunFinally records spec.status CancelledRunFinally.
func (f *Facts) CancelRunFinally() { f.gracefullyCancelled = true; f.settle() }

// StopRunFinally records spec.status StoppedRunFinally.
func (f *Facts) StopRunFinally() { f.gracefullyStopped = true; f.settle() }

// PipelineTimedOut records that timeouts.pipeline was reached.
func (f *Facts) PipelineTimedOut() { f.pipelineTimedOut = true; f.settle() }

// TasksTimedOut records that timeouts.tasks was reached.
func (f *Facts) TasksTimedOut() { f.tasksTimedOut = true; f.settle() }

// FinallyTimedOut records that timeouts.finally was reached.
func (f *Facts) FinallyTimedOut() { f.finallyTimedOut = true; f.settle() }

// counts is pipelineRunStatusCount.
type counts struct {
	succeeded, failed, cancelled, ignoredFailed, invalid, skipped, skippedByTimeout, incomplete int
}

func (f *Facts) count() counts {
	f.skipCache = map[*node]string{}
	var c counts
	finallySkips := map[*node]string{}
	if f.dagDone() {
		status := f.taskStatusVars()
		for _, n := range f.finalN {
			if n.phase == pending {
				finallySkips[n] = f.finallySkip(n, status)
			}
		}
	}
	for _, n := range append(slices.Clip(f.dagN), f.finalN...) {
		skip := f.skip(n)
		switch {
		case n.phase == succeeded:
			c.succeeded++
		case n.phase == failed && n.cancelled && n.byTimeout:
			c.failed++
		case n.phase == failed && n.cancelled:
			c.cancelled++
		case n.phase == failed && n.task.GetOnErrorContinue():
			c.ignoredFailed++
		case n.phase == failed:
			c.failed++
		case n.phase == invalid:
			c.invalid++
		case skip == reasons.SkipPipelineTimedOut || skip == reasons.SkipTasksTimedOut || finallySkips[n] == reasons.SkipFinallyTimedOut:
			c.skipped++
			c.skippedByTimeout++
		case skip != "" || finallySkips[n] != "":
			c.skipped++
		default:
			c.incomplete++
		}
	}
	return c
}

// Condition is the run's Succeeded condition now: GetPipelineConditionStatus
// while the run goes, then what it was when the run ended.
func (f *Facts) Condition() *planpb.Condition {
	if f.frozen != nil {
		return proto.Clone(f.frozen.cond).(*planpb.Condition)
	}
	return f.liveCondition()
}

// Skipped lists the skipped tasks as Tekton reports them now: recomputed on
// every change while the run goes, then as they were when it ended.
func (f *Facts) Skipped() []*planpb.SkippedTask {
	if f.frozen != nil {
		out := make([]*planpb.SkippedTask, len(f.frozen.skipped))
		for i, sk := range f.frozen.skipped {
			out[i] = proto.Clone(sk).(*planpb.SkippedTask)
		}
		return out
	}
	return f.liveSkipped()
}

// Results are the pipeline results, known once the run has ended
// (ApplyTaskResultsToPipelineResults in the reconcile that ends it); a
// cancelled run has none.
func (f *Facts) Results() []*planpb.ResultValue {
	if f.frozen == nil {
		return nil
	}
	return f.frozen.results
}

// frozenStatus is a run's status once it ended: Tekton's reconciler leaves a
// done PipelineRun alone, whatever its TaskRuns do afterwards.
type frozenStatus struct {
	cond    *planpb.Condition
	skipped []*planpb.SkippedTask
	results []*planpb.ResultValue
}

func (f *Facts) freeze(cond *planpb.Condition, skipped []*planpb.SkippedTask, results []*planpb.ResultValue) {
	f.frozen = &frozenStatus{cond: cond, skipped: skipped, results: results}
}

// settle is the end of a reconcile after a change: the skipped list is
// recomputed, and a run whose condition is no longer Unknown ends with its
// pipeline results, or fails when one of them cannot be resolved.
func (f *Facts) settle() {
	if f.frozen != nil {
		return
	}
	f.lastSkipped = f.liveSkipped()
	cond := f.liveCondition()
	if cond.GetStatus() == "Unknown" {
		return
	}
	res, err := f.pipelineResults()
	if err != nil {
		cond = &planpb.Condition{Status: "False", Reason: reasons.CouldntGetPipelineResult,
			Message: fmt.Sprintf("Failed to get PipelineResult from TaskRun Results for PipelineRun %s: %s", f.plan.GetName(), err)}
	}
	f.freeze(cond, f.lastSkipped, res)
}

// liveCondition is GetPipelineConditionStatus.
func (f *Facts) liveCondition() *planpb.Condition {
	runName, timeouts := f.plan.GetName(), f.plan.GetTimeouts()
	if f.cancelled {
		return &planpb.Condition{Status: "False", Reason: reasons.Cancelled, Message: fmt.Sprintf("PipelineRun %q was cancelled", runName)}
	}
	if f.pipelineTimedOut {
		return &planpb.Condition{Status: "False", Reason: reasons.PipelineTimeout,
			Message: fmt.Sprintf("PipelineRun %q failed to finish within %q", runName, timeouts.GetPipeline().AsDuration().String())}
	}
	finallyDone := f.finallyDone()
	if f.tasksTimedOut && (len(f.finalN) == 0 || finallyDone) {
		return &planpb.Condition{Status: "False", Reason: reasons.PipelineTimeout,
			Message: fmt.Sprintf("PipelineRun %q failed due to tasks failed to finish within %q", runName, timeouts.GetTasks().AsDuration().String())}
	}
	s := f.count()
	completed := s.succeeded + s.failed + s.cancelled + s.ignoredFailed
	totalFailed := s.failed + s.ignoredFailed
	if s.incomplete == 0 {
		status, reason := "True", reasons.Succeeded
		var msg string
		if s.ignoredFailed > 0 {
			msg = fmt.Sprintf("Tasks Completed: %d (Failed: %d (Ignored: %d), Cancelled %d), Skipped: %d", completed, totalFailed, s.ignoredFailed, s.cancelled, s.skipped)
		} else {
			msg = fmt.Sprintf("Tasks Completed: %d (Failed: %d, Cancelled %d), Skipped: %d", completed, totalFailed, s.cancelled, s.skipped)
		}
		if s.invalid > 0 {
			msg += fmt.Sprintf(", Failed Validation: %d", s.invalid)
			if errs := f.invalidErrors(); errs != "" {
				msg += " (" + errs + ")"
			}
		}
		if s.skipped > 0 {
			reason = reasons.Completed
		}
		switch {
		case s.invalid > 0:
			status, reason = "False", reasons.FailedValidation
		case s.failed > 0 || s.skippedByTimeout > 0:
			status, reason = "False", reasons.Failed
		case f.gracefullyCancelled || f.gracefullyStopped:
			status, reason = "False", reasons.Cancelled
			msg = fmt.Sprintf("PipelineRun %q was cancelled", runName)
		case s.cancelled > 0:
			status, reason = "False", reasons.Cancelled
		}
		return &planpb.Condition{Status: status, Reason: reason, Message: msg}
	}
	reason := reasons.Running
	switch {
	case f.tasksTimedOut && len(f.finalN) > 0 && !finallyDone:
		reason = reasons.TimedOutRunningFinally
	case f.gracefullyCancelled:
		reason = reasons.CancelledRunningFinally
	case f.gracefullyStopped:
		reason = reasons.StoppedRunningFinally
	case s.cancelled > 0 || (s.failed > 0 && finallyDone):
		reason = reasons.Stopping
	}
	return &planpb.Condition{Status: "Unknown", Reason: reason,
		Message: fmt.Sprintf("Tasks Completed: %d (Failed: %d, Cancelled %d), Incomplete: %d, Skipped: %d", completed, s.failed, s.cancelled, s.incomplete, s.skipped)}
}

func (f *Facts) finallyDone() bool {
	f.skipCache = map[*node]string{}
	if !f.dagDone() {
		return len(f.finalN) == 0
	}
	status := f.taskStatusVars()
	for _, n := range f.finalN {
		switch n.phase {
		case succeeded, failed:
		case pending:
			if f.finallySkip(n, status) == "" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (f *Facts) invalidErrors() string {
	var names []string
	byName := map[string]string{}
	for _, n := range f.dagN {
		if n.phase == invalid {
			names = append(names, n.name)
			byName[n.name] = n.invalidErr
		}
	}
	slices.Sort(names)
	msg := ""
	for i, name := range names {
		if i > 0 {
			msg += "; "
		}
		msg += byName[name]
	}
	if len(msg) > 1024 {
		msg = msg[:1024] + "..."
	}
	return msg
}

// Done tells whether nothing runs and nothing more will start.
func (f *Facts) Done() bool {
	for _, n := range append(slices.Clip(f.dagN), f.finalN...) {
		if n.phase == running {
			return false
		}
	}
	return f.frozen != nil || f.count().incomplete == 0
}
