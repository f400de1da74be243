package tektonstatus

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/pod"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/changeset"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

var childTypeMeta = runtime.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"}

func term(name string, exit int32, reason, termReason string, start, end int) v1.StepState {
	return v1.StepState{Name: name, Container: "step-" + name, ImageID: "img-" + name, TerminationReason: termReason,
		Provenance: &v1.Provenance{},
		ContainerState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exit, Reason: reason, StartedAt: mt(start), FinishedAt: mt(end)}}}
}

// withMsg gives a step the termination message its task's results leave.
func withMsg(s v1.StepState, msg string) v1.StepState {
	s.Terminated.Message = msg
	return s
}

// stopped is a step terminateStepsInPod ended.
func stopped(name, reason, pod string, start, end int) v1.StepState {
	s := term(name, 1, reason, reason, start, end)
	s.Terminated.Message = "Step " + name + " terminated as pod " + pod + " is terminated"
	return s
}

// unnamed is the build task's third step, which has no name (nor, in these
// hand-built states, an image).
func unnamed(s v1.StepState) v1.StepState {
	s.Name, s.Container, s.ImageID = "unnamed-2", "step-unnamed-2", ""
	return s
}

func whenExpr(input string, op selection.Operator, values ...string) v1.WhenExpressions {
	return v1.WhenExpressions{{Input: input, Operator: op, Values: values}}
}

func skippedStep(exit int32) *planpb.StepState {
	return &planpb.StepState{Terminated: true, Skipped: true, ExitCode: exit, Reason: "Skipped"}
}

func fetchOK(results ...*planpb.ResultValue) *planpb.TaskStatus {
	ts := succeededTask("fetch", 1, 5, done("clone", 1, 5, 0, "Completed"))
	ts.Results = results
	return ts
}

func commit(v string) *planpb.ResultValue { return &planpb.ResultValue{Name: "commit", Value: str(v)} }

var (
	filesResult = &planpb.ResultValue{Name: "files", Value: &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{"a.go", "b.go"}}}
	metaResult  = &planpb.ResultValue{Name: "meta", Value: &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: map[string]string{"branch": "main", "author": "ann"}}}
)

