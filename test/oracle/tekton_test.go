package oracle

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	pipelineErrors "github.com/tektoncd/pipeline/pkg/apis/pipeline/errors"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	"github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clocktesting "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
)

// runName is the PipelineRun of every scenario.
const runName = "run"

// epoch is when every scenario's PipelineRun starts.
var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// tektonRun drives Tekton's PipelineRun decision logic the way the
// reconciler does (pipelinerun.go reconcile and runNextSchedulableTask), with
// synthetic TaskRuns in a map instead of an API server.
type tektonRun struct {
	t        *testing.T
	ctx      context.Context
	spec     *v1.PipelineSpec
	pr       *v1.PipelineRun
	clock    *clocktesting.FakePassiveClock
	taskRuns map[string]*v1.TaskRun // by TaskRun name
	// planTask names each TaskRun as the plan does (the pipeline task, and
	// "-INDEX" for a matrix of several), taskRunOf the reverse.
	planTask, taskRunOf map[string]string
	graph               *dag.Graph
	final               *dag.Graph
	// validated: the checks Tekton makes before the first TaskRun ran.
	validated bool
	// results are the pipeline results once the run is done.
	results []v1.PipelineRunResult
}

// testContext is the context Tekton's defaulting and validation read their
// configuration from: Tekton's defaults and the given feature flags.
func testContext(t *testing.T, featureFlags map[string]string) context.Context {
	t.Helper()
	flags, err := config.NewFeatureFlagsFromMap(featureFlags)
	if err != nil {
		t.Fatalf("feature flags: %v", err)
	}
	defaults, err := config.NewDefaultsFromMap(map[string]string{})
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	return config.ToContext(context.Background(), &config.Config{FeatureFlags: flags, Defaults: defaults})
}

// newPipelineRun is the scenario's PipelineRun, defaulted and validated as
// the webhook and the reconciler do with the given feature flags.
func newPipelineRun(ctx context.Context, spec *v1.PipelineSpec, timeouts *v1.TimeoutFields) (*v1.PipelineRun, error) {
	pr := &v1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Name: runName, Namespace: "ns", CreationTimestamp: metav1.NewTime(epoch)},
		Spec:       v1.PipelineRunSpec{PipelineSpec: spec, Timeouts: timeouts},
	}
	pr.SetDefaults(ctx)
	if err := pr.Validate(apis.WithinCreate(ctx)); err != nil {
		return nil, fmt.Errorf("PipelineRun: %w", err)
	}
	if err := spec.Validate(ctx); err != nil {
		return nil, fmt.Errorf("Pipeline: %w", err)
	}
	return pr, nil
}

// newTektonRun defaults and validates the pipeline as the reconciler does, and
// starts the PipelineRun at epoch.
func newTektonRun(t *testing.T, spec *v1.PipelineSpec, timeouts *v1.TimeoutFields, flags map[string]string) *tektonRun {
	t.Helper()
	ctx := testContext(t, flags)
	pr, err := newPipelineRun(ctx, spec, timeouts)
	if err != nil {
		t.Fatalf("invalid scenario: %v", err)
	}
	g, err := dag.Build(v1.PipelineTaskList(spec.Tasks), v1.PipelineTaskList(spec.Tasks).Deps())
	if err != nil {
		t.Fatalf("invalid scenario: DAG: %v", err)
	}
	fg, err := dag.Build(v1.PipelineTaskList(spec.Finally), map[string][]string{})
	if err != nil {
		t.Fatalf("invalid scenario: finally DAG: %v", err)
	}
	applied, err := resources.ApplyParameters(spec, pr)
	if err != nil {
		t.Fatalf("invalid scenario: params: %v", err)
	}
	applied = resources.ApplyContexts(applied, runName, pr)
	clock := clocktesting.NewFakePassiveClock(epoch)
	pr.Status.InitializeConditions(clock)
	// storePipelineSpecAndMergeMeta: $(tasks.X.matrix.length) reads it.
	pr.Status.PipelineSpec = applied
	return &tektonRun{t: t, ctx: ctx, spec: applied, pr: pr, clock: clock,
		taskRuns: map[string]*v1.TaskRun{}, planTask: map[string]string{}, taskRunOf: map[string]string{}, graph: g, final: fg}
}

// tick moves the clock forward: every event happens a second after the last.
func (r *tektonRun) tick() { r.clock.SetTime(r.clock.Now().Add(time.Second)) }

