package supervisor

// Tekton's condition reasons and messages, as strings: the in-pod build cannot
// link Tekton's API package. Tests pin every one of them to Tekton's constants.
const (
	// TaskRun reasons.
	ReasonSucceeded = "Succeeded"
	// ReasonFailed: a failed PipelineRun; a TaskRun failure that is no
	// step's or sidecar's (the attempt could not start, an invalid task).
	ReasonFailed = "Failed"
	// The failure of a task whose steps ended, as Tekton's pod status code
	// names it (pkg/pod getFailureInfo), in its order of priority: a
	// sidecar OOM-killed, a step OOM-killed, a sidecar that ended non-zero,
	// a step that failed (non-zero exit, step timeout, lost container).
	ReasonSidecarOOM    = "SidecarOOM"
	ReasonStepOOM       = "StepOOM"
	ReasonSidecarFailed = "SidecarFailed"
	ReasonStepFailed    = "StepFailed"

	ReasonTaskTimeout   = "TaskRunTimeout"
	ReasonTaskCancelled = "TaskRunCancelled"
	ReasonRunning       = "Running"
	// ReasonFailureIgnored: a task with onError: continue failed.
	ReasonFailureIgnored = "FailureIgnored"
	// ReasonTaskValidation: the steps succeeded but the results do not match
	// their declarations.
	ReasonTaskValidation = "TaskRunValidationFailed"

	// PipelineRun reasons.
	ReasonCompleted               = "Completed"
	ReasonPipelineTimeout         = "PipelineRunTimeout"
	ReasonCancelled               = "Cancelled"
	ReasonStopping                = "PipelineRunStopping"
	ReasonCancelledRunningFinally = "CancelledRunningFinally"
	ReasonStoppedRunningFinally   = "StoppedRunningFinally"
	ReasonTimedOutRunningFinally  = "PipelineRunTimeoutRunningFinally"
	ReasonFailedValidation        = "PipelineValidationFailed"
	// ReasonCouldntGetPipelineResult: a pipeline result cannot be resolved
	// although the task it reads succeeded.
	ReasonCouldntGetPipelineResult = "CouldntGetPipelineResult"
	// ReasonInvalidMatrixTypes: a matrix known only at run time has params
	// of the wrong type.
	ReasonInvalidMatrixTypes = "InvalidMatrixParameterTypes"

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
	// StepSkipped: the step did not run because an earlier one failed.
	StepSkipped = "Skipped"
	// OOMKilled: a step's or sidecar's container was OOM-killed
	// (Kubernetes' terminated reason, which Tekton copies).
	OOMKilled = "OOMKilled"

	// TaskRun spec status messages for a TaskRun cancelled by its PipelineRun.
	MsgCancelledByPipeline        = "TaskRun cancelled as the PipelineRun it belongs to has been cancelled."
	MsgCancelledByPipelineTimeout = "TaskRun cancelled as the PipelineRun it belongs to has timed out."

	// Values of $(tasks.X.status) and $(tasks.status).
	stateNone = "None"
)
