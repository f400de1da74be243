package controller

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	podpipeline "github.com/e7763abc/pod-runner/api/podpipeline/v1alpha1"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// groupTaskYAML is the Task the groups below run: it says its param and
// keeps it as a result.
const groupTaskYAML = `
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: say, namespace: ci}
spec:
  params: [{name: msg, type: string}]
  results: [{name: said}]
  steps:
  - name: say
    image: busybox
    script: printf '%s' "$(params.msg)" > $(results.said.path)
`

// groupSpec is a two-task group: the second consumes the first's result;
// the group's result is the second's.
const groupSpec = `
      pipelineSpec:
        params: [{name: msg, type: string}]
        workspaces: [{name: shared}]
        results:
        - {name: out, value: $(tasks.second.results.said)}
        tasks:
        - name: first
          taskRef: {name: say}
          params: [{name: msg, value: $(params.msg)}]
        - name: second
          taskRef: {name: say}
          params: [{name: msg, value: "$(tasks.first.results.said)!"}]
`

// customRun is a CustomRun as Tekton's PipelineRun reconciler creates it
// for a pipeline task "group" of PipelineRun "parent" whose taskSpec embeds
// a PodPipeline with spec (createCustomRun), plus extra spec lines.
func customRun(name, spec, extra string) *v1beta1.CustomRun {
	y := `apiVersion: tekton.dev/v1beta1
kind: CustomRun
metadata:
  name: ` + name + `
  namespace: ci
  uid: uid-` + name + `
  labels: {tekton.dev/pipelineRun: parent, tekton.dev/pipelineRunUID: uid-parent, tekton.dev/pipelineTask: group, tekton.dev/memberOf: tasks, tekton.dev/pipeline: parent}
spec:
  serviceAccountName: default
  timeout: 1h0m0s
  params: [{name: msg, value: hi}]
  workspaces: [{name: shared, emptyDir: {}}]
` + extra + `  customSpec:
    apiVersion: pod-runner.dev/v1alpha1
    kind: PodPipeline
    metadata: {labels: {team: build}}
    spec:
` + spec
	run := &v1beta1.CustomRun{}
	if err := yaml.UnmarshalStrict([]byte(y), run); err != nil {
		panic(err)
	}
	return run
}

type crEnv struct {
	*env
	cr *CustomRunReconciler
}

func newCustomRunEnv(t *testing.T, objs ...client.Object) *crEnv {
	t.Helper()
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	// The PodPipeline kind is known as its CRD makes it known.
	mapper := meta.NewDefaultRESTMapper(nil)
	for gvk := range s.AllKnownTypes() {
		mapper.Add(gvk, meta.RESTScopeNamespace)
	}
	mapper.Add(podpipeline.GVK, meta.RESTScopeNamespace)
	c := fake.NewClientBuilder().WithScheme(s).WithRESTMapper(mapper).
		WithStatusSubresource(&v1beta1.CustomRun{}, &v1.TaskRun{}, &corev1.Pod{}).
		WithObjects(withDefaultServiceAccounts(objs)...).Build()
	e := &crEnv{env: &env{t: t, c: c, logs: fakeLogs{}}}
	e.r = e.reconciler()
	e.cr = &CustomRunReconciler{Reconciler: e.r}
	return e
}

