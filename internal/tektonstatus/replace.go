package tektonstatus

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/substitution"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// replacer holds the task result replacements Tekton has applied to its
// PipelineRunState by the time it writes status: GetChildReferences resolves
// the result references of each done task, in pipeline order, and applies
// them (ApplyTaskResults) to the when expressions and display names that end
// up in childReferences and skippedTasks.
type replacer struct {
	results map[string]map[string]*planpb.Value // task → result → value, tasks that ran
	str     map[string]string
	arr     map[string][]string
}

func newReplacer(st *planpb.RunStatus) *replacer {
	r := &replacer{results: map[string]map[string]*planpb.Value{}, str: map[string]string{}, arr: map[string][]string{}}
	for _, ts := range st.GetTasks() {
		m := map[string]*planpb.Value{}
		for _, res := range ts.GetResults() {
			m[res.GetName()] = res.GetValue()
		}
		r.results[ts.GetName()] = m
	}
	return r
}

// resolve adds the replacements for the result references of pt when all of
// them resolve, as ResolveResultRefs does (one missing result: none applied).
func (r *replacer) resolve(pt *v1.PipelineTask) {
	type resolved struct {
		task, result string
		value        *planpb.Value
	}
	var refs []resolved
	for _, ref := range v1.PipelineTaskResultRefs(pt) {
		v, ok := r.results[ref.PipelineTask][ref.Result]
		if !ok {
			return
		}
		refs = append(refs, resolved{ref.PipelineTask, ref.Result, v})
	}
	for _, ref := range refs {
		targets := replaceTargets(ref.task, ref.result, "")
		switch ref.value.GetType() {
		case planpb.ValueType_ARRAY:
			for i, s := range ref.value.GetArrayValue() {
				for _, t := range replaceTargets(ref.task, ref.result, fmt.Sprintf("[%d]", i)) {
					r.str[t] = s
				}
			}
			for _, t := range targets {
				r.arr[t] = ref.value.GetArrayValue()
			}
		case planpb.ValueType_OBJECT:
			for k, s := range ref.value.GetObjectValue() {
				for _, t := range objectTargets(ref.task, ref.result, k) {
					r.str[t] = s
				}
			}
		default:
			for _, t := range targets {
				r.str[t] = ref.value.GetStringValue()
			}
		}
	}
}

// replaceTargets are ResolvedResultRef.getReplaceTarget (suffix "") and
// getReplaceTargetfromArrayIndex (suffix "[i]").
func replaceTargets(task, result, suffix string) []string {
	return []string{
		fmt.Sprintf("%s.%s.%s.%s%s", v1.ResultTaskPart, task, v1.ResultResultPart, result, suffix),
		fmt.Sprintf("%s.%s.%s[%q]%s", v1.ResultTaskPart, task, v1.ResultResultPart, result, suffix),
		fmt.Sprintf("%s.%s.%s['%s']%s", v1.ResultTaskPart, task, v1.ResultResultPart, result, suffix),
	}
}

// objectTargets are ResolvedResultRef.getReplaceTargetfromObjectKey.
func objectTargets(task, result, key string) []string {
	return []string{
		fmt.Sprintf("%s.%s.%s.%s.%s", v1.ResultTaskPart, task, v1.ResultResultPart, result, key),
		fmt.Sprintf("%s.%s.%s[%q][%s]", v1.ResultTaskPart, task, v1.ResultResultPart, result, key),
		fmt.Sprintf("%s.%s.%s['%s'][%s]", v1.ResultTaskPart, task, v1.ResultResultPart, result, key),
	}
}

// when applies the replacements known so far with Tekton's own
// WhenExpressions.ReplaceVariables.
func (r *replacer) when(ws []*planpb.WhenExpression) v1.WhenExpressions {
	w := whenExpressions(ws)
	if w == nil {
		return nil
	}
	return w.ReplaceVariables(r.str, r.arr)
}

func (r *replacer) text(s string) string {
	return substitution.ApplyReplacements(s, r.str)
}

// propagate is the PipelineRun reconciler's PropagateResults for plan task
// name: an embedded taskSpec gets the results of the run's finished tasks
// (strings, whole arrays and object keys, dot form only) before its TaskRun
// is created. A task's references are all to tasks that finished before it
// started, so the results known now substitute what they did then. A
// referenced Task's spec is not the pipeline's to substitute.
//
// The replacements are made once per status; a spec with no task result
// reference in it is returned as is, since substituting would change
// nothing (a status is built for every task, at every write).
func (b *builder) propagate(name string, spec *v1.TaskSpec) *v1.TaskSpec {
	if spec == nil || b.tasks[name].GetTaskRefName() != "" {
		return spec
	}
	if b.propagated == nil {
		b.propagated = b.propagatedResults()
	}
	p := b.propagated
	if len(p.str) == 0 && len(p.arr) == 0 {
		return spec
	}
	if raw, err := json.Marshal(spec); err == nil && !bytes.Contains(raw, []byte("$("+v1.ResultTaskPart+".")) {
		return spec
	}
	return resources.ApplyReplacements(spec, p.str, p.arr, map[string]map[string]string{})
}

// propagation is the replacements PropagateResults makes from the results
// of the run's tasks: strings, whole arrays and object keys.
type propagation struct {
	str map[string]string
	arr map[string][]string
}

func (b *builder) propagatedResults() *propagation {
	r := newReplacer(b.st)
	b.matrixResults(r)
	p := &propagation{str: map[string]string{}, arr: map[string][]string{}}
	for task, rs := range r.results {
		for result, v := range rs {
			key := fmt.Sprintf("%s.%s.%s.%s", v1.ResultTaskPart, task, v1.ResultResultPart, result)
			switch v.GetType() {
			case planpb.ValueType_ARRAY:
				p.arr[key] = v.GetArrayValue()
			case planpb.ValueType_OBJECT:
				for k, e := range v.GetObjectValue() {
					p.str[key+"."+k] = e
				}
			default:
				p.str[key] = v.GetStringValue()
			}
		}
	}
	return p
}
