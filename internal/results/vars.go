package results

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// Vars is a set of variable values and Tekton's substitution rules for them:
// strings replace $(KEY) anywhere; arrays and objects replace a value that is
// exactly $(KEY) or $(KEY[*]) (Tekton's ApplyArrayReplacements and
// ParamValue.ApplyReplacements). Keys are written without "$(" and ")".
type Vars struct {
	str map[string]string
	arr map[string][]string
	obj map[string]map[string]string

	replacer *strings.Replacer // built lazily from str
}

// NewVars returns an empty set.
func NewVars() *Vars {
	return &Vars{str: map[string]string{}, arr: map[string][]string{}, obj: map[string]map[string]string{}}
}

// SetString sets a string variable.
func (v *Vars) SetString(key, value string) {
	v.str[key] = value
	v.replacer = nil
}

// SetArray sets an array variable: a value that is exactly $(KEY) or
// $(KEY[*]) becomes its elements (Tekton's arrayReplacements).
func (v *Vars) SetArray(key string, value []string) { v.arr[key] = value }

// SetObject sets an object variable: a value that is exactly $(KEY) or
// $(KEY[*]) becomes the object (Tekton's objectReplacements).
func (v *Vars) SetObject(key string, value map[string]string) { v.obj[key] = value }

// SetResult sets the variables of a task result under every name Tekton
// gives it: tasks.T.results.R, tasks.T.results["R"], tasks.T.results['R'],
// with [i] for array elements and .KEY for object keys
// (ResolvedResultRefs' replacement targets).
func (v *Vars) SetResult(task, result string, val *planpb.Value) {
	for _, base := range []string{
		fmt.Sprintf("tasks.%s.results.%s", task, result),
		fmt.Sprintf("tasks.%s.results[%q]", task, result),
		fmt.Sprintf("tasks.%s.results['%s']", task, result),
	} {
		v.set(base, val, ".%s")
	}
	if val.GetType() == planpb.ValueType_OBJECT {
		// Tekton's bracket forms for object keys are tasks.T.results["R"][KEY].
		for k, e := range val.GetObjectValue() {
			v.str[fmt.Sprintf("tasks.%s.results[%q][%s]", task, result, k)] = e
			v.str[fmt.Sprintf("tasks.%s.results['%s'][%s]", task, result, k)] = e
		}
	}
	v.replacer = nil
}

// SetPropagatedResult sets a task result under the names Tekton's
// PropagateResults gives it in an embedded taskSpec: tasks.T.results.R for
// a string and an array (whole, no [i]), tasks.T.results.R.KEY for each key
// of an object; no bracket forms.
func (v *Vars) SetPropagatedResult(task, result string, val *planpb.Value) {
	base := fmt.Sprintf("tasks.%s.results.%s", task, result)
	switch val.GetType() {
	case planpb.ValueType_ARRAY:
		v.arr[base] = val.GetArrayValue()
	case planpb.ValueType_OBJECT:
		for k, e := range val.GetObjectValue() {
			v.str[base+"."+k] = e
		}
	default:
		v.str[base] = val.GetStringValue()
	}
	v.replacer = nil
}

// SetStepResult sets a step result under the names Tekton's entrypoint
// substitutes: steps.S.results.R, with [i] for array elements, [*] for a
// whole array and .KEY for object keys.
func (v *Vars) SetStepResult(step, result string, val *planpb.Value) {
	v.set(fmt.Sprintf("steps.%s.results.%s", step, result), val, ".%s")
	v.replacer = nil
}

func (v *Vars) empty() bool { return len(v.str) == 0 && len(v.arr) == 0 && len(v.obj) == 0 }

// SetParam sets a param under Tekton's names for it: params.N, params["N"],
// params['N'] and v1beta1's inputs.params.N, with [i] for array elements and
// params.N.KEY for object keys (taskrun/resources replacementsFromParams).
func (v *Vars) SetParam(name string, val *planpb.Value) {
	for _, base := range []string{
		"params." + name,
		fmt.Sprintf("params[%q]", name),
		fmt.Sprintf("params['%s']", name),
		"inputs.params." + name, // v1beta1's old form, still honoured by Tekton
	} {
		v.set(base, val, "")
	}
	if val.GetType() == planpb.ValueType_OBJECT {
		for k, e := range val.GetObjectValue() {
			v.str["params."+name+"."+k] = e
		}
	}
	v.replacer = nil
}

