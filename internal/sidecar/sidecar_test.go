package sidecar

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

func cond(status, reason, msg string) *planpb.Condition {
	return &planpb.Condition{Status: status, Reason: reason, Message: msg}
}

func final() *planpb.RunStatus {
	now := timestamppb.New(time.Unix(1700000000, 0))
	return &planpb.RunStatus{
		Name: "pr", Condition: cond("False", "Failed", "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1"),
		StartTime: now, CompletionTime: now,
		Tasks: []*planpb.TaskStatus{
			{Name: "a", Condition: cond("True", "Succeeded", "All Steps have completed executing"),
				Results: []*planpb.ResultValue{{Name: "big", Value: &planpb.Value{StringValue: strings.Repeat("x", 10000)}}},
				Steps:   []*planpb.StepState{{Name: "s", Terminated: true}}},
			{Name: "b", Condition: cond("False", "Failed", `"step-s" exited with code 1: Error`)},
		},
		Skipped: []*planpb.SkippedTask{{Name: "c", Reason: "PipelineRun was stopping"}},
		Results: []*planpb.ResultValue{{Name: "r", Value: &planpb.Value{StringValue: strings.Repeat("y", 10000)}}},
	}
}

// Events written by a Publisher, among other log lines, are read back; the
// final status keeps results of any size.
func TestPublishAndRead(t *testing.T) {
	var log bytes.Buffer
	p := NewPublisher(&log)
	log.WriteString("pod-runner: some message\n")
	running := &planpb.RunStatus{Name: "pr", Condition: cond("Unknown", "Running", "")}
	p.Report(&planpb.Event{Kind: &planpb.Event_Run{Run: running}})
	p.Report(&planpb.Event{Kind: &planpb.Event_Task{Task: &planpb.TaskStatus{Name: "a", Condition: cond("Unknown", "Running", "")}}})
	log.WriteString("2026-01-01T00:00:00Z unrelated\n")
	p.Report(&planpb.Event{Kind: &planpb.Event_Skipped{Skipped: &planpb.SkippedTask{Name: "c", Reason: "PipelineRun was stopping"}}})
	p.Report(&planpb.Event{Kind: &planpb.Event_Run{Run: final()}})
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n") {
		if strings.HasPrefix(line, LinePrefix) != (i != 0 && i != 3) {
			t.Errorf("line %d: %q", i, line)
		}
	}
	s, err := Read(strings.NewReader(log.String()))
	if err != nil {
		t.Fatal(err)
	}
	if s.Events != 4 {
		t.Errorf("%d events, want 4", s.Events)
	}
	if !proto.Equal(s.Final, final()) || !proto.Equal(s.Current(), final()) {
		t.Errorf("final = %v", s.Final)
	}

	// Cut before the end: no final status, the current one is what is known.
	cut := log.String()[:strings.LastIndex(log.String(), LinePrefix)]
	s, err = Read(strings.NewReader("2026-01-01T00:00:00.000Z " + cut))
	if err != nil {
		t.Fatal(err)
	}
	cur := s.Current()
	if s.Final != nil || cur.GetCondition().GetReason() != "Running" || len(cur.GetTasks()) != 1 || cur.GetTasks()[0].GetName() != "a" ||
		len(cur.GetSkipped()) != 1 {
		t.Errorf("final %v, current %v", s.Final, cur)
	}
}

func TestReadBadEvent(t *testing.T) {
	if _, err := Read(strings.NewReader(LinePrefix + "{not json\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("Read = %v", err)
	}
}

func TestSummary(t *testing.T) {
	many := final()
	for i := 0; i < 25; i++ {
		many.Tasks = append(many.Tasks, &planpb.TaskStatus{Name: "task-with-a-long-name-" + strings.Repeat("n", 20),
			Condition: cond("False", "Failed", strings.Repeat("why ", 100))})
	}
	huge := final()
	for i := 0; i < 2000; i++ {
		huge.Tasks = append(huge.Tasks, &planpb.TaskStatus{Name: strings.Repeat("t", 60), Condition: cond("True", "Succeeded", "")})
	}
	for _, tc := range []struct {
		name      string
		st        *planpb.RunStatus
		wantTasks int
		full      bool // messages kept whole
	}{
		{name: "small", st: final(), wantTasks: 2, full: true},
		{name: "long messages are cut", st: many, wantTasks: 27},
		{name: "too many tasks: run condition only", st: huge, wantTasks: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Summary(tc.st)
			if len(b) > MaxTermination {
				t.Fatalf("summary is %d bytes", len(b))
			}
			got, err := ParseTermination(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if got.GetCondition().GetReason() != "Failed" || len(got.GetTasks()) != tc.wantTasks || len(got.GetResults()) != 0 {
				t.Errorf("summary %v", got)
			}
			for i, ts := range got.GetTasks() {
				want := tc.st.GetTasks()[i]
				if ts.GetName() != want.GetName() || ts.GetCondition().GetReason() != want.GetCondition().GetReason() ||
					(ts.GetCondition().GetMessage() == want.GetCondition().GetMessage()) != (tc.full || len(want.GetCondition().GetMessage()) < 8) ||
					len(ts.GetResults()) != 0 || len(ts.GetSteps()) != 0 {
					t.Errorf("task %d = %v", i, ts)
					break
				}
			}
			if tc.full && !proto.Equal(got.GetSkipped()[0], tc.st.GetSkipped()[0]) {
				t.Errorf("skipped = %v", got.GetSkipped())
			}
		})
	}
}

func TestFailureTermination(t *testing.T) {
	path := filepath.Join(t.TempDir(), "termination-log")
	if err := WriteFailure(path, "no plan: $POD_RUNNER_PLAN is empty"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if _, err := ParseTermination(string(b)); err == nil || err.Error() != "no plan: $POD_RUNNER_PLAN is empty" {
		t.Errorf("ParseTermination = %v", err)
	}
	if err := WriteFailure(path, strings.Repeat("é", 5000)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) > MaxTermination {
		t.Errorf("failure message of %d bytes", len(b))
	}
	if _, err := ParseTermination("garbage"); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("ParseTermination(garbage) = %v", err)
	}
}

func TestTerminationDetail(t *testing.T) {
	final, err := protojson.Marshal(&planpb.RunStatus{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, msg, want string }{
		{"a final status", string(final), ""},
		{"a failure", FailurePrefix + "decode plan: bad", "decode plan: bad"},
		{"nothing", "", ""},
		{"a log tail of events only", `d-runner.event/v1 {"time":"x","task":{}}` + "\n" + LinePrefix + `{"time":"y"}` + "\n", ""},
		{"a log tail ending with the supervisor's own words", `ent/v1 {"task":{}}` + "\n" + LinePrefix + `{"time":"y"}` + "\npod-runner supervise: write: broken pipe\n", "pod-runner supervise: write: broken pipe"},
		{"plain text", "fatal error: out of memory", "fatal error: out of memory"},
	}
	for _, tc := range tests {
		if got := TerminationDetail(tc.msg); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := TerminationDetail(strings.Repeat("x", 5000)); len(got) > maxDetail+len("…") {
		t.Errorf("a long message gives %d bytes", len(got))
	}
}
