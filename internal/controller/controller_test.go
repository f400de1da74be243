package controller

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

const ns = "ci"

// fakeLogs serves canned supervisor logs by pod name.
type fakeLogs map[string]string

func (f fakeLogs) Log(_ context.Context, _, pod, container string) (io.ReadCloser, error) {
	if container != podlayout.SupervisorContainer {
		return nil, io.ErrUnexpectedEOF
	}
	return io.NopCloser(strings.NewReader(f[pod])), nil
}

func mustDecode[T any](t *testing.T, y string) *T {
	t.Helper()
	out := new(T)
	if err := yaml.UnmarshalStrict([]byte(y), out); err != nil {
		t.Fatalf("decode: %v\n%s", err, y)
	}
	return out
}

const taskYAML = `
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: echo, namespace: ci}
spec:
  params: [{name: msg, type: string}]
  steps:
  - name: say
    image: busybox
    script: echo $(params.msg)
`

const pipelineYAML = `
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: build, namespace: ci}
spec:
  params: [{name: msg, type: string}]
  tasks:
  - name: first
    taskRef: {name: echo}
    params: [{name: msg, value: $(params.msg)}]
  - name: second
    runAfter: [first]
    taskSpec:
      steps:
      - name: run
        image: busybox
        script: echo second
`

func run(name, body string, managed bool) *v1.PipelineRun {
	y := "apiVersion: tekton.dev/v1\nkind: PipelineRun\nmetadata: {name: " + name + ", namespace: ci, uid: uid-" + name + "}\nspec:\n" + body
	if managed {
		y += "  managedBy: " + ManagedBy + "\n"
	}
	pr := &v1.PipelineRun{}
	if err := yaml.UnmarshalStrict([]byte(y), pr); err != nil {
		panic(err)
	}
	return pr
}

const goodSpec = `  pipelineRef: {name: build}
  params: [{name: msg, value: hi}]
  taskRunTemplate: {serviceAccountName: default}
`

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type env struct {
	t    *testing.T
	c    client.Client
	logs fakeLogs
	r    *Reconciler
}

func newEnv(t *testing.T, objs ...client.Object) *env {
	t.Helper()
	s, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).
		WithStatusSubresource(&v1.PipelineRun{}, &v1.TaskRun{}, &corev1.Pod{}).
		WithObjects(withDefaultServiceAccounts(objs)...).Build()
	e := &env{t: t, c: c, logs: fakeLogs{}}
	e.r = e.reconciler()
	return e
}

// withDefaultServiceAccounts adds the "default" ServiceAccount the API
// server makes in every namespace (of objs, and "default"): a run's Pod
// is built with its ServiceAccount's credentials.
func withDefaultServiceAccounts(objs []client.Object) []client.Object {
	namespaces := map[string]bool{"default": true}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" {
			namespaces[ns] = true
		}
	}
	out := slices.Clone(objs)
	for ns := range namespaces {
		out = append(out, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}})
	}
	return out
}

// reconciler is a fresh Reconciler on the same cluster: a restarted controller.
func (e *env) reconciler() *Reconciler {
	return &Reconciler{Client: e.c, Logs: e.logs, Clock: clocktesting.NewFakePassiveClock(t0)}
}

func (e *env) reconcile(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	if err != nil {
		e.t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (e *env) pr(name string) *v1.PipelineRun {
	e.t.Helper()
	pr := &v1.PipelineRun{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, pr); err != nil {
		e.t.Fatal(err)
	}
	return pr
}

func (e *env) pods() []corev1.Pod {
	e.t.Helper()
	l := &corev1.PodList{}
	if err := e.c.List(context.Background(), l, client.InNamespace(ns)); err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

func (e *env) taskRuns() map[string]v1.TaskRun {
	e.t.Helper()
	l := &v1.TaskRunList{}
	if err := e.c.List(context.Background(), l, client.InNamespace(ns)); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]v1.TaskRun{}
	for _, tr := range l.Items {
		out[tr.Name] = tr
	}
	return out
}

// setSupervisor gives the Pod's supervisor container a state, as the kubelet would.
func (e *env) setSupervisor(podName string, state corev1.ContainerState, phase corev1.PodPhase) {
	e.t.Helper()
	pod := &corev1.Pod{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: podName}, pod); err != nil {
		e.t.Fatal(err)
	}
	start := metav1.NewTime(t0)
	pod.Status.StartTime = &start
	pod.Status.Phase = phase
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: podlayout.SupervisorContainer, State: state}}
	if err := e.c.Status().Update(context.Background(), pod); err != nil {
		e.t.Fatal(err)
	}
}

