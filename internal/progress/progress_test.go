package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

func TestPrinter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	running := &planpb.Condition{Status: "Unknown", Reason: "Running"}
	var buf bytes.Buffer
	p := New(&buf)
	events := []*planpb.Event{
		{Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r", Condition: running, StartTime: ts(0)}}},
		{Kind: &planpb.Event_Task{Task: &planpb.TaskStatus{Name: "a", Condition: running, StartTime: ts(0)}}},
		// A step ended: the same task, still running, prints nothing new.
		{Kind: &planpb.Event_Task{Task: &planpb.TaskStatus{Name: "a", Condition: running, StartTime: ts(0)}}},
		{Kind: &planpb.Event_Task{Task: &planpb.TaskStatus{Name: "a", StartTime: ts(time.Second),
			Condition: running, Retries: []*planpb.TaskAttempt{{}}}}},
		{Kind: &planpb.Event_Task{Task: &planpb.TaskStatus{Name: "a", StartTime: ts(time.Second), CompletionTime: ts(3 * time.Second),
			Condition: &planpb.Condition{Status: "False", Reason: "Failed", Message: `"step-s" exited with code 1`}, Retries: []*planpb.TaskAttempt{{}}}}},
		{Kind: &planpb.Event_Skipped{Skipped: &planpb.SkippedTask{Name: "b", Reason: "PipelineRun was stopping"}}},
		{Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r", StartTime: ts(0), CompletionTime: ts(3 * time.Second),
			Condition: &planpb.Condition{Status: "False", Reason: "Failed", Message: "Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 1"}}}},
	}
	for _, e := range events {
		p.Report(e)
	}
	want := []string{
		"started   a",
		"retry 1   a",
		`Failed    a (2s): "step-s" exited with code 1`,
		"skipped   b: PipelineRun was stopping",
		"Failed    r in 3s: Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 1",
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
