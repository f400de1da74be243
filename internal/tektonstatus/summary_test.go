package tektonstatus

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

func TestSummary(t *testing.T) {
	retried := func() *planpb.TaskStatus {
		ts := succeededTask("build", 9, 20)
		ts.Retries = []*planpb.TaskAttempt{{StartTime: at(6), CompletionTime: at(8)}}
		return ts
	}
	tests := []struct {
		name string
		c    *compile.Compiled
		st   *planpb.RunStatus
		want string
	}{{
		name: "succeeded, results of three types, a retried task and a finally task",
		c:    fixture(),
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0), CompletionTime: at(95),
			Condition: cond("True", "Completed", "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 1", 95),
			Tasks: []*planpb.TaskStatus{
				succeededTask("fetch", 1, 5), retried(),
				func() *planpb.TaskStatus { ts := succeededTask("report", 21, 95); ts.Finally = true; return ts }(),
			},
			Skipped: []*planpb.SkippedTask{{Name: "deploy", Reason: "When Expressions evaluated to false"}},
			Results: []*planpb.ResultValue{commit("abc123"), filesResult, metaResult}},
		want: `PipelineRun pr-1: Completed (Succeeded=True) in 1m35s
  Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 1

TASK              STATUS     DURATION  RETRIES
fetch             Succeeded  4s        -
build             Succeeded  11s       1
report (finally)  Succeeded  1m14s     -

Skipped:
  deploy: When Expressions evaluated to false

Results:
  commit = abc123
  files = ["a.go","b.go"]
  meta = {"author":"ann","branch":"main"}
`,
	}, {
		name: "failed task with its message, still running task",
		c:    fixture(),
		st: &planpb.RunStatus{Name: "pr-1", StartTime: at(0),
			Condition: cond("Unknown", "PipelineRunStopping", "Tasks Completed: 1 (Failed: 1, Cancelled 0), Incomplete: 1, Skipped: 0", 5),
			Tasks: []*planpb.TaskStatus{
				{Name: "fetch", StartTime: at(1), CompletionTime: at(1), Condition: cond("False", "Failed", "\"step-clone\" exited with code 1:\n  Error", 1)},
				{Name: "build", StartTime: at(2), Condition: cond("Unknown", "Running", "", 2)},
			}},
		want: `PipelineRun pr-1: PipelineRunStopping (Succeeded=Unknown)
  Tasks Completed: 1 (Failed: 1, Cancelled 0), Incomplete: 1, Skipped: 0

TASK   STATUS   DURATION  RETRIES
fetch  Failed   0s        -
build  Running  running   -
  fetch: "step-clone" exited with code 1: Error
`,
	}, {
		name: "TaskRun plan",
		c:    taskRunFixture(),
		st: &planpb.RunStatus{Name: "tr-1", StartTime: at(0), CompletionTime: timestamppb.New(t0.Add(1500 * time.Millisecond)),
			Condition: cond("True", "Succeeded", "All Steps have completed executing", 1),
			Tasks:     []*planpb.TaskStatus{{Name: "hello", StartTime: at(0), CompletionTime: timestamppb.New(t0.Add(250 * time.Millisecond)), Condition: cond("True", "Succeeded", "", 1)}}},
		want: `TaskRun tr-1: Succeeded (Succeeded=True) in 1.5s
  All Steps have completed executing

TASK   STATUS     DURATION  RETRIES
hello  Succeeded  250ms     -
`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			Summary(&out, tc.c, tc.st)
			if out.String() != tc.want {
				t.Errorf("summary:\n%s\nwant:\n%s", out.String(), tc.want)
			}
		})
	}
}

func TestStartOrder(t *testing.T) {
	a := &planpb.TaskStatus{Name: "a", StartTime: at(5)}
	b := &planpb.TaskStatus{Name: "b", StartTime: at(9), Retries: []*planpb.TaskAttempt{{StartTime: at(1)}}}
	c := &planpb.TaskStatus{Name: "c", StartTime: at(5)}
	d := &planpb.TaskStatus{Name: "d"}
	var got []string
	for _, ts := range startOrder([]*planpb.TaskStatus{d, a, b, c}) {
		got = append(got, ts.GetName())
	}
	// b's first attempt started first; a and c tie and keep their order; d never started.
	if want := "b a c d"; strings.Join(got, " ") != want {
		t.Errorf("start order %v, want %s", got, want)
	}
}

func TestWrite(t *testing.T) {
	obj := map[string]any{"kind": "List", "items": []int{1}}
	tests := []struct {
		format, want, wantErr string
	}{
		{format: "json", want: "{\n  \"items\": [\n    1\n  ],\n  \"kind\": \"List\"\n}\n"},
		{format: "yaml", want: "items:\n- 1\nkind: List\n"},
		{format: "text", wantErr: `output format "text" is not json or yaml`},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		err := Write(&out, tc.format, obj)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%s: error %v, want %q", tc.format, err, tc.wantErr)
			}
			continue
		}
		if err != nil || out.String() != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.format, out.String(), err, tc.want)
		}
	}
}