func isOwnedBy(meta metav1.Object, pr *v1.PipelineRun) bool {
	for _, o := range meta.GetOwnerReferences() {
		if o.UID == pr.UID && o.Kind == "PipelineRun" && o.APIVersion == "tekton.dev/v1" && o.Controller != nil && *o.Controller {
			return true
		}
	}
	return false
}

// isOwnerNotController: a delegated run's TaskRuns name it as owner (the
// garbage collector deletes them with it) but not as controller (Tekton's
// controller would take the run over: delegatedOwner).
func isOwnerNotController(meta metav1.Object, pr *v1.PipelineRun) bool {
	refs := meta.GetOwnerReferences()
	return len(refs) == 1 && refs[0].UID == pr.UID && refs[0].Kind == "PipelineRun" && refs[0].APIVersion == "tekton.dev/v1" &&
		(refs[0].Controller == nil || !*refs[0].Controller)
}

func defs(t *testing.T) []client.Object {
	return []client.Object{mustDecode[v1.Task](t, taskYAML), mustDecode[v1.Pipeline](t, pipelineYAML)}
}

func TestCreatesOnePodOwnedByTheRun(t *testing.T) {
	pr := run("r1", goodSpec, true)
	e := newEnv(t, append(defs(t), pr)...)
	res := e.reconcile("r1")
	if res.RequeueAfter == 0 {
		t.Errorf("a running run is not polled again: %+v", res)
	}
	pods := e.pods()
	if len(pods) != 1 {
		t.Fatalf("%d pods, want 1", len(pods))
	}
	pod := pods[0]
	got := e.pr("r1")
	if pod.Name != "r1" || !isOwnedBy(&pod, got) {
		t.Errorf("pod %s owners %+v: want r1 controlled by the run", pod.Name, pod.OwnerReferences)
	}
	if pod.Labels[pipeline.PipelineRunLabelKey] != "r1" || pod.Labels[pipeline.PipelineLabelKey] != "build" {
		t.Errorf("pod labels %v", pod.Labels)
	}
	if c := got.Status.GetCondition("Succeeded"); c == nil || c.Status != corev1.ConditionUnknown || c.Reason != string(v1.PipelineRunReasonStarted) {
		t.Errorf("condition %+v, want Unknown/Started", c)
	}
	if got.Status.StartTime == nil || !got.Status.StartTime.Time.Equal(t0) {
		t.Errorf("startTime %v, want %v", got.Status.StartTime, t0)
	}
	if n := len(e.taskRuns()); n != 0 {
		t.Errorf("%d TaskRuns before any task started", n)
	}

	// A restarted controller, reconciling again and again, makes no second Pod.
	e.r = e.reconciler()
	e.reconcile("r1")
	e.reconcile("r1")
	if n := len(e.pods()); n != 1 {
		t.Errorf("%d pods after a restart, want 1", n)
	}
}

func TestLeavesOtherRunsAlone(t *testing.T) {
	for _, managedBy := range []string{"", "tekton.dev/pipeline", "someone-else"} {
		t.Run(managedBy, func(t *testing.T) {
			pr := run("other", goodSpec, false)
			if managedBy != "" {
				pr.Spec.ManagedBy = &managedBy
			}
			e := newEnv(t, append(defs(t), pr)...)
			before := e.pr("other")
			if res := e.reconcile("other"); res != (ctrl.Result{}) {
				t.Errorf("result %+v, want none", res)
			}
			after := e.pr("other")
			if after.ResourceVersion != before.ResourceVersion || len(after.Status.Conditions) != 0 {
				t.Errorf("run was written: rv %s → %s, status %+v", before.ResourceVersion, after.ResourceVersion, after.Status)
			}
			if n := len(e.pods()); n != 0 {
				t.Errorf("%d pods", n)
			}
		})
	}
}

