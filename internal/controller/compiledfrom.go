package controller

import (
	"encoding/json"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podlayout"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// RecordAnnotation on a run's Pod holds what the run was compiled from
// (compiledFrom, gzipped JSON in base64): the Pod is the record of a running
// run, so a restarted controller compiles it as it began, whatever was
// edited or deleted since.
const RecordAnnotation = "pod-runner.dev/compiled-from"

// maxRecord bounds the annotation: the API server allows 256 KiB for all
// of an object's annotations, and the run's own are copied to the Pod.
const maxRecord = 192 << 10

// compiledFrom is what a run was compiled from: the Pipeline, Tasks and
// StepActions the controller read (never a ConfigMap or Secret: lookup
// reads none) and Tekton's configuration then.
type compiledFrom struct {
	// nil (no ConfigMap) and empty differ: compile.WithClusterConfig.
	FeatureFlags map[string]string `json:"featureFlags"`
	Defaults     map[string]string `json:"defaults"`
	Docs         []recordedDoc     `json:"docs,omitempty"`
	// Answers are the resolvers' answers for the run's remote refs.
	Answers []recordedAnswer `json:"answers,omitempty"`
}

type recordedDoc struct {
	Kind   string          `json:"kind"`
	Name   string          `json:"name"`
	Object json.RawMessage `json:"object"`
}

// newCompiledFrom records the documents the controller read besides the
// run itself, and the resolvers' answers.
func newCompiledFrom(docs []load.Doc, answers []recordedAnswer, featureFlags, defaults map[string]string) (*compiledFrom, error) {
	rec := &compiledFrom{FeatureFlags: featureFlags, Defaults: defaults, Answers: answers}
	for _, d := range docs {
		if d.Kind == load.KindPipelineRun {
			continue
		}
		b, err := json.Marshal(d.Object)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", d.Display, err)
		}
		rec.Docs = append(rec.Docs, recordedDoc{Kind: d.Kind, Name: d.Name, Object: b})
	}
	return rec, nil
}

// annotate puts rec on pod; a record too large for an annotation is an
// error, as a Plan too large for the supervisor's environment is.
func (rec *compiledFrom) annotate(pod *corev1.Pod) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode the run's record: %w", err)
	}
	v := podlayout.EncodeGzip(b)
	if len(v) > maxRecord {
		return load.Errorf("", "", "what the run was compiled from takes %d bytes, over the %d a Pod annotation can hold: its Pipeline and Tasks are too large for one Pod", len(v), maxRecord)
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[RecordAnnotation] = v
	return nil
}

// compiledFromPod reads the record back from a run's Pod; false when the Pod
// has none (made by an older controller).
func compiledFromPod(pod *corev1.Pod) (*compiledFrom, bool, error) {
	v, ok := pod.Annotations[RecordAnnotation]
	if !ok {
		return nil, false, nil
	}
	b, err := podlayout.DecodeGzip(v)
	if err != nil {
		return nil, true, fmt.Errorf("pod %s: annotation %s: %w", pod.Name, RecordAnnotation, err)
	}
	rec := &compiledFrom{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, true, fmt.Errorf("pod %s: annotation %s: %w", pod.Name, RecordAnnotation, err)
	}
	return rec, true, nil
}

// documents are the recorded documents after run.
func (rec *compiledFrom) documents(run load.Doc) ([]load.Doc, error) {
	docs := []load.Doc{run}
	for _, d := range rec.Docs {
		obj := readable(d.Kind)
		if obj == nil {
			return nil, fmt.Errorf("the run's record holds a %s, which the controller never reads", d.Kind)
		}
		if err := json.Unmarshal(d.Object, obj); err != nil {
			return nil, fmt.Errorf("the run's record: %s %s: %w", d.Kind, d.Name, err)
		}
		docs = append(docs, doc(d.Kind, d.Name, obj))
	}
	return docs, nil
}

// planOf is the Plan in the run's Pod: what its supervisor runs, entrypoints
// looked up, as it was when the Pod was made.
func planOf(pod *corev1.Pod) (*planpb.Plan, error) {
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		if c.Name != podlayout.SupervisorContainer {
			continue
		}
		for _, e := range c.Env {
			if e.Name != podlayout.EnvPlan {
				continue
			}
			raw, err := podlayout.DecodePlan(e.Value)
			if err != nil {
				return nil, fmt.Errorf("pod %s: %w", pod.Name, err)
			}
			plan := &planpb.Plan{}
			if err := proto.Unmarshal(raw, plan); err != nil {
				return nil, fmt.Errorf("pod %s: %s: %w", pod.Name, podlayout.EnvPlan, err)
			}
			return plan, nil
		}
	}
	return nil, fmt.Errorf("pod %s: no %s in container %s", pod.Name, podlayout.EnvPlan, podlayout.SupervisorContainer)
}
