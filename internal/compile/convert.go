package compile

import (
	"context"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/substitution"
	"google.golang.org/protobuf/types/known/durationpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// reservedAnnotationRE matches the annotations Tekton keeps to itself and
// does not propagate from a PipelineRun to its TaskRuns.
var reservedAnnotationRE = regexp.MustCompile(pipeline.TektonReservedAnnotationExpr)

func reservedAnnotation(key string) bool { return reservedAnnotationRE.MatchString(key) }

func defaultTimeout(ctx context.Context) time.Duration {
	return time.Duration(config.FromContextOrDefaults(ctx).Defaults.DefaultTimeoutMinutes) * time.Minute
}

// duration converts a Kubernetes duration; nil stays unset.
func duration(d *metav1.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(d.Duration)
}

// combinedSubPath is the reconciler's combinedSubPath.
func combinedSubPath(workspaceSubPath, pipelineTaskSubPath string) string {
	switch {
	case workspaceSubPath == "":
		return pipelineTaskSubPath
	case pipelineTaskSubPath == "":
		return workspaceSubPath
	}
	return filepath.Join(workspaceSubPath, pipelineTaskSubPath)
}

func applyReplacements(s string, replacements map[string]string) string {
	return substitution.ApplyReplacements(s, replacements)
}

func valueType(t string) planpb.ValueType {
	switch t {
	case string(v1.ParamTypeArray):
		return planpb.ValueType_ARRAY
	case string(v1.ParamTypeObject):
		return planpb.ValueType_OBJECT
	}
	return planpb.ValueType_STRING
}

func value(v v1.ParamValue) *planpb.Value {
	return &planpb.Value{
		Type:        valueType(string(v.Type)),
		StringValue: v.StringVal,
		ArrayValue:  v.ArrayVal,
		ObjectValue: v.ObjectVal,
	}
}

func params(ps v1.Params) []*planpb.Param {
	var out []*planpb.Param
	for _, p := range ps {
		out = append(out, &planpb.Param{Name: p.Name, Value: value(p.Value)})
	}
	return out
}

func paramSpec(p v1.ParamSpec) *planpb.ParamSpec {
	s := &planpb.ParamSpec{Name: p.Name, Type: valueType(string(p.Type)), Properties: sortedKeys(p.Properties)}
	if p.Default != nil {
		s.Default = value(*p.Default)
	}
	return s
}

func when(ws v1.WhenExpressions) []*planpb.WhenExpression {
	var out []*planpb.WhenExpression
	for _, w := range ws {
		out = append(out, &planpb.WhenExpression{Input: w.Input, Operator: string(w.Operator), Values: w.Values, Cel: w.CEL})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func declaredWorkspaces(ws []v1.PipelineWorkspaceDeclaration) map[string]bool {
	m := map[string]bool{}
	for _, w := range ws {
		m[w.Name] = true
	}
	return m
}

// step converts a merged step (stepTemplate applied).
func (c *compiler) step(s *v1.Step, field, doc string) (*planpb.Step, error) {
	env, envFrom, err := c.env(s.Env, s.EnvFrom, where{doc, field})
	if err != nil {
		return nil, err
	}
	ps := &planpb.Step{
		Name: s.Name, Image: s.Image, Command: s.Command, Args: s.Args, Script: s.Script,
		WorkingDir: s.WorkingDir, Env: env, EnvFrom: envFrom, Timeout: duration(s.Timeout),
		Requests: quantities(s.ComputeResources.Requests), Limits: quantities(s.ComputeResources.Limits),
	}
	if s.OnError == v1.Continue {
		ps.OnError = planpb.OnError_CONTINUE
	}
	for _, w := range s.When {
		ps.When = append(ps.When, &planpb.WhenExpression{Input: w.Input, Operator: string(w.Operator), Values: w.Values, Cel: w.CEL})
	}
	for _, r := range s.Results {
		ps.Results = append(ps.Results, &planpb.ResultSpec{Name: r.Name, Type: valueType(string(r.Type)), Properties: sortedKeys(r.Properties)})
	}
	if s.StdoutConfig != nil {
		ps.StdoutPath = s.StdoutConfig.Path
	}
	if s.StderrConfig != nil {
		ps.StderrPath = s.StderrConfig.Path
	}
	ps.Workspaces = stepWorkspaces(s.Workspaces)
	return ps, nil
}

// stepWorkspaces are a step's or sidecar's isolated workspaces.
func stepWorkspaces(ws []v1.WorkspaceUsage) []*planpb.StepWorkspace {
	var out []*planpb.StepWorkspace
	for _, w := range ws {
		out = append(out, &planpb.StepWorkspace{Name: w.Name, MountPath: w.MountPath})
	}
	return out
}

func (c *compiler) sidecar(s *v1.Sidecar, field, doc string) (*planpb.Step, error) {
	env, envFrom, err := c.env(s.Env, s.EnvFrom, where{doc, field})
	if err != nil {
		return nil, err
	}
	readiness, startup, err := sidecarProbes(s, where{doc, field})
	if err != nil {
		return nil, err
	}
	return &planpb.Step{
		Name: s.Name, Image: s.Image, Command: s.Command, Args: s.Args, Script: s.Script,
		WorkingDir: s.WorkingDir, Env: env, EnvFrom: envFrom,
		Requests: quantities(s.ComputeResources.Requests), Limits: quantities(s.ComputeResources.Limits),
		Workspaces:     stepWorkspaces(s.Workspaces),
		ReadinessProbe: readiness, StartupProbe: startup,
	}, nil
}

func quantities(rl corev1.ResourceList) map[string]string {
	if len(rl) == 0 {
		return nil
	}
	m := make(map[string]string, len(rl))
	for k, q := range rl {
		m[string(k)] = q.String()
	}
	return m
}
