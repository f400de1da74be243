package oracle

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/facts"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A scenario is a pipeline and what happens while it runs. The harness feeds
// the same events to Tekton's logic and to facts.Facts and compares,
// after every event, the tasks started (with their resolved params), the
// skipped tasks (reasons, when expressions), the run's condition and its
// pipeline results.
type scenario struct {
	name string
	// pipeline is a v1 PipelineSpec in YAML. Tasks without a taskSpec get
	// one; params and steps missing from a taskSpec are declared for it.
	pipeline string
	timeouts *v1.TimeoutFields
	// flags are Tekton feature flags (feature-flags ConfigMap keys).
	flags  map[string]string
	events []event
	// refused, when set, is what NewFacts and Supervisor.Run must refuse the
	// plan with (part of the error): the pipeline uses a feature that Tekton
	// rejects at validation under its default feature flags, which
	// internal/compile uses, so no such plan can reach the engine. flags
	// turn the feature on, so that Tekton accepts the run and the plan can be
	// made from it; events are not played.
	refused string
	// disagreement, when set, is a known difference between Facts and Tekton
	// that the lead has to fix; the scenario is skipped until then.
	disagreement string
}

type evKind int

const (
	evFinish evKind = iota
	evCancel
	evCancelRunFinally
	evStopRunFinally
	evPipelineTimeout
	evTasksTimeout
	evFinallyTimeout
)

type event struct {
	kind evKind
	task string
	end  end
}

func (e event) String() string {
	switch e.kind {
	case evFinish:
		return fmt.Sprintf("%s %s", e.task, e.end.reason())
	case evCancel:
		return "spec.status=Cancelled"
	case evCancelRunFinally:
		return "spec.status=CancelledRunFinally"
	case evStopRunFinally:
		return "spec.status=StoppedRunFinally"
	case evPipelineTimeout:
		return "timeouts.pipeline reached"
	case evTasksTimeout:
		return "timeouts.tasks reached"
	}
	return "timeouts.finally reached"
}

type endKind int

const (
	succeeded endKind = iota
	failed
	// cancelledByRun: the TaskRun was cancelled (its PipelineRun was, or a user did).
	cancelledByRun
	// cancelledByTimeout: cancelled because a PipelineRun timeout was reached.
	cancelledByTimeout
)

// end is how a task ends.
type end struct {
	kind endKind
	// why overrides the TaskRun reason (e.g. TaskRunTimeout, FailureIgnored).
	why     string
	results []res
	// retries is how many attempts failed before this one.
	retries int
}

func (e end) reason() string {
	if e.why != "" {
		return e.why
	}
	switch e.kind {
	case succeeded:
		return v1.TaskRunReasonSuccessful.String()
	case failed:
		// A failed TaskRun of a scenario is one whose step exited
		// non-zero: Tekton's pod status code says StepFailed
		// (getFailureInfo), and so does $(tasks.X.reason).
		return v1.TaskRunReasonStepFailed.String()
	}
	return v1.TaskRunReasonCancelled.String()
}

type res struct {
	name string
	val  v1.ParamValue
}

// Event and result constructors, for readable scenarios.
func ok(task string, rs ...res) event {
	return event{kind: evFinish, task: task, end: end{kind: succeeded, results: rs}}
}
func fail(task string, rs ...res) event {
	return event{kind: evFinish, task: task, end: end{kind: failed, results: rs}}
}
func failWith(task, reason string, rs ...res) event {
	return event{kind: evFinish, task: task, end: end{kind: failed, why: reason, results: rs}}
}
func failAfterRetries(task string, retries int) event {
	return event{kind: evFinish, task: task, end: end{kind: failed, retries: retries}}
}
func cancelled(task string) event {
	return event{kind: evFinish, task: task, end: end{kind: cancelledByRun}}
}
func timedOut(task string) event {
	return event{kind: evFinish, task: task, end: end{kind: cancelledByTimeout}}
}

var (
	cancelRun        = event{kind: evCancel}
	cancelRunFinally = event{kind: evCancelRunFinally}
	stopRunFinally   = event{kind: evStopRunFinally}
	pipelineTimeout  = event{kind: evPipelineTimeout}
	tasksTimeout     = event{kind: evTasksTimeout}
	finallyTimeout   = event{kind: evFinallyTimeout}
)

func str(name, v string) res { return res{name, *v1.NewStructuredValues(v)} }
func arr(name string, v ...string) res {
	return res{name, v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: v}}
}
func obj(name string, kv ...string) res {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return res{name, *v1.NewObject(m)}
}

// parsePipeline reads a scenario's pipeline and completes its task specs.
func parsePipeline(t *testing.T, src string) *v1.PipelineSpec {
	t.Helper()
	var spec v1.PipelineSpec
	if err := yaml.UnmarshalStrict([]byte(src), &spec); err != nil {
		t.Fatalf("invalid scenario: %v", err)
	}
	for _, tasks := range [][]v1.PipelineTask{spec.Tasks, spec.Finally} {
		for i := range tasks {
			completeTask(&tasks[i])
		}
	}
	return &spec
}

