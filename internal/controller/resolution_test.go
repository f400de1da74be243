package controller

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/proto/planpb"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	resolutionv1beta1 "github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	"github.com/tektoncd/pipeline/pkg/resolution/common"
	resolutionresource "github.com/tektoncd/pipeline/pkg/resolution/resource"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// remoteSpec is a run whose Pipeline comes from git and whose Pipeline's
// one Task comes from a bundle.
const remoteSpec = `  pipelineRef:
    resolver: git
    params: [{name: url, value: "git://127.0.0.1/repo"}, {name: pathInRepo, value: pipeline.yaml}]
`

const remotePipeline = `apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: from-git}
spec:
  tasks:
  - name: hello
    taskRef:
      resolver: bundles
      params: [{name: bundle, value: "127.0.0.1:5000/tasks:v1"}, {name: name, value: hello}, {name: kind, value: task}]
`

const remoteTask = `apiVersion: tekton.dev/v1
kind: Task
metadata: {name: hello}
spec:
  steps: [{name: say, image: busybox, script: echo hello}]
`

func (e *env) resolutionRequests() []resolutionv1beta1.ResolutionRequest {
	e.t.Helper()
	l := &resolutionv1beta1.ResolutionRequestList{}
	if err := e.c.List(context.Background(), l, client.InNamespace(ns)); err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

// answer completes the ResolutionRequest as a resolver does: Succeeded
// with the data (base64) and where it came from, or failed with msg.
// A resolver writes the data alone: Tekton's controller marks the request
// Succeeded once it sees it (marked).
func (e *env) answer(rr *resolutionv1beta1.ResolutionRequest, data, failure string, marked bool) {
	e.t.Helper()
	rr = rr.DeepCopy()
	if failure != "" {
		rr.Status.Conditions = duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse, Reason: "ResolutionFailed", Message: failure}}
	} else {
		if marked {
			rr.Status.Conditions = duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue}}
		}
		rr.Status.Data = base64.StdEncoding.EncodeToString([]byte(data))
		rr.Status.RefSource = &v1.RefSource{URI: "git+" + rr.Labels[common.LabelKeyResolverType] + "://answer", Digest: map[string]string{"sha1": "abc"}}
	}
	if err := e.c.Update(context.Background(), rr); err != nil {
		e.t.Fatal(err)
	}
}

func runCondition(pr *v1.PipelineRun) *apis.Condition {
	return pr.Status.GetCondition(apis.ConditionSucceeded)
}

