package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/reconciler/events/k8sevent"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"knative.dev/pkg/apis"
	"knative.dev/pkg/controller"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// drain is what a fake recorder received, in order.
// kindRecorder records each Event as "Kind name: type reason note".
type kindRecorder struct{ events chan string }

func (k kindRecorder) Eventf(regarding, _ runtime.Object, eventtype, reason, _, note string, args ...any) {
	m, _ := meta.Accessor(regarding)
	kind := fmt.Sprintf("%T", regarding)
	kind = kind[strings.LastIndex(kind, ".")+1:]
	k.events <- fmt.Sprintf("%s %s: %s %s %s", kind, m.GetName(), eventtype, reason, fmt.Sprintf(note, args...))
}

// of keeps the events of kind.
func of(kind string, evs []string) []string {
	var out []string
	for _, e := range evs {
		if rest, ok := strings.CutPrefix(e, kind+" "); ok {
			out = append(out, rest[strings.Index(rest, ": ")+2:])
		}
	}
	return out
}

func drain(ch chan string) []string {
	var out []string
	for {
		select {
		case s := <-ch:
			out = append(out, s)
		default:
			return out
		}
	}
}

func cond(status corev1.ConditionStatus, reason, msg string) *apis.Condition {
	return &apis.Condition{Type: apis.ConditionSucceeded, Status: status, Reason: reason, Message: msg}
}

// TestEmitMatchesTekton: Tekton's own EmitK8sEvents is the oracle for
// which Event each condition change gives.
func TestEmitMatchesTekton(t *testing.T) {
	started := cond(corev1.ConditionUnknown, "Started", "")
	running := cond(corev1.ConditionUnknown, "Running", "Tasks Completed: 0 (Failed: 0, Cancelled 0), Skipped: 0")
	running1 := cond(corev1.ConditionUnknown, "Running", "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 0")
	cases := []struct {
		name          string
		before, after *apis.Condition
		want          string // "" when no Event
	}{
		{"first condition", nil, started, "Normal Started "},
		{"first condition already running", nil, running, "Normal Started "},
		{"started to running", started, running, "Normal Running " + running.Message},
		{"a task completed", running, running1, "Normal Running " + running1.Message},
		{"unchanged", running, running, ""},
		{"no condition", nil, nil, ""},
		{"succeeded", running, cond(corev1.ConditionTrue, "Succeeded", "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"), "Normal Succeeded Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"},
		{"completed with skips", running, cond(corev1.ConditionTrue, "Completed", "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 1"), "Normal Succeeded Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 1"},
		{"failed", running, cond(corev1.ConditionFalse, "Failed", "Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 0"), "Warning Failed Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 0"},
		{"cancelled", running, cond(corev1.ConditionFalse, "Cancelled", `PipelineRun "r" was cancelled`), `Warning Failed PipelineRun "r" was cancelled`},
		{"invalid", started, cond(corev1.ConditionFalse, "CouldntGetPipeline", "pipeline missing not found"), "Warning Failed pipeline missing not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr := run("r", goodSpec, true)
			ours := events.NewFakeRecorder(4)
			emit(ours, tc.before, tc.after, pr)
			tekton := record.NewFakeRecorder(4)
			k8sevent.EmitK8sEvents(controller.WithEventRecorder(context.Background(), tekton), tc.before, tc.after, pr)
			got, oracle := drain(ours.Events), drain(tekton.Events)
			if strings.Join(got, "\n") != strings.Join(oracle, "\n") {
				t.Errorf("events %q, Tekton emits %q", got, oracle)
			}
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("events %q, want %q", got, want)
			}
		})
	}
}

func TestEmitTruncatesLongNotes(t *testing.T) {
	rec := events.NewFakeRecorder(1)
	emit(rec, nil, cond(corev1.ConditionFalse, "Failed", strings.Repeat("x", 5000)), run("r", goodSpec, true))
	got := drain(rec.Events)
	if len(got) != 1 || !strings.HasSuffix(got[0], "...") || len(strings.TrimPrefix(got[0], "Warning Failed ")) != maxNote {
		t.Errorf("events %q: want one note of %d bytes", got, maxNote)
	}
}

