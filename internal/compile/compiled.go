package compile

import (
	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resource"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Options are the choices the user makes on the command line.
type Options struct {
	// Params override or add PipelineRun (TaskRun) params: NAME=VALUE.
	Params map[string]string
	// Workspaces bind a workspace to a host directory: NAME → DIR (local mode).
	Workspaces map[string]string
	// Namespace used when a run has none ("default" when empty).
	Namespace string
	// FeatureFlags and Defaults are the data of a cluster's Tekton
	// feature-flags and config-defaults ConfigMaps (WithClusterConfig);
	// nil: a fresh install's.
	FeatureFlags, Defaults map[string]string
	// Requester answers the run's resolver references (taskRef, pipelineRef
	// and StepAction ref with a resolver), as Tekton's resolvers answer the
	// ResolutionRequests its controller creates; nil: such a reference is
	// refused.
	Requester resource.Requester
	// Lookup reads the Pipelines, Tasks and StepActions a run names that
	// the documents lack; nil: they are not found.
	Lookup Lookup
}

// Compiled is a Plan and the Tekton objects it was compiled from, which the
// status writer needs to shape Tekton-compatible PipelineRun and TaskRun objects.
type Compiled struct {
	Plan *planpb.Plan
	// PipelineRun as submitted, defaulted, with name/namespace/uid set; nil for a TaskRun.
	PipelineRun *v1.PipelineRun
	// PipelineSpec is the resolved pipeline spec (status.pipelineSpec).
	PipelineSpec *v1.PipelineSpec
	// TaskRun as submitted, defaulted; nil for a PipelineRun.
	TaskRun *v1.TaskRun
	// RefSources are where resolvers found the run's Pipeline or Task (key
	// "") and the Tasks of its pipeline tasks (by pipeline task name): the
	// provenance.refSource of the PipelineRun's and TaskRuns' status.
	RefSources map[string]*v1.RefSource
	// StepRefSources are where resolvers found the StepActions of each
	// task's steps, by plan task name and step index (nil for a step that
	// is no resolved StepAction): status.steps[].provenance.refSource.
	StepRefSources map[string][]*v1.RefSource
	// TaskSpecs holds the resolved spec of each task (status.taskSpec of its
	// TaskRun), keyed by plan task name.
	TaskSpecs map[string]*v1.TaskSpec
	// TaskRuns holds the TaskRun Tekton would create for each task, keyed by
	// plan task name: metadata (name, labels, annotations), spec (params as
	// templates, timeout, workspaces, taskRef or taskSpec), defaulted; for a
	// TaskRun it is the run itself. Their uids are the plan tasks'
	// context["context.taskRun.uid"].
	TaskRuns map[string]*v1.TaskRun
	// TaskVolumes holds the Task volumes and volumeMounts of each task that
	// has any, keyed by plan task name (pod mode mounts them).
	TaskVolumes map[string]*TaskVolumes
	// Children are the compiled child runs of the pipeline tasks that run a
	// pipeline, by plan task name; their tasks are in the maps above too.
	Children map[string]*Compiled
	// Config is Tekton's configuration the run was compiled with (its
	// provenance in status).
	Config *config.Config

	// podErr is why the run cannot be one Pod (PodError).
	podErr *load.Error
	// localErr is why the run cannot run on this machine (LocalError).
	localErr *load.Error
	// objs are the documents compiled with.
	objs *objects
}

// Looked are the documents Options.Lookup gave, in the order read: with
// the documents given, what the run was compiled from.
func (c *Compiled) Looked() []load.Doc {
	if c.objs == nil {
		return nil
	}
	out := make([]load.Doc, len(c.objs.looked))
	for i, d := range c.objs.looked {
		out[i] = *d
	}
	return out
}

// LocalError is why the run cannot run locally, or nil: a ConfigMap or
// Secret it needs, or a key of one, is not among the documents. A Pod
// reads them from the cluster, so pod mode does not mind.
func (c *Compiled) LocalError() error {
	if c.localErr == nil {
		return nil
	}
	return c.localErr
}

// Documents are the ConfigMap and Secret documents the run refers to
// (env, envFrom, workspaces, Task volumes), as they were given, in the
// order given: what a Pod of the run needs beside it where there is no
// cluster to hold them (podman kube play).
func (c *Compiled) Documents() []runtime.Object {
	if c.objs == nil {
		return nil
	}
	var out []runtime.Object
	for _, d := range c.objs.given {
		if c.objs.used[d] {
			out = append(out, d.Object)
		}
	}
	return out
}

// Data is the data of the ConfigMap or Secret document of that name, which
// a local run's launcher reads its references from; false when none was
// given.
func (c *Compiled) Data(kind planpb.KeyRef_Kind, name string) (map[string][]byte, bool) {
	if c.objs == nil {
		return nil, false
	}
	return c.objs.data(kind, name)
}