func completeTask(pt *v1.PipelineTask) {
	if pt.TaskSpec == nil {
		pt.TaskSpec = &v1.EmbeddedTask{}
	}
	ts := &pt.TaskSpec.TaskSpec
	for _, p := range pt.Params {
		if !slices.ContainsFunc(ts.Params, func(ps v1.ParamSpec) bool { return ps.Name == p.Name }) {
			ts.Params = append(ts.Params, v1.ParamSpec{Name: p.Name, Type: p.Value.Type})
		}
	}
	// A matrix gives each TaskRun one string per matrix param.
	for _, p := range pt.Matrix.GetAllParams() {
		if !slices.ContainsFunc(ts.Params, func(ps v1.ParamSpec) bool { return ps.Name == p.Name }) {
			ts.Params = append(ts.Params, v1.ParamSpec{Name: p.Name, Type: v1.ParamTypeString})
		}
	}
	if len(ts.Steps) == 0 {
		ts.Steps = []v1.Step{{Name: "run", Image: "busybox", Script: "true"}}
	}
}

// harness runs one scenario on both engines.
type harness struct {
	t      *testing.T
	tekton *tektonRun
	ours   *oursRun
	// initial are the plan tasks started before any event.
	initial []string
}

func newHarness(t *testing.T, sc scenario) *harness {
	t.Helper()
	spec := parsePipeline(t, sc.pipeline)
	tk := newTektonRun(t, spec, sc.timeouts, sc.flags)
	plan := toPlan(tk)
	return &harness{t: t, tekton: tk, ours: newOursRun(t, plan)}
}

func (h *harness) apply(e event) {
	h.tekton.tick()
	switch e.kind {
	case evFinish:
		tr, ok := h.tekton.taskRunOf[e.task]
		if !ok {
			h.t.Fatalf("invalid scenario: Tekton has no TaskRun for plan task %q", e.task)
		}
		h.tekton.finish(tr, e.end)
		h.ours.finish(e.task, e.end)
	case evCancel:
		h.tekton.pr.Spec.Status = v1.PipelineRunSpecStatusCancelled
		h.ours.facts.Cancel()
	case evCancelRunFinally:
		h.tekton.pr.Spec.Status = v1.PipelineRunSpecStatusCancelledRunFinally
		h.ours.facts.CancelRunFinally()
	case evStopRunFinally:
		h.tekton.pr.Spec.Status = v1.PipelineRunSpecStatusStoppedRunFinally
		h.ours.facts.StopRunFinally()
	case evPipelineTimeout:
		h.tekton.passDeadline(epoch, h.tekton.pr.PipelineTimeout(h.tekton.ctx))
		h.ours.facts.PipelineTimedOut()
	case evTasksTimeout:
		h.tekton.passDeadline(epoch, h.tekton.pr.TasksTimeout().Duration)
		h.ours.facts.TasksTimedOut()
	case evFinallyTimeout:
		if h.tekton.pr.Status.FinallyStartTime == nil {
			h.t.Fatalf("invalid scenario: finally has not started")
		}
		h.tekton.passDeadline(h.tekton.pr.Status.FinallyStartTime.Time, h.tekton.pr.FinallyTimeout().Duration)
		h.ours.facts.FinallyTimedOut()
	}
}

// step lets both engines decide, then compares what they decided and report.
func (h *harness) step(when string) {
	h.t.Helper()
	want := h.tekton.settle()
	got := h.ours.next()
	if !reflect.DeepEqual(want, got) {
		h.t.Fatalf("%s: tasks started:\n tekton: %+v\n ours:   %+v", when, want, got)
	}
	ws, gs := h.tekton.snapshot(), h.ours.snapshot()
	if !reflect.DeepEqual(ws.Cond, gs.Cond) {
		h.t.Errorf("%s: condition:\n tekton: %+v\n ours:   %+v", when, ws.Cond, gs.Cond)
	}
	if !reflect.DeepEqual(ws.Skipped, gs.Skipped) {
		h.t.Errorf("%s: skipped tasks:\n tekton: %+v\n ours:   %+v", when, ws.Skipped, gs.Skipped)
	}
	// Pipeline results exist once the run has ended, except after a cancel.
	if wr, gr := resultsFromTekton(h.tekton.results), resultsFromPlan(h.ours.facts.Results()); !reflect.DeepEqual(wr, gr) {
		h.t.Errorf("%s: pipeline results:\n tekton: %+v\n ours:   %+v", when, wr, gr)
	}
	// Every task Skipped lists was announced by Next.
	var names []string
	for _, s := range gs.Skipped {
		names = append(names, s.Task)
	}
	announced := slices.Clone(h.ours.announced)
	slices.Sort(names)
	slices.Sort(announced)
	if !slices.Equal(names, announced) {
		h.t.Errorf("%s: Next announced skipped %v, Skipped lists %v", when, announced, names)
	}
}