// TestResolvesThroughResolutionRequests: a delegated run's remote refs
// become ResolutionRequests as Tekton's controller makes them (its
// deterministic name, resolver label, params), owned by the run but not
// controlled by it; the run waits, Running with Tekton's reasons, and gets
// its Pod once every answer is in; its status records where the Pipeline
// and Task came from; a restarted controller uses the answers on the Pod.
func TestResolvesThroughResolutionRequests(t *testing.T) {
	pr := run("remote", remoteSpec, true)
	e := newEnv(t, pr)

	res := e.reconcile("remote")
	rrs := e.resolutionRequests()
	if len(rrs) != 1 || len(e.pods()) != 0 {
		t.Fatalf("%d ResolutionRequests, %d pods after the first reconcile, want 1 and 0", len(rrs), len(e.pods()))
	}
	rr := rrs[0]
	wantName, _, err := resolutionresource.GetNameAndNamespace("git", pr, "", "", &resolutionv1beta1.ResolutionRequestSpec{Params: pr.Spec.PipelineRef.Params})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Name != wantName || rr.Labels[common.LabelKeyResolverType] != "git" || len(rr.Spec.Params) != 2 {
		t.Errorf("ResolutionRequest %s labels %v params %v, want Tekton's %s labelled git", rr.Name, rr.Labels, rr.Spec.Params, wantName)
	}
	if !isOwnerNotController(&rr, e.pr("remote")) {
		t.Errorf("ResolutionRequest owners %+v: want the run, not as controller", rr.OwnerReferences)
	}
	c := runCondition(e.pr("remote"))
	if c == nil || !c.IsUnknown() || c.Reason != v1.PipelineRunReasonResolvingPipelineRef.String() || c.Message != "PipelineRun ci/remote awaiting remote resource" {
		t.Errorf("condition %+v, want Unknown/ResolvingPipelineRef with Tekton's message", c)
	}
	if res.RequeueAfter == 0 {
		t.Errorf("a resolving run is not looked at again: %+v", res)
	}
	// Reconciling again asks nothing twice.
	e.reconcile("remote")
	if n := len(e.resolutionRequests()); n != 1 {
		t.Errorf("%d ResolutionRequests after a second reconcile, want 1", n)
	}

	e.answer(&rr, remotePipeline, "", true)
	e.reconcile("remote")
	if c := runCondition(e.pr("remote")); c.Reason != v1.TaskRunReasonResolvingTaskRef {
		t.Errorf("condition %+v, want ResolvingTaskRef", c)
	}
	var taskRR *resolutionv1beta1.ResolutionRequest
	for _, r := range e.resolutionRequests() {
		if r.Labels[common.LabelKeyResolverType] == "bundles" {
			taskRR = &r
		}
	}
	if taskRR == nil || len(e.pods()) != 0 {
		t.Fatalf("no bundles ResolutionRequest (%d pods)", len(e.pods()))
	}
	e.answer(taskRR, remoteTask, "", false)
	e.reconcile("remote")
	pods := e.pods()
	if len(pods) != 1 {
		t.Fatalf("%d pods once every answer is in, want 1", len(pods))
	}
	e.logs["remote"] = supervisorLog(
		&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "remote", StartTime: ts(1), Condition: running}}},
		taskEvent("hello", 2, running, 0))
	e.setSupervisor("remote", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	e.reconcile("remote")
	tr, ok := e.taskRuns()["remote-hello"]
	if !ok {
		t.Fatalf("no TaskRun remote-hello: %v", keys(e.taskRuns()))
	}
	if tr.Spec.TaskRef == nil || tr.Spec.TaskRef.Resolver != "bundles" || tr.Status.TaskSpec == nil || tr.Status.TaskSpec.Steps[0].Script != "echo hello" {
		t.Errorf("TaskRun spec.taskRef %+v status.taskSpec %+v, want the bundles ref and the resolved Task", tr.Spec.TaskRef, tr.Status.TaskSpec)
	}
	if p := tr.Status.Provenance; p == nil || p.RefSource == nil || p.RefSource.URI != "git+bundles://answer" {
		t.Errorf("TaskRun status.provenance %+v, want the bundles resolver's refSource", p)
	}
	got := e.pr("remote")
	if got.Status.Provenance == nil || got.Status.Provenance.RefSource == nil || got.Status.Provenance.RefSource.URI != "git+git://answer" {
		t.Errorf("status.provenance %+v, want the git resolver's refSource", got.Status.Provenance)
	}
	if got.Status.PipelineSpec == nil || got.Status.PipelineSpec.Tasks[0].Name != "hello" {
		t.Errorf("status.pipelineSpec %+v, want the resolved Pipeline's", got.Status.PipelineSpec)
	}
	if got.Labels[pipelineLabel] != "from-git" {
		t.Errorf("labels %v, want %s=from-git (the resolved Pipeline's name)", got.Labels, pipelineLabel)
	}

	// A restarted controller, the requests gone, compiles from the Pod.
	for _, r := range e.resolutionRequests() {
		if err := e.c.Delete(context.Background(), &r); err != nil {
			t.Fatal(err)
		}
	}
	e.r = e.reconciler()
	e.reconcile("remote")
	if n := len(e.resolutionRequests()); n != 0 {
		t.Errorf("a restarted controller asked the resolvers again: %d requests", n)
	}
	if c := runCondition(e.pr("remote")); c.IsFalse() {
		t.Errorf("after a restart the run failed: %+v", c)
	}
}

const pipelineLabel = "tekton.dev/pipeline"