// passDeadline moves the clock just past start+d.
func (r *tektonRun) passDeadline(start time.Time, d time.Duration) {
	if at := start.Add(d + time.Second); at.After(r.clock.Now()) {
		r.clock.SetTime(at)
	}
}

func (r *tektonRun) getTaskRun(name string) (*v1.TaskRun, error) {
	if tr, ok := r.taskRuns[name]; ok {
		return tr, nil
	}
	return nil, kerrors.NewNotFound(schema.GroupResource{Group: "tekton.dev", Resource: "taskruns"}, name)
}

// resolve is resolvePipelineState: tasks that have a TaskRun first, so that
// their results are known when the others are resolved. A task that cannot
// be resolved (an array result index out of range) fails the run, as the
// reconciler does; resolve then returns nil.
func (r *tektonRun) resolve() resources.PipelineRunState {
	tasks := append(slices.Clone(r.spec.Tasks), r.spec.Finally...)
	ran := map[string]bool{}
	for _, c := range r.pr.Status.ChildReferences {
		ran[c.PipelineTaskName] = true
	}
	var first, second []v1.PipelineTask
	for _, pt := range tasks {
		if ran[pt.Name] {
			first = append(first, pt)
		} else {
			second = append(second, pt)
		}
	}
	state := resources.PipelineRunState{}
	for _, group := range [][]v1.PipelineTask{first, second} {
		for _, pt := range group {
			rpt, err := resources.ResolvePipelineTask(r.ctx, *r.pr, nil, nil, nil, r.getTaskRun, nil, pt, state)
			if err != nil {
				r.pr.Status.MarkFailed(v1.PipelineRunReasonFailedValidation.String(),
					"PipelineRun %s/%s can't be Run; couldn't resolve all references: %s", r.pr.Namespace, runName, pipelineErrors.WrapUserError(err))
				return nil
			}
			state = append(state, rpt)
		}
	}
	return state
}

func (r *tektonRun) facts(state resources.PipelineRunState) *resources.PipelineRunFacts {
	f := &resources.PipelineRunFacts{
		State:           state,
		SpecStatus:      r.pr.Spec.Status,
		TasksGraph:      r.graph,
		FinalTasksGraph: r.final,
		TimeoutsState:   resources.PipelineRunTimeoutsState{Clock: r.clock},
	}
	if r.pr.Status.StartTime != nil {
		f.TimeoutsState.StartTime = &r.pr.Status.StartTime.Time
	}
	if r.pr.Status.FinallyStartTime != nil {
		f.TimeoutsState.FinallyStartTime = &r.pr.Status.FinallyStartTime.Time
	}
	if d := r.pr.TasksTimeout(); d != nil {
		f.TimeoutsState.TasksTimeout = &d.Duration
	}
	if d := r.pr.FinallyTimeout(); d != nil {
		f.TimeoutsState.FinallyTimeout = &d.Duration
	}
	if d := r.pr.PipelineTimeout(r.ctx); d != 0 {
		f.TimeoutsState.PipelineTimeout = &d
	}
	return f
}

// settle reconciles until nothing changes any more, as the controller does:
// every status update of the PipelineRun queues another reconcile.
func (r *tektonRun) settle() []start {
	var started []start
	for range 20 {
		before := r.pr.Status.DeepCopy()
		s := r.reconcile()
		started = append(started, s...)
		if len(s) == 0 && equalStatus(before, &r.pr.Status) {
			return started
		}
	}
	r.t.Fatalf("tekton: the run does not settle")
	return nil
}

func equalStatus(a, b *v1.PipelineRunStatus) bool {
	ca, cb := a.GetCondition(apis.ConditionSucceeded), b.GetCondition(apis.ConditionSucceeded)
	if ca == nil || cb == nil || ca.Status != cb.Status || ca.Reason != cb.Reason || ca.Message != cb.Message {
		return false
	}
	return fmt.Sprint(a.SkippedTasks) == fmt.Sprint(b.SkippedTasks)
}