func (e *crEnv) reconcileCR(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.cr.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	if err != nil {
		e.t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (e *crEnv) run(name string) *v1beta1.CustomRun {
	e.t.Helper()
	run := &v1beta1.CustomRun{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
		e.t.Fatal(err)
	}
	return run
}

func (e *crEnv) update(run *v1beta1.CustomRun) {
	e.t.Helper()
	if err := e.c.Update(context.Background(), run); err != nil {
		e.t.Fatal(err)
	}
}

func ownedByCustomRun(o metav1.Object, run *v1beta1.CustomRun) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.UID == run.UID && ref.Kind == "CustomRun" && ref.APIVersion == "tekton.dev/v1beta1"
}

func condition(t *testing.T, run *v1beta1.CustomRun) *apis.Condition {
	t.Helper()
	c := run.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil {
		t.Fatalf("no Succeeded condition: %+v", run.Status)
	}
	return c
}

func groupStatus(t *testing.T, run *v1beta1.CustomRun) podpipeline.GroupStatus {
	t.Helper()
	var g podpipeline.GroupStatus
	if len(run.Status.ExtraFields.Raw) > 0 {
		if err := json.Unmarshal(run.Status.ExtraFields.Raw, &g); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func sayTask(t *testing.T) client.Object { return mustDecode[v1.Task](t, groupTaskYAML) }

// podPlan is the Plan the Pod's supervisor is given.
func podPlan(t *testing.T, pod *corev1.Pod) *planpb.Plan {
	t.Helper()
	for _, env := range pod.Spec.Containers[0].Env {
		if env.Name != podlayout.EnvPlan {
			continue
		}
		b, err := podlayout.DecodePlan(env.Value)
		if err != nil {
			t.Fatal(err)
		}
		plan := &planpb.Plan{}
		if err := proto.Unmarshal(b, plan); err != nil {
			t.Fatal(err)
		}
		return plan
	}
	t.Fatalf("no %s in the supervisor container", podlayout.EnvPlan)
	return nil
}

// runEvent is the run's status event; a final one lists its tasks.
func runEvent(name string, start int, cond *planpb.Condition, end int, tasks []*planpb.Event, results ...*planpb.ResultValue) *planpb.Event {
	st := &planpb.RunStatus{Name: name, StartTime: ts(start), Condition: cond, Results: results}
	for _, t := range tasks {
		st.Tasks = append(st.Tasks, t.GetTask())
	}
	if end > 0 {
		st.CompletionTime = ts(end)
	}
	return &planpb.Event{Time: ts(start), Kind: &planpb.Event_Run{Run: st}}
}

func TestCustomRunRunsTheGroupInOnePod(t *testing.T) {
	run := customRun("grp", groupSpec, "")
	e := newCustomRunEnv(t, sayTask(t), run)
	if res := e.reconcileCR("grp"); res.RequeueAfter == 0 {
		t.Errorf("a running group is not polled: %+v", res)
	}
	pods := e.pods()
	if len(pods) != 1 {
		t.Fatalf("%d pods, want 1", len(pods))
	}
	pod := pods[0]
	got := e.run("grp")
	if pod.Name != "grp" || !ownedByCustomRun(&pod, got) {
		t.Errorf("pod %s owners %+v: want grp, controlled by the CustomRun", pod.Name, pod.OwnerReferences)
	}
	// The labels Tekton gives a child PipelineRun's Pods, for a run named
	// after the CustomRun, plus tekton.dev/customRun and the embedded
	// spec's metadata.
	for k, v := range map[string]string{pipeline.PipelineRunLabelKey: "grp", pipeline.CustomRunKey: "grp",
		pipeline.PipelineTaskLabelKey: "group", "team": "build"} {
		if pod.Labels[k] != v {
			t.Errorf("pod label %s = %q, want %q", k, pod.Labels[k], v)
		}
	}
	if pod.Spec.ServiceAccountName != "default" {
		t.Errorf("service account %q", pod.Spec.ServiceAccountName)
	}
	// The CustomRun's param and timeout are the group's.
	plan := podPlan(t, &pod)
	if p := plan.GetTasks()[0].GetParams(); len(p) != 1 || p[0].GetValue().GetStringValue() != "hi" {
		t.Errorf("first's params %v: the CustomRun's param did not reach the group", p)
	}
	if d := plan.GetTimeouts().GetPipeline().AsDuration(); d != time.Hour {
		t.Errorf("pipeline timeout %s, want the CustomRun's 1h", d)
	}
	if c := condition(t, got); c.Status != corev1.ConditionUnknown || c.Reason != v1beta1.CustomRunReasonStarted.String() {
		t.Errorf("condition %+v, want Unknown/Started", c)
	}
	if got.Status.StartTime == nil || !got.Status.StartTime.Time.Equal(t0) {
		t.Errorf("startTime %v, want %v", got.Status.StartTime, t0)
	}

	// The first task runs.
	e.logs["grp"] = supervisorLog(runEvent("grp", 1, running, 0, nil), taskEvent("first", 2, running, 0))
	e.setSupervisor("grp", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	e.reconcileCR("grp")
	got = e.run("grp")
	if c := condition(t, got); c.Status != corev1.ConditionUnknown || c.Reason != "Running" {
		t.Errorf("condition %+v, want Unknown/Running", c)
	}
	trs := e.taskRuns()
	first, ok := trs["grp-first"]
	if !ok || len(trs) != 1 {
		t.Fatalf("TaskRuns %v, want grp-first", keys(trs))
	}
	if !ownedByCustomRun(&first, got) || first.Status.PodName != "grp" || first.Spec.ManagedBy == nil || *first.Spec.ManagedBy != ManagedBy {
		t.Errorf("TaskRun owners %+v podName %q managedBy %v", first.OwnerReferences, first.Status.PodName, first.Spec.ManagedBy)
	}
	for k, v := range map[string]string{pipeline.PipelineRunLabelKey: "grp", pipeline.CustomRunKey: "grp",
		pipeline.PipelineTaskLabelKey: "first", pipeline.TaskLabelKey: "say"} {
		if first.Labels[k] != v {
			t.Errorf("TaskRun label %s = %q, want %q", k, first.Labels[k], v)
		}
	}
	if g := groupStatus(t, got); g.PodName != "grp" || len(g.ChildReferences) != 1 || g.ChildReferences[0].Name != "grp-first" {
		t.Errorf("extraFields %+v", g)
	}

	// Both ran; the group succeeded with its result.
	done := &planpb.Condition{Status: "True", Reason: "Succeeded", Message: "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"}
	tasks := []*planpb.Event{taskEvent("first", 2, succeeded, 3), taskEvent("second", 4, succeeded, 5)}
	e.logs["grp"] = supervisorLog(runEvent("grp", 1, running, 0, nil), tasks[0], tasks[1],
		runEvent("grp", 1, done, 6, tasks,
			&planpb.ResultValue{Name: "out", Value: &planpb.Value{Type: planpb.ValueType_STRING, StringValue: "hi!"}},
			&planpb.ResultValue{Name: "list", Value: &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{"a", "b"}}}))
	e.setSupervisor("grp", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, corev1.PodSucceeded)
	if res := e.reconcileCR("grp"); res != (ctrl.Result{}) {
		t.Errorf("result %+v: a finished group is not polled", res)
	}
	got = e.run("grp")
	if c := condition(t, got); c.Status != corev1.ConditionTrue || c.Reason != v1beta1.CustomRunReasonSuccessful.String() || !strings.Contains(c.Message, "Tasks Completed: 2") {
		t.Errorf("condition %+v, want True/Succeeded", c)
	}
	if got.Status.CompletionTime == nil || !got.Status.CompletionTime.Time.Equal(ts(6).AsTime()) {
		t.Errorf("completionTime %v", got.Status.CompletionTime)
	}
	want := []v1beta1.CustomRunResult{{Name: "out", Value: "hi!"}, {Name: "list", Value: `["a","b"]`}}
	if len(got.Status.Results) != 2 || got.Status.Results[0] != want[0] || got.Status.Results[1] != want[1] {
		t.Errorf("results %+v, want %+v", got.Status.Results, want)
	}
	if n := len(e.taskRuns()); n != 2 {
		t.Errorf("%d TaskRuns, want 2", n)
	}
	if n := len(e.pods()); n != 1 {
		t.Errorf("%d pods, want 1", n)
	}
	// Done: reconciling again writes nothing.
	e.reconcileCR("grp")
	if again := e.run("grp"); again.ResourceVersion != got.ResourceVersion {
		t.Error("a finished CustomRun was written again")
	}
}

func TestCustomRunGroupFails(t *testing.T) {
	e := newCustomRunEnv(t, sayTask(t), customRun("bad", groupSpec, ""))
	e.reconcileCR("bad")
	failed := &planpb.Condition{Status: "False", Reason: "Failed", Message: "Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 1"}
	first := taskEvent("first", 2, &planpb.Condition{Status: "False", Reason: "Failed", Message: "step say exited 1"}, 3)
	e.logs["bad"] = supervisorLog(runEvent("bad", 1, running, 0, nil), first, runEvent("bad", 1, failed, 4, []*planpb.Event{first}))
	e.setSupervisor("bad", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, corev1.PodSucceeded)
	e.reconcileCR("bad")
	got := e.run("bad")
	if c := condition(t, got); c.Status != corev1.ConditionFalse || c.Reason != v1beta1.CustomRunReasonFailed.String() || c.Message != failed.Message {
		t.Errorf("condition %+v, want False/Failed with the group's message", c)
	}
	if got.Status.CompletionTime == nil || len(got.Status.RetriesStatus) != 0 {
		t.Errorf("completionTime %v retriesStatus %d", got.Status.CompletionTime, len(got.Status.RetriesStatus))
	}
	if tr := e.taskRuns()["bad-first"]; !tr.IsFailure() {
		t.Errorf("first's TaskRun %+v, want failed", tr.Status.Conditions)
	}
}

func TestCustomRunRetries(t *testing.T) {
	e := newCustomRunEnv(t, sayTask(t), customRun("again", groupSpec, "  retries: 1\n"))
	e.reconcileCR("again")
	failed := &planpb.Condition{Status: "False", Reason: "Failed", Message: "Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 1"}
	first := taskEvent("first", 2, &planpb.Condition{Status: "False", Reason: "Failed"}, 3)
	log := supervisorLog(runEvent("x", 1, running, 0, nil), first, runEvent("x", 1, failed, 4, []*planpb.Event{first}))
	e.logs["again"] = log
	e.setSupervisor("again", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, corev1.PodSucceeded)
	e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(time.Minute))
	if res := e.reconcileCR("again"); res.RequeueAfter == 0 {
		t.Errorf("result %+v: a retried group is polled", res)
	}
	got := e.run("again")
	if c := condition(t, got); c.Status != corev1.ConditionUnknown || len(got.Status.RetriesStatus) != 1 {
		t.Fatalf("condition %+v retriesStatus %d: want Unknown with one attempt kept", c, len(got.Status.RetriesStatus))
	}
	if prev := got.Status.RetriesStatus[0]; !prev.GetCondition(apis.ConditionSucceeded).IsFalse() || prev.CompletionTime == nil || prev.StartTime == nil {
		t.Errorf("retriesStatus[0] %+v, want the failed attempt", prev)
	}
	if got.Status.StartTime == nil || !got.Status.StartTime.Time.Equal(t0.Add(time.Minute)) || got.Status.CompletionTime != nil || len(got.Status.Results) != 0 {
		t.Errorf("status %+v: the next attempt starts now, not completed", got.Status)
	}

	// The second attempt: a Pod and TaskRuns of its own; the first's stay.
	e.reconcileCR("again")
	names := map[string]bool{}
	for _, p := range e.pods() {
		names[p.Name] = true
	}
	if len(names) != 2 || !names["again"] || !names["again-retry1"] {
		t.Fatalf("pods %v, want again and again-retry1", names)
	}
	e.logs["again-retry1"] = log
	e.setSupervisor("again-retry1", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, corev1.PodSucceeded)
	e.reconcileCR("again")
	got = e.run("again")
	if c := condition(t, got); c.Status != corev1.ConditionFalse || len(got.Status.RetriesStatus) != 1 {
		t.Errorf("condition %+v retriesStatus %d: want False once retries are exhausted", c, len(got.Status.RetriesStatus))
	}
	trs := e.taskRuns()
	if _, ok := trs["again-retry1-first"]; !ok || len(trs) != 2 {
		t.Errorf("TaskRuns %v, want again-first and again-retry1-first", keys(trs))
	}
	if g := groupStatus(t, got); g.PodName != "again-retry1" {
		t.Errorf("podName %q, want the last attempt's", g.PodName)
	}
}

func TestCustomRunCancel(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		e := newCustomRunEnv(t, sayTask(t), customRun("c1", groupSpec, ""))
		e.reconcileCR("c1")
		e.logs["c1"] = supervisorLog(runEvent("c1", 1, running, 0, nil), taskEvent("first", 2, running, 0))
		e.setSupervisor("c1", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
		e.reconcileCR("c1")
		run := e.run("c1")
		run.Spec.Status = v1beta1.CustomRunSpecStatusCancelled
		run.Spec.StatusMessage = v1beta1.CustomRunCancelledByPipelineMsg
		e.update(run)
		e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(20 * time.Second))
		e.reconcileCR("c1")
		pods := e.pods()
		if len(pods) != 1 || pods[0].Spec.ActiveDeadlineSeconds == nil || *pods[0].Spec.ActiveDeadlineSeconds != 20 {
			t.Fatalf("pods %d: want the Pod stopped by a passed deadline", len(pods))
		}
		if c := condition(t, e.run("c1")); !c.IsUnknown() {
			t.Errorf("condition %+v before the Pod stopped", c)
		}
		e.setSupervisor("c1", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137}}, corev1.PodFailed)
		e.reconcileCR("c1")
		c := condition(t, e.run("c1"))
		if c.Status != corev1.ConditionFalse || c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != string(v1beta1.CustomRunCancelledByPipelineMsg) {
			t.Errorf("condition %+v, want False/CustomRunCancelled with Tekton's message", c)
		}
	})
	t.Run("before the pod exists", func(t *testing.T) {
		run := customRun("c2", groupSpec, "  status: RunCancelled\n  retries: 2\n")
		e := newCustomRunEnv(t, sayTask(t), run)
		e.reconcileCR("c2")
		if n := len(e.pods()); n != 0 {
			t.Errorf("%d pods for a group cancelled before it started", n)
		}
		got := e.run("c2")
		if c := condition(t, got); c.Status != corev1.ConditionFalse || c.Reason != v1beta1.CustomRunReasonCancelled.String() || c.Message != `CustomRun "c2" was cancelled` {
			t.Errorf("condition %+v", c)
		}
		if len(got.Status.RetriesStatus) != 0 {
			t.Error("a cancelled group was retried")
		}
	})
}

