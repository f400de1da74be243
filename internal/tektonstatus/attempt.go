package tektonstatus

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/result"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// runSpec is status.taskSpec as the TaskRun reconciler stores it for an
// attempt: the resolved spec with the TaskRun's params, its context
// ($(context.task.retry-count) = attempt), result and step paths and
// workspaces substituted, in the order and with the functions of
// applyParamsContextsResultsAndWorkspaces.
func (b *builder) runSpec(name string, spec *v1.TaskSpec, ps []*planpb.Param, attempt int) *v1.TaskSpec {
	if spec == nil {
		return nil
	}
	// The TaskRun the compiler made for the task carries what the engine
	// substituted: name, namespace, uid, workspaces.
	tr := &v1.TaskRun{}
	if known := b.c.TaskRuns[name]; known != nil {
		tr = known.DeepCopy()
	}
	context := b.tasks[name].GetContext()
	if tr.Name == "" {
		tr.Name = context["context.taskRun.name"]
	}
	if ps != nil {
		tr.Spec.Params = params(ps)
	}
	tr.Status.RetriesStatus = make([]v1.TaskRunStatus, attempt)

	ts := resources.ApplyParameters(spec.DeepCopy(), tr, spec.Params...)
	ts = resources.ApplyContexts(ts, context["context.task.name"], tr)
	ts = resources.ApplyResults(ts)
	ts = resources.ApplyArtifacts(ts)
	ts = resources.ApplyStepExitCodePath(ts)
	// The TaskRun's workspaces the Task does not declare are declared.
	for _, wb := range tr.Spec.Workspaces {
		declared := false
		for _, d := range ts.Workspaces {
			declared = declared || d.Name == wb.Name
		}
		if !declared {
			ts.Workspaces = append(ts.Workspaces, v1.WorkspaceDeclaration{Name: wb.Name})
		}
	}
	// $(workspaces.W.volume) is the run Pod's volume, which the compiler
	// named (Tekton generates a random name).
	vols := map[string]corev1.Volume{}
	for k, v := range context {
		if w, ok := strings.CutPrefix(k, "workspaces."); ok {
			if w, ok := strings.CutSuffix(w, ".volume"); ok {
				vols[w] = corev1.Volume{Name: v}
			}
		}
	}
	return resources.ApplyWorkspaces(b.ctx, ts, ts.Workspaces, tr.Spec.Workspaces, vols)
}

// finishAttempt gives an attempt's status what Tekton's pod status
// conversion (pod.MakeTaskRunStatus) adds around the step states:
//   - each step container's imageID and containerID, from the Pod's
//     container statuses when known;
//   - the termination message of every step that ran to its end: the task
//     results the entrypoint found, as createMessageFromResults writes
//     them (results is nil for an attempt whose results are not known);
//   - status.artifacts once the attempt is done.
//
// The condition's reason stays the engine's, which $(tasks.X.reason) also
// gives (Tekton's getFailureReason: StepFailed, StepOOM, SidecarFailed…).
func (b *builder) finishAttempt(status *v1.TaskRunStatus, results []*planpb.ResultValue) {
	msg := terminationMessage(results)
	for i := range status.Steps {
		s := &status.Steps[i]
		cs := b.containerStatus(s.Container)
		if cs != nil && cs.ImageID != "" {
			s.ImageID = cs.ImageID
		}
		if s.Terminated == nil {
			continue
		}
		if cs != nil && s.Terminated.ContainerID == "" {
			s.Terminated.ContainerID = cs.ContainerID
		}
		if s.Terminated.Message == "" && s.TerminationReason != stepSkipped {
			s.Terminated.Message = msg
		}
	}
	for i := range status.Sidecars {
		s := &status.Sidecars[i]
		if cs := b.containerStatus(s.Container); cs != nil {
			if cs.ImageID != "" {
				s.ImageID = cs.ImageID
			}
			if s.Terminated != nil && s.Terminated.ContainerID == "" {
				s.Terminated.ContainerID = cs.ContainerID
			}
		}
	}
	containerOOM(status, b.containerStatus)
	// A finished TaskRun has status.artifacts, empty when no step wrote
	// any (Tekton merges into it once done).
	if c := status.GetCondition(apis.ConditionSucceeded); c != nil && !c.IsUnknown() && status.Artifacts == nil {
		status.Artifacts = &v1.Artifacts{}
	}
}

// containerOOM: a step whose whole container the kernel killed for memory
// took the step's wrapper with it, so the engine only knew the container
// was lost (StepFailed); the Pod's container status says OOMKilled, and
// Tekton's getFailureInfo then gives StepOOM with its message.
func containerOOM(status *v1.TaskRunStatus, containerStatus func(string) *corev1.ContainerStatus) {
	c := status.GetCondition(apis.ConditionSucceeded)
	if c == nil || !c.IsFalse() || c.Reason != v1.TaskRunReasonStepFailed.String() {
		return
	}
	for i := range status.Steps {
		s := &status.Steps[i]
		cs := containerStatus(s.Container)
		if s.Terminated == nil || cs == nil || cs.State.Terminated == nil || cs.State.Terminated.Reason != oomKilled {
			continue
		}
		s.Terminated.Reason, s.Terminated.ExitCode = oomKilled, cs.State.Terminated.ExitCode
		s.TerminationReason = oomKilled
		c = c.DeepCopy()
		c.Reason = v1.TaskRunReasonStepOOM.String()
		c.Message = fmt.Sprintf("%q exited with code %d: %s", "step-"+s.Name, cs.State.Terminated.ExitCode, oomKilled)
		status.SetCondition(c)
		return
	}
}

const oomKilled = "OOMKilled"

// containerStatus is the Pod's status of the named container, nil when not
// known.
func (b *builder) containerStatus(name string) *corev1.ContainerStatus {
	for i := range b.opts.ContainerStatuses {
		if b.opts.ContainerStatuses[i].Name == name {
			return &b.opts.ContainerStatuses[i]
		}
	}
	return nil
}

// terminationMessage is a step's termination message as Tekton leaves it
// in the step's state: the task results, sorted by name as the entrypoint
// reads them from its results directory, each value as the file held it.
func terminationMessage(results []*planpb.ResultValue) string {
	if len(results) == 0 {
		return ""
	}
	var rs []result.RunResult
	for _, r := range results {
		v := r.GetValue()
		value := v.GetStringValue()
		switch v.GetType() {
		case planpb.ValueType_ARRAY:
			b, _ := json.Marshal(v.GetArrayValue())
			value = string(b)
		case planpb.ValueType_OBJECT:
			b, _ := json.Marshal(v.GetObjectValue())
			value = string(b)
		}
		rs = append(rs, result.RunResult{Key: r.GetName(), Value: value, ResultType: result.TaskRunResultType})
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Key < rs[j].Key })
	b, err := json.Marshal(rs)
	if err != nil {
		return ""
	}
	return string(b)
}

// sortedResults are the task's results in the order of the termination
// message they come from: by name.
func sortedResults(rs []*planpb.ResultValue) []*planpb.ResultValue {
	out := append([]*planpb.ResultValue(nil), rs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}