func TestInvalidRunsFailWithTektonReason(t *testing.T) {
	cycle := mustDecode[v1.Pipeline](t, strings.ReplaceAll(pipelineYAML, "  - name: first\n", "  - name: first\n    runAfter: [second]\n"))
	cases := []struct {
		name, spec string
		objs       []client.Object
		reason     string
	}{
		{"no-pipeline", "  pipelineRef: {name: missing}\n", defs(t), "CouldntGetPipeline"},
		{"no-task", goodSpec, []client.Object{mustDecode[v1.Pipeline](t, pipelineYAML)}, "CouldntGetTask"},
		{"no-param", "  pipelineRef: {name: build}\n", defs(t), "ParameterMissing"},
		{"cycle", goodSpec, []client.Object{mustDecode[v1.Task](t, taskYAML), cycle}, "PipelineInvalidGraph"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, append(tc.objs, run("bad", tc.spec, true))...)
			if res := e.reconcile("bad"); res != (ctrl.Result{}) {
				t.Errorf("result %+v: a failed run is not polled", res)
			}
			got := e.pr("bad")
			c := got.Status.GetCondition("Succeeded")
			if c == nil || c.Status != corev1.ConditionFalse || c.Reason != tc.reason {
				t.Fatalf("condition %+v, want False/%s", c, tc.reason)
			}
			if got.Status.CompletionTime == nil {
				t.Error("no completionTime")
			}
			if n := len(e.pods()); n != 0 {
				t.Errorf("%d pods for an invalid run", n)
			}
			// Done: reconciling again changes nothing.
			e.reconcile("bad")
			if again := e.pr("bad"); again.ResourceVersion != got.ResourceVersion {
				t.Error("a failed run was written again")
			}
		})
	}
}

func ts(sec int) *timestamppb.Timestamp {
	return timestamppb.New(t0.Add(time.Duration(sec) * time.Second))
}

// supervisorLog is what a supervisor publishes: events, as log lines among
// its own messages.
func supervisorLog(events ...*planpb.Event) string {
	var b bytes.Buffer
	b.WriteString("pod-runner supervise: starting\n")
	p := sidecar.NewPublisher(&b)
	for _, e := range events {
		p.Report(e)
	}
	return b.String()
}

func taskEvent(name string, start int, cond *planpb.Condition, end int) *planpb.Event {
	st := &planpb.TaskStatus{Name: name, StartTime: ts(start), Condition: cond}
	if end > 0 {
		st.CompletionTime = ts(end)
		st.Steps = []*planpb.StepState{{Name: "say", Terminated: true, Reason: "Completed", StartedAt: ts(start), FinishedAt: ts(end)}}
	}
	return &planpb.Event{Time: ts(start), Kind: &planpb.Event_Task{Task: st}}
}

var (
	running   = &planpb.Condition{Status: "Unknown", Reason: "Running"}
	succeeded = &planpb.Condition{Status: "True", Reason: "Succeeded"}
)

