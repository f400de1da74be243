package supervisor

import (
	"fmt"
	"slices"
	"time"

	"github.com/e7763abc/pod-runner/internal/dag"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// phase is where a task stands.
type phase uint8

const (
	pending phase = iota
	running
	succeeded
	failed
	// invalid: its result references could not be resolved although the
	// referenced tasks finished (Tekton's "validation failed" task).
	invalid
)

// node is one task of the plan and what is known of it.
type node struct {
	task  *planpb.Task
	final bool
	// index in the DAG (DAG tasks only).
	index int
	// refs are the result references in the task's params and when
	// expressions, which are fixed by the plan.
	refs []results.Ref

	phase phase
	// reason is the TaskRun condition reason once the task ended.
	reason string
	// cancelled: the TaskRun was cancelled (reason TaskRunCancelled);
	// byTimeout: because a pipeline timeout was reached.
	cancelled, byTimeout bool
	// skipped is set once the task is reported skipped; its reason is
	// recomputed from the facts, as Tekton does on every reconcile.
	skipped bool
	// params and when, resolved when the task was started or skipped.
	params []*planpb.Param
	when   []*planpb.WhenExpression
	// invalidErr explains an invalid task.
	invalidErr string
}

func (n *node) scheduled() bool { return n.phase != pending && n.phase != invalid }

// Facts is the state of a run's tasks and the decisions that follow from it:
// which task may start, which is skipped and why, and the run's condition. It
// is Tekton's PipelineRunFacts, event-driven: it is told of every change
// instead of re-resolving the whole run. It is not safe for concurrent use.
type Facts struct {
	plan    *planpb.Plan
	graph   *dag.Graph
	dagN    []*node
	finalN  []*node
	byName  map[string]*node
	results *results.Store

	// What happened to the run as a whole.
	cancelled, gracefullyCancelled, gracefullyStopped bool
	pipelineTimedOut, tasksTimedOut, finallyTimedOut  bool
	finallyStarted                                    bool

	// skipCache memoizes skip reasons for one decision round.
	skipCache map[*node]string
}

// NewFacts builds the facts of a plan that has not started.
func NewFacts(plan *planpb.Plan, store *results.Store) (*Facts, error) {
	f := &Facts{plan: plan, byName: map[string]*node{}, results: store}
	nodes := make([]dag.Node, len(plan.GetTasks()))
	for i, t := range plan.GetTasks() {
		nodes[i] = dag.Node{Name: t.GetName(), After: t.GetRunAfter()}
		f.dagN = append(f.dagN, f.newNode(t, false, i))
	}
	g, err := dag.New(nodes)
	if err != nil {
		return nil, fmt.Errorf("plan %q: %w", plan.GetName(), err)
	}
	f.graph = g
	for _, t := range plan.GetFinally() {
		if _, dup := f.byName[t.GetName()]; dup {
			return nil, fmt.Errorf("plan %q: task %q is declared twice", plan.GetName(), t.GetName())
		}
		f.finalN = append(f.finalN, f.newNode(t, true, -1))
	}
	return f, nil
}

func (f *Facts) newNode(t *planpb.Task, final bool, index int) *node {
	n := &node{task: t, final: final, index: index}
	for _, p := range t.GetParams() {
		n.refs = append(n.refs, valueRefs(p.GetValue())...)
	}
	for _, w := range t.GetWhen() {
		n.refs = append(n.refs, results.Refs(w.GetInput())...)
		for _, v := range w.GetValues() {
			n.refs = append(n.refs, results.Refs(v)...)
		}
		n.refs = append(n.refs, results.Refs(w.GetCel())...)
	}
	f.byName[t.GetName()] = n
	return n
}

func valueRefs(v *planpb.Value) []results.Ref {
	refs := results.Refs(v.GetStringValue())
	for _, s := range v.GetArrayValue() {
		refs = append(refs, results.Refs(s)...)
	}
	for _, k := range sortedKeys(v.GetObjectValue()) {
		refs = append(refs, results.Refs(v.GetObjectValue()[k])...)
	}
	return refs
}

// Decision is what the run must do now.
type Decision struct {
	// Start are the tasks to start, with their params and when expressions resolved.
	Start []*Ready
	// Skipped are tasks newly found skipped, with the reason known now.
	Skipped []*planpb.SkippedTask
}

// Ready is a task that may start.
type Ready struct {
	Task   *planpb.Task
	Final  bool
	Params []*planpb.Param
}

// Next decides which tasks start and which are skipped, given what is known
// now. Tasks it returns in Start are marked running.
func (f *Facts) Next() Decision {
	var d Decision
	if f.cancelled {
		// A cancelled run schedules nothing more, finally included: Tekton's
		// reconciler only cancels the TaskRuns of a Cancelled PipelineRun.
		return d
	}
	for {
		f.skipCache = map[*node]string{}
		progressed := f.nextDAG(&d)
		if f.dagDone() {
			progressed = f.nextFinally(&d) || progressed
		}
		if !progressed {
			return d
		}
	}
}

// nextDAG is DAGExecutionQueue plus the reconciler's checks before it creates
// TaskRuns.
func (f *Facts) nextDAG(d *Decision) bool {
	progressed := false
	// Report newly skipped tasks, candidates or not: Tekton lists every
	// not-scheduled task whose Skip() holds.
	for _, n := range f.dagN {
		if n.phase == pending && !n.skipped {
			if reason := f.skip(n); reason != "" {
				n.skipped = true
				n.params, n.when = f.resolve(n, nil)
				d.Skipped = append(d.Skipped, &planpb.SkippedTask{Name: n.task.GetName(), Reason: reason, When: n.when})
				progressed = true
			}
		}
	}
	if f.cancelled || f.gracefullyCancelled || f.stopping() || f.gracefullyStopped {
		return progressed
	}
	var queue []*node
	for _, n := range f.dagN {
		if n.phase == pending && !n.skipped && f.parentsDone(n) {
			queue = append(queue, n)
		}
	}
	// A reference to a result that a finished task did not produce fails
	// validation, and no task of this round starts (CheckMissingResultReferences).
	for _, n := range queue {
		if err := f.missingResult(n); err != "" {
			n.phase = invalid
			n.invalidErr = err
			progressed = true
		}
	}
	if f.stopping() {
		return progressed
	}
	for _, n := range queue {
		n.params, n.when = f.resolve(n, nil)
		n.phase = running
		d.Start = append(d.Start, &Ready{Task: n.task, Params: n.params})
		progressed = true
	}
	return progressed
}

// nextFinally is GetFinalTasks plus IsFinallySkipped.
func (f *Facts) nextFinally(d *Decision) bool {
	progressed := false
	status := f.taskStatusVars()
	for _, n := range f.finalN {
		if n.phase != pending || n.skipped {
			continue
		}
		if reason := f.finallySkip(n, status); reason != "" {
			n.skipped = true
			d.Skipped = append(d.Skipped, &planpb.SkippedTask{Name: n.task.GetName(), Reason: reason, When: whenIfSkippedByWhen(reason, n.when)})
			progressed = true
			continue
		}
		n.phase = running
		f.finallyStarted = true
		d.Start = append(d.Start, &Ready{Task: n.task, Final: true, Params: n.params})
		progressed = true
	}
	return progressed
}

func whenIfSkippedByWhen(reason string, when []*planpb.WhenExpression) []*planpb.WhenExpression {
	if reason == SkipWhen {
		return when
	}
	return nil
}

// skip is ResolvedPipelineTask.skip for a DAG task: the reason it is
// skipped, or "".
func (f *Facts) skip(n *node) string {
	if n.final || n.scheduled() || n.phase == invalid {
		return ""
	}
	if r, ok := f.skipCache[n]; ok {
		return r
	}
	var r string
	parentsDone := f.parentsDone(n)
	switch {
	case f.stopping():
		r = SkipStopping
	case f.gracefullyCancelled:
		r = SkipGracefullyCancelled
	case f.gracefullyStopped:
		r = SkipGracefullyStopped
	case parentsDone && !f.whenAllows(n):
		r = SkipWhen
	case f.parentSkipped(n):
		r = SkipParent
	case parentsDone && f.resultsMissing(n):
		r = SkipMissingResults
	case parentsDone && f.pipelineTimedOut:
		r = SkipPipelineTimedOut
	case parentsDone && f.tasksTimedOut:
		r = SkipTasksTimedOut
	}
	f.skipCache[n] = r
	return r
}

// finallySkip is IsFinallySkipped: why a finally task does not run, or "".
func (f *Facts) finallySkip(n *node, status map[string]string) string {
	missing := f.unresolvable(n) != ""
	n.params, n.when = f.resolve(n, status)
	switch {
	case missing:
		return SkipMissingResults
	case !whenAllows(n.when):
		return SkipWhen
	case f.pipelineTimedOut:
		return SkipPipelineTimedOut
	case f.finallyTimedOut:
		return SkipFinallyTimedOut
	}
	return ""
}

// stopping is IsStopping: a DAG task failed (and may not be ignored) or
// failed validation.
func (f *Facts) stopping() bool {
	for _, n := range f.dagN {
		if (n.phase == failed && !n.task.GetOnErrorContinue()) || n.phase == invalid {
			return true
		}
	}
	return false
}

// done is isDone: skipped, succeeded, failed or invalid.
func (f *Facts) done(n *node) bool {
	switch n.phase {
	case succeeded, failed, invalid:
		return true
	case pending:
		return f.skip(n) != ""
	}
	return false
}

func (f *Facts) parentsDone(n *node) bool {
	for _, p := range f.graph.Prev(n.index) {
		if !f.done(f.dagN[p]) {
			return false
		}
	}
	return true
}

// parentSkipped: a parent was skipped for a reason other than its when
// expressions (those skips do not propagate).
func (f *Facts) parentSkipped(n *node) bool {
	for _, p := range f.graph.Prev(n.index) {
		if r := f.skip(f.dagN[p]); r != "" && r != SkipWhen {
			return true
		}
	}
	return false
}

func (f *Facts) dagDone() bool {
	for _, n := range f.dagN {
		if !f.done(n) {
			return false
		}
	}
	return true
}

func (f *Facts) whenAllows(n *node) bool {
	_, when := f.resolve(n, nil)
	return whenAllows(when)
}

// whenAllows is WhenExpressions.AllowsExecution for in/notin expressions.
func whenAllows(when []*planpb.WhenExpression) bool {
	for _, w := range when {
		in := slices.Contains(w.GetValues(), w.GetInput())
		switch w.GetOperator() {
		case "in":
			if !in {
				return false
			}
		case "notin":
			if in {
				return false
			}
		}
	}
	return true
}

// unresolvable is the name of the first task whose result n references but
// cannot have (it did not finish, or did not produce it), or "".
func (f *Facts) unresolvable(n *node) string {
	for _, r := range n.refs {
		ref := f.byName[r.Task]
		if ref == nil || (ref.phase != succeeded && ref.phase != failed) {
			return r.Task
		}
		if _, ok := f.results.Get(r.Task, r.Result); !ok {
			return r.Task
		}
	}
	return ""
}

// resultsMissing is skipBecauseResultReferencesAreMissing for a DAG task.
func (f *Facts) resultsMissing(n *node) bool {
	name := f.unresolvable(n)
	if name == "" {
		return false
	}
	ref := f.byName[name]
	return n.task.GetOnErrorContinue() || (ref != nil && f.skip(ref) == SkipWhen)
}

// missingResult is CheckMissingResultReferences: a message when a result
// reference cannot be resolved although the referenced task succeeded.
func (f *Facts) missingResult(n *node) string {
	for _, r := range n.refs {
		ref := f.byName[r.Task]
		if ref == nil || ref.phase != succeeded {
			continue
		}
		if _, ok := f.results.Get(r.Task, r.Result); !ok {
			return fmt.Sprintf("Invalid task result reference: %q did not produce result %q referenced by %q", r.Task, r.Result, n.task.GetName())
		}
	}
	return ""
}

// resolve substitutes the results that can be resolved into n's params and
// when expressions, all or nothing as Tekton's ResolveResultRefs does, then
// the finally status variables when given.
func (f *Facts) resolve(n *node, status map[string]string) ([]*planpb.Param, []*planpb.WhenExpression) {
	vars := results.NewVars()
	if f.unresolvable(n) == "" {
		for _, r := range n.refs {
			v, _ := f.results.Get(r.Task, r.Result)
			vars.SetResult(r.Task, r.Result, v)
		}
	}
	for k, v := range status {
		vars.SetString(k, v)
	}
	params := make([]*planpb.Param, len(n.task.GetParams()))
	for i, p := range n.task.GetParams() {
		params[i] = &planpb.Param{Name: p.GetName(), Value: vars.ApplyValue(p.GetValue())}
	}
	when := make([]*planpb.WhenExpression, len(n.task.GetWhen()))
	for i, w := range n.task.GetWhen() {
		when[i] = &planpb.WhenExpression{
			Input:    vars.Apply(w.GetInput()),
			Operator: w.GetOperator(),
			Values:   vars.ApplyList(w.GetValues()),
			Cel:      vars.Apply(w.GetCel()),
		}
	}
	return params, when
}

// taskStatusVars are $(tasks.X.status), $(tasks.X.reason) and
// $(tasks.status) (GetPipelineTaskStatus), for finally tasks.
func (f *Facts) taskStatusVars() map[string]string {
	vars := map[string]string{}
	for _, n := range f.dagN {
		s := stateNone
		switch n.phase {
		case succeeded:
			s = ReasonSucceeded
		case failed:
			s = ReasonFailed
		}
		vars["tasks."+n.task.GetName()+".status"] = s
		vars["tasks."+n.task.GetName()+".reason"] = n.reason
	}
	aggregate := stateNone
	if f.dagDone() {
		aggregate = ReasonSucceeded
		for _, n := range f.dagN {
			if n.phase == failed {
				aggregate = ReasonFailed
				break
			}
			if f.skip(n) != "" {
				aggregate = ReasonCompleted
			}
		}
	}
	vars["tasks.status"] = aggregate
	return vars
}

// Finished records the end of a task that was started.
func (f *Facts) Finished(name string, ok bool, reason string, cancelled, byTimeout bool) {
	n := f.byName[name]
	if ok {
		n.phase = succeeded
	} else {
		n.phase = failed
	}
	n.reason, n.cancelled, n.byTimeout = reason, cancelled, byTimeout
}

// Cancel records spec.status Cancelled: nothing new starts, finally included.
func (f *Facts) Cancel() { f.cancelled = true }

// CancelRunFinally records spec.status CancelledRunFinally.
func (f *Facts) CancelRunFinally() { f.gracefullyCancelled = true }

// StopRunFinally records spec.status StoppedRunFinally.
func (f *Facts) StopRunFinally() { f.gracefullyStopped = true }

// PipelineTimedOut records that timeouts.pipeline was reached.
func (f *Facts) PipelineTimedOut() { f.pipelineTimedOut = true }

// TasksTimedOut records that timeouts.tasks was reached.
func (f *Facts) TasksTimedOut() { f.tasksTimedOut = true }

// FinallyTimedOut records that timeouts.finally was reached.
func (f *Facts) FinallyTimedOut() { f.finallyTimedOut = true }

// Running lists the tasks that run now.
func (f *Facts) Running() []string {
	var names []string
	for _, n := range append(slices.Clip(f.dagN), f.finalN...) {
		if n.phase == running {
			names = append(names, n.task.GetName())
		}
	}
	return names
}

// IsFinal tells whether the named task is a finally task.
func (f *Facts) IsFinal(name string) bool { return f.byName[name].final }

// FinallyStarted tells whether a finally task was started.
func (f *Facts) FinallyStarted() bool { return f.finallyStarted }

// Skipped lists the skipped tasks with the reasons Tekton would report at
// this moment (GetSkippedTasks).
func (f *Facts) Skipped() []*planpb.SkippedTask {
	f.skipCache = map[*node]string{}
	var out []*planpb.SkippedTask
	for _, n := range f.dagN {
		if r := f.skip(n); r != "" {
			out = append(out, &planpb.SkippedTask{Name: n.task.GetName(), Reason: r, When: n.task.GetWhen()})
		}
	}
	if f.dagDone() {
		status := f.taskStatusVars()
		for _, n := range f.finalN {
			if n.phase != pending {
				continue
			}
			if r := f.finallySkip(n, status); r != "" {
				out = append(out, &planpb.SkippedTask{Name: n.task.GetName(), Reason: r, When: whenIfSkippedByWhen(r, n.task.GetWhen())})
			}
		}
	}
	return out
}

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
		case skip == SkipPipelineTimedOut || skip == SkipTasksTimedOut || finallySkips[n] == SkipFinallyTimedOut:
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

// Condition is GetPipelineConditionStatus: the run's Succeeded condition now.
// timeouts are the run's configured limits, for the timeout messages.
func (f *Facts) Condition(runName string, timeouts *planpb.Timeouts) *planpb.Condition {
	if f.cancelled {
		return &planpb.Condition{Status: "False", Reason: ReasonCancelled, Message: fmt.Sprintf("PipelineRun %q was cancelled", runName)}
	}
	if f.pipelineTimedOut {
		return &planpb.Condition{Status: "False", Reason: ReasonPipelineTimeout,
			Message: fmt.Sprintf("PipelineRun %q failed to finish within %q", runName, durationString(timeouts.GetPipeline().AsDuration()))}
	}
	finallyDone := f.finallyDone()
	if f.tasksTimedOut && (len(f.finalN) == 0 || finallyDone) {
		return &planpb.Condition{Status: "False", Reason: ReasonPipelineTimeout,
			Message: fmt.Sprintf("PipelineRun %q failed due to tasks failed to finish within %q", runName, durationString(timeouts.GetTasks().AsDuration()))}
	}
	s := f.count()
	completed := s.succeeded + s.failed + s.cancelled + s.ignoredFailed
	totalFailed := s.failed + s.ignoredFailed
	if s.incomplete == 0 {
		status, reason := "True", ReasonSucceeded
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
			reason = ReasonCompleted
		}
		switch {
		case s.invalid > 0:
			status, reason = "False", ReasonFailedValidation
		case s.failed > 0 || s.skippedByTimeout > 0:
			status, reason = "False", ReasonFailed
		case f.gracefullyCancelled || f.gracefullyStopped:
			status, reason = "False", ReasonCancelled
			msg = fmt.Sprintf("PipelineRun %q was cancelled", runName)
		case s.cancelled > 0:
			status, reason = "False", ReasonCancelled
		}
		return &planpb.Condition{Status: status, Reason: reason, Message: msg}
	}
	reason := ReasonRunning
	switch {
	case f.tasksTimedOut && len(f.finalN) > 0 && !finallyDone:
		reason = ReasonTimedOutRunningFinally
	case f.gracefullyCancelled:
		reason = ReasonCancelledRunningFinally
	case f.gracefullyStopped:
		reason = ReasonStoppedRunningFinally
	case s.cancelled > 0 || (s.failed > 0 && finallyDone):
		reason = ReasonStopping
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
			names = append(names, n.task.GetName())
			byName[n.task.GetName()] = n.invalidErr
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
	if f.cancelled {
		return true
	}
	return f.count().incomplete == 0
}

// durationString formats like Go's time.Duration, which Tekton uses in its
// timeout messages (metav1.Duration.String()).
func durationString(d time.Duration) string { return d.String() }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
