package oracle

// known are the differences between internal/supervisor and Tekton that this
// suite found and that the supervisor's owner has to fix. A scenario whose
// only differences are known ones is skipped with the reason; any other
// difference fails it. Once a difference is fixed its entry must go: the
// suite fails while an entry no longer occurs.
var known = map[string]string{
	"skipped-when": "Facts.Skipped reports the when expressions of a skipped task as written " +
		"($(tasks.a.results.r), $(tasks.status)); Tekton reports them substituted: GetSkippedTasks " +
		"(pipelinerunstate.go) copies rpt.PipelineTask.When, which ResolvePipelineTask has passed through " +
		"ApplyTaskResults and, for finally, runNextSchedulableTask through ApplyPipelineTaskStateContext",
	"validation-message": "a result a succeeded task did not produce: Tekton's message is " +
		"MissingResultFromCompletedTaskError (pipelinerunresolution.go): `task \"a\" completed successfully but did not " +
		"emit the result \"r\", which is referenced by task \"b\"`; Facts.missingResult writes " +
		"`Invalid task result reference: \"a\" did not produce result \"r\" referenced by \"b\"`",
	"timed-out-running-finally": "reasons.go ReasonTimedOutRunningFinally is \"PipelineRunTimedOutRunningFinally\"; " +
		"Tekton's v1.PipelineRunReasonTimedOutRunningFinally is \"PipelineRunTimeoutRunningFinally\"",
	"frozen-status": "once Tekton has ended a run (cancelled, timed out) its status is final: ReconcileKind returns early " +
		"for a done PipelineRun (pipelinerun.go, `if pr.IsDone()`) and cancelPipelineRun sets only the condition, so " +
		"skippedTasks stay as the last reconcile left them; Facts.Skipped keeps recomputing, e.g. `PipelineRun was stopping` " +
		"for the dependents of a task that ended cancelled, `PipelineRun timeout has been reached` for finally",
	"pipeline-result-error": "a pipeline result that references a result a succeeded task did not produce fails the " +
		"run in Tekton: reconcile marks it False/CouldntGetPipelineResult when ApplyTaskResultsToPipelineResults returns " +
		"an error (pipelinerun.go); Facts.Condition says Succeeded and pipelineResults drops the result",
}

// seenKnown are the known disagreements some scenario ran into.
var seenKnown = map[string]bool{}
