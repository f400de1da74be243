// Package oracle checks the supervisor's decisions against Tekton's own:
// its PipelineRun logic driven with synthetic TaskRuns and, on the local
// cluster, its controller; it holds tests only.
package oracle