func runScenario(t *testing.T, sc scenario) *harness {
	t.Helper()
	h := newHarness(t, sc)
	h.step("start")
	for name := range h.tekton.taskRuns {
		h.initial = append(h.initial, h.tekton.planTask[name])
	}
	for i, e := range sc.events {
		h.apply(e)
		h.step(fmt.Sprintf("event %d (%s)", i+1, e))
	}
	if !h.tekton.pr.IsDone() {
		t.Fatalf("invalid scenario: the Tekton run has not ended")
	}
	for name, tr := range h.tekton.taskRuns {
		if !tr.IsDone() {
			t.Fatalf("invalid scenario: TaskRun %q has not ended", name)
		}
	}
	if !h.ours.facts.Done() {
		t.Errorf("ours: Done() is false at the end; running: %v", h.ours.facts.Running())
	}
	return h
}

func TestFactsAgainstTekton(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			switch {
			case sc.disagreement != "":
				t.Skip("known disagreement: " + sc.disagreement)
			case sc.refused != "":
				plan := refusedPlan(t, sc)
				if _, err := facts.New(plan, &results.Store{}); err == nil || !strings.Contains(err.Error(), sc.refused) {
					t.Errorf("NewFacts: error %v, want one saying %q", err, sc.refused)
				}
			default:
				runScenario(t, sc)
			}
		})
	}
}

// refusedPlan checks that Tekton, with its default feature flags, rejects a
// refused scenario, and returns the plan made from the Tekton run its flags
// allow.
func refusedPlan(t *testing.T, sc scenario) *planpb.Plan {
	t.Helper()
	spec := parsePipeline(t, sc.pipeline)
	if _, err := newPipelineRun(testContext(t, nil), spec.DeepCopy(), sc.timeouts); err == nil {
		t.Fatalf("invalid scenario: Tekton's default feature flags accept it")
	} else {
		t.Logf("Tekton with its default feature flags: %v", err)
	}
	return toPlan(newTektonRun(t, spec, sc.timeouts, sc.flags))
}

// The harness itself must be able to see a difference: a plan that loses a
// dependency starts a task Tekton does not.
func TestHarnessDetectsDifference(t *testing.T) {
	sc := scenario{pipeline: `
tasks:
- name: a
- name: b
  runAfter: [a]
`}
	h := newHarness(t, sc)
	h.ours.plan.Tasks[1].RunAfter = nil
	h2 := newOursRun(t, h.ours.plan)
	want := h.tekton.settle()
	got := h2.next()
	if reflect.DeepEqual(want, got) {
		t.Fatalf("a lost dependency went unnoticed: both started %+v", got)
	}
}

// The harness sees a matrix lost too: plan tasks that are not grouped as
// one pipeline task start under their own names.
func TestHarnessDetectsLostMatrix(t *testing.T) {
	sc := scenario{pipeline: `
tasks:
- name: m
  matrix:
    params: [{name: x, value: [a, b]}]
`}
	h := newHarness(t, sc)
	for _, pt := range h.ours.plan.Tasks {
		pt.Matrix = nil
	}
	h2 := newOursRun(t, h.ours.plan)
	want := h.tekton.settle()
	got := h2.next()
	if len(want) != 2 || reflect.DeepEqual(want, got) {
		t.Fatalf("a lost matrix went unnoticed: tekton started %+v, ours %+v", want, got)
	}
}

// The harness sees results that were not propagated into a step: the
// started TaskRun's script differs.
func TestHarnessDetectsUnpropagatedResults(t *testing.T) {
	sc := scenario{pipeline: `
tasks:
- name: a
  taskSpec: {results: [{name: s}]}
- name: b
  taskSpec:
    steps: [{name: s, image: busybox, script: 'echo $(tasks.a.results.s)'}]
`}
	h := newHarness(t, sc)
	h.step("start")
	h.apply(ok("a", str("s", "S")))
	want := h.tekton.settle()
	d := h.ours.facts.Next()
	if len(want) != 1 || len(d.Start) != 1 || d.Start[0].Results == nil {
		t.Fatalf("tekton started %+v, ours %d task(s)", want, len(d.Start))
	}
	if got := want[0].Scripts; !slices.Equal(got, []string{"echo S"}) {
		t.Errorf("tekton's script: %q, want the result in it", got)
	}
	if raw := d.Start[0].Task.GetSpec().GetSteps()[0].GetScript(); raw == want[0].Scripts[0] {
		t.Errorf("the plan's own script %q already equals Tekton's: nothing would be detected", raw)
	}
}
