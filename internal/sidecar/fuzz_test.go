package sidecar

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// FuzzStream reads any log line as the controller's follower and fallback
// reader do: nothing panics, a line without the event prefix is skipped,
// and the status folded so far can always be read.
func FuzzStream(f *testing.F) {
	var b bytes.Buffer
	p := NewPublisher(&b)
	now := timestamppb.Now()
	p.Report(&planpb.Event{Time: now, Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r", StartTime: now, Condition: &planpb.Condition{Status: "Unknown", Reason: "Running"}}}})
	p.Report(&planpb.Event{Time: now, Kind: &planpb.Event_Task{Task: &planpb.TaskStatus{Name: "t", StartTime: now,
		Results: []*planpb.ResultValue{{Name: "r", Value: &planpb.Value{StringValue: "v"}}}}}})
	p.Report(&planpb.Event{Kind: &planpb.Event_Skipped{Skipped: &planpb.SkippedTask{Name: "s", Reason: "When Expressions evaluated to false"}}})
	p.Report(&planpb.Event{Time: now, Kind: &planpb.Event_Run{Run: &planpb.RunStatus{Name: "r", StartTime: now, CompletionTime: now,
		Condition: &planpb.Condition{Status: "True", Reason: "Succeeded"}}}})
	for _, line := range strings.Split(b.String(), "\n") {
		f.Add(line)
		f.Add("2026-12-02T10:00:00.000000000Z " + line)
	}
	f.Add(LinePrefix + "{")
	f.Add(LinePrefix + `{"task":{"name":"t","steps":[{}]}}`)
	f.Fuzz(func(t *testing.T, line string) {
		s := &Stream{}
		isEvent, err := s.Add(line)
		if !strings.Contains(line, LinePrefix) && (isEvent || err != nil) {
			t.Fatalf("a line without the event prefix was read: %v, %v", isEvent, err)
		}
		_ = s.Current()
		if _, err := ParseTermination(line); err == nil {
			_ = Summary(s.Current())
		}
	})
}
