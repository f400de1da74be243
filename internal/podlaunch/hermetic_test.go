package podlaunch

import (
	"context"
	"net"
	"testing"

	"github.com/e7763abc/pod-runner/internal/hermetic"
	"github.com/e7763abc/pod-runner/internal/hermetic/hermetictest"
	"github.com/e7763abc/pod-runner/internal/testenv"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// A hermetic task's step container runs its step with no network while a
// task beside it in the same pod reaches a server: supervisor → launcher →
// `pod-runner step`, with real namespaces.
func TestHermeticTaskInPod(t *testing.T) {
	testenv.Require(t, "busybox", testenv.Busybox())
	testenv.Require(t, "user namespaces for hermetic steps", hermetic.Check())
	_, port, _ := net.SplitHostPort(hermetictest.Listener(t)[0]) // its loopback address
	probe := func(name string, hermetic bool) *planpb.Task {
		return &planpb.Task{
			Name: name, TaskRunName: "pr-" + name, Hermetic: hermetic,
			Spec: &planpb.TaskSpec{
				Results: []*planpb.ResultSpec{{Name: "server"}},
				Steps: []*planpb.Step{{
					Name:   "probe",
					Script: "if busybox nc -w 2 127.0.0.1 " + port + " </dev/null; then r=reached; else r=unreachable; fi; printf $r > $(results.server.path)",
				}},
			},
		}
	}
	plan := &planpb.Plan{
		Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN, Name: "pr",
		Tasks: []*planpb.Task{probe("open", false), probe("sealed", true)},
		Results: []*planpb.PipelineResult{
			{Name: "open", Value: str("$(tasks.open.results.server)")},
			{Name: "sealed", Value: str("$(tasks.sealed.results.server)")},
		},
	}
	p := newPod(t)
	p.start(plan)
	st := p.run(context.Background(), plan)
	if c := st.GetCondition(); c.GetStatus() != "True" {
		t.Fatalf("run condition = %v\n%v", c, st)
	}
	for name, want := range map[string]string{"open": "reached", "sealed": "unreachable"} {
		if got := result(st, name); got != want {
			t.Errorf("%s: server %s, want %s", name, got, want)
		}
	}
}
