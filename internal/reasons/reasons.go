// Package reasons names Tekton's condition reasons and messages as strings,
// for the in-pod binary, which cannot link Tekton's API package; a test
// (test/oracle) pins every one of them to Tekton's constant.
package reasons

const (
	// TaskRun reasons.
	Succeeded = "Succeeded"
	// Failed: a failed PipelineRun; a TaskRun failure that is no
	// step's or sidecar's (the attempt could not start, an invalid task).
	Failed = "Failed"
	// The failure of a task whose steps ended, as Tekton's pod status code
	// names it (pkg/pod getFailureInfo), in its order of priority: a
	// sidecar OOM-killed, a step OOM-killed, a sidecar that ended non-zero,
	// a step that failed (non-zero exit, step timeout, lost container).
	SidecarOOM    = "SidecarOOM"
	StepOOM       = "StepOOM"
	SidecarFailed = "SidecarFailed"
	StepFailed    = "StepFailed"

	TaskTimeout   = "TaskRunTimeout"
	TaskCancelled = "TaskRunCancelled"
	Running       = "Running"
	// FailureIgnored: a task with onError: continue failed.
	FailureIgnored = "FailureIgnored"
	// TaskValidation: the steps succeeded but the results do not match
	// their declarations.
	TaskValidation = "TaskRunValidationFailed"

	// PipelineRun reasons.
	Completed               = "Completed"
	PipelineTimeout         = "PipelineRunTimeout"
	Cancelled               = "Cancelled"
	Stopping                = "PipelineRunStopping"
	CancelledRunningFinally = "CancelledRunningFinally"
	StoppedRunningFinally   = "StoppedRunningFinally"
	TimedOutRunningFinally  = "PipelineRunTimeoutRunningFinally"
	FailedValidation        = "PipelineValidationFailed"
	// CouldntGetPipelineResult: a pipeline result cannot be resolved
	// although the task it reads succeeded.
	CouldntGetPipelineResult = "CouldntGetPipelineResult"
	// InvalidMatrixTypes: a matrix known only at run time has params
	// of the wrong type.
	InvalidMatrixTypes = "InvalidMatrixParameterTypes"

	// Skipping reasons (v1.SkippingReason).
	SkipWhen                = "When Expressions evaluated to false"
	SkipParent              = "Parent Tasks were skipped"
	SkipStopping            = "PipelineRun was stopping"
	SkipGracefullyCancelled = "PipelineRun was gracefully cancelled"
	SkipGracefullyStopped   = "PipelineRun was gracefully stopped"
	SkipMissingResults      = "Results were missing"
	SkipPipelineTimedOut    = "PipelineRun timeout has been reached"
	SkipTasksTimedOut       = "PipelineRun Tasks timeout has been reached"
	SkipFinallyTimedOut     = "PipelineRun Finally timeout has been reached"
	SkipEmptyMatrix         = "Matrix Parameters have an empty array"

	// Step terminated reasons.
	StepCompleted       = "Completed"
	StepError           = "Error"
	StepTimeoutExceeded = "TimeoutExceeded"
	// StepCancelled: the step was stopped because its task was.
	StepCancelled = "Cancelled"
	// StepContinued: the step failed and has onError: continue.
	StepContinued = "Continued"
	// StepSkipped: the step did not run, because an earlier one failed or
	// its when expressions did not hold.
	StepSkipped = "Skipped"
	// OOMKilled: a step's or sidecar's container was OOM-killed
	// (Kubernetes' terminated reason, which Tekton copies).
	OOMKilled = "OOMKilled"

	// TaskRun spec status messages for a TaskRun cancelled by its PipelineRun.
	MsgCancelledByPipeline        = "TaskRun cancelled as the PipelineRun it belongs to has been cancelled."
	MsgCancelledByPipelineTimeout = "TaskRun cancelled as the PipelineRun it belongs to has timed out."

	// MsgTaskRunning is a running TaskRun's condition message (pkg/pod
	// MakeTaskRunStatus, while its Pod runs).
	MsgTaskRunning = "Not all Steps in the Task have finished executing"
)
