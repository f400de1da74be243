// Package v1alpha1 is the PodPipeline custom task's API (pod-runner.dev/v1alpha1,
// TEP-0002; embedded as TEP-0061 allows): a pipeline task whose taskSpec or
// taskRef is of this kind makes Tekton's controller create a CustomRun, which
// pod-runner's controller runs as one Pod. config/crd declares the kind.
package v1alpha1

import (
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The kind's group, version and name.
const (
	Group      = "pod-runner.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
	Kind       = "PodPipeline"
)

// GVK is the kind of the PodPipeline objects a customRef names.
var GVK = schema.GroupVersionKind{Group: Group, Version: Version, Kind: Kind}

// PodPipelineSpec is what a PodPipeline holds: the group of tasks to run
// in one Pod, as a PipelineRun names its pipeline. It is customSpec.spec
// of a CustomRun that embeds it, or spec of the PodPipeline object its
// customRef names. The CustomRun's params, workspaces, timeout and
// serviceAccountName are the group's run's.
type PodPipelineSpec struct {
	PipelineSpec *v1.PipelineSpec `json:"pipelineSpec,omitempty"`
	PipelineRef  *v1.PipelineRef  `json:"pipelineRef,omitempty"`
}

// GroupStatus is status.extraFields of a PodPipeline's CustomRun: the
// current attempt's Pod and, as its PipelineRun status would say, the
// TaskRuns it made and the tasks it skipped.
type GroupStatus struct {
	PodName         string                    `json:"podName,omitempty"`
	ChildReferences []v1.ChildStatusReference `json:"childReferences,omitempty"`
	SkippedTasks    []v1.SkippedTask          `json:"skippedTasks,omitempty"`
}

// IsPodPipeline tells whether run is a PodPipeline's, which pod-runner's
// controller runs; any other CustomRun is another controller's.
func IsPodPipeline(run *v1beta1.CustomRun) bool {
	if ref := run.Spec.CustomRef; ref != nil {
		return ref.APIVersion == APIVersion && string(ref.Kind) == Kind
	}
	if s := run.Spec.CustomSpec; s != nil {
		return s.APIVersion == APIVersion && s.Kind == Kind
	}
	return false
}