// TestResolutionFailures: a resolver's failure ends the run with Tekton's
// reason and the resolver's message; a resolver that never answers ends it
// at its timeout (PipelineRunTimeout); a run cancelled while it waits ends
// cancelled. None gets a Pod.
func TestResolutionFailures(t *testing.T) {
	taskRef := `  pipelineSpec:
    tasks:
    - name: t
      taskRef: {resolver: http, params: [{name: url, value: "http://127.0.0.1/task.yaml"}]}
`
	for _, tc := range []struct {
		name, spec, failure string
		later               time.Duration
		cancel              bool
		reason, message     string
	}{
		{name: "pipeline", spec: remoteSpec, failure: "git clone: no such repository",
			reason: v1.PipelineRunReasonCouldntGetPipeline.String(), message: "Error retrieving pipeline for pipelinerun ci/pipeline: resolver failed to get Pipeline : error requesting remote resource: git clone: no such repository"},
		{name: "task", spec: taskRef, failure: "404 Not Found",
			reason: v1.PipelineRunReasonCouldntGetTask.String(), message: "Pipeline ci/task can't be Run; it contains Tasks that don't exist: Couldn't retrieve Task \"resolver type http\\nurl = http://127.0.0.1/task.yaml\\n\": error requesting remote resource: 404 Not Found"},
		{name: "never", spec: remoteSpec + "  timeouts: {pipeline: 30s}\n", later: 31 * time.Second,
			reason: v1.PipelineRunReasonTimedOut.String(), message: `PipelineRun "never" failed to finish within "30s"`},
		{name: "cancelled", spec: remoteSpec, cancel: true,
			reason: v1.PipelineRunReasonCancelled.String(), message: `PipelineRun "cancelled" was cancelled`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, run(tc.name, tc.spec, true))
			e.reconcile(tc.name)
			rrs := e.resolutionRequests()
			if len(rrs) != 1 {
				t.Fatalf("%d ResolutionRequests, want 1", len(rrs))
			}
			switch {
			case tc.failure != "":
				e.answer(&rrs[0], "", tc.failure, false)
			case tc.later > 0:
				e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(tc.later))
			case tc.cancel:
				pr := e.pr(tc.name)
				pr.Spec.Status = v1.PipelineRunSpecStatusCancelled
				if err := e.c.Update(context.Background(), pr); err != nil {
					t.Fatal(err)
				}
			}
			e.reconcile(tc.name)
			got := e.pr(tc.name)
			c := runCondition(got)
			// Tekton's messages, whole: the reconciler's words around the
			// resolver's (those of Tekton's code compile calls).
			if c == nil || !c.IsFalse() || c.Reason != tc.reason || c.Message != tc.message {
				t.Errorf("condition %+v, want False/%s with %q", c, tc.reason, tc.message)
			}
			if got.Status.CompletionTime == nil {
				t.Error("no completionTime")
			}
			if n := len(e.pods()); n != 0 {
				t.Errorf("%d pods", n)
			}
		})
	}
}

// TestCustomRunGroupResolves: a PodPipeline group's remote Task is asked
// for through a ResolutionRequest the CustomRun owns (not as controller);
// the CustomRun is Running with Tekton's reason meanwhile, runs its one Pod
// once answered; a group whose resolver never answers times out as a
// CustomRun does.
func TestCustomRunGroupResolves(t *testing.T) {
	spec := `
      pipelineSpec:
        tasks:
        - name: hello
          taskRef: {resolver: bundles, params: [{name: bundle, value: "127.0.0.1:5000/t:v1"}, {name: name, value: hello}, {name: kind, value: task}]}
`
	run := customRun("grp", spec, "")
	e := newCustomRunEnv(t, run)
	e.reconcileCR("grp")
	rrs := e.resolutionRequests()
	if len(rrs) != 1 || len(e.pods()) != 0 {
		t.Fatalf("%d ResolutionRequests, %d pods: want 1 and none", len(rrs), len(e.pods()))
	}
	refs := rrs[0].OwnerReferences
	if len(refs) != 1 || refs[0].UID != run.UID || refs[0].Kind != "CustomRun" || (refs[0].Controller != nil && *refs[0].Controller) {
		t.Errorf("owners %+v: want the CustomRun, not as controller", refs)
	}
	if c := condition(t, e.run("grp")); !c.IsUnknown() || c.Reason != v1.TaskRunReasonResolvingTaskRef {
		t.Errorf("condition %+v, want Unknown/ResolvingTaskRef", c)
	}
	lastTransition := condition(t, e.run("grp")).LastTransitionTime
	e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(time.Second))
	e.reconcileCR("grp")
	if c := condition(t, e.run("grp")); c.LastTransitionTime != lastTransition {
		t.Errorf("a second reconcile rewrote the waiting condition: %v → %v", lastTransition, c.LastTransitionTime)
	}

	e.answer(&rrs[0], remoteTask, "", true)
	e.reconcileCR("grp")
	if n := len(e.pods()); n != 1 {
		t.Fatalf("%d pods once answered, want 1", n)
	}

	// Another group whose request nobody answers, past its timeout.
	late := customRun("late", spec, "")
	if err := e.c.Create(context.Background(), late); err != nil {
		t.Fatal(err)
	}
	e.reconcileCR("late")
	e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(2 * time.Hour))
	e.reconcileCR("late")
	if c := condition(t, e.run("late")); !c.IsFalse() || c.Reason != v1beta1.CustomRunReasonTimedOut.String() || !strings.Contains(c.Message, `CustomRun "late" failed to finish within "1h0m0s"`) {
		t.Errorf("condition %+v, want False/CustomRunTimedOut with Tekton's message", c)
	}
}