// set records val under base; object keys are recorded as base+fmt(keyFmt)
// when keyFmt is not empty.
func (v *Vars) set(base string, val *planpb.Value, keyFmt string) {
	switch val.GetType() {
	case planpb.ValueType_ARRAY:
		for i, e := range val.GetArrayValue() {
			v.str[fmt.Sprintf("%s[%d]", base, i)] = e
		}
		v.arr[base] = val.GetArrayValue()
	case planpb.ValueType_OBJECT:
		if keyFmt != "" {
			for k, e := range val.GetObjectValue() {
				v.str[base+fmt.Sprintf(keyFmt, k)] = e
			}
		}
		v.obj[base] = val.GetObjectValue()
	default:
		v.str[base] = val.GetStringValue()
	}
}

// Apply replaces every string variable in s, in one pass (Tekton's
// substitution.ApplyReplacements: a replaced value is not substituted again).
func (v *Vars) Apply(s string) string {
	if len(v.str) == 0 || !strings.Contains(s, "$(") {
		return s
	}
	if v.replacer == nil {
		pairs := make([]string, 0, 2*len(v.str))
		for k, val := range v.str {
			pairs = append(pairs, "$("+k+")", val)
		}
		v.replacer = strings.NewReplacer(pairs...)
	}
	return v.replacer.Replace(s)
}

// applyArray is Tekton's ApplyArrayReplacements: a string that is exactly
// $(KEY) or $(KEY[*]) of an array variable becomes its elements; anything
// else is one string with string variables applied.
func (v *Vars) applyArray(s string) []string {
	if a, ok := v.exactArray(s); ok {
		return a
	}
	return []string{v.Apply(s)}
}

// exactArray reports whether s is exactly a reference to a whole array.
func (v *Vars) exactArray(s string) ([]string, bool) {
	key, ok := wholeRef(s)
	if !ok {
		return nil, false
	}
	a, ok := v.arr[key]
	return a, ok
}

// wholeRef returns KEY when s is exactly $(KEY) or $(KEY[*]).
func wholeRef(s string) (string, bool) {
	if !strings.HasPrefix(s, "$(") || !strings.HasSuffix(s, ")") {
		return "", false
	}
	key := strings.TrimSuffix(s[2:len(s)-1], "[*]")
	if strings.Contains(key, "$(") || strings.Contains(key, ")") {
		return "", false
	}
	return key, true
}

// ApplyList applies the variables to each element of a list, expanding whole
// array references in place (args, command, when values).
func (v *Vars) ApplyList(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, v.applyArray(s)...)
	}
	return out
}

// ApplyWhenInput is WhenExpression input substitution: a whole array
// reference becomes its JSON text.
func (v *Vars) ApplyWhenInput(s string) string {
	if a, ok := v.exactArray(s); ok {
		b, err := json.Marshal(a)
		if err == nil {
			return string(b)
		}
	}
	return v.Apply(s)
}

// ApplyValue is Tekton's ParamValue.ApplyReplacements: array elements may
// expand whole arrays, object values get string variables, and a string that
// is exactly a reference to an array or object takes that type.
func (v *Vars) ApplyValue(val *planpb.Value) *planpb.Value {
	if val == nil {
		return nil
	}
	switch val.GetType() {
	case planpb.ValueType_ARRAY:
		return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: v.ApplyList(val.GetArrayValue())}
	case planpb.ValueType_OBJECT:
		obj := make(map[string]string, len(val.GetObjectValue()))
		for k, e := range val.GetObjectValue() {
			obj[k] = v.Apply(e)
		}
		return &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: obj}
	}
	s := val.GetStringValue()
	key, whole := wholeRef(s)
	if !whole || !exactVariable(s) {
		return &planpb.Value{StringValue: v.Apply(s)}
	}
	if a, ok := v.arr[key]; ok {
		return &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: slices.Clone(a)}
	}
	if o, ok := v.obj[key]; ok {
		return &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: o}
	}
	return &planpb.Value{StringValue: v.Apply(s)}
}

// exactVariable is Tekton's exactVariableSubstitutionRegex: s is one
// $(...) reference in Tekton's variable syntax and nothing else.
func exactVariable(s string) bool {
	return len(expressions(s)) == 1 && strings.HasPrefix(s, "$(") && strings.HasSuffix(s, ")") && strings.Count(s, "$(") == 1
}
