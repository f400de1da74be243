package supervisor

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/facts"
	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/sidecar"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// runChild runs a task that runs a pipeline (pipelines in pipelines): the
// child pipeline is a run of its own, with its DAG, finally, results and
// condition, by a Supervisor of its own over the same launcher. Each
// change of the child run is reported as the task's status, the child's
// whole status in it, and the child's condition and results are the
// task's.
func (s *Supervisor) runChild(ctx context.Context, ready *facts.Ready) taskEnd {
	t := ready.Task
	ch := t.GetChild()
	st := &planpb.TaskStatus{Name: t.GetName(), TaskRunName: t.GetTaskRunName(), Finally: ready.Final, Params: ready.Params}
	plan := &planpb.Plan{
		Version: planpb.Version, Kind: planpb.RunKind_PIPELINE_RUN,
		Name: t.GetTaskRunName(), Namespace: s.Plan.GetNamespace(), Uid: ch.GetUid(), PipelineName: ch.GetPipelineName(),
		Tasks: ch.GetTasks(), Finally: ch.GetFinally(), Results: ch.GetResults(), Timeouts: ch.GetTimeouts(),
	}
	var mu sync.Mutex
	var stream sidecar.Stream
	report := func(e *planpb.Event) {
		mu.Lock()
		defer mu.Unlock()
		stream.Fold(e)
		cur := stream.Current()
		if cur == nil {
			return
		}
		st.Child = cur
		st.StartTime = cur.GetStartTime()
		st.Condition = proto.Clone(cur.GetCondition()).(*planpb.Condition)
		if st.Condition.GetStatus() == "" {
			st.Condition = &planpb.Condition{Status: "Unknown", Reason: reasons.Running, LastTransitionTime: cur.GetStartTime()}
		}
		s.reportTask(st)
	}
	sub := &Supervisor{Plan: plan, Launcher: childLauncher{s.Launcher}, Reporter: ReporterFunc(report), Now: s.Now}
	final, err := sub.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		end := fail(st, reasons.Failed, "child pipeline: "+err.Error())
		st.CompletionTime = st.GetCondition().GetLastTransitionTime()
		s.reportTask(st)
		end.status = st
		return end
	}
	st.Child, st.Results = final, final.GetResults()
	st.StartTime, st.CompletionTime = final.GetStartTime(), final.GetCompletionTime()
	st.Condition = proto.Clone(final.GetCondition()).(*planpb.Condition)
	s.results.Set(t.GetName(), st.Results)
	s.reportTask(st)
	reason := st.GetCondition().GetReason()
	return taskEnd{
		status:    st,
		ok:        st.GetCondition().GetStatus() == "True",
		cancelled: reason == reasons.Cancelled || reason == reasons.PipelineTimeout,
		timeout:   reason == reasons.PipelineTimeout,
	}
}

// childLauncher is the launcher of a child run: its parent's, whose
// volumes the parent prepares and releases.
type childLauncher struct{ Launcher }

func (childLauncher) Prepare(context.Context, *planpb.Plan) error { return nil }
func (childLauncher) Close() error                                { return nil }