func TestList(t *testing.T) {
	buildSteps := []*planpb.StepState{done("compile", 6, 12, 0, "Completed"), done("package", 12, 18, 0, "Completed"),
		{Terminated: true, Reason: "Completed", StartedAt: at(18), FinishedAt: at(20)}}
	build := func(start, end int, c *planpb.Condition, steps ...*planpb.StepState) *planpb.TaskStatus {
		return &planpb.TaskStatus{Name: "build", TaskRunName: "pr-1-build", StartTime: at(start), CompletionTime: at(end), Condition: c,
			Steps: steps, Params: []*planpb.Param{{Name: "image", Value: str("abc123")}}}
	}
	report := func(start, end int, status string) *planpb.TaskStatus {
		ts := succeededTask("report", start, end, done("send", start, end, 0, "Completed"))
		ts.Finally = true
		ts.Params = []*planpb.Param{{Name: "status", Value: str(status)}}
		return ts
	}

	tests := []struct {
		name   string
		c      func() *compile.Compiled
		st     *planpb.RunStatus
		opts   ListOptions
		check  func(t *testing.T, d decoded)
		wantTR []string
	}{{
		name: "succeeded with string, array and object results",
		c: func() *compile.Compiled {
			c := fixture()
			c.Plan.Tasks[2].When[0].Input = "prod"
			return c
		},
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0), CompletionTime: at(29),
			Condition: cond("True", "Succeeded", "Tasks Completed: 4 (Failed: 0, Cancelled 0), Skipped: 0", 29),
			Tasks: []*planpb.TaskStatus{
				fetchOK(commit("abc123"), filesResult, metaResult),
				build(6, 20, cond("True", "Succeeded", "All Steps have completed executing", 20), buildSteps...),
				succeededTask("deploy", 21, 25, done("push", 21, 25, 0, "Completed")),
				report(26, 28, "Succeeded"),
			},
			Results: []*planpb.ResultValue{commit("abc123"), filesResult, metaResult}},
		wantTR: []string{"pr-1-fetch", "pr-1-build", "pr-1-deploy", "pr-1-report"},
		check: func(t *testing.T, d decoded) {
			pr := d.pr
			wantCond(t, "PipelineRun", pr.Status.GetCondition(apis.ConditionSucceeded), corev1.ConditionTrue, "Succeeded", "Tasks Completed: 4 (Failed: 0, Cancelled 0), Skipped: 0", 29)
			if !pr.IsDone() || pr.IsCancelled() {
				t.Errorf("IsDone=%v IsCancelled=%v, want done and not cancelled", pr.IsDone(), pr.IsCancelled())
			}
			diff(t, "labels", pr.Labels, map[string]string{"team": "a", v1.ManagedByLabelKey: "tekton-pipelines", "tekton.dev/pipeline": "build-pipeline"})
			diff(t, "times", []*metav1.Time{pr.Status.StartTime, pr.Status.CompletionTime, pr.Status.FinallyStartTime}, []*metav1.Time{mtp(0), mtp(29), mtp(26)})
			diff(t, "pipelineSpec", pr.Status.PipelineSpec, fixture().PipelineSpec)
			diff(t, "childReferences", pr.Status.ChildReferences, []v1.ChildStatusReference{
				{TypeMeta: childTypeMeta, Name: "pr-1-fetch", PipelineTaskName: "fetch"},
				{TypeMeta: childTypeMeta, Name: "pr-1-build", PipelineTaskName: "build", DisplayName: "Build abc123",
					WhenExpressions: whenExpr("abc123", selection.NotIn, "")},
				{TypeMeta: childTypeMeta, Name: "pr-1-deploy", PipelineTaskName: "deploy", WhenExpressions: whenExpr("prod", selection.In, "prod")},
				{TypeMeta: childTypeMeta, Name: "pr-1-report", PipelineTaskName: "report", WhenExpressions: whenExpr("abc123", selection.NotIn, "")},
			})
			diff(t, "skippedTasks", pr.Status.SkippedTasks, []v1.SkippedTask(nil))
			diff(t, "results", pr.Status.Results, []v1.PipelineRunResult{
				{Name: "commit", Value: *v1.NewStructuredValues("abc123")},
				{Name: "files", Value: *v1.NewStructuredValues("a.go", "b.go")},
				{Name: "meta", Value: *v1.NewObject(map[string]string{"branch": "main", "author": "ann"})},
			})

			fetch, buildTR, deploy, rep := d.trs[0], d.trs[1], d.trs[2], d.trs[3]
			diff(t, "fetch labels", fetch.Labels, map[string]string{"team": "a", v1.ManagedByLabelKey: "tekton-pipelines", "tekton.dev/pipeline": "build-pipeline",
				"tekton.dev/pipelineRun": "pr-1", "tekton.dev/pipelineRunUID": "uid-1", "tekton.dev/pipelineTask": "fetch", "tekton.dev/memberOf": "tasks",
				"tekton.dev/task": "git-clone"})
			diff(t, "fetch annotations", fetch.Annotations, map[string]string{"note": "x", pod.ReleaseAnnotation: changeset.Get()})
			diff(t, "fetch spec", fetch.Spec, v1.TaskRunSpec{
				TaskRef: &v1.TaskRef{Name: "git-clone", Kind: v1.NamespacedTaskKind}, ServiceAccountName: "default",
				Timeout:    &metav1.Duration{Duration: time.Hour},
				Workspaces: []v1.WorkspaceBinding{{Name: "output", SubPath: "src", EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			})
			diff(t, "fetch status", fetch.Status.TaskRunStatusFields, v1.TaskRunStatusFields{
				StartTime: mtp(1), CompletionTime: mtp(5),
				Steps: []v1.StepState{withMsg(term("clone", 0, "Completed", "Completed", 1, 5),
					`[{"key":"commit","value":"abc123","type":1},{"key":"files","value":"[\"a.go\",\"b.go\"]","type":1},{"key":"meta","value":"{\"author\":\"ann\",\"branch\":\"main\"}","type":1}]`)},
				Artifacts: &v1.Artifacts{},
				Results: []v1.TaskRunResult{
					{Name: "commit", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("abc123")},
					{Name: "files", Type: v1.ResultsTypeArray, Value: *v1.NewStructuredValues("a.go", "b.go")},
					{Name: "meta", Type: v1.ResultsTypeObject, Value: *v1.NewObject(map[string]string{"branch": "main", "author": "ann"})},
				},
				TaskSpec: fixture().TaskSpecs["fetch"],
			})
			// Labels the compiler left out are Tekton's.
			diff(t, "build labels", buildTR.Labels, map[string]string{"team": "a", v1.ManagedByLabelKey: "tekton-pipelines", "tekton.dev/pipeline": "build-pipeline",
				"tekton.dev/pipelineRun": "pr-1", "tekton.dev/pipelineRunUID": "uid-1", "tekton.dev/pipelineTask": "build", "tekton.dev/memberOf": "tasks",
				"kind": "build"})
			if buildTR.Spec.TaskRef != nil || buildTR.Spec.TaskSpec == nil || len(buildTR.Spec.TaskSpec.Steps) != 3 {
				t.Errorf("build spec: taskRef %v, taskSpec %v; want the embedded spec", buildTR.Spec.TaskRef, buildTR.Spec.TaskSpec)
			}
			diff(t, "build params", buildTR.Spec.Params, v1.Params{{Name: "image", Value: *v1.NewStructuredValues("abc123")}})
			if buildTR.Spec.Retries != 2 {
				t.Errorf("build spec.retries = %d, want 2", buildTR.Spec.Retries)
			}
			diff(t, "build steps", buildTR.Status.Steps, []v1.StepState{
				term("compile", 0, "Completed", "Completed", 6, 12), term("package", 0, "Completed", "Completed", 12, 18),
				unnamed(term("", 0, "Completed", "Completed", 18, 20)),
			})
			if deploy.Spec.ServiceAccountName != "deployer-sa" || deploy.Spec.Timeout.Duration != 10*time.Minute {
				t.Errorf("deploy spec: serviceAccountName %q timeout %v; want taskRunSpecs' deployer-sa and the task's 10m", deploy.Spec.ServiceAccountName, deploy.Spec.Timeout)
			}
			if got := deploy.Annotations[v1.PipelineTaskOnErrorAnnotation]; got != "continue" {
				t.Errorf("deploy onError annotation = %q, want continue", got)
			}
			if rep.Labels["tekton.dev/memberOf"] != "finally" || rep.Labels["tekton.dev/task"] != "reporter" {
				t.Errorf("report labels = %v, want memberOf finally and task reporter", rep.Labels)
			}
			for _, tr := range d.trs {
				if !tr.IsSuccessful() {
					t.Errorf("%s: IsSuccessful() = false", tr.Name)
				}
			}
		},
	}, {
		name: "failed run with a task skipped because the run was stopping",
		c: func() *compile.Compiled {
			c := fixture()
			c.Plan.Tasks[1].Retries = 0
			return c
		},
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0), CompletionTime: at(13),
			Condition: cond("False", "Failed", "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 1", 13),
			Tasks: []*planpb.TaskStatus{
				fetchOK(commit("abc123")),
				build(6, 10, cond("False", "Failed", `"step-compile" exited with code 2: Error`, 10),
					done("compile", 6, 10, 2, "Error"), skippedStep(1), skippedStep(1)),
				report(11, 12, "Failed"),
			},
			Skipped: []*planpb.SkippedTask{{Name: "deploy", Reason: "PipelineRun was stopping",
				When: []*planpb.WhenExpression{{Input: "staging", Operator: "in", Values: []string{"prod"}}}}},
			Results: []*planpb.ResultValue{commit("abc123")}},
		wantTR: []string{"pr-1-fetch", "pr-1-build", "pr-1-report"},
		check: func(t *testing.T, d decoded) {
			wantCond(t, "PipelineRun", d.pr.Status.GetCondition(apis.ConditionSucceeded), corev1.ConditionFalse, "Failed", "Tasks Completed: 3 (Failed: 1, Cancelled 0), Skipped: 1", 13)
			if d.pr.Spec.Status != "" {
				t.Errorf("spec.status = %q, want none", d.pr.Spec.Status)
			}
			diff(t, "skippedTasks", d.pr.Status.SkippedTasks, []v1.SkippedTask{
				{Name: "deploy", Reason: v1.StoppingSkip, WhenExpressions: whenExpr("staging", selection.In, "prod")}})
			names := []string{}
			for _, c := range d.pr.Status.ChildReferences {
				names = append(names, c.PipelineTaskName)
			}
			diff(t, "children", names, []string{"fetch", "build", "report"})
			b := d.trs[1]
			wantCond(t, "build", b.Status.GetCondition(apis.ConditionSucceeded), corev1.ConditionFalse, "Failed", `"step-compile" exited with code 2: Error`, 10)
			if !b.IsFailure() || b.IsCancelled() {
				t.Errorf("build IsFailure=%v IsCancelled=%v, want failed, not cancelled", b.IsFailure(), b.IsCancelled())
			}
			diff(t, "build steps", b.Status.Steps, []v1.StepState{
				term("compile", 2, "Error", "Error", 6, 10),
				withImage(term("package", 1, "Error", "Skipped", 10, 10), ""),
				unnamed(term("", 1, "Error", "Skipped", 10, 10)),
			})
		},
	}, {
		name: "when-skipped tasks, finally included, and onError continue",
		c:    fixture,
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0), CompletionTime: at(6),
			Condition: cond("True", "Completed", "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 3", 6),
			Tasks: []*planpb.TaskStatus{func() *planpb.TaskStatus {
				ts := succeededTask("fetch", 1, 5, done("clone", 1, 5, 3, "Continued"))
				ts.Results = []*planpb.ResultValue{commit("")}
				return ts
			}()},
			// The engine may hand when expressions over unresolved; Tekton's status has them resolved.
			Skipped: []*planpb.SkippedTask{
				{Name: "build", Reason: "When Expressions evaluated to false", When: []*planpb.WhenExpression{{Input: "$(tasks.fetch.results.commit)", Operator: "notin", Values: []string{""}}}},
				{Name: "deploy", Reason: "When Expressions evaluated to false", When: []*planpb.WhenExpression{{Input: "staging", Operator: "in", Values: []string{"prod"}}}},
				{Name: "report", Reason: "When Expressions evaluated to false", When: []*planpb.WhenExpression{{Input: "$(tasks.fetch.results.commit)", Operator: "notin", Values: []string{""}}}},
			}},
		wantTR: []string{"pr-1-fetch"},
		check: func(t *testing.T, d decoded) {
			wantCond(t, "PipelineRun", d.pr.Status.GetCondition(apis.ConditionSucceeded), corev1.ConditionTrue, "Completed", "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 3", 6)
			diff(t, "skippedTasks", d.pr.Status.SkippedTasks, []v1.SkippedTask{
				{Name: "build", Reason: v1.WhenExpressionsSkip, WhenExpressions: whenExpr("", selection.NotIn, "")},
				{Name: "deploy", Reason: v1.WhenExpressionsSkip, WhenExpressions: whenExpr("staging", selection.In, "prod")},
				{Name: "report", Reason: v1.WhenExpressionsSkip, WhenExpressions: whenExpr("", selection.NotIn, "")},
			})
			diff(t, "childReferences", d.pr.Status.ChildReferences, []v1.ChildStatusReference{{TypeMeta: childTypeMeta, Name: "pr-1-fetch", PipelineTaskName: "fetch"}})
			if d.pr.Status.FinallyStartTime != nil {
				t.Errorf("finallyStartTime = %v, want none: no finally task ran", d.pr.Status.FinallyStartTime)
			}
			// onError: continue: the container exits 0, the step's code is reported.
			diff(t, "fetch steps", d.trs[0].Status.Steps, []v1.StepState{withMsg(term("clone", 3, "Completed", "Continued", 1, 5), `[{"key":"commit","value":"","type":1}]`)})
		},
	}, {
		name: "retried task keeps earlier attempts, oldest first",
		c:    fixture,
		opts: ListOptions{PodName: "pr-1-pod"},
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0), CompletionTime: at(23),
			Condition: cond("True", "Completed", "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 1", 23),
			Tasks: []*planpb.TaskStatus{
				fetchOK(commit("abc123")),
				func() *planpb.TaskStatus {
					ts := build(12, 20, cond("True", "Succeeded", "All Steps have completed executing", 20),
						done("compile", 12, 14, 0, "Completed"), done("package", 14, 18, 0, "Completed"), &planpb.StepState{Terminated: true, Reason: "Completed", StartedAt: at(18), FinishedAt: at(20)})
					ts.Retries = []*planpb.TaskAttempt{
						{Condition: cond("False", "Failed", `"step-compile" exited with code 1: Error`, 8), StartTime: at(6), CompletionTime: at(8),
							Steps: []*planpb.StepState{done("compile", 6, 8, 1, "Error"), skippedStep(1), skippedStep(1)}},
						{Condition: cond("False", "TaskRunTimeout", `TaskRun "pr-1-build" failed to finish within "2s"`, 11), StartTime: at(9), CompletionTime: at(11),
							Steps: []*planpb.StepState{done("compile", 9, 10, 0, "Completed"), done("package", 10, 11, -1, "Cancelled")}},
					}
					return ts
				}(),
				report(21, 22, "Succeeded"),
			},
			Skipped: []*planpb.SkippedTask{{Name: "deploy", Reason: "When Expressions evaluated to false"}}},
		wantTR: []string{"pr-1-fetch", "pr-1-build", "pr-1-report"},
		check: func(t *testing.T, d decoded) {
			b := d.trs[1]
			if !b.IsSuccessful() || b.IsRetriable() {
				t.Errorf("build IsSuccessful=%v IsRetriable=%v, want succeeded with retries used up", b.IsSuccessful(), b.IsRetriable())
			}
			if len(b.Status.RetriesStatus) != 2 {
				t.Fatalf("retriesStatus has %d entries, want 2", len(b.Status.RetriesStatus))
			}
			spec := fixture().TaskSpecs["build"]
			first, second := b.Status.RetriesStatus[0], b.Status.RetriesStatus[1]
			wantCond(t, "attempt 1", first.GetCondition(apis.ConditionSucceeded), corev1.ConditionFalse, "Failed", `"step-compile" exited with code 1: Error`, 8)
			diff(t, "attempt 1", first.TaskRunStatusFields, v1.TaskRunStatusFields{PodName: "pr-1-pod", StartTime: mtp(6), CompletionTime: mtp(8), TaskSpec: spec, Artifacts: &v1.Artifacts{},
				Steps: inPod("build", term("compile", 1, "Error", "Error", 6, 8), withImage(term("package", 1, "Error", "Skipped", 8, 8), ""), unnamed(term("", 1, "Error", "Skipped", 8, 8)))})
			wantCond(t, "attempt 2", second.GetCondition(apis.ConditionSucceeded), corev1.ConditionFalse, "TaskRunTimeout", `TaskRun "pr-1-build" failed to finish within "2s"`, 11)
			// The step the timeout stopped and the one never reached end as terminateStepsInPod ends them.
			diff(t, "attempt 2", second.TaskRunStatusFields, v1.TaskRunStatusFields{PodName: "pr-1-pod", StartTime: mtp(9), CompletionTime: mtp(11), TaskSpec: spec, Artifacts: &v1.Artifacts{},
				Steps: inPod("build", term("compile", 0, "Completed", "Completed", 9, 10), stopped("package", "TaskRunTimeout", "pr-1-pod", 10, 11),
					unnamed(stopped("unnamed-2", "TaskRunTimeout", "pr-1-pod", 9, 11)))})
			if b.Status.PodName != "pr-1-pod" || !b.Status.StartTime.Equal(mtp(12)) {
				t.Errorf("build status podName %q startTime %v, want pr-1-pod and the last attempt's start", b.Status.PodName, b.Status.StartTime)
			}
		},
	}, {
		name: "cancelled run",
		c:    fixture,
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0), CompletionTime: at(10),
			Condition: cond("False", "Cancelled", `PipelineRun "pr-1" was cancelled`, 10),
			Tasks: []*planpb.TaskStatus{
				fetchOK(commit("abc123")),
				build(6, 9, cond("False", "TaskRunCancelled", `TaskRun "pr-1-build" was cancelled. TaskRun cancelled as the PipelineRun it belongs to has been cancelled.`, 9),
					done("compile", 6, 8, 0, "Completed"), done("package", 8, 9, -1, "Cancelled")),
			},
			Skipped: []*planpb.SkippedTask{{Name: "deploy", Reason: "PipelineRun was stopping"}}},
		wantTR: []string{"pr-1-fetch", "pr-1-build"},
		check: func(t *testing.T, d decoded) {
			wantCond(t, "PipelineRun", d.pr.Status.GetCondition(apis.ConditionSucceeded), corev1.ConditionFalse, "Cancelled", `PipelineRun "pr-1" was cancelled`, 10)
			if !d.pr.IsCancelled() {
				t.Errorf("PipelineRun IsCancelled() = false, spec.status %q", d.pr.Spec.Status)
			}
			b := d.trs[1]
			if !b.IsCancelled() || b.Spec.StatusMessage != v1.TaskRunCancelledByPipelineMsg {
				t.Errorf("build spec.status %q statusMessage %q, want cancelled by its PipelineRun", b.Spec.Status, b.Spec.StatusMessage)
			}
			diff(t, "build steps", b.Status.Steps, []v1.StepState{
				term("compile", 0, "Completed", "Completed", 6, 8), stopped("package", "TaskRunCancelled", "", 8, 9),
				unnamed(stopped("unnamed-2", "TaskRunCancelled", "", 6, 9)),
			})
		},
	}, {
		name: "pipeline timeout",
		c:    fixture,
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0), CompletionTime: at(10),
			Condition: cond("False", "PipelineRunTimeout", `PipelineRun "pr-1" failed to finish within "1h0m0s"`, 10),
			Tasks: []*planpb.TaskStatus{
				fetchOK(commit("abc123")),
				build(6, 9, cond("False", "TaskRunCancelled", `TaskRun "pr-1-build" was cancelled. TaskRun cancelled as the PipelineRun it belongs to has timed out.`, 9),
					done("compile", 6, 9, -1, "Cancelled")),
			},
			Skipped: []*planpb.SkippedTask{
				{Name: "deploy", Reason: "PipelineRun timeout has been reached", When: []*planpb.WhenExpression{{Input: "staging", Operator: "in", Values: []string{"prod"}}}},
				{Name: "report", Reason: "PipelineRun timeout has been reached"},
			}},
		wantTR: []string{"pr-1-fetch", "pr-1-build"},
		check: func(t *testing.T, d decoded) {
			wantCond(t, "PipelineRun", d.pr.Status.GetCondition(apis.ConditionSucceeded), corev1.ConditionFalse, "PipelineRunTimeout", `PipelineRun "pr-1" failed to finish within "1h0m0s"`, 10)
			if d.pr.Spec.Status != "" {
				t.Errorf("spec.status = %q, want none: nobody cancelled", d.pr.Spec.Status)
			}
			diff(t, "skippedTasks", d.pr.Status.SkippedTasks, []v1.SkippedTask{
				{Name: "deploy", Reason: v1.PipelineTimedOutSkip, WhenExpressions: whenExpr("staging", selection.In, "prod")},
				{Name: "report", Reason: v1.PipelineTimedOutSkip}})
			b := d.trs[1]
			if b.Spec.Status != v1.TaskRunSpecStatusCancelled || b.Spec.StatusMessage != v1.TaskRunCancelledByPipelineTimeoutMsg {
				t.Errorf("build spec.status %q statusMessage %q, want cancelled by the PipelineRun's timeout", b.Spec.Status, b.Spec.StatusMessage)
			}
			if got := b.Status.Steps[0]; got.TerminationReason != "TaskRunCancelled" || got.Terminated.ExitCode != 1 {
				t.Errorf("build step 0 = %+v, want terminated by the cancel", got)
			}
		},
	}, {
		name: "running run",
		c:    fixture,
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0),
			Condition: cond("Unknown", "Running", "Tasks Completed: 1 (Failed: 0, Cancelled 0), Incomplete: 3, Skipped: 0", 6),
			Tasks: []*planpb.TaskStatus{
				fetchOK(commit("abc123")),
				{Name: "build", TaskRunName: "pr-1-build", StartTime: at(6), Condition: cond("Unknown", "Running", "", 6),
					Params: []*planpb.Param{{Name: "image", Value: str("abc123")}},
					Steps:  []*planpb.StepState{{Name: "compile", Image: "img-compile", Running: true, StartedAt: at(7)}}},
			}},
		wantTR: []string{"pr-1-fetch", "pr-1-build"},
		check: func(t *testing.T, d decoded) {
			if d.pr.IsDone() || d.pr.Status.CompletionTime != nil {
				t.Errorf("PipelineRun done=%v completionTime=%v, want running", d.pr.IsDone(), d.pr.Status.CompletionTime)
			}
			// A task still running has not had its result references applied (GetChildReferences applies them for done tasks).
			diff(t, "build reference", d.pr.Status.ChildReferences[1], v1.ChildStatusReference{TypeMeta: childTypeMeta, Name: "pr-1-build", PipelineTaskName: "build",
				DisplayName: "Build abc123", WhenExpressions: whenExpr("$(tasks.fetch.results.commit)", selection.NotIn, "")})
			b := d.trs[1]
			if b.IsDone() {
				t.Errorf("build IsDone() = true")
			}
			diff(t, "build steps", b.Status.Steps, []v1.StepState{
				{Name: "compile", Container: "step-compile", ImageID: "img-compile", Provenance: &v1.Provenance{}, ContainerState: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: mt(7)}}},
				{Name: "package", Container: "step-package", Provenance: &v1.Provenance{}, ContainerState: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}},
				{Name: "unnamed-2", Container: "step-unnamed-2", Provenance: &v1.Provenance{}, ContainerState: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}},
			})
		},
	}, {
		name: "TaskRun plan",
		c:    taskRunFixture,
		st: &planpb.RunStatus{Name: "tr-1", StartTime: at(0), CompletionTime: at(5),
			Condition: cond("False", "Failed", `"step-check" exited with code 1: Error`, 4),
			Tasks: []*planpb.TaskStatus{{Name: "hello", TaskRunName: "tr-1", StartTime: at(1), CompletionTime: at(4),
				Condition: cond("False", "Failed", `"step-check" exited with code 1: Error`, 4),
				Steps:     []*planpb.StepState{done("say", 1, 2, 0, "Completed"), done("check", 2, 4, 1, "Error")},
				Results:   []*planpb.ResultValue{{Name: "greeting", Value: str("hi")}}}}},
		wantTR: []string{"tr-1"},
		check: func(t *testing.T, d decoded) {
			if d.pr != nil {
				t.Fatalf("a TaskRun plan listed a PipelineRun")
			}
			tr := d.trs[0]
			wantCond(t, "TaskRun", tr.Status.GetCondition(apis.ConditionSucceeded), corev1.ConditionFalse, "Failed", `"step-check" exited with code 1: Error`, 4)
			if !tr.IsFailure() || len(tr.OwnerReferences) != 0 {
				t.Errorf("IsFailure=%v ownerReferences=%v, want a failed TaskRun with no owner", tr.IsFailure(), tr.OwnerReferences)
			}
			diff(t, "labels", tr.Labels, map[string]string{"own": "label", "from": "task", v1.ManagedByLabelKey: "tekton-pipelines", "tekton.dev/task": "hello"})
			diff(t, "spec", tr.Spec, taskRunFixture().TaskRun.Spec)
			diff(t, "status", tr.Status.TaskRunStatusFields, v1.TaskRunStatusFields{StartTime: mtp(1), CompletionTime: mtp(4),
				Steps: []v1.StepState{withMsg(withImage(term("say", 0, "Completed", "Completed", 1, 2), "img-say"), greetingMsg),
					withMsg(withImage(term("check", 1, "Error", "Error", 2, 4), "img-check"), greetingMsg)},
				Artifacts: &v1.Artifacts{},
				Results:   []v1.TaskRunResult{{Name: "greeting", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("hi")}},
				TaskSpec:  taskRunFixture().TaskSpecs["hello"]})
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c()
			fromJSON, fromYAML := writeBoth(t, c, tc.st, tc.opts)
			diff(t, "YAML round trip", fromYAML, fromJSON)
			var names []string
			for _, tr := range fromJSON.trs {
				names = append(names, tr.Name)
			}
			diff(t, "TaskRuns", names, tc.wantTR)
			if len(names) != len(tc.wantTR) {
				t.FailNow()
			}
			ctx := context.Background()
			if pr := fromJSON.pr; pr != nil {
				if err := pr.Validate(ctx); err != nil {
					t.Errorf("PipelineRun does not validate: %v", err)
				}
				for _, tr := range fromJSON.trs {
					diff(t, tr.Name+" ownerReferences", tr.OwnerReferences, []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: "PipelineRun",
						Name: "pr-1", UID: "uid-1", Controller: ptr(true), BlockOwnerDeletion: ptr(true)}})
					if tr.Namespace != "ci" {
						t.Errorf("%s namespace %q, want ci", tr.Name, tr.Namespace)
					}
				}
			}
			for _, tr := range fromJSON.trs {
				if err := tr.Validate(ctx); err != nil {
					t.Errorf("TaskRun %s does not validate: %v", tr.Name, err)
				}
				if tr.Spec.ServiceAccountName == "" || tr.Spec.Timeout == nil {
					t.Errorf("TaskRun %s is not defaulted: serviceAccountName %q timeout %v", tr.Name, tr.Spec.ServiceAccountName, tr.Spec.Timeout)
				}
			}
			tc.check(t, fromJSON)
		})
	}
}

func ptr[T any](v T) *T { return &v }

const greetingMsg = `[{"key":"greeting","value":"hi","type":1}]`

func withImage(s v1.StepState, image string) v1.StepState {
	s.ImageID = image
	return s
}

func wantCond(t *testing.T, what string, c *apis.Condition, status corev1.ConditionStatus, reason, msg string, sec int) {
	t.Helper()
	if c == nil {
		t.Errorf("%s: no Succeeded condition", what)
		return
	}
	want := apis.Condition{Type: apis.ConditionSucceeded, Status: status, Reason: reason, Message: msg, LastTransitionTime: apis.VolatileTime{Inner: mt(sec)}}
	if d := cmp.Diff(want, *c); d != "" {
		t.Errorf("%s condition (-want +got):\n%s", what, d)
	}
}

func diff(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmp.AllowUnexported(decoded{})); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// inPod names the step containers as in the shared pod, where a step's
// container is podlayout.StepContainer(task, step), not "step-NAME".
func inPod(task string, steps ...v1.StepState) []v1.StepState {
	for i := range steps {
		steps[i].Container = podlayout.StepContainer(task, steps[i].Name)
	}
	return steps
}