func TestCustomRunTimeout(t *testing.T) {
	e := newCustomRunEnv(t, sayTask(t), customRun("slow", groupSpec, ""))
	e.r.TimeoutGrace = time.Second
	e.reconcileCR("slow")
	e.logs["slow"] = supervisorLog(runEvent("slow", 1, running, 0, nil), taskEvent("first", 2, running, 0))
	e.setSupervisor("slow", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	// The spec's timeout (1h, the pipeline's) and the grace have passed
	// with the Pod still running.
	e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(time.Hour + 2*time.Second))
	e.reconcileCR("slow")
	c := condition(t, e.run("slow"))
	if c.Status != corev1.ConditionFalse || c.Reason != v1beta1.CustomRunReasonTimedOut.String() || c.Message != `CustomRun "slow" failed to finish within "1h0m0s"` {
		t.Errorf("condition %+v, want False/CustomRunTimedOut naming the CustomRun", c)
	}
	if tr := e.taskRuns()["slow-first"]; !tr.IsDone() {
		t.Errorf("the running task's TaskRun %+v is not ended", tr.Status.Conditions)
	}
}

func TestOtherCustomRunsLeftAlone(t *testing.T) {
	other := customRun("other", groupSpec, "")
	other.Spec.CustomSpec.Kind = "Wait"
	ref := customRun("ref", groupSpec, "")
	ref.Spec.CustomSpec = nil
	ref.Spec.CustomRef = &v1beta1.TaskRef{APIVersion: "example.dev/v1", Kind: podpipeline.Kind}
	for _, run := range []*v1beta1.CustomRun{other, ref} {
		if podpipeline.IsPodPipeline(run) {
			t.Errorf("%s is taken for a PodPipeline", run.Name)
		}
		e := newCustomRunEnv(t, sayTask(t), run)
		before := e.run(run.Name)
		if res := e.reconcileCR(run.Name); res != (ctrl.Result{}) {
			t.Errorf("result %+v", res)
		}
		if after := e.run(run.Name); after.ResourceVersion != before.ResourceVersion || len(e.pods()) != 0 {
			t.Errorf("%s was acted on", run.Name)
		}
	}
	if !podpipeline.IsPodPipeline(customRun("x", groupSpec, "")) {
		t.Error("an embedded PodPipeline is not recognised")
	}
}