// reconcile is one pass of the reconciler over the run; it returns the
// TaskRuns it created.
func (r *tektonRun) reconcile() []start {
	if r.pr.IsDone() {
		return nil
	}
	if r.pr.IsCancelled() {
		// cancelPipelineRun: the run ends now, its status otherwise untouched.
		r.pr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse,
			Reason: v1.PipelineRunReasonCancelled.String(), Message: fmt.Sprintf("PipelineRun %q was cancelled", runName)})
		return nil
	}
	state := r.resolve()
	if state == nil {
		return nil
	}
	facts := r.facts(state)
	for _, rpt := range state {
		if err := rpt.EvaluateCEL(); err != nil {
			r.t.Fatalf("tekton: CEL: %v", err)
		}
	}
	if !r.validated && state.IsBeforeFirstTaskRun() {
		if err := resources.ValidatePipelineTaskResults(state); err != nil {
			r.t.Fatalf("invalid scenario: %v", err)
		}
		if err := resources.ValidatePipelineResults(r.spec, state); err != nil {
			r.t.Fatalf("invalid scenario: %v", err)
		}
		r.validated = true
	}

	started, err := r.runNextSchedulableTask(facts)
	if err != nil {
		// The reconcile ends there: the condition is the one it marked.
		return started
	}

	facts.ResetSkippedCache()
	logger := zap.NewNop().Sugar()
	after := facts.GetPipelineConditionStatus(r.ctx, r.pr, logger, r.clock)
	switch after.Status {
	case corev1.ConditionTrue:
		r.pr.Status.MarkSucceeded(after.Reason, "%s", after.Message)
	case corev1.ConditionFalse:
		r.pr.Status.MarkFailed(after.Reason, "%s", after.Message)
	default:
		r.pr.Status.MarkRunning(after.Reason, "%s", after.Message)
	}
	r.pr.Status.ChildReferences = facts.GetChildReferences()
	r.pr.Status.SkippedTasks = facts.GetSkippedTasks()
	status := facts.GetPipelineTaskStatus()
	for k, v := range facts.GetPipelineFinalTaskStatus() {
		status[k] = v
	}
	if after.Status != corev1.ConditionUnknown {
		res, err := resources.ApplyTaskResultsToPipelineResults(r.spec.Results, state.GetTaskRunsResults(), state.GetRunsResults(), status)
		r.results = res
		if err != nil {
			r.pr.Status.MarkFailed(v1.PipelineRunReasonCouldntGetPipelineResult.String(),
				"Failed to get PipelineResult from TaskRun Results for PipelineRun %s: %s", runName, err)
		}
	}
	return started
}

// runNextSchedulableTask is the reconciler's function of that name, creating
// synthetic TaskRuns.
func (r *tektonRun) runNextSchedulableTask(facts *resources.PipelineRunFacts) ([]start, error) {
	next, err := facts.DAGExecutionQueue()
	if err != nil {
		// "invalid list of done tasks" while stopping: no new DAG task.
		next = nil
	}
	for _, rpt := range next {
		if err := resources.CheckMissingResultReferences(facts.State, rpt); err != nil {
			next = nil
			facts.ValidationFailedTask = append(facts.ValidationFailedTask, rpt)
			if facts.ValidationFailedErrors == nil {
				facts.ValidationFailedErrors = map[string]string{}
			}
			facts.ValidationFailedErrors[rpt.PipelineTask.Name] = err.Error()
		}
	}
	if finals := facts.GetFinalTasks(); len(finals) > 0 {
		resources.ApplyPipelineTaskStateContext(finals, facts.GetPipelineTaskStatus())
		for _, rpt := range finals {
			refs, _, err := resources.ResolveResultRef(facts.State, rpt)
			if err != nil {
				continue
			}
			resources.ApplyTaskResults(resources.PipelineRunState{rpt}, refs)
			if err := rpt.EvaluateCEL(); err != nil {
				r.t.Fatalf("tekton: CEL: %v", err)
			}
			next = append(next, rpt)
		}
	}
	if r.pr.Status.FinallyStartTime == nil && facts.IsFinalTaskStarted() {
		r.setFinallyStartTime(facts)
	}
	var started []start
	for _, rpt := range next {
		if rpt.IsFinalTask(facts) {
			r.setFinallyStartTime(facts)
		}
		if rpt.Skip(facts).IsSkipped || rpt.IsFinallySkipped(facts).IsSkipped {
			continue
		}
		resources.PropagateResults(rpt, facts.State)
		if rpt.PipelineTask.IsMatrixed() {
			if err := resources.ValidateParameterTypesInMatrix(facts.State); err != nil {
				// The reconciler's format, which has a verb too many.
				format := "Failed to validate matrix %q with error %v"
				r.pr.Status.MarkFailed(v1.PipelineRunReasonInvalidMatrixParameterTypes.String(), format, pipelineErrors.WrapUserError(err))
				return started, err
			}
		}
		started = append(started, r.createTaskRuns(rpt, facts)...)
	}
	return started, nil
}