func TestStatusFromSupervisorLog(t *testing.T) {
	e := newEnv(t, append(defs(t), run("r2", goodSpec, true))...)
	e.reconcile("r2")

	// The first task is running.
	e.logs["r2"] = supervisorLog(
		&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r2", StartTime: ts(1), Condition: running}}},
		taskEvent("first", 2, running, 0))
	e.setSupervisor("r2", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	if res := e.reconcile("r2"); res.RequeueAfter == 0 {
		t.Error("running run not polled")
	}
	trs := e.taskRuns()
	if len(trs) != 1 {
		t.Fatalf("TaskRuns %v, want the started task's only", keys(trs))
	}
	pr := e.pr("r2")
	first, ok := trs["r2-first"]
	if !ok {
		t.Fatalf("no TaskRun r2-first: %v", keys(trs))
	}
	if first.Status.PodName != "r2" || first.Spec.ManagedBy == nil || *first.Spec.ManagedBy != ManagedBy || !isOwnerNotController(&first, pr) {
		t.Errorf("TaskRun podName %q managedBy %v owners %+v", first.Status.PodName, first.Spec.ManagedBy, first.OwnerReferences)
	}
	for k, v := range map[string]string{pipeline.PipelineRunLabelKey: "r2", pipeline.PipelineTaskLabelKey: "first", pipeline.PipelineLabelKey: "build", pipeline.TaskLabelKey: "echo"} {
		if first.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, first.Labels[k], v)
		}
	}
	if c := first.Status.GetCondition("Succeeded"); c == nil || c.Status != corev1.ConditionUnknown {
		t.Errorf("first condition %+v, want Unknown", c)
	}
	if c := pr.Status.GetCondition("Succeeded"); c == nil || c.Status != corev1.ConditionUnknown || c.Reason != "Running" {
		t.Errorf("run condition %+v, want Unknown/Running", c)
	}
	if pr.Status.StartTime == nil || !pr.Status.StartTime.Time.Equal(t0) {
		t.Errorf("startTime %v changed from the first reconcile's %v", pr.Status.StartTime, t0)
	}
	if len(pr.Status.ChildReferences) != 1 || pr.Status.ChildReferences[0].Name != "r2-first" || pr.Status.PipelineSpec == nil {
		t.Errorf("childReferences %+v, pipelineSpec %v", pr.Status.ChildReferences, pr.Status.PipelineSpec != nil)
	}

	// Both tasks ended, the run succeeded; the supervisor exited.
	e.logs["r2"] = supervisorLog(
		&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r2", StartTime: ts(1), Condition: running}}},
		taskEvent("first", 2, running, 0),
		taskEvent("first", 2, succeeded, 3),
		taskEvent("second", 4, succeeded, 5),
		&planpb.Event{Time: ts(6), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r2", StartTime: ts(1), CompletionTime: ts(6),
			Condition: &planpb.Condition{Status: "True", Reason: "Succeeded", Message: "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"},
			Tasks:     []*planpb.TaskStatus{taskEvent("first", 2, succeeded, 3).GetTask(), taskEvent("second", 4, succeeded, 5).GetTask()}}}})
	e.setSupervisor("r2", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}, corev1.PodSucceeded)
	if res := e.reconcile("r2"); res != (ctrl.Result{}) {
		t.Errorf("result %+v: a finished run is not polled", res)
	}
	pr = e.pr("r2")
	if c := pr.Status.GetCondition("Succeeded"); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "Succeeded" {
		t.Errorf("run condition %+v, want True/Succeeded", c)
	}
	if pr.Status.CompletionTime == nil || !pr.Status.CompletionTime.Time.Equal(ts(6).AsTime()) {
		t.Errorf("completionTime %v", pr.Status.CompletionTime)
	}
	trs = e.taskRuns()
	if len(trs) != 2 || len(pr.Status.ChildReferences) != 2 {
		t.Fatalf("TaskRuns %v, childReferences %+v: want both", keys(trs), pr.Status.ChildReferences)
	}
	for name, tr := range trs {
		if c := tr.Status.GetCondition("Succeeded"); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("%s condition %+v", name, c)
		}
		if tr.Status.PodName != "r2" || len(tr.Status.Steps) != 1 || tr.Status.Steps[0].Container == "" || tr.Status.Steps[0].Terminated == nil {
			t.Errorf("%s podName %q steps %+v", name, tr.Status.PodName, tr.Status.Steps)
		}
	}
	if n := len(e.pods()); n != 1 {
		t.Errorf("%d pods", n)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCancel(t *testing.T) {
	t.Run("running pod gets a passed deadline", func(t *testing.T) {
		e := newEnv(t, append(defs(t), run("c1", goodSpec, true))...)
		e.reconcile("c1")
		e.logs["c1"] = supervisorLog(taskEvent("first", 2, running, 0))
		e.setSupervisor("c1", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
		pr := e.pr("c1")
		pr.Spec.Status = v1.PipelineRunSpecStatusCancelled
		if err := e.c.Update(context.Background(), pr); err != nil {
			t.Fatal(err)
		}
		e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(30 * time.Second))
		e.reconcile("c1")
		pods := e.pods()
		if len(pods) != 1 || pods[0].Spec.ActiveDeadlineSeconds == nil || *pods[0].Spec.ActiveDeadlineSeconds != 30 {
			t.Fatalf("pods %d, activeDeadlineSeconds %v: want the pod kept, deadline 30", len(pods), pods[0].Spec.ActiveDeadlineSeconds)
		}
		// The kubelet stopped it; the supervisor published no final status.
		e.setSupervisor("c1", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137}}, corev1.PodFailed)
		if res := e.reconcile("c1"); res != (ctrl.Result{}) {
			t.Errorf("result %+v", res)
		}
		c := e.pr("c1").Status.GetCondition("Succeeded")
		if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "Cancelled" || c.Message != `PipelineRun "c1" was cancelled` {
			t.Errorf("condition %+v, want False/Cancelled", c)
		}
	})
	t.Run("before the pod exists", func(t *testing.T) {
		pr := run("c2", goodSpec+"  status: Cancelled\n", true)
		e := newEnv(t, append(defs(t), pr)...)
		e.reconcile("c2")
		if n := len(e.pods()); n != 0 {
			t.Errorf("%d pods for a run cancelled before it started", n)
		}
		if c := e.pr("c2").Status.GetCondition("Succeeded"); c == nil || c.Reason != "Cancelled" || c.Status != corev1.ConditionFalse {
			t.Errorf("condition %+v", c)
		}
	})
	t.Run("pod not started is deleted", func(t *testing.T) {
		e := newEnv(t, append(defs(t), run("c3", goodSpec, true))...)
		e.reconcile("c3")
		pr := e.pr("c3")
		pr.Spec.Status = v1.PipelineRunSpecStatusCancelled
		if err := e.c.Update(context.Background(), pr); err != nil {
			t.Fatal(err)
		}
		e.reconcile("c3")
		if n := len(e.pods()); n != 0 {
			t.Errorf("%d pods: a pending pod of a cancelled run is deleted", n)
		}
	})
}

