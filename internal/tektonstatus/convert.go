package tektonstatus

import (
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/selection"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// metaTime converts a proto timestamp; nil stays nil so that omitempty
// fields (startTime, completionTime) are left out as Tekton leaves them.
func metaTime(t *timestamppb.Timestamp) *metav1.Time {
	if t == nil || !t.IsValid() {
		return nil
	}
	mt := metav1.NewTime(t.AsTime())
	return &mt
}

// conditions is the duck status holding the one Succeeded condition that
// Tekton's batch condition set manages for runs.
func conditions(c *planpb.Condition) duckv1.Status {
	if c == nil {
		return duckv1.Status{}
	}
	cond := apis.Condition{
		Type:    apis.ConditionSucceeded,
		Status:  corev1.ConditionStatus(c.GetStatus()),
		Reason:  c.GetReason(),
		Message: c.GetMessage(),
	}
	if t := metaTime(c.GetLastTransitionTime()); t != nil {
		cond.LastTransitionTime = apis.VolatileTime{Inner: *t}
	}
	if cond.Status == "" {
		cond.Status = corev1.ConditionUnknown
	}
	return duckv1.Status{Conditions: duckv1.Conditions{cond}}
}

// paramValue converts a plan value into Tekton's typed ParamValue.
func paramValue(v *planpb.Value) v1.ParamValue {
	switch v.GetType() {
	case planpb.ValueType_ARRAY:
		arr := v.GetArrayValue()
		if arr == nil {
			arr = []string{}
		}
		return v1.ParamValue{Type: v1.ParamTypeArray, ArrayVal: arr}
	case planpb.ValueType_OBJECT:
		obj := v.GetObjectValue()
		if obj == nil {
			obj = map[string]string{}
		}
		return v1.ParamValue{Type: v1.ParamTypeObject, ObjectVal: obj}
	default:
		return v1.ParamValue{Type: v1.ParamTypeString, StringVal: v.GetStringValue()}
	}
}

func params(ps []*planpb.Param) v1.Params {
	if len(ps) == 0 {
		return nil
	}
	out := make(v1.Params, 0, len(ps))
	for _, p := range ps {
		out = append(out, v1.Param{Name: p.GetName(), Value: paramValue(p.GetValue())})
	}
	return out
}

// taskRunResults are status.results of a TaskRun, typed as pod.filterResults
// types them.
func taskRunResults(rs []*planpb.ResultValue) []v1.TaskRunResult {
	if len(rs) == 0 {
		return nil
	}
	out := make([]v1.TaskRunResult, 0, len(rs))
	for _, r := range rs {
		v := paramValue(r.GetValue())
		out = append(out, v1.TaskRunResult{Name: r.GetName(), Type: v1.ResultsType(v.Type), Value: v})
	}
	return out
}

func pipelineRunResults(rs []*planpb.ResultValue) []v1.PipelineRunResult {
	if len(rs) == 0 {
		return nil
	}
	out := make([]v1.PipelineRunResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, v1.PipelineRunResult{Name: r.GetName(), Value: paramValue(r.GetValue())})
	}
	return out
}

func whenExpressions(ws []*planpb.WhenExpression) v1.WhenExpressions {
	if len(ws) == 0 {
		return nil
	}
	out := make(v1.WhenExpressions, 0, len(ws))
	for _, w := range ws {
		out = append(out, v1.WhenExpression{
			Input:    w.GetInput(),
			Operator: selection.Operator(w.GetOperator()),
			Values:   append([]string(nil), w.GetValues()...),
			CEL:      w.GetCel(),
		})
	}
	return out
}

// stepName is the name Tekton gives a step: its own, or "unnamed-N"
// (pod.StepName without the "step-" prefix).
func stepName(name string, index int) string {
	if name != "" {
		return name
	}
	return fmt.Sprintf("unnamed-%d", index)
}