// createTaskRuns is the reconciler's: one TaskRun per name, the i-th with
// the i-th combination of a matrix, fanned out before the contexts are
// applied.
func (r *tektonRun) createTaskRuns(rpt *resources.ResolvedPipelineTask, facts *resources.PipelineRunFacts) []start {
	var combinations []v1.Params
	if rpt.PipelineTask.IsMatrixed() {
		combinations = rpt.PipelineTask.Matrix.FanOut()
	}
	for i, name := range rpt.TaskRunNames {
		plan := rpt.PipelineTask.Name
		if len(rpt.TaskRunNames) > 1 {
			plan = fmt.Sprintf("%s-%d", plan, i)
		}
		r.planTask[name], r.taskRunOf[plan] = plan, name
	}
	var started []start
	rpt.TaskRuns = nil
	for i, name := range rpt.TaskRunNames {
		var params v1.Params
		if i < len(combinations) {
			params = combinations[i]
		}
		rpt.PipelineTask = resources.ApplyPipelineTaskContexts(rpt.PipelineTask, r.pr.Status, facts)
		params = append(slices.Clone(params), rpt.PipelineTask.Params...)
		tr := r.createTaskRun(name, params)
		rpt.TaskRuns = append(rpt.TaskRuns, tr)
		var scripts []string
		for _, st := range rpt.ResolvedTask.TaskSpec.Steps {
			scripts = append(scripts, st.Script)
		}
		started = append(started, start{Task: rpt.PipelineTask.Name, TaskRun: name, Params: paramsFromTekton(tr.Spec.Params), Scripts: scripts})
	}
	return started
}

func (r *tektonRun) setFinallyStartTime(facts *resources.PipelineRunFacts) {
	if r.pr.Status.FinallyStartTime == nil {
		r.pr.Status.FinallyStartTime = &metav1.Time{Time: r.clock.Now()}
	}
	if facts.TimeoutsState.FinallyStartTime == nil {
		facts.TimeoutsState.FinallyStartTime = &r.pr.Status.FinallyStartTime.Time
	}
}

// createTaskRun makes the running TaskRun Tekton would create.
func (r *tektonRun) createTaskRun(name string, params v1.Params) *v1.TaskRun {
	tr := &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(r.clock.Now())},
		Spec:       v1.TaskRunSpec{Params: params.DeepCopy()},
	}
	tr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionUnknown, Reason: v1.TaskRunReasonRunning.String()})
	tr.Status.StartTime = &metav1.Time{Time: r.clock.Now()}
	r.taskRuns[name] = tr
	return tr
}

// finish ends a running TaskRun as the scenario says.
func (r *tektonRun) finish(taskRun string, e end) {
	tr := r.taskRuns[taskRun]
	if tr == nil || tr.IsDone() {
		r.t.Fatalf("invalid scenario: TaskRun %q is not running in Tekton", taskRun)
	}
	cond := &apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse, Reason: e.reason()}
	switch e.kind {
	case succeeded:
		cond.Status = corev1.ConditionTrue
	case cancelledByRun, cancelledByTimeout:
		tr.Spec.Status = v1.TaskRunSpecStatusCancelled
		tr.Spec.StatusMessage = v1.TaskRunCancelledByPipelineMsg
		if e.kind == cancelledByTimeout {
			tr.Spec.StatusMessage = v1.TaskRunCancelledByPipelineTimeoutMsg
		}
	}
	tr.Status.SetCondition(cond)
	tr.Status.CompletionTime = &metav1.Time{Time: r.clock.Now()}
	for _, res := range e.results {
		tr.Status.Results = append(tr.Status.Results, v1.TaskRunResult{Name: res.name, Type: v1.ResultsType(res.val.Type), Value: res.val})
	}
	for range e.retries {
		tr.Status.RetriesStatus = append(tr.Status.RetriesStatus, v1.TaskRunStatus{})
	}
}

// snapshot is the run's status as Tekton reports it now.
func (r *tektonRun) snapshot() status {
	c := r.pr.Status.GetCondition(apis.ConditionSucceeded)
	st := status{Cond: cond{Status: string(c.Status), Reason: c.Reason, Message: c.Message}}
	for _, s := range r.pr.Status.SkippedTasks {
		st.Skipped = append(st.Skipped, skip{Task: s.Name, Reason: string(s.Reason), When: whenFromTekton(s.WhenExpressions)})
	}
	return st
}
