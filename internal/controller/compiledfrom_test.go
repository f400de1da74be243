package controller

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestRecordRoundTrip: what a run was compiled from, put on its Pod and
// read back, is the same documents and configuration.
func TestRecordRoundTrip(t *testing.T) {
	task := mustDecode[v1.Task](t, taskYAML)
	docs := []load.Doc{doc(load.KindPipelineRun, "r", run("r", goodSpec, true)), doc(load.KindTask, "echo", task)}
	answers := []recordedAnswer{{Name: "git-0123", Content: []byte("kind: Task"), Source: &v1.RefSource{URI: "git://x"}}}
	rec, err := newCompiledFrom(docs, answers, map[string]string{"enable-api-fields": "alpha"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := rec.annotate(pod); err != nil {
		t.Fatal(err)
	}
	back, ok, err := compiledFromPod(pod)
	if err != nil || !ok {
		t.Fatalf("compiledFromPod: %v, %v", ok, err)
	}
	if back.FeatureFlags["enable-api-fields"] != "alpha" {
		t.Errorf("feature flags %v", back.FeatureFlags)
	}
	if len(back.Answers) != 1 || string(back.Answers[0].Content) != "kind: Task" || back.Answers[0].Source.URI != "git://x" {
		t.Errorf("answers %+v", back.Answers)
	}
	got, err := back.documents(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Kind != load.KindTask || got[1].Object.(*v1.Task).Spec.Steps[0].Script != task.Spec.Steps[0].Script {
		t.Errorf("documents %+v", got)
	}
	if _, ok, err := compiledFromPod(&corev1.Pod{}); ok || err != nil {
		t.Errorf("a Pod without a record: %v, %v", ok, err)
	}

	// Too large for an annotation: refused with a clear message.
	big := task.DeepCopy()
	big.Spec.Steps[0].Script = randomText(maxRecord * 2)
	rec, err = newCompiledFrom([]load.Doc{doc(load.KindTask, "echo", big)}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.annotate(&corev1.Pod{}); err == nil || !strings.Contains(err.Error(), "too large for one Pod") {
		t.Errorf("a huge record: %v", err)
	}
}

// randomText is n bytes gzip cannot shrink much.
func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[x%uint32(len(alphabet))]
	}
	return string(b)
}

// TestRestartCompilesFromThePod: a controller restarted mid-run, after the
// run's Task was edited and its Pipeline deleted, compiles the run from what
// its Pod records and takes the Plan from the Pod: the run goes on as it
// began.
func TestRestartCompilesFromThePod(t *testing.T) {
	e := newEnv(t, append(defs(t), run("r3", goodSpec, true))...)
	e.reconcile("r3")
	pods := e.pods()
	if len(pods) != 1 {
		t.Fatalf("%d pods", len(pods))
	}
	if _, ok := pods[0].Annotations[RecordAnnotation]; !ok {
		t.Fatalf("the Pod has no %s", RecordAnnotation)
	}
	podPlan, err := planOf(&pods[0])
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	task := &v1.Task{}
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "echo"}, task); err != nil {
		t.Fatal(err)
	}
	task.Spec.Steps[0].Script = "echo EDITED"
	if err := e.c.Update(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(ctx, &v1.Pipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "build"}}); err != nil {
		t.Fatal(err)
	}

	e.r = e.reconciler()
	e.logs["r3"] = supervisorLog(
		&planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r3", StartTime: ts(1), Condition: running}}},
		taskEvent("first", 2, running, 0))
	e.setSupervisor("r3", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
	e.reconcile("r3")
	pr := e.pr("r3")
	if c := pr.Status.GetCondition("Succeeded"); c == nil || c.Status != corev1.ConditionUnknown {
		t.Fatalf("after the restart the run is %+v, want it running", c)
	}
	first, ok := e.taskRuns()["r3-first"]
	if !ok {
		t.Fatal("no TaskRun r3-first")
	}
	if spec := first.Status.TaskSpec; spec == nil || strings.Contains(spec.Steps[0].Script, "EDITED") {
		t.Errorf("r3-first's taskSpec %+v: want the Task as it was when the run began", spec)
	}
	if cc := e.r.compiled.get(pr); cc == nil || !proto.Equal(cc.Plan, podPlan) {
		t.Errorf("the restarted controller's Plan is not the Pod's")
	}
}
