package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// statusLog runs an n-task chain and returns the status stream the
// supervisor publishes on its log.
func statusLog(t *testing.T, n int) []byte {
	t.Helper()
	var tasks []*planpb.Task
	for i := range n {
		var after []string
		if i > 0 {
			after = []string{fmt.Sprintf("t%d", i-1)}
		}
		tasks = append(tasks, task(fmt.Sprintf("t%d", i), after, step("s")))
	}
	var log bytes.Buffer
	p := sidecar.NewPublisher(&log)
	s := &Supervisor{Plan: plan(tasks), Launcher: newFake(nil), Reporter: p}
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	return log.Bytes()
}

// TestStatusStreamIsLinear: the status stream of a 200-task run is about
// four times a 50-task run's, not sixteen (a run event carries the run's own
// fields; each task's change travels in its own event, and only
// checkpoints and the end carry every task), and folded back it is the
// run's final status.
func TestStatusStreamIsLinear(t *testing.T) {
	small, large := statusLog(t, 50), statusLog(t, 200)
	ratio := float64(len(large)) / float64(len(small))
	t.Logf("status stream: 50 tasks %d bytes, 200 tasks %d bytes (×%.1f)", len(small), len(large), ratio)
	if ratio > 6 {
		t.Errorf("200 tasks publish ×%.1f the bytes of 50: the stream grows faster than the tasks", ratio)
	}
	s, err := sidecar.Read(bytes.NewReader(large))
	if err != nil {
		t.Fatal(err)
	}
	if s.Final == nil || len(s.Final.GetTasks()) != 200 || s.Final.GetCondition().GetReason() != reasons.Succeeded {
		t.Fatalf("final status: %d tasks, %v", len(s.Final.GetTasks()), s.Final.GetCondition())
	}
	// The status folded before the final event has every task, as the last
	// run event had them.
	cut := bytes.LastIndex(large, []byte(sidecar.LinePrefix))
	s, err = sidecar.Read(bytes.NewReader(large[:cut]))
	if err != nil {
		t.Fatal(err)
	}
	cur := s.Current()
	if len(cur.GetTasks()) != 200 {
		t.Errorf("folded before the end: %d tasks, want 200", len(cur.GetTasks()))
	}
	for i, ts := range cur.GetTasks() {
		if want := fmt.Sprintf("t%d", i); ts.GetName() != want || ts.GetCondition().GetReason() != reasons.Succeeded {
			t.Errorf("task %d: %s %v, want %s Succeeded", i, ts.GetName(), ts.GetCondition(), want)
			break
		}
	}
}