// TestGroupRunIsTheChildPipelineRun: what the CustomRun carries lands in
// the PipelineRun its group runs as.
func TestGroupRunIsTheChildPipelineRun(t *testing.T) {
	run := customRun("g", groupSpec, "  status: RunCancelled\n")
	run.Spec.Params = append(run.Spec.Params, v1beta1.Param{Name: "list", Value: *v1beta1.NewStructuredValues("a", "b")})
	run.Spec.ServiceAccountName = "builder"
	spec, err := (&CustomRunReconciler{Reconciler: &Reconciler{}}).podPipeline(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	pr := groupRun(run, spec, 2)
	if pr.Name != "g-retry2" || pr.UID != run.UID || pr.Spec.PipelineSpec == nil || len(pr.Spec.PipelineSpec.Tasks) != 2 {
		t.Errorf("name %q uid %q spec %v", pr.Name, pr.UID, pr.Spec.PipelineSpec)
	}
	if p := pr.Spec.Params; len(p) != 2 || p[0].Value.StringVal != "hi" || p[1].Value.Type != v1.ParamTypeArray || len(p[1].Value.ArrayVal) != 2 {
		t.Errorf("params %+v", p)
	}
	if w := pr.Spec.Workspaces; len(w) != 1 || w[0].Name != "shared" || w[0].EmptyDir == nil {
		t.Errorf("workspaces %+v", w)
	}
	if pr.Spec.Timeouts == nil || pr.Spec.Timeouts.Pipeline.Duration != time.Hour || pr.Spec.TaskRunTemplate.ServiceAccountName != "builder" {
		t.Errorf("timeouts %+v service account %q", pr.Spec.Timeouts, pr.Spec.TaskRunTemplate.ServiceAccountName)
	}
	if !pr.IsCancelled() || !Managed(pr) {
		t.Errorf("spec.status %q managedBy %v", pr.Spec.Status, pr.Spec.ManagedBy)
	}
	if pr.Labels[pipeline.CustomRunKey] != "g" || pr.Labels["team"] != "build" || pr.Labels[pipeline.PipelineRunLabelKey] != "parent" {
		t.Errorf("labels %v", pr.Labels)
	}
}

func TestCustomRunReason(t *testing.T) {
	for in, want := range map[string]string{
		"Cancelled": "CustomRunCancelled", "PipelineRunTimeout": "CustomRunTimedOut", "Succeeded": "Succeeded",
		"Completed": "Succeeded", "Failed": "Failed", "Running": "Running", "CouldntGetPipeline": "CouldntGetPipeline",
	} {
		if got := customRunReason(in); got != want {
			t.Errorf("customRunReason(%q) = %q, want %q", in, got, want)
		}
	}
}
