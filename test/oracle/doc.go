// Package oracle checks the supervisor's scheduling decisions against Tekton's
// own PipelineRun logic, driven with synthetic TaskRuns; it holds tests only.
package oracle