// TestResolutionAPIErrorsAreRetried: the API server failing a
// ResolutionRequest's creation is no fault of the run: the reconcile fails
// (and is retried), the run goes on waiting.
func TestResolutionAPIErrorsAreRetried(t *testing.T) {
	e := newEnv(t, run("flaky", remoteSpec, true))
	e.c = interceptor.NewClient(e.c.(client.WithWatch), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*resolutionv1beta1.ResolutionRequest); ok {
				return apierrors.NewTooManyRequests("slow down", 1)
			}
			return c.Create(ctx, obj, opts...)
		}})
	e.r = e.reconciler()
	if _, err := e.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "flaky"}}); err == nil || !strings.Contains(err.Error(), "slow down") {
		t.Errorf("reconcile error %v, want the API server's", err)
	}
	if c := runCondition(e.pr("flaky")); c != nil && c.IsFalse() {
		t.Errorf("the run failed for the API server's error: %+v", c)
	}
}

// TestStaleResolutionRequest: a request left by an earlier run of the same
// name (another UID) is not this run's answer: the run waits for it to go.
func TestStaleResolutionRequest(t *testing.T) {
	pr := run("again", remoteSpec, true)
	name, _, err := resolutionresource.GetNameAndNamespace("git", pr, "", "", &resolutionv1beta1.ResolutionRequestSpec{Params: pr.Spec.PipelineRef.Params})
	if err != nil {
		t.Fatal(err)
	}
	stale := &resolutionv1beta1.ResolutionRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: "PipelineRun", Name: "again", UID: "uid-earlier"}}},
		Status:     resolutionv1beta1.ResolutionRequestStatus{Status: duckv1.Status{Conditions: duckv1.Conditions{{Type: apis.ConditionSucceeded, Status: corev1.ConditionFalse, Message: "the earlier run's failure"}}}},
	}
	e := newEnv(t, pr, stale)
	e.reconcile("again")
	if c := runCondition(e.pr("again")); c == nil || !c.IsUnknown() || c.Reason != v1.PipelineRunReasonResolvingPipelineRef.String() {
		t.Errorf("condition %+v, want the run waiting (ResolvingPipelineRef)", c)
	}
}

// TestCancelledBeforeResolving: a run cancelled before anything was made
// of it asks no resolver (Tekton cancels before it resolves).
func TestCancelledBeforeResolving(t *testing.T) {
	pr := run("early", remoteSpec, true)
	pr.Spec.Status = v1.PipelineRunSpecStatusCancelled
	e := newEnv(t, pr)
	e.reconcile("early")
	if c := runCondition(e.pr("early")); c == nil || c.Reason != v1.PipelineRunReasonCancelled.String() {
		t.Errorf("condition %+v, want Cancelled", c)
	}
	if n := len(e.resolutionRequests()); n != 0 {
		t.Errorf("%d ResolutionRequests for a cancelled run", n)
	}
}
