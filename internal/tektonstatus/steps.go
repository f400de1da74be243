package tektonstatus

import (
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Step termination reasons the engine reports (StepState.reason) beyond
// Kubernetes' own container reasons.
const (
	stepCancelled = "Cancelled"
	stepContinued = "Continued"
	stepSkipped   = "Skipped"
	stepTimeout   = "TimeoutExceeded"

	// Kubernetes container terminated reasons.
	containerCompleted = "Completed"
	containerError     = "Error"
	containerOOMKilled = "OOMKilled"
	// Waiting reason of containers in a pod that has not started them yet.
	containerInitializing = "PodInitializing"
)

// stepStates are status.steps of one attempt, one per step of the task in
// order, shaped as MakeTaskRunStatus shapes a pod's container states:
//   - a finished step is "terminated": the container's reason ("Completed"
//     when the container exited 0, which includes onError: continue,
//     "OOMKilled" for an OOM-killed step, else "Error"), the step's exit
//     code, and terminationReason: what the
//     entrypoint reported (Completed, Error, Continued, Skipped,
//     TimeoutExceeded);
//   - the running step is "running", steps not reached yet are "waiting";
//   - when the TaskRun was cancelled or timed out, the steps still running or
//     waiting are terminated as terminateStepsInPod does: exit code 1 and
//     the TaskRun's reason.
func stepStates(names []string, states []*planpb.StepState, cond *planpb.Condition, start, completion *timestamppb.Timestamp, podName string, container func(step string) string) []v1.StepState {
	done := cond.GetStatus() == "True" || cond.GetStatus() == "False"
	stopReason := ""
	if r := cond.GetReason(); done && (r == v1.TaskRunReasonCancelled.String() || r == v1.TaskRunReasonTimedOut.String()) {
		stopReason = r
	}
	if done && stopReason == "" && len(states) == 0 {
		// The attempt failed before any step ran: there was no pod to report.
		return nil
	}
	n := len(names)
	if len(states) > n {
		n = len(states)
	}
	finished := metaTimeOr(completion, start)
	var out []v1.StepState
	lastEnd := metaTimeOr(start, completion)
	for i := 0; i < n; i++ {
		var s *planpb.StepState
		if i < len(states) {
			s = states[i]
		}
		name := ""
		if i < len(names) {
			name = names[i]
		}
		if name == "" {
			name = stepName(s.GetName(), i)
		}
		// The container is named from the step's name, not from the
		// engine's state: an unnamed step is "unnamed-N".
		// Every step has a provenance (GetStepActionsData records one per
		// step: empty without remote resolution).
		ss := v1.StepState{Name: name, Container: container(name), ImageID: s.GetImage(), Provenance: &v1.Provenance{},
			Inputs: artifactList(s.GetInputs()), Outputs: artifactList(s.GetOutputs())}
		stopped := func(startedAt metav1.Time) {
			ss.Terminated = &corev1.ContainerStateTerminated{
				ExitCode: 1, StartedAt: startedAt, FinishedAt: finished, Reason: stopReason,
				Message: fmt.Sprintf("Step %s terminated as pod %s is terminated", name, podName),
			}
			ss.TerminationReason = stopReason
		}
		switch {
		case s == nil || (!s.GetRunning() && !s.GetTerminated()):
			switch {
			case stopReason != "":
				// Tekton uses the TaskRun's creation time: the attempt's start is the closest we know.
				stopped(metaTimeOr(start, completion))
			case done:
				continue
			default:
				ss.Waiting = &corev1.ContainerStateWaiting{Reason: containerInitializing}
			}
		case s.GetRunning():
			if stopReason != "" {
				stopped(metaTimeOr(s.GetStartedAt(), start))
				break
			}
			ss.Running = &corev1.ContainerStateRunning{StartedAt: metaTimeOr(s.GetStartedAt(), start)}
		case s.GetSkipped():
			if stopReason != "" {
				stopped(metaTimeOr(start, completion))
				break
			}
			// The entrypoint skips at once when an earlier step failed:
			// it starts and ends when that step ended.
			ss.Terminated = &corev1.ContainerStateTerminated{
				ExitCode: 1, Reason: containerError, StartedAt: lastEnd, FinishedAt: lastEnd,
			}
			ss.TerminationReason = stepSkipped
		case s.GetReason() == stepCancelled && stopReason != "":
			stopped(metaTimeOr(s.GetStartedAt(), start))
		default:
			ss.Terminated = terminated(s, start, completion)
			ss.TerminationReason = s.GetReason()
			if ss.TerminationReason == "" {
				ss.TerminationReason = ss.Terminated.Reason
			}
			lastEnd = ss.Terminated.FinishedAt
		}
		out = append(out, ss)
	}
	return out
}

// terminated is the container state of a step that ran to its end.
func terminated(s *planpb.StepState, start, completion *timestamppb.Timestamp) *corev1.ContainerStateTerminated {
	exit := s.GetExitCode()
	reason := containerError
	switch s.GetReason() {
	case stepContinued:
		// The entrypoint exits 0 and reports the step's exit code as a result.
		reason = containerCompleted
	case stepTimeout:
		// The entrypoint exits 1 when the step's timeout kills the command.
		exit = 1
	case containerOOMKilled:
		reason = containerOOMKilled
	default:
		if exit == 0 {
			reason = containerCompleted
		}
	}
	return &corev1.ContainerStateTerminated{
		ExitCode:   exit,
		Reason:     reason,
		StartedAt:  metaTimeOr(s.GetStartedAt(), start),
		FinishedAt: metaTimeOr(s.GetFinishedAt(), completion),
	}
}

// metaTimeOr is the first set time; startedAt and finishedAt may not be
// null in Tekton's CRD schema.
func metaTimeOr(ts ...*timestamppb.Timestamp) metav1.Time {
	for _, t := range ts {
		if mt := metaTime(t); mt != nil {
			return *mt
		}
	}
	return metav1.Time{}
}

// sidecarStates are the TaskRun's status.sidecars; a sidecar stopped when the steps ended is
// terminated, with the reason the engine gives (Completed for a stop, as
// Tekton's updateStoppedSidecarStatus does).
func sidecarStates(states []*planpb.StepState, start, completion *timestamppb.Timestamp, container func(sidecar string) string) []v1.SidecarState {
	var out []v1.SidecarState
	for _, s := range states {
		ss := v1.SidecarState{Name: s.GetName(), Container: container(s.GetName()), ImageID: s.GetImage()}
		switch {
		case s.GetTerminated():
			ss.Terminated = &corev1.ContainerStateTerminated{
				ExitCode:   s.GetExitCode(),
				Reason:     s.GetReason(),
				StartedAt:  metaTimeOr(s.GetStartedAt(), start),
				FinishedAt: metaTimeOr(s.GetFinishedAt(), completion),
			}
		case s.GetRunning():
			ss.Running = &corev1.ContainerStateRunning{StartedAt: metaTimeOr(s.GetStartedAt(), start)}
		default:
			ss.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
		}
		out = append(out, ss)
	}
	return out
}

// tektonStep and tektonSidecar are the container names of a TaskRun's own
// pod, which Tekton gives: "step-NAME", "sidecar-NAME".
func tektonStep(step string) string       { return "step-" + step }
func tektonSidecar(sidecar string) string { return "sidecar-" + sidecar }

// containers names a task's step and sidecar containers: in pod mode (a
// shared pod) those of podlayout, so that `kubectl logs POD -c CONTAINER`
// and tools reading steps[].container find them; else Tekton's own.
func (b *builder) containers(task string) (step, sidecar func(string) string) {
	if b.opts.PodName == "" {
		return tektonStep, tektonSidecar
	}
	return func(s string) string { return podlayout.StepContainer(task, s) },
		func(s string) string { return podlayout.SidecarContainer(task, s) }
}

// artifactList is Tekton's form of artifacts (enable-artifacts).
func artifactList(in []*planpb.Artifact) []v1.Artifact {
	var out []v1.Artifact
	for _, a := range in {
		art := v1.Artifact{Name: a.GetName(), BuildOutput: a.GetBuildOutput()}
		for _, v := range a.GetValues() {
			av := v1.ArtifactValue{Uri: v.GetUri()}
			for alg, d := range v.GetDigest() {
				if av.Digest == nil {
					av.Digest = map[v1.Algorithm]string{}
				}
				av.Digest[v1.Algorithm(alg)] = d
			}
			art.Values = append(art.Values, av)
		}
		out = append(out, art)
	}
	return out
}

// taskArtifacts is a TaskRun's status.artifacts; nil when it has none.
func taskArtifacts(ts *planpb.TaskStatus) *v1.Artifacts {
	if len(ts.GetArtifactInputs())+len(ts.GetArtifactOutputs()) == 0 {
		return nil
	}
	return &v1.Artifacts{Inputs: artifactList(ts.GetArtifactInputs()), Outputs: artifactList(ts.GetArtifactOutputs())}
}
