package facts

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/e7763abc/pod-runner/internal/reasons"
	"github.com/e7763abc/pod-runner/internal/results"
	"github.com/e7763abc/pod-runner/proto/planpb"
)

// indexedRef is a reference to one element of an array result,
// $(tasks.T.results.R[i]) (a ResultRef with a ResultsIndex).
type indexedRef struct {
	task, result string
	index        int
}

// indexedRefs are the indexed result references in s, as Tekton's
// NewResultRefs parses them.
func indexedRefs(s string) []indexedRef {
	var out []indexedRef
	for _, expr := range results.Expressions(s) {
		parts := strings.Split(expr, ".")
		if len(parts) != 4 || (parts[0] != "tasks" && parts[0] != "finally") || parts[2] != "results" {
			continue
		}
		name, idx := results.SplitIndex(parts[3])
		if idx == "" || idx == "*" {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		out = append(out, indexedRef{task: parts[1], result: name, index: i})
	}
	return out
}

// resolveError is the error Tekton's ResolvePipelineTask returns now for
// one of the tasks, or "": an array result read at an index out of its
// range (validateArrayResultsIndex), checked for every task, skipped or
// finally ones included, once all its result references resolve. The tasks
// that have a TaskRun come first, as resolvePipelineState resolves them first.
func (f *Facts) resolveError() string {
	all := append(slices.Clip(f.dagN), f.finalN...)
	var ordered []*node
	for _, n := range all {
		if n.scheduled() {
			ordered = append(ordered, n)
		}
	}
	for _, n := range all {
		if !n.scheduled() {
			ordered = append(ordered, n)
		}
	}
	for _, n := range ordered {
		if len(n.indexed) == 0 || f.unresolvable(n) != "" {
			continue
		}
		for _, r := range n.indexed {
			v, _ := f.result(f.byName[r.task], r.result)
			if v.GetType() == planpb.ValueType_ARRAY && r.index >= len(v.GetArrayValue()) {
				return fmt.Sprintf("array Result Index %d for Task %s Result %s is out of bound of size %d",
					r.index, r.task, r.result, len(v.GetArrayValue()))
			}
		}
	}
	return ""
}

// finishedResult is a result of a task that has finished, succeeded or
// failed (GetTaskRunsResults), and whether there is one. A matrixed task
// has results there only when another task read them (resultsRead).
func (f *Facts) finishedResult(task, result string) (*planpb.Value, bool) {
	n := f.byName[task]
	if n == nil || (n.phase != succeeded && n.phase != failed) {
		return nil, false
	}
	if n.matrixed && !f.resultsRead(n) {
		return nil, false
	}
	return f.result(n, result)
}

// pipelineResults is ApplyTaskResultsToPipelineResults: each pipeline result
// whose references all resolve, and an error naming those that cannot be
// resolved although their task succeeded (or the index or key they read is
// not there). A reference to a task that did not succeed drops the result
// silently. References may read DAG and finally tasks, $(tasks.T...) or
// $(finally.T...).
func (f *Facts) pipelineResults() ([]*planpb.ResultValue, error) {
	status := f.taskStatusVars()
	for _, n := range f.finalN {
		status["tasks."+n.name+".status"] = taskState(n)
	}
	str := map[string]string{}
	arr := map[string][]string{}
	obj := map[string]map[string]string{}
	var out []*planpb.ResultValue
	var invalid []string
	for _, pr := range f.plan.GetResults() {
		var exprs []string
		for _, s := range valueTexts(pr.GetValue()) {
			exprs = append(exprs, results.Expressions(s)...)
		}
		if len(exprs) == 0 {
			continue
		}
		valid := true
		bad := func() {
			invalid = append(invalid, pr.GetName())
			valid = false
		}
		// missing: the result is not there; that is an error only when its
		// task succeeded.
		missing := func(task string) {
			if s, ok := status["tasks."+task+".status"]; ok && s != reasons.Succeeded {
				valid = false
				return
			}
			bad()
		}
		for _, expr := range exprs {
			if _, ok := str[expr]; ok {
				continue
			}
			if _, ok := arr[expr]; ok {
				continue
			}
			if _, ok := obj[expr]; ok {
				continue
			}
			parts := strings.Split(expr, ".")
			if len(parts) < 4 || (parts[0] != "tasks" && parts[0] != "finally") || parts[2] != "results" {
				bad()
				continue
			}
			task := parts[1]
			name, idx := results.SplitIndex(parts[3])
			v, found := f.finishedResult(task, name)
			switch len(parts) {
			case 4:
				if !found {
					missing(task)
					continue
				}
				switch v.GetType() {
				case planpb.ValueType_ARRAY:
					if idx == "*" {
						arr[strings.TrimSuffix(expr, "[*]")] = v.GetArrayValue()
						continue
					}
					// Tekton reads a missing index as 0 (strconv.Atoi's zero value).
					i, _ := strconv.Atoi(idx)
					if i < len(v.GetArrayValue()) {
						str[expr] = v.GetArrayValue()[i]
					} else {
						bad()
					}
				case planpb.ValueType_OBJECT:
					obj[strings.TrimSuffix(expr, "[*]")] = v.GetObjectValue()
				default:
					str[expr] = v.GetStringValue()
				}
			case 5:
				if !found {
					missing(task)
					continue
				}
				if e, ok := v.GetObjectValue()[parts[4]]; ok {
					str[expr] = e
				} else {
					bad()
				}
			default:
				bad()
			}
		}
		if !valid {
			continue
		}
		vars := results.NewVars()
		for k, v := range str {
			vars.SetString(k, v)
		}
		for k, v := range arr {
			vars.SetArray(k, v)
		}
		for k, v := range obj {
			vars.SetObject(k, v)
		}
		out = append(out, &planpb.ResultValue{Name: pr.GetName(), Value: vars.ApplyValue(pr.GetValue())})
	}
	if len(invalid) > 0 {
		return out, fmt.Errorf("invalid pipelineresults %v, the referenced results don't exist", invalid)
	}
	return out, nil
}
