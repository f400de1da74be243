// Package tektonstatus turns the engine's RunStatus into the PipelineRun and
// TaskRun objects, with Tekton v1 status, that Tekton's controller would write.
package tektonstatus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// ListOptions are what List cannot learn from the plan and the status.
type ListOptions struct {
	// PodName is status.podName of every TaskRun: the shared pod in pod mode,
	// "" when steps ran as local processes.
	PodName string
	// Config is the Tekton configuration the run was compiled with: its
	// defaults shape the TaskRuns' specs, and its feature flags go to
	// status.provenance when enable-provenance-in-status is on. Nil means
	// Tekton's defaults and no provenance (the flags used are not known).
	Config *config.Config
	// ContainerStatuses are the Pod's, when known: the steps' and sidecars'
	// imageID and containerID come from their containers'.
	ContainerStatuses []corev1.ContainerStatus
}

// List is the run as a v1 List: the PipelineRun (or the TaskRun of a
// TaskRun plan) first, then one TaskRun per pipeline task that ran, in the
// order they started.
func List(c *compile.Compiled, st *planpb.RunStatus) *metav1.List {
	var opts ListOptions
	if c != nil {
		opts.Config = c.Config
	}
	return ListWith(c, st, opts)
}

// ListWith is List with options.
func ListWith(c *compile.Compiled, st *planpb.RunStatus, opts ListOptions) *metav1.List {
	b := newBuilder(c, st, opts)
	list := &metav1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}}
	if b.plan.GetKind() == planpb.RunKind_TASK_RUN {
		list.Items = []runtime.RawExtension{{Object: b.standaloneTaskRun()}}
		return list
	}
	pr := b.pipelineRun()
	list.Items = append(list.Items, runtime.RawExtension{Object: pr})
	list.Items = append(list.Items, b.children(pr)...)
	return list
}

// children are the objects under pr, in the order their tasks started: a
// TaskRun per task that ran, and for a task that runs a pipeline its child
// PipelineRun followed by the objects under it.
func (b *builder) children(pr *v1.PipelineRun) []runtime.RawExtension {
	var out []runtime.RawExtension
	for _, ts := range startOrder(b.st.GetTasks()) {
		if cc := b.c.Children[ts.GetName()]; cc != nil && ts.GetChild() != nil {
			sub := newBuilder(cc, ts.GetChild(), b.opts)
			child := sub.pipelineRun()
			out = append(out, runtime.RawExtension{Object: child})
			out = append(out, sub.children(child)...)
			continue
		}
		out = append(out, runtime.RawExtension{Object: b.childTaskRun(pr, ts)})
	}
	return out
}

// startOrder sorts task statuses by the start of their first attempt; ties
// keep the status order (the plan's declaration order).
func startOrder(tasks []*planpb.TaskStatus) []*planpb.TaskStatus {
	out := append([]*planpb.TaskStatus(nil), tasks...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := firstStart(out[i]), firstStart(out[j])
		if a == nil || b == nil {
			return a != nil
		}
		return a.AsTime().Before(b.AsTime())
	})
	return out
}

// firstStart is when the task's first attempt started.
func firstStart(ts *planpb.TaskStatus) *timestamppb.Timestamp {
	if r := ts.GetRetries(); len(r) > 0 && r[0].GetStartTime() != nil {
		return r[0].GetStartTime()
	}
	return ts.GetStartTime()
}

// Write prints obj as indented JSON or as YAML.
func Write(w io.Writer, format string, obj any) error {
	var out []byte
	var err error
	switch format {
	case "json":
		out, err = json.MarshalIndent(obj, "", "  ")
		out = append(out, '\n')
	case "yaml":
		out, err = yaml.Marshal(obj)
	default:
		return fmt.Errorf("output format %q is not json or yaml", format)
	}
	if err != nil {
		return fmt.Errorf("encode status as %s: %w", format, err)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// builder holds what every object of the list is shaped from.
type builder struct {
	c     *compile.Compiled
	st    *planpb.RunStatus
	opts  ListOptions
	ctx   context.Context
	plan  *planpb.Plan
	tasks map[string]*planpb.Task
	final map[string]bool
	// propagated are the replacements of the run's task results into
	// embedded taskSpecs, once propagate needed them.
	propagated *propagation
}

func newBuilder(c *compile.Compiled, st *planpb.RunStatus, opts ListOptions) *builder {
	if c == nil {
		c = &compile.Compiled{}
	}
	ctx := context.Background()
	if opts.Config != nil {
		ctx = config.ToContext(ctx, opts.Config)
	}
	b := &builder{c: c, st: st, opts: opts, ctx: ctx, plan: c.Plan,
		tasks: map[string]*planpb.Task{}, final: map[string]bool{}}
	for _, t := range c.Plan.GetTasks() {
		b.tasks[t.GetName()] = t
	}
	for _, t := range c.Plan.GetFinally() {
		b.tasks[t.GetName()] = t
		b.final[t.GetName()] = true
	}
	b.runTimeTaskRuns()
	return b
}

// provenance is status.provenance as Tekton writes it when
// enable-provenance-in-status is on: the feature flags, and where a
// resolver found the object of refSource (a key of Compiled.RefSources).
func (b *builder) provenance(refSource string) *v1.Provenance {
	if b.opts.Config == nil || b.opts.Config.FeatureFlags == nil || !b.opts.Config.FeatureFlags.EnableProvenanceInStatus {
		return nil
	}
	return &v1.Provenance{FeatureFlags: b.opts.Config.FeatureFlags.DeepCopy(), RefSource: b.c.RefSources[refSource].DeepCopy()}
}

// pipelineTask is the named PipelineTask of the resolved pipeline spec, nil
// when the spec is not known.
func (b *builder) pipelineTask(name string) *v1.PipelineTask {
	if b.c.PipelineSpec == nil {
		return nil
	}
	name = b.pipelineTaskName(name)
	for _, list := range [][]v1.PipelineTask{b.c.PipelineSpec.Tasks, b.c.PipelineSpec.Finally} {
		for i := range list {
			if list[i].Name == name {
				return list[i].DeepCopy()
			}
		}
	}
	return nil
}

// taskSpec is status.taskSpec of the named task.
func (b *builder) taskSpec(name string) *v1.TaskSpec {
	if ts, ok := b.c.TaskSpecs[name]; ok && ts != nil {
		return ts.DeepCopy()
	}
	return nil
}
