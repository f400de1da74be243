// Package facts is Tekton's PipelineRunFacts for a Plan: from what happened
// to a run's tasks so far, which task starts next, which is skipped and why,
// the run's condition, and its results (Tekton's matrix and pipeline-results
// rules included). The supervisor tells it every change and does what it
// decides; test/oracle checks its decisions against Tekton's own code. It
// links no Tekton package, to keep the in-pod binary small.
package facts

import (
	"fmt"
	"slices"

	"github.com/e7763abc/pod-runner/internal/dag"
	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// stateNone is $(tasks.X.status) of a task that did not finish or was
// skipped, and $(tasks.status) while DAG tasks are still to finish.
const stateNone = "None"

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

// node is one pipeline task and what is known of it. A matrixed pipeline
// task has a plan task per TaskRun, all of them in runs; the node is the
// pipeline task Tekton's ResolvedPipelineTask stands for.
type node struct {
	name string
	// task is the first plan task: what every TaskRun of the pipeline task
	// shares (when, run_after, retries, onError) is read from it.
	task *planpb.Task
	// runs are its TaskRuns: one, or one per matrix combination; none for a
	// matrix with an empty array param, which is always skipped.
	runs     []*taskRun
	matrixed bool
	empty    bool
	// runTime: its matrix uses task results; it fans out when it starts.
	runTime bool
	// paramRefs: its params or when expressions use results (Tekton's
	// hasResultReferences, which leaves matrix params out).
	paramRefs bool
	final     bool
	// index in the DAG (DAG tasks only).
	index int
	// refs are the result references in the task's params and when
	// expressions, which are fixed by the plan; indexed are those that read
	// one element of an array result.
	refs    []results.Ref
	indexed []indexedRef
	// specRefs are the result references in the steps and sidecars of an
	// embedded taskSpec (also in refs): Tekton substitutes them into the
	// spec when it creates the TaskRun.
	specRefs []results.Ref

	// phase is the pipeline task's: running until all its TaskRuns ended,
	// then succeeded when all of them did, else failed.
	phase phase
	// reason is $(tasks.X.reason) once the task ended (getReason).
	reason string
	// cancelled: a TaskRun was cancelled (reason TaskRunCancelled);
	// byTimeout: one was because a pipeline timeout was reached.
	cancelled, byTimeout bool
	// skipped is set once the task is reported skipped; its reason is
	// recomputed from the facts, as Tekton does on every reconcile.
	skipped bool
	// when, resolved when the task was started or skipped.
	when []*planpb.WhenExpression
	// invalidErr explains an invalid task.
	invalidErr string
}

// taskRun is one TaskRun of a pipeline task: its plan task and its end.
type taskRun struct {
	task  *planpb.Task
	phase phase
	// reason is the TaskRun condition reason once it ended.
	reason               string
	cancelled, byTimeout bool
	// params, resolved when it was started.
	params []*planpb.Param
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
	byName  map[string]*node // by pipeline task name
	runs    map[string]*taskRun
	runNode map[string]*node // by plan task name
	results *results.Store

	// What happened to the run as a whole.
	cancelled, gracefullyCancelled, gracefullyStopped bool
	pipelineTimedOut, tasksTimedOut, finallyTimedOut  bool
	finallyStarted                                    bool

	// skipCache memoizes skip reasons for one decision round.
	skipCache map[*node]string

	// lastSkipped is the skipped list after the last change, which a run
	// that ends on a cancel or a resolution error keeps.
	lastSkipped []*planpb.SkippedTask
	// frozen is the run's status once it ended; set, it never changes.
	frozen *frozenStatus
}

// New builds the facts of a plan that has not started.
func New(plan *planpb.Plan, store *results.Store) (*Facts, error) {
	f := &Facts{plan: plan, byName: map[string]*node{}, runs: map[string]*taskRun{}, runNode: map[string]*node{}, results: store}
	var err error
	if f.dagN, err = f.group(plan.GetTasks(), false); err != nil {
		return nil, fmt.Errorf("plan %q: %w", plan.GetName(), err)
	}
	if f.finalN, err = f.group(plan.GetFinally(), true); err != nil {
		return nil, fmt.Errorf("plan %q: %w", plan.GetName(), err)
	}
	nodes := make([]dag.Node, len(f.dagN))
	for i, n := range f.dagN {
		nodes[i] = dag.Node{Name: n.name, After: f.pipelineTasks(n.task.GetRunAfter())}
	}
	g, err := dag.New(nodes)
	if err != nil {
		return nil, fmt.Errorf("plan %q: %w", plan.GetName(), err)
	}
	f.graph = g
	return f, nil
}

func (f *Facts) newNode(t *planpb.Task, final bool, index int) *node {
	n := &node{name: pipelineTask(t), task: t, final: final, index: index,
		matrixed: t.GetMatrix() != nil, empty: t.GetMatrix().GetEmpty(), runTime: t.GetMatrix().GetRunTime() != nil}
	// In Tekton's order (PipelineTaskResultRefs): params, matrix params,
	// then when.
	var params, matrix, when []string
	for _, p := range t.GetParams() {
		params = append(params, valueTexts(p.GetValue())...)
	}
	for _, p := range matrixParams(t.GetMatrix().GetRunTime()) {
		matrix = append(matrix, valueTexts(p.GetValue())...)
	}
	for _, w := range t.GetWhen() {
		when = append(when, w.GetInput(), w.GetCel())
		when = append(when, w.GetValues()...)
	}
	for _, s := range slices.Concat(params, matrix, when) {
		n.refs = append(n.refs, results.Refs(s)...)
		n.indexed = append(n.indexed, indexedRefs(s)...)
	}
	for _, s := range slices.Concat(params, when) {
		n.paramRefs = n.paramRefs || len(results.Refs(s)) > 0
	}
	// Then an embedded taskSpec's steps and sidecars; a referenced Task's
	// spec is not the pipeline's to substitute.
	if t.GetTaskRefName() == "" {
		n.specRefs = results.SpecRefs(t.GetSpec())
		n.refs = append(n.refs, n.specRefs...)
	}
	return n
}

// valueTexts are the strings of a value: object values in key order.
func valueTexts(v *planpb.Value) []string {
	texts := append([]string{v.GetStringValue()}, v.GetArrayValue()...)
	for _, k := range sortedKeys(v.GetObjectValue()) {
		texts = append(texts, v.GetObjectValue()[k])
	}
	return texts
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
	// Results are the results its embedded taskSpec references, to
	// substitute into its steps and sidecars first; nil if none.
	Results *results.Vars
}

// Next decides which tasks start and which are skipped, given what is known
// now. Tasks it returns in Start are marked running.
func (f *Facts) Next() Decision {
	var d Decision
	if f.frozen == nil {
		for {
			f.skipCache = map[*node]string{}
			progressed := f.nextDAG(&d)
			if f.dagDone() {
				progressed = f.nextFinally(&d) || progressed
			}
			if !progressed || f.frozen != nil {
				break
			}
		}
		f.settle()
	}
	if f.frozen != nil {
		// An ended run schedules nothing more, finally included: Tekton's
		// reconciler returns early for a done PipelineRun. Its skipped
		// list is final; announce what it holds.
		for _, sk := range f.frozen.skipped {
			if n := f.byName[sk.GetName()]; !n.skipped && n.phase == pending {
				n.skipped = true
				d.Skipped = append(d.Skipped, sk)
			}
		}
	}
	return d
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
				n.when = f.resolveWhen(n, nil)
				d.Skipped = append(d.Skipped, &planpb.SkippedTask{Name: n.name, Reason: reason, When: n.when})
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
		n.when = f.resolveWhen(n, nil)
		if !f.start(n, d, nil) {
			return true
		}
		progressed = true
	}
	return progressed
}

