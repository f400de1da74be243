package podlaunch

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// chain is n one-step tasks, each after the one before.
func chain(n int) *planpb.Plan {
	plan := &planpb.Plan{Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "chain"}
	for i := range n {
		t := &planpb.Task{Name: fmt.Sprintf("t%d", i), TaskRunName: fmt.Sprintf("chain-t%d", i),
			Spec: &planpb.TaskSpec{Steps: []*planpb.Step{{Name: "s", Command: []string{"true"}}}}}
		if i > 0 {
			t.RunAfter = []string{fmt.Sprintf("t%d", i-1)}
		}
		plan.Tasks = append(plan.Tasks, t)
	}
	return plan
}

// handoffs are, along a chain, the times from one task's step process
// ending to the next task's step process starting: the engine, the socket
// round trip and fork/exec in the step container.
func handoffs(st *planpb.RunStatus) []time.Duration {
	var out []time.Duration
	tasks := st.GetTasks()
	for i := 1; i < len(tasks); i++ {
		prev, next := tasks[i-1].GetSteps()[0], tasks[i].GetSteps()[0]
		out = append(out, next.GetStartedAt().AsTime().Sub(prev.GetFinishedAt().AsTime()))
	}
	return out
}

// BenchmarkHandoff: dependency done → next step's process started, through
// the socket to a waiting step container (goroutines here; the binary in a
// pod). Reports the median and p99 over a 50-task chain per iteration.
func BenchmarkHandoff(b *testing.B) {
	var all []time.Duration
	for range b.N {
		b.StopTimer()
		p := newPod(b)
		plan := chain(50)
		p.start(plan)
		b.StartTimer()
		st, err := (&supervisor.Supervisor{Plan: plan, Launcher: p.l}).Run(context.Background())
		b.StopTimer()
		if err != nil || st.GetCondition().GetStatus() != "True" {
			b.Fatalf("run %v, %v", st.GetCondition(), err)
		}
		all = append(all, handoffs(st)...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = p.l.Wait(ctx)
		cancel()
		p.exits(5 * time.Second)
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
