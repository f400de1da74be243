package results

import (
	"strings"
	"testing"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// FuzzApply substitutes $(...) references in any text with params and task
// results of every type set, as a task's fields are at run time: nothing
// panics, text without a reference comes back unchanged, and a reference
// to a string param is replaced by its value.
func FuzzApply(f *testing.F) {
	for _, s := range []string{
		"$(params.s)", "$(params.a[*])", "$(params.a[1])", "$(params.o.k)", "$(params['s'])", `$(params["o"].k)`,
		"$(tasks.t.results.r)", "$(tasks.t.results.arr[*])", "$(tasks.t.results.obj.key)", "$(tasks.t.results.arr[9])",
		"echo $(params.s) $( params.s ) $(params.missing) $(", "$$(params.s)", "$(params.a[-1])", "$(params.a[99999999999999999999])",
		"plain text", "",
	} {
		f.Add(s)
	}
	v := NewVars()
	v.SetParam("s", &planpb.Value{StringValue: "S"})
	v.SetParam("a", &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{"x", "y"}})
	v.SetParam("o", &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: map[string]string{"k": "K"}})
	v.SetResult("t", "r", &planpb.Value{StringValue: "R"})
	v.SetResult("t", "arr", &planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{"1", "2"}})
	v.SetResult("t", "obj", &planpb.Value{Type: planpb.ValueType_OBJECT, ObjectValue: map[string]string{"key": "V"}})
	f.Fuzz(func(t *testing.T, s string) {
		out := v.Apply(s)
		_ = v.ApplyList([]string{s, "$(params.a[*])", s})
		_ = v.ApplyWhenInput(s)
		_ = v.ApplyValue(&planpb.Value{Type: planpb.ValueType_ARRAY, ArrayValue: []string{s}})
		if !strings.Contains(s, "$(") && out != s {
			t.Fatalf("Apply(%q) = %q: text without a reference changed", s, out)
		}
		if strings.Contains(s, "$(params.s)") && strings.Count(out, "$(params.s)") >= strings.Count(s, "$(params.s)") && !strings.Contains(s, "$$(params.s)") {
			t.Fatalf("Apply(%q) = %q: $(params.s) was not replaced", s, out)
		}
	})
}