// TestRunEvents follows runs through the reconciler: the Events a user
// sees in `kubectl describe pipelinerun`.
func TestRunEvents(t *testing.T) {
	t.Run("invalid run", func(t *testing.T) {
		e := newEnv(t, append(defs(t), run("bad", "  pipelineRef: {name: missing}\n", true))...)
		rec := events.NewFakeRecorder(8)
		e.r.Recorder, e.r.Metrics = rec, NewMetrics()
		e.reconcile("bad")
		e.reconcile("bad")
		got := drain(rec.Events)
		if len(got) != 2 || got[0] != "Normal Started " || !strings.HasPrefix(got[1], "Warning Failed ") || !strings.Contains(got[1], "missing") {
			t.Errorf("events %q, want Started then Failed with the reason's message, once", got)
		}
	})
	t.Run("successful run", func(t *testing.T) {
		e := newEnv(t, append(defs(t), run("ok", goodSpec, true))...)
		rec := kindRecorder{events: make(chan string, 16)}
		e.r.Recorder, e.r.Metrics = rec, NewMetrics()
		e.reconcile("ok")
		if got := of("PipelineRun", drain(rec.events)); len(got) != 1 || got[0] != "Normal Started " {
			t.Errorf("pod created: events %q, want Started", got)
		}
		runEvent := &planpb.Event{Time: ts(1), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "ok", StartTime: ts(1), Condition: running}}}
		e.logs["ok"] = supervisorLog(runEvent, taskEvent("first", 2, running, 0))
		e.setSupervisor("ok", corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, corev1.PodRunning)
		e.reconcile("ok")
		e.reconcile("ok")
		// The message is the condition's, as the supervisor published it.
		evs := drain(rec.events)
		if got := of("PipelineRun", evs); len(got) != 1 || got[0] != "Normal Running "+e.pr("ok").Status.GetCondition(apis.ConditionSucceeded).Message {
			t.Errorf("running: events %q, want one Running", got)
		}
		// Each TaskRun has its own, as Tekton's TaskRun reconciler emits.
		if got := of("TaskRun", evs); len(got) != 2 || got[0] != "Normal Started " || !strings.HasPrefix(got[1], "Normal Running ") {
			t.Errorf("running: TaskRun events %q, want Started, Running", got)
		}
		e.logs["ok"] = supervisorLog(runEvent, taskEvent("first", 2, succeeded, 3), taskEvent("second", 4, succeeded, 5),
			&planpb.Event{Time: ts(6), Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "ok", StartTime: ts(1), CompletionTime: ts(6),
				Condition: &planpb.Condition{Status: "True", Reason: "Succeeded", Message: "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0"},
				Tasks:     []*planpb.TaskStatus{taskEvent("first", 2, succeeded, 3).GetTask(), taskEvent("second", 4, succeeded, 5).GetTask()}}}})
		e.setSupervisor("ok", corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, corev1.PodSucceeded)
		e.r.Clock = clocktesting.NewFakePassiveClock(t0.Add(10e9))
		e.reconcile("ok")
		evs = drain(rec.events)
		if got := of("PipelineRun", evs); len(got) != 1 || got[0] != "Normal Succeeded Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0" {
			t.Errorf("done: events %q, want Succeeded", got)
		}
		var trs []string
		for _, e := range evs {
			if strings.HasPrefix(e, "TaskRun ") {
				trs = append(trs, e)
			}
		}
		want := []string{"TaskRun ok-first: Normal Succeeded ", "TaskRun ok-second: Normal Started ", "TaskRun ok-second: Normal Succeeded "}
		if strings.Join(trs, "|") != strings.Join(want, "|") {
			t.Errorf("done: TaskRun events %q, want %q", trs, want)
		}
	})
}