// start starts every TaskRun of n, each with its params resolved, after
// fanning out a matrix known only now. It tells whether it could: a matrix
// whose params are of the wrong type ends the run.
func (f *Facts) start(n *node, d *Decision, status map[string]string) bool {
	if n.runTime && !f.fanOutRunTime(n) {
		return false
	}
	n.phase = running
	propagated := f.propagated(n)
	for _, r := range n.runs {
		r.params = f.resolveParams(n, r, status)
		r.phase = running
		d.Start = append(d.Start, &Ready{Task: r.task, Final: n.final, Params: r.params, Results: propagated})
	}
	return true
}

// propagated are the results of finished tasks that n's embedded taskSpec
// references (PropagateResults), or nil if it references none.
func (f *Facts) propagated(n *node) *results.Vars {
	if len(n.specRefs) == 0 {
		return nil
	}
	vars := results.NewVars()
	for _, r := range n.specRefs {
		ref := f.byName[r.Task]
		if ref == nil || (ref.phase != succeeded && ref.phase != failed) {
			continue
		}
		if v, ok := f.result(ref, r.Result); ok {
			vars.SetPropagatedResult(r.Task, r.Result, v)
		}
	}
	return vars
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
			d.Skipped = append(d.Skipped, &planpb.SkippedTask{Name: n.name, Reason: reason, When: whenIfSkippedByWhen(reason, n.when)})
			progressed = true
			continue
		}
		f.finallyStarted = true
		if !f.start(n, d, status) {
			return true
		}
		progressed = true
	}
	return progressed
}

