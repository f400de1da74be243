package results

import (
	"reflect"
	"slices"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// TestExpressions pins Expressions to Tekton's GetVarSubstitutionExpressions.
func TestExpressions(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"no variables", nil},
		{"$(tasks.a.results.r)", []string{"tasks.a.results.r"}},
		{"$(finally.f.results.r)-$(tasks.a.results.list[1]) $(tasks.a.results.o[*])",
			[]string{"finally.f.results.r", "tasks.a.results.list[1]", "tasks.a.results.o[*]"}},
		{"$(tasks.a.results.r) $(tasks.a.results.r)", []string{"tasks.a.results.r", "tasks.a.results.r"}},
		{`$(tasks.a.results["r"]) $(not a var) $(x`, nil},
		{"$(a $(tasks.a.results.o.k))", []string{"tasks.a.results.o.k"}},
	}
	for _, tt := range tests {
		got := Expressions(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Expressions(%q) = %q, want %q", tt.in, got, tt.want)
		}
		tekton, _ := v1.PipelineResult{Value: *v1.NewStructuredValues(tt.in)}.GetVarSubstitutionExpressions()
		if !slices.Equal(got, tekton) {
			t.Errorf("Expressions(%q) = %q, Tekton finds %q", tt.in, got, tekton)
		}
	}
}

// TestSplitIndex pins SplitIndex to Tekton's ParseResultName.
func TestSplitIndex(t *testing.T) {
	tests := []struct{ in, name, index string }{
		{"r", "r", ""},
		{"list[1]", "list", "1"},
		{"list[12]", "list", "12"},
		{"list[*]", "list", "*"},
		{"list[]", "list", ""},
	}
	for _, tt := range tests {
		name, index := SplitIndex(tt.in)
		if name != tt.name || index != tt.index {
			t.Errorf("SplitIndex(%q) = %q, %q, want %q, %q", tt.in, name, index, tt.name, tt.index)
		}
		if tn, ti := v1.ParseResultName(tt.in); tn != name || ti != index {
			t.Errorf("SplitIndex(%q) = %q, %q, Tekton's ParseResultName %q, %q", tt.in, name, index, tn, ti)
		}
	}
}

func TestSetArrayAndObject(t *testing.T) {
	v := NewVars()
	v.SetArray("finally.f.results.list", []string{"x", "y"})
	v.SetObject("finally.f.results.o", map[string]string{"k": "K"})
	v.SetString("finally.f.results.s", "S")
	tests := []struct{ in, want *planpb.Value }{
		{str("$(finally.f.results.list[*])"), arr("x", "y")},
		{str("$(finally.f.results.list)"), arr("x", "y")},
		{str("$(finally.f.results.o[*])"), obj(map[string]string{"k": "K"})},
		{str("$(finally.f.results.s)-$(finally.f.results.list[*])"), str("S-$(finally.f.results.list[*])")},
		{arr("$(finally.f.results.list[*])", "$(finally.f.results.s)"), arr("x", "y", "S")},
	}
	for _, tt := range tests {
		if got := v.ApplyValue(tt.in); !equalValue(got, tt.want) {
			t.Errorf("ApplyValue(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
