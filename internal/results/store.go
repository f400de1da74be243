// Package results holds the results tasks produce and substitutes Tekton's
// $(...) variables with them, and with params, contexts and paths, at run time.
package results

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Store holds the results of finished tasks. It is safe for concurrent use.
type Store struct {
	mu sync.RWMutex
	m  map[string]map[string]*planpb.Value
}

// Set records the results of a task, replacing what it had.
func (s *Store) Set(task string, rs []*planpb.ResultValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]map[string]*planpb.Value{}
	}
	byName := make(map[string]*planpb.Value, len(rs))
	for _, r := range rs {
		byName[r.GetName()] = r.GetValue()
	}
	s.m[task] = byName
}

// Get returns a result of a task, and whether the task produced it.
func (s *Store) Get(task, result string) (*planpb.Value, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[task][result]
	return v, ok
}

// Parse turns the raw content of a result file into a value of its declared
// type, as Tekton does: a string result is the content as is (a trailing
// newline included); an array or object result is JSON, and a result whose
// content is not of the declared type, or an object result missing a declared
// key, is an error (Tekton fails the TaskRun with TaskRunValidationFailed).
func Parse(spec *planpb.ResultSpec, raw string) (*planpb.Value, error) {
	if spec.GetType() == planpb.ValueType_STRING {
		return &planpb.Value{StringValue: raw}, nil
	}
	v := parseJSONValue(raw)
	if v.GetType() != spec.GetType() {
		return nil, fmt.Errorf("task result %q is expected to be %q type but was initialized to a different type %q",
			spec.GetName(), TypeName(spec.GetType()), TypeName(v.GetType()))
	}
	var missing []string
	for _, k := range spec.GetProperties() {
		if _, ok := v.GetObjectValue()[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("task result %q is missing keys %v required by its properties", spec.GetName(), missing)
	}
	return v, nil
}

// parseJSONValue is Tekton's ParamValue.UnmarshalJSON: an array of strings,
// an object of strings, a JSON string, or else the raw text.
func parseJSONValue(raw string) *planpb.Value {
	if strings.HasPrefix(raw, "[") {
		var a []string
		if json.Unmarshal([]byte(raw), &a) == nil {
			return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: a}
		}
	}
	if strings.HasPrefix(raw, "{") {
		var m map[string]string
		if json.Unmarshal([]byte(raw), &m) == nil {
			return &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: m}
		}
	}
	var s string
	if json.Unmarshal([]byte(raw), &s) == nil {
		return &planpb.Value{StringValue: s}
	}
	return &planpb.Value{StringValue: raw}
}

// TypeName is a value type as Tekton names param and result types.
func TypeName(t planpb.ValueType) string {
	switch t {
	case planpb.ValueType_ARRAY:
		return "array"
	case planpb.ValueType_OBJECT:
		return "object"
	}
	return "string"
}

// Ref is a reference to a task result: $(tasks.TASK.results.RESULT...).
type Ref struct{ Task, Result string }

// Refs returns the task result references in s, in order, each once.
// Like Tekton's NewResultRefs it accepts $(tasks.T.results.R),
// $(tasks.T.results.R[*]), $(tasks.T.results.R[i]) and
// $(tasks.T.results.R.KEY).
func Refs(s string) []Ref {
	if !strings.Contains(s, "$(tasks.") {
		return nil
	}
	var refs []Ref
	for _, expr := range expressions(s) {
		parts := strings.Split(expr, ".")
		if len(parts) < 4 || len(parts) > 5 || parts[0] != "tasks" || parts[2] != "results" {
			continue
		}
		r := Ref{Task: parts[1], Result: trimIndex(parts[3])}
		if !slices.Contains(refs, r) {
			refs = append(refs, r)
		}
	}
	return refs
}

// Expressions returns the text inside each $(...) variable reference in s,
// in order, duplicates kept: what Tekton's GetVarSubstitutionExpressions
// finds (VariableSubstitutionRegex, "$(" and ")" stripped).
func Expressions(s string) []string { return expressions(s) }

// SplitIndex splits a result name as written after "results." into the
// name and its index: "list[1]" is ("list", "1"), "list[*]" is ("list", "*"),
// "r" is ("r", "") (Tekton's ParseResultName).
func SplitIndex(name string) (string, string) {
	base := trimIndex(name)
	if base == name {
		return name, ""
	}
	return base, name[len(base)+1 : len(name)-1]
}

// expressions returns the text inside each $(...) in s whose content is
// Tekton's variable syntax ([_a-zA-Z0-9.-] and an optional [i] or [*]).
func expressions(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "$(")
		if i < 0 {
			return out
		}
		s = s[i+2:]
		j := strings.IndexByte(s, ')')
		if j < 0 {
			return out
		}
		if expr := s[:j]; isVariable(expr) {
			out = append(out, expr)
		}
	}
}

func isVariable(expr string) bool {
	body := trimIndex(expr)
	if body == "" {
		return false
	}
	for _, c := range body {
		if !(c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// trimIndex drops a trailing [i] or [*].
func trimIndex(s string) string {
	if !strings.HasSuffix(s, "]") {
		return s
	}
	i := strings.LastIndexByte(s, '[')
	if i < 0 {
		return s
	}
	idx := s[i+1 : len(s)-1]
	if idx != "*" {
		for _, c := range idx {
			if c < '0' || c > '9' {
				return s
			}
		}
	}
	return s[:i]
}