// TestConflictRequeues: a status write that loses a race to another writer
// (a stale cached read) is read again, not reported as an error.
func TestConflictRequeues(t *testing.T) {
	pr := run("r1", goodSpec, true)
	e := newEnv(t, append(defs(t), pr)...)
	conflicts := 0
	e.r.Client = interceptor.NewClient(e.c.(client.WithWatch), interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if _, ok := obj.(*v1.PipelineRun); ok && conflicts == 0 {
				conflicts++
				return apierrors.NewConflict(schema.GroupResource{Group: "tekton.dev", Resource: "pipelineruns"}, obj.GetName(), errors.New("the object has been modified"))
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
	res := e.reconcile("r1")
	if conflicts != 1 || res.RequeueAfter != conflictRetry {
		t.Fatalf("conflicts %d, result %+v: want one conflict, requeued", conflicts, res)
	}
	e.reconcile("r1")
	if c := e.pr("r1").Status.GetCondition("Succeeded"); c == nil || c.Reason != string(v1.PipelineRunReasonStarted) {
		t.Errorf("after the requeue the condition is %+v", c)
	}
	if n := len(e.pods()); n != 1 {
		t.Errorf("%d pods, want 1", n)
	}
}

// TestKeepsWhatTheRunCompiledTo: a Task deleted after the run's Pod was
// made does not fail the running run (Tekton keeps the spec it resolved
// first). (A restarted controller resolves again: known gap, it could read
// the spec back from the run's status as Tekton's GetPipelineFunc does.)
func TestKeepsWhatTheRunCompiledTo(t *testing.T) {
	e := newEnv(t, append(defs(t), run("r1", goodSpec, true))...)
	e.reconcile("r1")
	if err := e.c.Delete(context.Background(), mustDecode[v1.Task](t, taskYAML)); err != nil {
		t.Fatal(err)
	}
	e.reconcile("r1")
	if c := e.pr("r1").Status.GetCondition("Succeeded"); c == nil || !c.IsUnknown() {
		t.Fatalf("condition %+v, want the run still going", c)
	}
}

// TestNotDoneBeforeTheSupervisorIsDone: the supervisor publishes a run's
// final condition (here a timeout) a moment before its tasks' last states
// and its completion time; until those come, the run must not look done,
// or nothing would write its TaskRuns' end.
func TestNotDoneBeforeTheSupervisorIsDone(t *testing.T) {
	e := newEnv(t, append(defs(t), run("r3", goodSpec, true))...)
	e.reconcile("r3")
	timedOut := &planpb.Condition{Status: "False", Reason: "PipelineRunTimeout", Message: `PipelineRun "r3" failed to finish within "8s"`}
	started := &planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r3", StartTime: ts(1), Condition: running}}}
	interim := &planpb.Event{Time: ts(9), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r3", StartTime: ts(1), Condition: timedOut}}}
	e.logs["r3"] = supervisorLog(started, taskEvent("first", 2, running, 0), interim)
	e.setSupervisor("r3", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	e.reconcile("r3")
	if c := e.pr("r3").Status.GetCondition("Succeeded"); c == nil || !c.IsUnknown() {
		t.Fatalf("condition %+v before the supervisor's completion, want Unknown", c)
	}

	cancelled := &planpb.Condition{Status: "False", Reason: "TaskRunCancelled"}
	final := &planpb.Event{Time: ts(9), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r3", StartTime: ts(1), CompletionTime: ts(9), Condition: timedOut,
		Tasks: []*planpb.TaskStatus{{Name: "first", StartTime: ts(2), CompletionTime: ts(9), Condition: cancelled}}}}}
	e.logs["r3"] = supervisorLog(started, taskEvent("first", 2, running, 0), interim, taskEvent("first", 2, cancelled, 9), final)
	e.reconcile("r3")
	// The run went faster than the kubelet's first report of its step
	// containers: not done until their containerIDs are known.
	if c := e.pr("r3").Status.GetCondition("Succeeded"); c == nil || !c.IsUnknown() {
		t.Errorf("condition %+v before the kubelet reported the step's container, want Unknown", c)
	}
	pod := &corev1.Pod{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "r3"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: podlayout.StepContainer("first", "say"),
		ContainerID: "containerd://say", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	if err := e.c.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	e.reconcile("r3")
	if c := e.pr("r3").Status.GetCondition("Succeeded"); c == nil || c.Reason != "PipelineRunTimeout" {
		t.Errorf("condition %+v after completion, want PipelineRunTimeout", c)
	}
	tr := e.taskRuns()["r3-first"]
	if c := tr.Status.GetCondition("Succeeded"); c == nil || c.Reason != "TaskRunCancelled" {
		t.Errorf("TaskRun condition %+v, want TaskRunCancelled", c)
	}
	if s := tr.Status.Steps; len(s) != 1 || s[0].Terminated == nil || s[0].Terminated.ContainerID != "containerd://say" {
		t.Errorf("TaskRun steps %+v, want the container's ID", s)
	}
}

// TestCompilesWithTheClustersTektonConfig: the feature-flags and
// config-defaults ConfigMaps in Tekton's namespace are the configuration a
// run is defaulted, validated and reported (provenance) with, as Tekton's
// controller would there.
func TestCompilesWithTheClustersTektonConfig(t *testing.T) {
	flags := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: DefaultTektonNamespace, Name: "feature-flags"},
		Data: map[string]string{"coschedule": "disabled"}}
	defaults := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: DefaultTektonNamespace, Name: "config-defaults"},
		Data: map[string]string{"default-timeout-minutes": "7"}}
	e := newEnv(t, append(defs(t), run("r4", goodSpec, true), flags, defaults)...)
	e.reconcile("r4")
	c := e.r.compiled.get(e.pr("r4"))
	if c == nil {
		t.Fatal("nothing compiled")
	}
	if got := c.PipelineRun.Spec.Timeouts.Pipeline.Duration; got != 7*time.Minute {
		t.Errorf("timeouts.pipeline %s, want config-defaults' 7m", got)
	}
	e.logs["r4"] = supervisorLog(&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r4", StartTime: ts(1), Condition: running}}})
	e.setSupervisor("r4", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	e.reconcile("r4")
	if p := e.pr("r4").Status.Provenance; p == nil || p.FeatureFlags == nil || p.FeatureFlags.Coschedule != "disabled" {
		t.Errorf("provenance %+v, want the cluster's coschedule: disabled", p)
	}

	// Without the ConfigMaps (Tekton's CRDs only): a fresh install's.
	e = newEnv(t, append(defs(t), run("r5", goodSpec, true))...)
	e.reconcile("r5")
	if got := e.r.compiled.get(e.pr("r5")).PipelineRun.Spec.Timeouts.Pipeline.Duration; got != time.Hour {
		t.Errorf("timeouts.pipeline %s, want Tekton's 1h", got)
	}
}
