package supervisor

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/e7763abc/pod-runner/internal/artifacts"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Tekton's artifacts (enable-artifacts), as its entrypoint and controller
// handle them: after each step the entrypoint reads the step's
// $(step.artifacts.path) and the task's $(artifacts.path); the step's are
// its status.steps[].inputs and outputs, and both are merged into the
// TaskRun's status.artifacts; a later step reads an earlier one's through
// $(steps.S.inputs.NAME) and a later task a finished one's through
// $(tasks.T.outputs.NAME) (PropagateArtifacts).

// taskArtifacts are the artifacts of the pipeline's finished TaskRuns, by
// PipelineTask, then TaskRun (a matrix's several).
type taskArtifacts struct {
	mu sync.Mutex
	m  map[string]map[string]artifacts.Set
}

// set records the artifacts of t's TaskRun, which ended. One that wrote
// none adds nothing to merge: it is not kept, so that vars has nothing to
// do for the many tasks that write none.
func (ta *taskArtifacts) set(t *planpb.Task, s artifacts.Set) {
	if len(s.Inputs)+len(s.Outputs) == 0 {
		return
	}
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if ta.m == nil {
		ta.m = map[string]map[string]artifacts.Set{}
	}
	pt := t.GetName()
	if m := t.GetMatrix(); m != nil {
		pt = m.GetPipelineTask()
	} else if p := t.GetPipelineTask(); p != "" {
		pt = p
	}
	if ta.m[pt] == nil {
		ta.m[pt] = map[string]artifacts.Set{}
	}
	ta.m[pt][t.GetTaskRunName()] = s
}

// vars are $(tasks.T.inputs...) and $(tasks.T.outputs...) of every task
// that ended, a matrix's TaskRuns' merged in their names' order
// (GetTaskRunsArtifacts); nil when none wrote any.
func (ta *taskArtifacts) vars() *results.Vars {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var v *results.Vars
	for _, task := range slices.Sorted(maps.Keys(ta.m)) {
		var merged artifacts.Set
		for _, tr := range slices.Sorted(maps.Keys(ta.m[task])) {
			merged.Merge(ta.m[task][tr])
		}
		for name, value := range artifacts.TaskVars(task, merged) {
			if v == nil {
				v = results.NewVars()
			}
			v.SetString(name, value)
		}
	}
	return v
}

// attemptArtifacts are what the steps of one attempt wrote so far.
type attemptArtifacts struct {
	steps map[string]artifacts.Set // by step name
	task  artifacts.Set            // merged, as status.artifacts
}

// collect reads what step wrote once it ended, into its state and the
// attempt's; an artifacts file that is not Tekton's JSON is an error, which
// fails the step as it fails Tekton's entrypoint.
func (aa *attemptArtifacts) collect(att Attempt, step string, state *planpb.StepState) error {
	stepSet, err := readArtifacts(att, step)
	if err != nil {
		return err
	}
	taskSet, err := readArtifacts(att, "")
	if err != nil {
		return err
	}
	if aa.steps == nil {
		aa.steps = map[string]artifacts.Set{}
	}
	aa.steps[step] = stepSet
	state.Inputs, state.Outputs = stepSet.Inputs, stepSet.Outputs
	// Tekton merges the task's file as the step saw it, then the step's
	// own (pod.setTaskRunStatusBasedOnStepStatus).
	aa.task.Merge(taskSet)
	aa.task.Merge(stepSet)
	return nil
}

func readArtifacts(att Attempt, step string) (artifacts.Set, error) {
	raw, ok, err := att.ReadArtifacts(step)
	if err != nil || !ok {
		return artifacts.Set{}, err
	}
	s, err := artifacts.Parse(raw)
	if err != nil {
		if step == "" {
			return s, fmt.Errorf("the task's artifacts file: %w", err)
		}
		return s, fmt.Errorf("the step's artifacts file: %w", err)
	}
	return s, nil
}

// withStepArtifacts substitutes $(steps.S.inputs.NAME) and .outputs.NAME
// in a step's script, command, args and env, as Tekton's entrypoint does
// when the step starts (applyStepArtifactSubstitutions): a reference it
// cannot answer leaves the field as it was.
func (aa *attemptArtifacts) withStepArtifacts(step *planpb.Step) *planpb.Step {
	texts := slices.Concat([]string{step.GetScript()}, step.GetCommand(), step.GetArgs())
	for _, e := range step.GetEnv() {
		texts = append(texts, e.GetValue())
	}
	refers := false
	for _, t := range texts {
		refers = refers || len(artifacts.StepRefs(t)) > 0
	}
	if !refers {
		return step
	}
	apply := func(text string) string {
		out, err := artifacts.ApplyStepRefs(text, aa.steps)
		if err != nil {
			return text
		}
		return out
	}
	out := proto.Clone(step).(*planpb.Step)
	out.Script = apply(out.Script)
	for i := range out.Command {
		out.Command[i] = apply(out.Command[i])
	}
	for i := range out.Args {
		out.Args[i] = apply(out.Args[i])
	}
	for _, e := range out.Env {
		e.Value = apply(e.Value)
	}
	return out
}