func whenIfSkippedByWhen(reason string, when []*planpb.WhenExpression) []*planpb.WhenExpression {
	if reason == reasons.SkipWhen {
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
		r = reasons.SkipStopping
	case f.gracefullyCancelled:
		r = reasons.SkipGracefullyCancelled
	case f.gracefullyStopped:
		r = reasons.SkipGracefullyStopped
	case parentsDone && !f.whenAllows(n):
		r = reasons.SkipWhen
	case f.parentSkipped(n):
		r = reasons.SkipParent
	case parentsDone && f.resultsMissing(n):
		r = reasons.SkipMissingResults
	case parentsDone && f.pipelineTimedOut:
		r = reasons.SkipPipelineTimedOut
	case parentsDone && f.tasksTimedOut:
		r = reasons.SkipTasksTimedOut
	case f.emptyMatrix(n):
		r = reasons.SkipEmptyMatrix
	}
	f.skipCache[n] = r
	return r
}

// finallySkip is IsFinallySkipped: why a finally task does not run, or "".
func (f *Facts) finallySkip(n *node, status map[string]string) string {
	missing := f.unresolvable(n) != ""
	n.when = f.resolveWhen(n, status)
	switch {
	case missing:
		return reasons.SkipMissingResults
	case !WhenAllows(n.when):
		return reasons.SkipWhen
	case f.pipelineTimedOut:
		return reasons.SkipPipelineTimedOut
	case f.finallyTimedOut:
		return reasons.SkipFinallyTimedOut
	case f.emptyMatrix(n):
		return reasons.SkipEmptyMatrix
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
		if r := f.skip(f.dagN[p]); r != "" && r != reasons.SkipWhen {
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
	return WhenAllows(f.resolveWhen(n, nil))
}

// whenAllows is WhenExpressions.AllowsExecution: in/notin expressions, and
// CEL ones (their variables substituted) evaluated. A CEL expression that
// does not evaluate to a boolean does not allow it: the compiler refuses
// one whose type is not boolean before the run starts, so only a value
// substituted into it can make it so.
func WhenAllows(when []*planpb.WhenExpression) bool {
	for _, w := range when {
		if w.GetCel() != "" {
			if ok, err := EvalCEL(w.GetCel()); !ok || err != nil {
				return false
			}
			continue
		}
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
		if _, ok := f.result(ref, r.Result); !ok {
			return r.Task
		}
	}
	return ""
}

// resultsMissing is skipBecauseResultReferencesAreMissing for a DAG task.
func (f *Facts) resultsMissing(n *node) bool {
	name := f.unresolvable(n)
	if name == "" || !n.paramRefs {
		return false
	}
	ref := f.byName[name]
	return n.task.GetOnErrorContinue() || (ref != nil && f.skip(ref) == reasons.SkipWhen)
}

// missingResult is CheckMissingResultReferences for a task about to start:
// the error for the first result reference that cannot be resolved, whatever
// the referenced task's outcome, or "".
func (f *Facts) missingResult(n *node) string {
	for _, r := range n.refs {
		ref := f.byName[r.Task]
		switch {
		case ref == nil:
			return fmt.Sprintf("Result reference error: Could not find ref \"%s\" in internal pipelineRunState", r.Task)
		case ref.phase == pending || ref.phase == invalid || len(ref.runs) == 0:
			return fmt.Sprintf("Result reference error: Internal result ref \"%s\" has zero-length TaskRuns", r.Task)
		}
		if _, ok := f.result(ref, r.Result); ok {
			continue
		}
		if ref.phase == succeeded {
			// MissingResultFromCompletedTaskError
			return fmt.Sprintf("task %q completed successfully but did not emit the result %q, which is referenced by task %q",
				r.Task, r.Result, n.name)
		}
		// findTaskResultForParam's ErrInvalidTaskResultReference
		return fmt.Sprintf("Invalid task result reference: Could not find result with name %s for pipeline task %s", r.Result, r.Task)
	}
	return ""
}

// vars are the results that can be resolved into n's params and when
// expressions, all or nothing as Tekton's ResolveResultRefs does, then the
// finally status variables when given.
func (f *Facts) vars(n *node, status map[string]string) *results.Vars {
	vars := results.NewVars()
	if f.unresolvable(n) == "" {
		for _, r := range n.refs {
			v, _ := f.result(f.byName[r.Task], r.Result)
			vars.SetResult(r.Task, r.Result, v)
		}
	}
	for k, v := range status {
		vars.SetString(k, v)
	}
	return vars
}

// resolveParams are the params TaskRun r is created with: its matrix
// combination, if any, then the pipeline task's, resolved, with the
// matrix context variables the reconciler applies when it creates the
// TaskRun (ApplyPipelineTaskContexts).
func (f *Facts) resolveParams(n *node, r *taskRun, status map[string]string) []*planpb.Param {
	vars := f.vars(n, status)
	combination := min(int(r.task.GetMatrix().GetCombination()), len(r.task.GetParams()))
	f.matrixLengths(r.task.GetParams()[combination:], vars)
	params := make([]*planpb.Param, len(r.task.GetParams()))
	for i, p := range r.task.GetParams() {
		if i < combination {
			params[i] = p
			continue
		}
		params[i] = &planpb.Param{Name: p.GetName(), Value: vars.ApplyValue(p.GetValue())}
	}
	return params
}

// resolveWhen is n's when expressions with what resolveParams applies.
func (f *Facts) resolveWhen(n *node, status map[string]string) []*planpb.WhenExpression {
	vars := f.vars(n, status)
	when := make([]*planpb.WhenExpression, len(n.task.GetWhen()))
	for i, w := range n.task.GetWhen() {
		when[i] = &planpb.WhenExpression{
			Input:    vars.Apply(w.GetInput()),
			Operator: w.GetOperator(),
			Values:   vars.ApplyList(w.GetValues()),
			Cel:      vars.Apply(w.GetCel()),
		}
	}
	return when
}

// taskStatusVars are $(tasks.X.status), $(tasks.X.reason) and
// $(tasks.status) (GetPipelineTaskStatus), for finally tasks.
func (f *Facts) taskStatusVars() map[string]string {
	vars := map[string]string{}
	for _, n := range f.dagN {
		vars["tasks."+n.name+".status"] = taskState(n)
		vars["tasks."+n.name+".reason"] = n.reason
	}
	aggregate := stateNone
	if f.dagDone() {
		aggregate = reasons.Succeeded
		for _, n := range f.dagN {
			if n.phase == failed {
				aggregate = reasons.Failed
				break
			}
			if f.skip(n) != "" {
				aggregate = reasons.Completed
			}
		}
	}
	vars["tasks.status"] = aggregate
	return vars
}

// taskState is $(tasks.X.status): Succeeded, Failed, or None for a task
// that has not finished or was skipped.
func taskState(n *node) string {
	switch n.phase {
	case succeeded:
		return reasons.Succeeded
	case failed:
		return reasons.Failed
	}
	return stateNone
}

// Running lists the plan tasks that run now.
func (f *Facts) Running() []string {
	var names []string
	for _, n := range append(slices.Clip(f.dagN), f.finalN...) {
		for _, r := range n.runs {
			if r.phase == running {
				names = append(names, r.task.GetName())
			}
		}
	}
	return names
}

// IsFinal tells whether the named plan task is a finally task.
func (f *Facts) IsFinal(name string) bool { return f.runNode[name].final }

// FinallyStarted tells whether a finally task was started.
func (f *Facts) FinallyStarted() bool { return f.finallyStarted }

// liveSkipped lists the skipped tasks with the reasons Tekton would report
// at this moment (GetSkippedTasks), their when expressions with what can be
// substituted (results, and for finally the task status variables), as
// ResolvePipelineTask and runNextSchedulableTask leave them.
func (f *Facts) liveSkipped() []*planpb.SkippedTask {
	f.skipCache = map[*node]string{}
	var out []*planpb.SkippedTask
	for _, n := range f.dagN {
		if r := f.skip(n); r != "" {
			out = append(out, &planpb.SkippedTask{Name: n.name, Reason: r, When: f.resolveWhen(n, nil)})
		}
	}
	if f.dagDone() {
		status := f.taskStatusVars()
		for _, n := range f.finalN {
			if n.phase != pending {
				continue
			}
			if r := f.finallySkip(n, status); r != "" {
				out = append(out, &planpb.SkippedTask{Name: n.name, Reason: r, When: whenIfSkippedByWhen(r, n.when)})
			}
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
